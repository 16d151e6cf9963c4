"""Runs record their mode, the purges they saw and the subjects they recomputed
(incremental evaluation, issue 8; DuckDB registries: schema step 3 -> 4).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from xinyong.ledger.pgschema import refuse_downgrade

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for column in ("mode TEXT", "purged BIGINT", "subjects_recomputed BIGINT"):
        op.execute(f"ALTER TABLE eval_runs ADD COLUMN IF NOT EXISTS {column}")
    op.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")


def downgrade() -> None:
    refuse_downgrade()
