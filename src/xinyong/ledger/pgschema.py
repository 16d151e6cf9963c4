"""The registry's schema on PostgreSQL, as SQLAlchemy Core tables: the one
definition Alembic's migrations (``ledger/alembic``) create and upgrade.

It declares the same tables and columns as the DuckDB registry (``ledger.store``:
``_FIXED_TABLES`` and ``record_columns()``, the records' typed ``attr_*`` columns
from the catalog; ``tests/test_postgres_store.py`` holds the two to each other),
plus what a server shared by concurrent writers needs:

- ``records.record_id`` UNIQUE: a re-sent record inserted by two importers at once
  lands once (``INSERT … ON CONFLICT (record_id) DO NOTHING``);
- the sequence ``batch_ids``: concurrent imports take distinct batch ids without
  reading ``max(batch_id)``;
- indexes on ``subject_id`` of the ledger and of the materialized tables, which
  checks, scores and explanations read directly (no snapshot file on PostgreSQL).

The process tables the DuckDB registry creates on first use (``outbox``,
``licensed_systems``, ``tombstones``: ``process/notices.py``, ``licensing.py``,
``purge.py``, same columns) are declared here and made by migration 0003, so that
a PostgreSQL registry's schema is all in its migrations.

And the state every host of a registry shares (``SHARED_STATE``, migration 0003),
which a DuckDB registry keeps in files beside itself: the audit chain
(``audit_log``, one row per entry, written by ``audit.chain``) and the principal book
(``principals``, ``api_keys``, and ``principal_book``, whose one row counts the
book's changes and is the lock its editors take: ``access.principals``).
"""

from __future__ import annotations

from typing import NoReturn

import sqlalchemy as sa

from xinyong.catalog import load_catalog
from xinyong.catalog.vocabulary import attribute_column

_ATTR_TYPES = {"string": sa.Text, "int64": sa.BigInteger, "float64": sa.Double}

BATCH_IDS = sa.Sequence("batch_ids")

#: The tables that hold the audit chain and the principal book. Replacing a registry
#: (`ledger.postgres.reset`) keeps them, as a DuckDB registry's side files outlive its
#: file: audit history is never dropped with the data it audited.
SHARED_STATE = ("audit_log", "principals", "api_keys", "principal_book")

#: The advisory lock (pg_advisory_xact_lock) that serializes appends to the audit
#: chain (the other keys: `ledger.postgres`).
AUDIT_LOCK = 0x78696E04


def _col(
    name: str, kind: sa.types.TypeEngine | type, nullable: bool = True, **kw: object
) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, kind, nullable=nullable, **kw)  # type: ignore[arg-type]


def metadata() -> sa.MetaData:
    """The registry's tables (records with the catalog's attribute columns)."""
    md = sa.MetaData()
    ts = sa.DateTime(timezone=False)
    sa.Table(
        "meta",
        md,
        sa.Column("key", sa.Text, primary_key=True),
        _col("value", sa.Text, False),
    )
    sa.Table(
        "sources",
        md,
        sa.Column("source_id", sa.Text, primary_key=True),
        _col("kind", sa.Text, False),
        _col("registered_at", ts, False),
    )
    sa.Table(
        "batches",
        md,
        sa.Column("batch_id", sa.BigInteger, primary_key=True, autoincrement=False),
        _col("file", sa.Text),
        _col("recorded_at", ts, False),
        _col("accepted", sa.BigInteger, False),
        _col("duplicates", sa.BigInteger, False),
        _col("rejected", sa.BigInteger, False),
    )
    sa.Table(
        "packs",
        md,
        sa.Column("system", sa.Text, primary_key=True),
        sa.Column("version", sa.Text, primary_key=True),
        _col("effective_from", sa.Date, False),
        _col("body", sa.Text, False),
        _col("sha256", sa.Text, False),
        _col("installed_at", ts, False),
    )
    sa.Table(
        "eval_runs",
        md,
        sa.Column("run_id", sa.BigInteger, primary_key=True, autoincrement=False),
        _col("as_of", ts, False),
        _col("known_at", ts, False),
        _col("evaluated_at", ts, False),
        _col("last_batch", sa.BigInteger),
        _col("timeline", sa.Boolean),
        _col("mode", sa.Text),
        _col("purged", sa.BigInteger),
        _col("subjects_recomputed", sa.BigInteger),
    )
    sa.Table(
        "scores",
        md,
        _col("system", sa.Text, False),
        _col("subject_id", sa.Text, False),
        _col("score", sa.Double),
        _col("grade", sa.Text),
        sa.Index("scores_subject", "subject_id"),
    )
    sa.Table(
        "score_timeline",
        md,
        _col("system", sa.Text, False),
        _col("subject_id", sa.Text, False),
        _col("valid_from", ts, False),
        _col("valid_to", ts),
        _col("score", sa.Double),
        _col("grade", sa.Text),
        sa.Index("score_timeline_subject", "subject_id"),
    )
    sa.Table(
        "list_entries",
        md,
        _col("system", sa.Text, False),
        _col("list_id", sa.Text, False),
        _col("subject_id", sa.Text, False),
        _col("key", sa.Text),
        _col("entry_record_id", sa.Text, False),
        _col("occurred_at", ts, False),
        _col("start_at", ts, False),
        _col("end_at", ts),
        _col("end_reason", sa.Text),
        _col("ending_record_id", sa.Text),
        sa.Index("list_entries_subject", "subject_id"),
    )
    sa.Table(
        "consequences",
        md,
        _col("system", sa.Text, False),
        _col("subject_id", sa.Text, False),
        _col("service", sa.Text, False),
        _col("effect", sa.Text, False),
        _col("rule_id", sa.Text, False),
        _col("basis_kind", sa.Text, False),
        _col("basis_id", sa.Text, False),
        _col("legal_basis", sa.Text, False),
        _col("since", ts, False),
        _col("until", ts),
        _col("remedy", sa.Text),
        _col("via_relation", sa.Text),
        _col("via_subject", sa.Text),
        sa.Index("consequences_subject", "subject_id", "service"),
    )
    sa.Table("records", md, *record_columns(), *_record_keys())
    _process_tables(md)
    _shared_state(md)
    return md


def _process_tables(md: sa.MetaData) -> None:
    """The DuckDB registry's lazily created tables, with their DDL's columns."""
    ts = sa.DateTime(timezone=False)
    sa.Table(
        "outbox",
        md,
        sa.Column("notice_id", sa.Text, primary_key=True),
        _col("subject_id", sa.Text, False),
        _col("kind", sa.Text, False),
        _col("record_id", sa.Text),
        _col("due_at", ts, False),
        _col("subject", sa.Text, False),
        _col("body", sa.Text, False),
        _col("created_at", ts, False),
        _col("sent_at", ts),
    )
    sa.Table(
        "licensed_systems",
        md,
        sa.Column("system", sa.Text, primary_key=True),
        _col("operator_id", sa.Text, False),
        _col("bound_at", ts, False),
        _col("bound_by", sa.Text, False),
    )
    sa.Table(
        "tombstones",
        md,
        sa.Column("record_id", sa.Text, primary_key=True),
        _col("type", sa.Text, False),
        _col("subject_id", sa.Text, False),
        _col("occurred_at", ts, False),
        _col("recorded_at", ts, False),
        _col("retention_end", ts, False),
        _col("purged_at", ts, False),
        _col("rule", sa.Text, False),
        _col("legal_basis", sa.Text, False),
    )


def _shared_state(md: sa.MetaData) -> None:
    """The audit chain and the principal book (``SHARED_STATE``). Audit rows hold an
    entry's fields as its canonical JSON has them (``at`` as written, ``detail`` as
    canonical JSON text), so the hash is recomputed from exactly what was stored."""
    sa.Table(
        "audit_log",
        md,
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        _col("at", sa.Text, False),
        _col("principal", sa.Text, False),
        _col("role", sa.Text, False),
        _col("action", sa.Text, False),
        _col("subject", sa.Text),
        _col("purpose", sa.Text),
        _col("outcome", sa.Text, False),
        _col("detail", sa.Text, False),
        _col("prev", sa.Text, False),
        _col("hash", sa.Text, False),
        sa.Index("audit_log_subject", "subject"),
    )
    sa.Table(
        "principals",
        md,
        sa.Column("name", sa.Text, primary_key=True),
        _col("role", sa.Text, False),
        _col("source", sa.Text),
        _col("services", sa.Text, False),  # a JSON list
        _col("subject_id", sa.Text),
        _col("created_at", sa.Text, False),
        _col("revoked_at", sa.Text),
    )
    sa.Table(
        "api_keys",
        md,
        sa.Column("key_id", sa.Text, primary_key=True),
        _col("principal", sa.Text, False),
        _col("ordinal", sa.Integer, False),  # its place among the principal's keys
        _col("salt", sa.Text, False),
        _col("digest", sa.Text, False),
        _col("created_at", sa.Text, False),
        _col("revoked_at", sa.Text),
        sa.ForeignKeyConstraint(["principal"], ["principals.name"], name="api_keys_principal"),
        sa.Index("api_keys_by_principal", "principal"),
    )
    sa.Table(
        "principal_book",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        _col("revision", sa.BigInteger, False),
        sa.CheckConstraint("id = 1", name="principal_book_one_row"),
    )


def record_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    """The records table's columns, in the DuckDB store's order."""
    ts = sa.DateTime(timezone=False)
    cols = [
        _col("record_id", sa.Text, False),
        _col("subject_id", sa.Text, False),
        _col("subject_kind", sa.Text, False),
        _col("birth_date", sa.Date),
        _col("type", sa.Text, False),
        _col("occurred_at", ts, False),
        _col("source", sa.Text, False),
        _col("source_kind", sa.Text, False),
        _col("recorded_at", ts, False),
        _col("batch_id", sa.BigInteger, False),
        _col("content_hash", sa.LargeBinary, False),
        _col("attributes", sa.Text, False),
        _col("subject_flags", sa.Text),
    ]
    for name, kind in load_catalog().attribute_columns.items():
        cols.append(_col(attribute_column(name), _ATTR_TYPES[kind]))
    return cols


def _record_keys() -> list[sa.schema.SchemaItem]:
    return [
        sa.UniqueConstraint("record_id", name="records_record_id"),
        sa.Index("records_subject", "subject_id"),
        sa.Index("records_batch", "batch_id"),
    ]


def refuse_downgrade() -> NoReturn:
    """A registry is never downgraded (its ledger is append-only and newer runs may
    rest on newer columns): an Alembic downgrade ends in this one clear error."""
    from xinyong.ledger.store import RegistryError

    raise RegistryError("a registry is never downgraded; restore a backup instead")
