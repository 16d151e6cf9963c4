"""The registry on a PostgreSQL server: ``--db postgresql://…`` (or XINYONG_DB).

The store seam: ``Store(url)`` returns a `PostgresStore`, which offers what every
call site uses of the DuckDB store, so that they do not change:

- ``store.sql`` is a `PgConnection`: ``execute(sql, params)`` with DuckDB's ``?``
  and ``$name`` placeholders, ``fetchall``/``fetchone``/``to_arrow_table``,
  ``register(name, arrow_table)`` (a temporary table filled by ``COPY``),
  ``begin``/``commit``/``rollback``. The call sites' SQL is written for DuckDB; it
  is translated once per statement text by sqlglot (DuckDB -> PostgreSQL), the same
  library Ibis compiles with. What sqlglot does not translate (``SHOW TABLES``,
  ``DESCRIBE t``, ``INSERT OR REPLACE``) is rewritten here, in one place.
- ``store.ibis`` is ``ibis.postgres`` over the same connection: evaluation runs in
  place, inside the database (no copy), and its inserts join the store's
  transaction (Ibis's own ``transaction()`` blocks become savepoints).
- ``store.work`` is an in-memory DuckDB connection for intake's reading and
  validation (file readers and the one validation statement are DuckDB SQL); the
  registered sources are copied into it for each import. Only the commit runs on
  the server (`commit_batch`).

Schema: ``ledger/pgschema.py`` (SQLAlchemy Core) upgraded by the Alembic migrations
in ``ledger/alembic``. A fresh (empty) database is set up on first use (``xinyong
init``); one whose Alembic revision is older is refused until ``xinyong migrate``;
a database with tables but without the registry marker, a wrong URL and an
unreachable server are refused with RegistryError (fail closed: never an empty
registry that answers "allow").

Concurrency: every importer writes its own transaction (``INSERT … ON CONFLICT
(record_id) DO NOTHING``; a record inserted meanwhile by another importer is then
judged a duplicate or a conflict against what was committed); batch ids come from a
sequence. Writers of the materialized results (evaluate, recompute) take one
advisory lock, so they run one at a time; readers never wait on importers. An
evaluation fixes its knowledge (``known_at``, and the newest batch it covers) only
when no import is in flight (``PostgresStore.settled``: importers share a lock from
their stamp to their commit, the evaluation waits to hold it alone for that moment),
so a batch stamped or numbered before a run is never missed by it and by the runs
that extend it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from xinyong.ledger.location import pg_url, redacted
from xinyong.ledger.store import (
    FORMAT,
    SCHEMA_VERSION,
    RegistryError,
    RegistryOutdated,
    Store,
    _quote,
    stamped_projection,
)

#: The Alembic revision this xinyong needs (tests hold it to the scripts' head).
ALEMBIC_HEAD = "0003"

#: Advisory lock keys (pg_advisory_*): schema setup, writers of materialized results,
#: and the knowledge lock (importers share it, an evaluation fixing its known_at takes
#: it alone: `PostgresStore.importing`, `PostgresStore.settled`); the audit chain's
#: appends take `pgschema.AUDIT_LOCK`.
_SETUP_LOCK = 0x78696E01
_RESULTS_LOCK = 0x78696E02
_KNOWLEDGE_LOCK = 0x78696E03

_ALEMBIC_DIR = Path(__file__).with_name("alembic")


# --------------------------------------------------------------------------- SQL


_SHOW_TABLES = re.compile(r"^\s*SHOW\s+TABLES\s*;?\s*$", re.IGNORECASE)
_DESCRIBE = re.compile(r"^\s*DESCRIBE\s+([a-z_][a-z0-9_]*)\s*;?\s*$", re.IGNORECASE)
_OR_REPLACE = re.compile(
    r"^\s*INSERT\s+OR\s+REPLACE\s+INTO\s+([a-z_][a-z0-9_]*)\s+VALUES", re.IGNORECASE
)


@lru_cache(maxsize=2048)
def translate(sql: str, with_params: bool, conflict_key: str | None = None) -> str:
    """A statement written for DuckDB, as PostgreSQL (psycopg placeholders)."""
    import logging

    import sqlglot
    import sqlglot.expressions as exp

    # DuckDB's any_value skips NULLs, as the registry's any_value aggregate does
    # (alembic 0001): sqlglot's warning that PostgreSQL has no IGNORE NULLS is moot.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)

    if _SHOW_TABLES.match(sql):
        return (
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY table_name"
        )
    described = _DESCRIBE.match(sql)
    if described:
        # the name is a validated identifier (the pattern); temp tables included
        return (
            "SELECT column_name, data_type FROM information_schema.columns "
            f"WHERE table_name = '{described.group(1)}' ORDER BY ordinal_position"
        )
    replace = _OR_REPLACE.match(sql)
    if replace and conflict_key:
        sql = "INSERT INTO" + sql[replace.end() - len(" VALUES") - len(replace.group(1)) - 1 :]
    tree = sqlglot.parse_one(sql, read="duckdb")
    if with_params:
        # psycopg reads % as a placeholder once parameters are passed
        for literal in tree.find_all(exp.Literal):
            if literal.is_string and "%" in literal.this:
                literal.set("this", literal.this.replace("%", "%%"))
    out = tree.sql(dialect="postgres")
    if replace and conflict_key:
        cols = _TABLE_COLUMNS.get(replace.group(1), ())
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c != conflict_key)
        out += f" ON CONFLICT ({conflict_key}) DO UPDATE SET {sets}"
    return out


#: Tables written with INSERT OR REPLACE by the call sites: their key and columns.
_REPLACE_KEYS = {"licensed_systems": "system"}
_TABLE_COLUMNS: dict[str, tuple[str, ...]] = {}


class PgResult:
    """A statement's result, as the DuckDB connection's `execute` returns it."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def fetchall(self) -> list[tuple[Any, ...]]:
        if self._cursor.description is None:
            return []
        return [tuple(r) for r in self._cursor.fetchall()]

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._cursor.description is None:
            return None
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        if self._cursor.description is None:
            return []
        return [tuple(r) for r in self._cursor.fetchmany(size)]

    def to_arrow_table(self) -> pa.Table:
        names = [d.name for d in self._cursor.description or []]
        rows = self._cursor.fetchall() if names else []
        return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})

    arrow = to_arrow_table
    fetch_arrow_table = to_arrow_table

    @property
    def description(self) -> Any:
        return self._cursor.description


class PgConnection:
    """A psycopg 3 connection with the DuckDB connection's surface (see the module
    docstring). Autocommit, so that ``BEGIN``/``COMMIT`` statements of the call sites
    delimit transactions exactly as on DuckDB."""

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        import psycopg

        self.url = url
        try:
            self.con = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RegistryError(
                f"{redacted(url)}: cannot connect to the PostgreSQL registry: {first}; "
                "check --db / XINYONG_DB and that the server is running"
            ) from None
        _register_loaders(self.con)
        with self.con.cursor() as cur:
            # Not default_transaction_read_only for read-only stores: their questions
            # create temporary tables (registered Arrow tables, Ibis's memtables).
            cur.execute("SET TIME ZONE 'UTC'")

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> PgResult:
        stripped = sql.strip().rstrip(";").upper()
        if stripped in ("BEGIN", "BEGIN TRANSACTION"):
            self.con.execute("BEGIN")
            return PgResult(self.con.cursor())
        if stripped in ("COMMIT", "ROLLBACK"):
            self.commit() if stripped == "COMMIT" else self.rollback()
            return PgResult(self.con.cursor())
        replace = _OR_REPLACE.match(sql)
        key = _REPLACE_KEYS.get(replace.group(1)) if replace else None
        if replace and key and replace.group(1) not in _TABLE_COLUMNS:
            _TABLE_COLUMNS[replace.group(1)] = tuple(
                r[0] for r in self.execute(f"DESCRIBE {replace.group(1)}").fetchall()
            )
        text = translate(sql, bool(params), key)
        cursor = self.con.cursor()
        cursor.execute(text, params if params else None)
        return PgResult(cursor)

    def begin(self) -> None:
        """A transaction that writes materialized results (evaluation's and
        recompute's ``store.sql.begin()``): one such writer at a time (an advisory
        lock), with the session settings the engine's PostgreSQL runs use
        (``engine/backends.py``: work_mem for its hashes, no nested loops over
        subqueries without statistics)."""
        self.con.execute("BEGIN")
        self.con.execute("SELECT pg_advisory_xact_lock(%s)", [_RESULTS_LOCK])
        self.con.execute("SET LOCAL work_mem = '256MB'")
        self.con.execute("SET LOCAL enable_nestloop = off")

    def commit(self) -> None:
        self.con.execute("COMMIT")

    def rollback(self) -> None:
        self.con.execute("ROLLBACK")

    def register(self, name: str, table: pa.Table | pa.RecordBatchReader) -> None:
        """The Arrow table as the temporary table `name` (COPY), until `unregister`."""
        if isinstance(table, pa.RecordBatchReader):
            table = table.read_all()
        ident = _quote(name)
        body = ", ".join(f"{_quote(f.name)} {pg_type(f.type)}" for f in table.schema)
        with self.con.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS pg_temp.{ident}")
            cur.execute(f"CREATE TEMP TABLE {ident} ({body})")
            copy_arrow(cur, ident, table)
            cur.execute(f"ANALYZE {ident}")

    def unregister(self, name: str) -> None:
        with suppress(Exception):
            self.con.execute(f"DROP TABLE IF EXISTS pg_temp.{_quote(name)}")

    def close(self) -> None:
        self.con.close()


def _register_loaders(con: Any) -> None:
    """numeric (sum and avg of integers) as int or float, like DuckDB, not Decimal."""
    from psycopg.adapt import Loader

    class NumericLoader(Loader):
        def load(self, data: Any) -> int | float:
            text = bytes(data).decode()
            return int(text) if text.lstrip("-").isdigit() else float(text)

    con.adapters.register_loader("numeric", NumericLoader)


_PG_TYPES = {pa.binary(): "bytea", pa.large_binary(): "bytea", pa.null(): "text"}


def pg_type(t: pa.DataType) -> str:
    """The PostgreSQL column type of an Arrow type (the engine's mapping, plus bytes)."""
    from xinyong.engine.backends import _pg_type

    return _PG_TYPES.get(t) or _pg_type(t)


def copy_arrow(cur: Any, ident: str, table: pa.Table, columns: Sequence[str] | None = None) -> None:
    """COPY an Arrow table into the table `ident` (CSV: empty unquoted = NULL, quoted
    "" = the empty string; bytes as PostgreSQL's hex escape)."""
    import pyarrow.csv as pacsv

    names = ", ".join(_quote(c) for c in (columns or table.column_names))
    fixed = []
    for field in table.schema:
        col = table.column(field.name)
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            col = pa.array(
                [None if b is None else "\\x" + b.hex() for b in col.to_pylist()], pa.string()
            )
        elif pa.types.is_null(field.type):
            col = pa.nulls(len(col), pa.string())
        fixed.append(col)
    table = pa.table(fixed, names=table.column_names)
    options = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
    with cur.copy(f"COPY {ident} ({names}) FROM STDIN WITH (FORMAT csv)") as cp:
        for batch in table.to_batches(max_chunksize=100_000):
            sink = pa.BufferOutputStream()
            pacsv.write_csv(pa.Table.from_batches([batch], table.schema), sink, options)
            cp.write(sink.getvalue().to_pybytes())


# --------------------------------------------------------------------------- the store


class PostgresStore(Store):
    """A registry in a PostgreSQL database (see the module docstring)."""

    backend = "postgresql"
    sql: PgConnection  # type: ignore[assignment]

    def __init__(  # noqa: PLR0913 - the Store signature
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        create: bool = True,
        migrating: bool = False,
        wait: float | None = None,
    ) -> None:
        url = pg_url(path)
        if url is None:
            raise RegistryError(f"{path} is not a PostgreSQL URL")
        self.path = url
        self.read_only = read_only
        self._ibis = None
        self._work: Any = None
        self.sql = PgConnection(url, read_only=read_only)
        try:
            state = _state(self.sql)
            if state == "empty":
                if read_only or not create:
                    raise RegistryError(
                        f"no registry in {redacted(url)} (an empty database); create one "
                        f"with `xinyong init --db {redacted(url)}`"
                    )
                upgrade(url)
            elif state == "foreign":
                raise RegistryError(
                    f"{redacted(url)} is a PostgreSQL database but not a xinyong registry; "
                    "check --db / XINYONG_DB, or name an empty database for `xinyong init`"
                )
            else:
                self._check_version(migrating)
        except BaseException:
            self.sql.close()
            raise

    @property
    def ibis(self) -> Any:
        if self._ibis is None:
            self._ibis = _ibis_backend().from_connection(self.sql.con)
            # Ibis's queries (evaluation, replays) get the session settings of the
            # engine's PostgreSQL runs (engine/backends.py: work_mem for their hashes, no
            # nested loops over subqueries without statistics); intake's statements,
            # which never touch Ibis, keep the planner's defaults (index lookups).
            self.sql.con.execute("SET work_mem = '256MB'")
            self.sql.con.execute("SET enable_nestloop = off")
        return self._ibis

    @property
    def work(self) -> Any:
        """An in-memory DuckDB connection for intake's reading and validation, with
        the registered sources copied in (each time it is asked for)."""
        import duckdb

        if self._work is None:
            self._work = duckdb.connect(":memory:")
            self._work.execute("SET TimeZone = 'UTC'")
            self._work.execute("SET python_enable_replacements = false")
        rows = self.sql.execute("SELECT source_id, kind, registered_at FROM sources").fetchall()
        sources = pa.table(
            {
                "source_id": pa.array([r[0] for r in rows], pa.string()),
                "kind": pa.array([r[1] for r in rows], pa.string()),
                "registered_at": pa.array([r[2] for r in rows], pa.timestamp("us")),
            }
        )
        self._work.register("_xin_sources", sources)
        self._work.execute("CREATE OR REPLACE TABLE sources AS SELECT * FROM _xin_sources")
        self._work.unregister("_xin_sources")
        return self._work

    def close(self) -> None:
        if self._work is not None:
            self._work.close()
        self.sql.close()

    @contextmanager
    def importing(self) -> Iterator[None]:
        """The knowledge lock, shared, from the importer's stamp to its commit. Batch
        ids come from a sequence and stamps from the clock before the batch commits, so
        without it an evaluation could fix its ``known_at`` and ``last_batch`` while a
        batch stamped earlier (or numbered lower) is still in flight: that run would not
        see the batch, and the next incremental run (``batch_id > last_batch``) would
        not either. Importers share the lock, so they never wait on each other; a
        session-level lock, because the stamp is taken before the batch's transaction
        begins (it validates ``occurred_at`` against it). Released on any exit, and by
        the server when the connection dies."""
        self.sql.con.execute("SELECT pg_advisory_lock_shared(%s)", [_KNOWLEDGE_LOCK])
        try:
            yield
        finally:
            with suppress(Exception):  # a broken connection has released it already
                self.sql.con.execute("SELECT pg_advisory_unlock_shared(%s)", [_KNOWLEDGE_LOCK])

    @contextmanager
    def settled(self) -> Iterator[None]:
        """The knowledge lock, alone: waits for the imports in flight to commit or roll
        back, and holds new ones off (they queue behind it) while the caller fixes its
        ``known_at``. Batches stamped after it exits carry later stamps and higher ids,
        so ``recorded_at <= known_at`` leaves them out of this run and ``batch_id >
        last_batch`` brings them into the next. (The hosts' clocks are assumed in step,
        as for every bitemporal stamp.)"""
        self.sql.con.execute("SELECT pg_advisory_lock(%s)", [_KNOWLEDGE_LOCK])
        try:
            yield
        finally:
            with suppress(Exception):
                self.sql.con.execute("SELECT pg_advisory_unlock(%s)", [_KNOWLEDGE_LOCK])

    def schema_version(self) -> int | None:
        if _state(self.sql) != "registry":
            return None
        row = self.sql.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row and str(row[0]).isdigit() else None

    def revision(self) -> str | None:
        """The database's Alembic revision."""
        row = self.sql.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name = 'alembic_version'"
        ).fetchone()
        if not row or not row[0]:
            return None
        found = self.sql.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if found is None else str(found[0])

    def _check_version(self, migrating: bool) -> None:
        url = redacted(self.path)
        revision = self.revision()
        if revision == ALEMBIC_HEAD and not _missing_columns(self.sql):
            return
        if revision is not None and not revision.isdigit():
            raise RegistryError(f"{url} has an unknown schema revision {revision!r}")
        if revision is not None and int(revision) > int(ALEMBIC_HEAD):
            raise RegistryError(
                f"{url} has schema revision {revision}, newer than this xinyong "
                f"({ALEMBIC_HEAD}); upgrade xinyong"
            )
        if not migrating:
            raise RegistryOutdated(
                f"{url} has schema revision {revision}, this xinyong needs {ALEMBIC_HEAD} "
                f"(or new catalog columns); run `xinyong migrate --db {url}` "
                "(back the database up first)"
            )

    def ensure_schema(self) -> None:
        upgrade(self.path)

    def has_packs(self) -> bool:
        row = self.sql.execute("SELECT count(*) FROM packs").fetchone()
        return bool(row and row[0])


@lru_cache(maxsize=1)
def _ibis_backend() -> Any:
    """Ibis's PostgreSQL backend, compiling on a copy of the query tree (as the public
    ``ibis.to_sql`` does; see ``engine.backends._arrow``): compiled in place, sqlglot's
    rewrite of anti joins into NOT EXISTS misses a subquery two parts of the tree
    share, and PostgreSQL gets "LEFT ANTI JOIN"."""
    import sqlglot as sg
    from ibis.backends.postgres import Backend

    class RegistryBackend(Backend):  # type: ignore[misc]
        def compile(
            self, expr: Any, /, *, limit: Any = None, params: Any = None, pretty: bool = False
        ) -> str:
            query = self.compiler.to_sqlglot(expr, limit=limit, params=params)
            sql: str = query.sql(
                dialect=self.dialect,
                pretty=pretty,
                copy=True,
                unsupported_level=sg.ErrorLevel.RAISE,
            )
            return sql

    return RegistryBackend


def _state(con: PgConnection) -> str:
    """'empty' (no tables, or only the audit chain and principal book a replaced
    registry left: `reset`), 'registry' (the format marker) or 'foreign'."""
    from xinyong.ledger.pgschema import SHARED_STATE

    tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()} - set(SHARED_STATE)
    if not tables:
        return "empty"
    if "meta" not in tables:
        return "foreign"
    row = con.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    return "registry" if row is not None and row[0] == FORMAT else "foreign"


def _missing_columns(con: PgConnection) -> list[str]:
    from xinyong.ledger.pgschema import record_columns

    have = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'records'"
        ).fetchall()
    }
    return [c.name for c in record_columns() if c.name not in have]


def alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_ALEMBIC_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str) -> list[str]:
    """Bring the database at `url` to ALEMBIC_HEAD (Alembic, one transaction, under an
    advisory lock so that concurrent first uses set it up once), then add catalog
    attribute columns it lacks. Returns what was done."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    from xinyong.ledger.pgschema import SHARED_STATE, record_columns

    engine = sa.create_engine(
        "postgresql+psycopg://" + url.removeprefix("postgresql://"), poolclass=sa.pool.NullPool
    )
    done: list[str] = []
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SETUP_LOCK})
            tables = set(sa.inspect(conn).get_table_names()) - set(SHARED_STATE)
            if tables and "meta" not in tables:
                raise RegistryError(f"{redacted(url)} is not a xinyong registry; not migrated")
            before = MigrationContext.configure(conn).get_current_revision()
            if before != ALEMBIC_HEAD:
                command.upgrade(alembic_config(conn), "head")
                done.append(f"alembic {before or 'empty'} -> {ALEMBIC_HEAD}")
            have = {c["name"] for c in sa.inspect(conn).get_columns("records")}
            for col in record_columns():
                if col.name not in have:
                    kind = col.type.compile(dialect=conn.dialect)
                    conn.execute(
                        sa.text(f"ALTER TABLE records ADD COLUMN {_quote(col.name)} {kind}")
                    )
                    done.append(f"add records.{col.name}")
    except sa.exc.OperationalError as exc:
        raise RegistryError(f"{redacted(url)}: cannot migrate: {exc.orig}") from None
    finally:
        engine.dispose()
    return done


def migrate(url: str) -> list[tuple[int, str]]:
    """`xinyong migrate` for a PostgreSQL registry (the shape of `store.migrate`):
    the Alembic upgrade, then this host's audit and principal files from before
    revision 0003 imported into the tables (``access.local_files``)."""
    from xinyong.access.local_files import import_local_files

    with PostgresStore(url, create=False, migrating=True) as store:
        version = store.schema_version() or SCHEMA_VERSION
    done = upgrade(url)
    done += import_local_files(url)
    return [(version, what) for what in done]


# --------------------------------------------------------------------------- intake


class BatchWriter:
    """`ledger.commit.commit_batch`'s steps on PostgreSQL, one transaction per batch:
    the batch id from a sequence (concurrent importers), each chunk (validated on
    the DuckDB work connection) COPYed into a temporary table, then ``INSERT … ON
    CONFLICT (record_id) DO NOTHING``."""

    def __init__(self, store: PostgresStore) -> None:
        self.con = store.sql
        self.work = store.work  # the DuckDB connection intake validates each chunk on

    def begin(self) -> int:
        self.con.con.execute("BEGIN")
        row = self.con.execute("SELECT nextval('batch_ids')").fetchone()
        return int(row[0]) if row else 1

    def append(
        self, rejects: list[Any], batch_id: int, stamp: datetime, stage: Callable[[str], None]
    ) -> tuple[int, int]:
        from xinyong.ledger.validation import STAGE

        # Validated into intake's staging table there, while the chunk is current.
        validated = self.work.execute(f"SELECT * FROM {STAGE}").to_arrow_table()
        self.con.register("_xin_v", validated)
        try:
            return _append(self.con, rejects, batch_id, stamp, stage)
        finally:
            self.con.unregister("_xin_v")

    def finish(self, batch_id: int, stamp: datetime) -> int:
        return batch_id  # every chunk is in the batch's transaction already

    def rollback(self) -> None:
        self.con.rollback()

    def commit(self) -> None:
        self.con.commit()


def _append(
    con: PgConnection,
    rejects: list[Any],
    batch_id: int,
    stamp: datetime,
    stage: Callable[[str], None],
) -> tuple[int, int]:
    from xinyong.ledger.duplicates import duplicates_and_revocations
    from xinyong.ledger.readers import Reject
    from xinyong.ledger.store import record_columns

    invalid = con.execute(
        "SELECT _row, record_id, err_field, err_reason FROM _xin_v WHERE err_field IS NOT NULL"
    ).fetchall()
    for row, rid, fld, reason in invalid:
        rejects.append(Reject(rid, int(row), fld, reason))
    stage("duplicates")
    excluded, duplicates = duplicates_and_revocations(con, rejects)
    stage("writing")
    con.register("_xin_ex", pa.table({"_row": pa.array(sorted(excluded), pa.int64())}))
    cols = list(record_columns())
    select = stamped_projection(
        "CAST(%(stamp)s AS timestamp)", "CAST(%(batch)s AS bigint)", lambda c: f"v.{_quote(c)}"
    )
    # A record another importer committed meanwhile is skipped here (the unique key);
    # the next statement (a new snapshot under READ COMMITTED) sees what it committed
    # and judges the row a duplicate or a conflict.
    con.con.execute(
        f"INSERT INTO records ({', '.join(_quote(c) for c in cols)}) "
        f"SELECT {select} FROM _xin_v v WHERE v.err_field IS NULL "
        "AND v._row NOT IN (SELECT _row FROM _xin_ex) "
        "ON CONFLICT (record_id) DO NOTHING",
        {"stamp": stamp, "batch": batch_id},
    )
    raced = con.con.execute(
        "SELECT v._row, v.record_id, "
        "coalesce(l.subject_id = v.subject_id AND l.type = v.type "
        "AND l.occurred_at = v.occurred_at AND l.source = v.source "
        "AND l.attributes = v.attributes, false) "
        "FROM _xin_v v JOIN records l USING (record_id) "
        "WHERE v.err_field IS NULL AND v._row NOT IN (SELECT _row FROM _xin_ex) "
        "AND l.batch_id <> %(batch)s ORDER BY v._row",
        {"batch": batch_id},
    ).fetchall()
    con.unregister("_xin_ex")
    total = con.execute("SELECT count(*) FROM _xin_v").fetchone()
    accepted = (int(total[0]) if total else 0) - len(invalid) - len(excluded) - len(raced)
    for row, rid, same in raced:
        if same:
            duplicates += 1
        else:
            rejects.append(
                Reject(
                    rid,
                    int(row),
                    "record_id",
                    "conflict: record_id already in the ledger with other content",
                )
            )
    return accepted, duplicates


# --------------------------------------------------------------------------- demo


def has_meta(url: str, key: str) -> bool | None:
    """Whether the registry at `url` has `key` in meta; None for an empty database
    (raises RegistryError for a server that cannot be reached)."""
    con = PgConnection(url, read_only=True)
    try:
        state = _state(con)
        if state == "empty":
            return None
        if state == "foreign":
            return False
        return con.execute("SELECT 1 FROM meta WHERE key = ?", [key]).fetchone() is not None
    finally:
        con.close()


def reset(url: str) -> None:
    """Drop the registry's tables (`xinyong demo` rebuilding its own registry, or one
    replaced with --force). A database that is not a registry is refused. The audit
    chain and the principal book stay (``pgschema.SHARED_STATE``), as a DuckDB
    registry's side files outlive its file: the rebuilt registry appends to the same
    chain."""
    from xinyong.ledger.pgschema import SHARED_STATE

    con = PgConnection(url)
    try:
        state = _state(con)
        if state == "foreign":
            raise RegistryError(
                f"{redacted(url)} holds tables but is not a xinyong registry; not replaced"
            )
        if state == "empty":
            return
        con.begin()
        for (table,) in con.execute("SHOW TABLES").fetchall():
            if table not in SHARED_STATE:
                con.con.execute(f"DROP TABLE IF EXISTS {_quote(table)} CASCADE")
        con.con.execute("DROP SEQUENCE IF EXISTS batch_ids")
        con.commit()
    finally:
        con.close()
