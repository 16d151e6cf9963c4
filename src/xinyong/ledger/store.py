"""The registry file: one DuckDB database holding the ledger, sources, installed
packs and materialized results.

Schema (all timestamps are naive UTC; a date in input means 00:00 Asia/Shanghai):

records        one row per accepted record, never updated or deleted
  record_id, subject_id, subject_kind ('person'|'organization'), birth_date
  (persons, from the identity number), type, occurred_at, source, source_kind
  (the source's registered kind),
  recorded_at (stamped by the registry, one value per import batch), batch_id,
  content_hash (BLOB: the 16-byte MD5 digest of the canonical envelope, see
  `ledger.intake`; compact to store and portable, e.g. to PostgreSQL bytea. It is a
  fingerprint, not a security measure: whether a re-sent record_id is a duplicate or
  a conflict is decided by comparing the stored content itself),
  attributes (canonical JSON text), subject_flags (e.g. 'address_code_unknown'),
  then one typed column per catalog attribute name, `attr_<name>`.
sources        source_id, kind, registered_at
batches        batch_id, file, recorded_at, accepted, duplicates, rejected
packs          system, version, effective_from, body (YAML text), sha256, installed_at
eval_runs      the materialized evaluation: run_id, as_of, known_at, evaluated_at, last_batch
scores         system, subject_id, score, grade                     (latest run)
list_entries   system, list_id, subject_id, key, entry_record_id, occurred_at, start_at,
               end_at, end_reason, ending_record_id                 (latest run)
consequences   system, subject_id, service, effect, rule_id, basis_kind ('list'|'grade'),
               basis_id, legal_basis, since, until, remedy, via_relation, via_subject
                                                                    (latest run)

DDL is built from fixed strings and catalog names (package data, validated),
never from user or pack input.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import ibis
from ibis.backends.duckdb import Backend as DuckDBBackend

from xinyong.catalog import load_catalog
from xinyong.catalog.vocabulary import attribute_column

SCHEMA_VERSION = 1

_SQL_TYPES = {"string": "VARCHAR", "int64": "BIGINT", "float64": "DOUBLE"}
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


class RegistryInUse(RuntimeError):
    """Another process holds the registry file open for writing."""


def _quote(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe identifier: {name!r}")
    return f'"{name}"'


def record_columns() -> dict[str, str]:
    """Column name -> SQL type of the records table, in order."""
    columns = {
        "record_id": "VARCHAR NOT NULL",
        "subject_id": "VARCHAR NOT NULL",
        "subject_kind": "VARCHAR NOT NULL",
        "birth_date": "DATE",
        "type": "VARCHAR NOT NULL",
        "occurred_at": "TIMESTAMP NOT NULL",
        "source": "VARCHAR NOT NULL",
        "source_kind": "VARCHAR NOT NULL",
        "recorded_at": "TIMESTAMP NOT NULL",
        "batch_id": "BIGINT NOT NULL",
        "content_hash": "BLOB NOT NULL",
        "attributes": "VARCHAR NOT NULL",
        "subject_flags": "VARCHAR",
    }
    for name, kind in load_catalog().attribute_columns.items():
        columns[attribute_column(name)] = _SQL_TYPES[kind]
    return columns


_FIXED_TABLES = {
    "meta": "key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL",
    "sources": "source_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, "
    "registered_at TIMESTAMP NOT NULL",
    "batches": "batch_id BIGINT PRIMARY KEY, file VARCHAR, recorded_at TIMESTAMP NOT NULL, "
    "accepted BIGINT NOT NULL, duplicates BIGINT NOT NULL, rejected BIGINT NOT NULL",
    "packs": "system VARCHAR NOT NULL, version VARCHAR NOT NULL, effective_from DATE NOT NULL, "
    "body VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, installed_at TIMESTAMP NOT NULL, "
    "PRIMARY KEY (system, version)",
    "eval_runs": "run_id BIGINT PRIMARY KEY, as_of TIMESTAMP NOT NULL, "
    "known_at TIMESTAMP NOT NULL, evaluated_at TIMESTAMP NOT NULL, last_batch BIGINT",
    "scores": "system VARCHAR NOT NULL, subject_id VARCHAR NOT NULL, score DOUBLE, grade VARCHAR",
    "list_entries": "system VARCHAR NOT NULL, list_id VARCHAR NOT NULL, "
    "subject_id VARCHAR NOT NULL, key VARCHAR, entry_record_id VARCHAR NOT NULL, "
    "occurred_at TIMESTAMP NOT NULL, start_at TIMESTAMP NOT NULL, end_at TIMESTAMP, "
    "end_reason VARCHAR, ending_record_id VARCHAR",
    "consequences": "system VARCHAR NOT NULL, subject_id VARCHAR NOT NULL, "
    "service VARCHAR NOT NULL, effect VARCHAR NOT NULL, rule_id VARCHAR NOT NULL, "
    "basis_kind VARCHAR NOT NULL, basis_id VARCHAR NOT NULL, legal_basis VARCHAR NOT NULL, "
    "since TIMESTAMP NOT NULL, until TIMESTAMP, remedy VARCHAR, via_relation VARCHAR, "
    "via_subject VARCHAR",
}


class Store:
    """An open registry file. Use as a context manager; one writer process at a time."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = str(path)
        try:
            self.ibis: DuckDBBackend = ibis.duckdb.connect(self.path, read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise RegistryInUse(
                    f"registry {self.path} is in use by another process; try again when it ends"
                ) from exc
            raise
        self.sql: duckdb.DuckDBPyConnection = self.ibis.con
        if not read_only:
            self.ensure_schema()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.ibis.disconnect()

    def ensure_schema(self) -> None:
        """Create missing tables and add columns for attributes new in the catalog."""
        for table, body in _FIXED_TABLES.items():
            self.sql.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body})")
        cols = record_columns()
        body = ", ".join(f"{_quote(c)} {t}" for c, t in cols.items())
        self.sql.execute(f"CREATE TABLE IF NOT EXISTS records ({body})")
        existing = {
            row[0]
            for row in self.sql.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'records'"
            ).fetchall()
        }
        for col, sql_type in cols.items():
            if col not in existing:
                # New catalog attributes arrive as nullable columns; old rows stay valid.
                self.sql.execute(
                    f"ALTER TABLE records ADD COLUMN {_quote(col)} "
                    f"{sql_type.replace(' NOT NULL', '')}"
                )
        self.sql.execute(
            "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
            [str(SCHEMA_VERSION)],
        )

    def table(self, name: str) -> Any:
        """An Ibis table expression over one of the registry's tables."""
        return self.ibis.table(name)
