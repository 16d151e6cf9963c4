"""The state every host of a registry shares, and the process tables made on first
use on DuckDB (issue 13: many API workers, on several hosts, on one database).

- ``audit_log``: the hash-chained audit log (until now a file per host, under
  XINYONG_STATE_DIR, so each host had its own chain);
- ``principals``, ``api_keys``, ``principal_book``: the principal book (a file per
  host, so a key made on one host was unknown to the others);
- ``outbox``, ``licensed_systems``, ``tombstones``: created by ``CREATE TABLE IF NOT
  EXISTS`` on first use until now (outside the migrations; first uses could race).

A registry's audit and principal files from before are imported by `xinyong
migrate` after this revision (``access.local_files``): a schema step alone cannot read
the files of every host.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from xinyong.ledger.pgschema import SHARED_STATE, metadata, refuse_downgrade

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("outbox", "licensed_systems", "tombstones", *SHARED_STATE)


def upgrade() -> None:
    md = metadata()
    # checkfirst: the tables a DuckDB-era first use may have made already stay as they are
    md.create_all(op.get_bind(), tables=[md.tables[name] for name in TABLES], checkfirst=True)
    # The chain is append-only in the database too: an UPDATE, DELETE or TRUNCATE of
    # audit_log is refused. The owner can still drop the trigger; `audit verify` then
    # names the first entry changed or removed (all but the newest entries).
    op.execute(
        "CREATE OR REPLACE FUNCTION xinyong_audit_append_only() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION USING MESSAGE = "
        "'the audit log is append-only: ' || TG_OP || ' refused'; END $$"
    )
    op.execute(
        "CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR "
        "TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION xinyong_audit_append_only()"
    )


def downgrade() -> None:
    refuse_downgrade()
