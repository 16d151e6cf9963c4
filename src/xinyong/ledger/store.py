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
eval_runs      the materialized evaluation: run_id, as_of, known_at, evaluated_at, last_batch,
               timeline (whether the run materialized timelines), mode ('full' or
               'incremental', engine/incremental.py), purged (tombstones when it ran:
               a purge since makes the next run a full one), subjects_recomputed
scores         system, subject_id, score, grade                     (latest run, at as_of)
score_timeline system, subject_id, valid_from, valid_to (NULL: open), score, grade
               (latest run: every instant, as known at known_at)
list_entries   system, list_id, subject_id, key, entry_record_id, occurred_at, start_at,
               end_at, end_reason, ending_record_id                 (latest run)
consequences   system, subject_id, service, effect, rule_id, basis_kind ('list'|'grade'),
               basis_id, legal_basis, since, until, remedy, via_relation, via_subject
                                                  (latest run; with timeline: every period)

meta           key, value: `format` = 'xinyong-registry' (the marker that this file is a
               registry) and `schema_version` (see MIGRATIONS)

DDL is built from fixed strings and catalog names (package data, validated),
never from user or pack input.

Fail closed: a Store opens only a file that says it is a registry of this schema
version. A missing file is created (never in read-only mode), an empty (0-byte) one
too; anything else (a CSV, a Parquet file, a DuckDB file without the marker, a
directory, a path in a missing folder) is refused with RegistryError. A registry of
an older schema version is refused until `xinyong migrate` (`migrate()`) upgrades
it, one numbered step at a time; nothing upgrades silently. Read-only stores run no
schema setup, so any number of readers share the file; a file locked by a writer is
retried for a bounded time (XINYONG_BUSY_TIMEOUT seconds), then RegistryInUse.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import duckdb

from xinyong.catalog import load_catalog
from xinyong.catalog.vocabulary import attribute_column
from xinyong.ledger.location import is_pg, pg_url

if TYPE_CHECKING:
    from ibis.backends.duckdb import Backend as DuckDBBackend

#: The marker in `meta` that says a DuckDB file is a xinyong registry.
FORMAT = "xinyong-registry"
SCHEMA_VERSION = 4

#: DuckDB writes this at byte 8 of every database file: checked before connecting,
#: so that DuckDB is never handed (and never writes into) a file of another kind.
_DUCKDB_MAGIC = b"DUCK"

_SQL_TYPES = {"string": "VARCHAR", "int64": "BIGINT", "float64": "DOUBLE"}
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


class RegistryError(ValueError):
    """The path does not hold a usable registry (the message names it and what to do)."""


class RegistryInUse(RegistryError):
    """Another process holds the registry file open for writing."""


class RegistryOutdated(RegistryError):
    """The registry has an older schema version: `xinyong migrate` upgrades it."""


def busy_timeout() -> float:
    """Seconds to wait for a registry locked by another process (XINYONG_BUSY_TIMEOUT)."""
    try:
        return max(0.0, float(os.environ.get("XINYONG_BUSY_TIMEOUT", "10")))
    except ValueError:
        return 10.0


def _quote(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe identifier: {name!r}")
    return f'"{name}"'


def stamped_projection(stamp: str, batch: str, column: Callable[[str], str]) -> str:
    """The select list that writes staged rows into ``records``: every record column
    as ``column(name)`` gives it, but ``recorded_at`` and ``batch_id`` from the batch's
    placeholders ``stamp`` and ``batch`` (each backend's parameter syntax)."""
    return ", ".join(
        stamp if c == "recorded_at" else batch if c == "batch_id" else column(c)
        for c in record_columns()
    )


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
    "known_at TIMESTAMP NOT NULL, evaluated_at TIMESTAMP NOT NULL, last_batch BIGINT, "
    "timeline BOOLEAN, mode VARCHAR, purged BIGINT, subjects_recomputed BIGINT",
    "scores": "system VARCHAR NOT NULL, subject_id VARCHAR NOT NULL, score DOUBLE, grade VARCHAR",
    "score_timeline": "system VARCHAR NOT NULL, subject_id VARCHAR NOT NULL, "
    "valid_from TIMESTAMP NOT NULL, valid_to TIMESTAMP, score DOUBLE, grade VARCHAR",
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
    """An open registry file. Use as a context manager; one writer process at a time,
    any number of read-only ones (when no writer holds it).

    `create`: make the registry if the path is missing or an empty file (ignored
    when read_only). `migrating`: open an older schema version (for `migrate`).
    `wait`: seconds to retry a file locked by another process (default
    `busy_timeout()`).

    A PostgreSQL URL (``postgresql://…``) opens a `ledger.postgres.PostgresStore`
    instead, with the same surface (the store seam)."""

    #: which database holds the registry ("duckdb" or "postgresql")
    backend = "duckdb"

    def __new__(cls, path: str | Path, *args: Any, **kwargs: Any) -> Store:
        if cls is Store and is_pg(path):
            from xinyong.ledger.postgres import PostgresStore

            return super().__new__(PostgresStore)
        return super().__new__(cls)

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        create: bool = True,
        migrating: bool = False,
        wait: float | None = None,
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
        fresh = self.path == ":memory:" or _check_path(Path(self.path), read_only, create)
        self.sql: duckdb.DuckDBPyConnection = _connect(
            self.path, read_only, busy_timeout() if wait is None else wait
        )
        self._ibis: DuckDBBackend | None = None
        # The settings Ibis gives its connections, so that SQL and Ibis agree.
        self.sql.execute("SET TimeZone = 'UTC'")
        self.sql.execute("SET python_enable_replacements = false")
        try:
            if fresh:
                self.ensure_schema()
            else:
                self._check_version(migrating)
        except BaseException:
            self.sql.close()
            raise

    @property
    def ibis(self) -> DuckDBBackend:
        """An Ibis backend over the same connection (imported only when asked: the
        commands that answer from tables never load Ibis)."""
        if self._ibis is None:
            import ibis

            self._ibis = ibis.duckdb.from_connection(self.sql)
        return self._ibis

    @property
    def work(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection intake reads and validates with (this file's own; an
        in-memory one for a registry on PostgreSQL)."""
        return self.sql

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
        self.sql.close()

    @contextmanager
    def importing(self) -> Iterator[None]:
        """Held by an importer from the moment it stamps a batch's ``recorded_at`` to
        its commit or rollback, so that an evaluation's knowledge (``settled``) never
        misses a batch stamped before it. A DuckDB file has one writer process at a
        time, whose statements run one after the other: nothing to wait for."""
        yield

    @contextmanager
    def settled(self) -> Iterator[None]:
        """Entered by an evaluation to fix its ``known_at``: it returns once every
        batch stamped before it has committed or rolled back, and no batch is stamped
        until it exits (see `PostgresStore.settled`). Nothing to wait for on DuckDB."""
        yield

    def schema_version(self) -> int | None:
        """The schema version the file records (None: not a registry)."""
        tables = {r[0] for r in self.sql.execute("SHOW TABLES").fetchall()}
        if "meta" not in tables:
            return None
        meta = dict(self.sql.execute("SELECT key, value FROM meta").fetchall())
        version = meta.get("schema_version")
        if version is None or not str(version).isdigit():
            return None
        # Version 1 registries predate the format marker; later ones must carry it.
        if int(version) >= 2 and meta.get("format") != FORMAT:
            return None
        return int(version)

    def _check_version(self, migrating: bool) -> None:
        version = self.schema_version()
        if version is None:
            raise RegistryError(
                f"{self.path} is a DuckDB file but not a xinyong registry; "
                "check --db / XINYONG_DB, or create one with `xinyong init`"
            )
        if version > SCHEMA_VERSION:
            raise RegistryError(
                f"{self.path} has schema version {version}, newer than this xinyong "
                f"({SCHEMA_VERSION}); upgrade xinyong"
            )
        if version < SCHEMA_VERSION and not migrating:
            raise RegistryOutdated(
                f"{self.path} has schema version {version}, this xinyong needs "
                f"{SCHEMA_VERSION}; run `xinyong migrate --db {self.path}` (back the file up first)"
            )

    def ensure_schema(self) -> None:
        """Create the tables of a new registry (also: missing tables and catalog columns,
        a migration step) and write its format marker and version."""
        if self.read_only:
            raise RegistryError(f"{self.path} is open read-only; it cannot be set up")
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
            "INSERT INTO meta VALUES ('format', ?) ON CONFLICT (key) DO NOTHING", [FORMAT]
        )
        self.sql.execute(
            "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key) DO NOTHING",
            [str(SCHEMA_VERSION)],
        )

    def table(self, name: str) -> Any:
        """An Ibis table expression over one of the registry's tables."""
        return self.ibis.table(name)

    def has_packs(self) -> bool:
        row = self.sql.execute("SELECT count(*) FROM packs").fetchone()
        return bool(row and row[0])


def _check_path(path: Path, read_only: bool, create: bool) -> bool:
    """Whether `path` is to be created as a new registry; RegistryError for a path that
    cannot hold one. An existing file must look like a DuckDB database."""
    where = f"{path}"
    if path.is_dir():
        raise RegistryError(f"{where} is a directory, not a registry file; check --db")
    if not path.parent.is_dir():
        raise RegistryError(f"{where}: folder {path.parent} does not exist; check --db")
    if not path.exists() or path.stat().st_size == 0:
        if read_only or not create:
            raise RegistryError(
                f"no registry at {where}; create one with `xinyong init --db {path}`"
            )
        if not os.access(path.parent, os.W_OK):
            raise RegistryError(f"{where}: folder {path.parent} is not writable")
        # DuckDB refuses an empty file; an empty file holds nothing to keep.
        path.unlink(missing_ok=True)
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise RegistryError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if head[8:12] != _DUCKDB_MAGIC:
        raise RegistryError(
            f"{where} is not a xinyong registry (not a DuckDB file); check --db / XINYONG_DB"
        )
    if not read_only and not os.access(path, os.W_OK):
        raise RegistryError(f"{where} is not writable")
    return False


def _connect(path: str, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    """Connect, retrying while another process holds the file's lock (up to `wait` s)."""
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" not in text.lower():
                raise RegistryError(f"{path}: cannot open the registry: {text}") from None
            if time.monotonic() >= deadline:
                raise RegistryInUse(
                    f"registry {path} is in use by another process (a writer such as an "
                    "import or an evaluation); try again when it ends"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        except duckdb.Error as exc:
            raise RegistryError(f"{path}: cannot open the registry: {exc}") from None


#: Schema upgrades, each from version n to n + 1: (what it does, the step).
MIGRATIONS: dict[int, tuple[str, Callable[[Store], None]]] = {
    1: (
        "mark the file as a xinyong registry; add tables and catalog columns it lacks",
        Store.ensure_schema,
    ),
    2: (
        "add the score timeline; runs made before it answer by replay until the next evaluate",
        lambda store: _add_timelines(store),
    ),
    3: (
        "record how each run was made (full or incremental); the next evaluate is a full one",
        lambda store: _add_run_modes(store),
    ),
}


def _add_timelines(store: Store) -> None:
    store.sql.execute("ALTER TABLE eval_runs ADD COLUMN IF NOT EXISTS timeline BOOLEAN")
    store.ensure_schema()


def _add_run_modes(store: Store) -> None:
    for column in ("mode VARCHAR", "purged BIGINT", "subjects_recomputed BIGINT"):
        store.sql.execute(f"ALTER TABLE eval_runs ADD COLUMN IF NOT EXISTS {column}")
    store.ensure_schema()


def migrate(path: str | Path, *, wait: float | None = None) -> list[tuple[int, str]]:
    """Upgrade the registry at `path` to SCHEMA_VERSION, one step at a time, each in
    its own transaction. Returns the steps run ((from version, description)).
    A PostgreSQL registry is upgraded by its Alembic migrations (`ledger.postgres`)."""
    url = pg_url(path)
    if url is not None:
        from xinyong.ledger import postgres

        return postgres.migrate(url)
    done: list[tuple[int, str]] = []
    with Store(path, create=False, migrating=True, wait=wait) as store:
        version = store.schema_version()
        assert version is not None  # _check_version refused a non-registry
        while version < SCHEMA_VERSION:
            what, step = MIGRATIONS[version]
            store.sql.execute("BEGIN TRANSACTION")
            try:
                step(store)
                store.sql.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(version + 1)]
                )
                store.sql.execute("COMMIT")
            except BaseException:
                store.sql.execute("ROLLBACK")
                raise
            done.append((version, what))
            version += 1
    return done


@contextmanager
def registered(con: Any, **tables: Any) -> Iterator[None]:
    """Arrow tables visible to SQL under the given names for the block's statements
    (how input values reach SQL: never as text in a statement)."""
    for name, table in tables.items():
        con.register(name, table)
    try:
        yield
    finally:
        for name in tables:
            con.unregister(name)
