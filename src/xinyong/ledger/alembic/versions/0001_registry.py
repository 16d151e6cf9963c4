"""The registry's tables, its format marker, and what PostgreSQL lacks of DuckDB.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from xinyong.ledger.pgschema import BATCH_IDS, metadata, refuse_downgrade

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: PostgreSQL 16 has any_value(); 15 (this project's server) does not, and the
#: ledger's shared SQL uses it (ledger/duplicates.py): the same aggregate, defined once.
_ANY_VALUE = """
DO $$
BEGIN
  IF current_setting('server_version_num')::int < 160000
     AND NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'any_value') THEN
    CREATE FUNCTION xinyong_any_value_step(anyelement, anyelement) RETURNS anyelement
      LANGUAGE sql IMMUTABLE AS 'SELECT coalesce($1, $2)';
    CREATE AGGREGATE any_value(anyelement) (SFUNC = xinyong_any_value_step,
                                            STYPE = anyelement);
  END IF;
END
$$
"""


#: The tables this revision made (later revisions make theirs: 0003).
TABLES = (
    "meta", "sources", "batches", "packs", "eval_runs", "scores", "score_timeline",
    "list_entries", "consequences", "records",
)  # fmt: skip


def upgrade() -> None:
    bind = op.get_bind()
    md = metadata()
    md.create_all(bind, tables=[md.tables[name] for name in TABLES])
    op.execute(_ANY_VALUE)
    op.execute(f"CREATE SEQUENCE IF NOT EXISTS {BATCH_IDS.name}")
    op.execute(
        "INSERT INTO meta VALUES ('format', 'xinyong-registry'), ('schema_version', '3') "
        "ON CONFLICT (key) DO NOTHING"
    )


def downgrade() -> None:
    refuse_downgrade()
