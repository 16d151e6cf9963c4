"""The same evaluation on other engines: PostgreSQL and Spark (through Ibis).

The engine's expressions (scope, retention, scores, lists, consequences) read one
table, ``store.table("records")``, and build Ibis expressions only; memtables (the
working-day calendar, the packs' consequence rules) travel with the query, Ibis
creates them on the backend. So running elsewhere takes three steps, all here:

1. copy the records the evaluation may read (recorded at or before ``known_at``,
   occurred at or before ``as_of``; the same filter ``scope.open_ledger`` applies)
   from the registry to the engine: PostgreSQL by ``COPY`` into a schema of its own,
   Spark as Parquet partitioned by a hash of the subject id;
2. ``evaluate()`` unchanged, over a stand-in store whose ``table("records")`` is the
   engine's table;
3. fetch the scores, list entries and consequences (Arrow) and hand them to
   ``materialize()`` as an evaluation over the registry's own backend, so the
   registry's tables are written exactly as by a DuckDB run (same transaction, same
   ``eval_runs`` row).

Backend differences that must exist, and why (nothing else differs):
- The copy leaves out ``attributes`` (the canonical JSON, for display) and
  ``content_hash`` (intake's fingerprint): the engine reads typed ``attr_*`` columns
  only, and they are the bulk of the bytes.
- Spark: the session time zone is UTC, because Spark timestamps are instants shown in
  the session zone, while the registry stores naive UTC; with UTC they agree.
- Spark: Parquet is written with microsecond timestamps (Spark reads no nanoseconds).
- Consequences are derived on the engine from the scores and entries it has just
  computed (sent back to it as memtables), as a DuckDB run derives them from the
  tables it has just written; ``tests/test_engines.py`` shows both give the same rows.
- PostgreSQL: the SQL comes from ``ibis.to_sql`` and float columns get a final cast
  (see ``_arrow``); the session raises ``work_mem`` and turns nested loops off (see
  ``postgres_store``).
- Spark: whole-stage code generation is off (see ``spark_session``), and the fetched
  entries' timestamps take Spark's timestamp type before they are sent back.

An incremental evaluation (engine/incremental.py) copies less, the same way on every
engine (``subjects``): the records of the subjects to recompute and of the
organizations whose records their results rest on (``reading_subjects``), plus every
known revocation (revocations are registry-level); DuckDB evaluates that subset from
a temporary table, as PostgreSQL and Spark do from theirs. The results keep the rows
of the subjects asked for only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from xinyong.catalog.vocabulary import REVOKED
from xinyong.engine.consequences import COLUMNS as CONSEQUENCE_COLUMNS
from xinyong.engine.evaluation import (
    ENTRY_COLUMNS,
    SCORE_COLUMNS,
    Evaluation,
    Instant,
    _at,
    _from_materialized,
    _instant,
    evaluate,
)
from xinyong.engine.timeline import COLUMNS as TIMELINE_COLUMNS
from xinyong.packs.schema import Pack
from xinyong.timeutil import now_utc

ENGINES = ("duckdb", "postgres", "spark")

#: Columns the engine never reads (see the module docstring).
_NOT_COPIED = ("attributes", "content_hash")

#: Parquet partitions of the ledger for Spark (by a hash of the subject id).
SPARK_PARTITIONS = 16


class EngineError(ValueError):
    """An engine cannot be reached or used (the message says which and what to do)."""


@dataclass
class EngineStore:
    """What ``evaluate()`` needs of a store, on another engine: ``table(name)``."""

    ibis: Any
    tables: dict[str, ir.Table] = field(default_factory=dict)

    def table(self, name: str) -> ir.Table:
        return self.tables[name]


def ledger_columns(store: Any) -> list[str]:
    """The records columns copied to an engine, in table order."""
    return [c for c in store.table("records").columns if c not in _NOT_COPIED]


def ledger_rows(
    store: Any, as_of: datetime, known_at: datetime, reads: Sequence[str] | None = None
) -> ir.Table:
    """The records an evaluation at (as_of, known_at) may read: all of them, or (with
    ``reads``) those of the subjects in ``reads`` and every revocation."""
    t = store.table("records")
    t = t.filter(t.recorded_at <= known_at, t.occurred_at <= as_of)
    if reads is not None:
        wanted = ibis.memtable(pa.table({"_sid": pa.array(sorted(reads), pa.string())}))
        t = t.filter(t.subject_id.isin(wanted._sid) | (t.type == REVOKED))
    return t


def ledger_batches(
    store: Any,
    as_of: datetime,
    known_at: datetime,
    rows: int = 200_000,
    reads: Sequence[str] | None = None,
) -> pa.RecordBatchReader:
    """The records an evaluation at (as_of, known_at) may read, as Arrow batches."""
    t = ledger_rows(store, as_of, known_at, reads).select(ledger_columns(store))
    return t.to_pyarrow_batches(chunk_size=rows)


# --------------------------------------------------------------------------- PostgreSQL

_PG_TYPES = {
    pa.string(): "text",
    pa.large_string(): "text",
    pa.int64(): "bigint",
    pa.int32(): "integer",
    pa.float64(): "double precision",
    pa.date32(): "date",
    pa.bool_(): "boolean",
}


def _pg_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "timestamp"
    if t in _PG_TYPES:
        return _PG_TYPES[t]
    raise EngineError(f"no PostgreSQL type for ledger column type {t}")


def _pg_ident(name: str) -> str:
    # Column names come from the catalog (validated identifiers, ledger.store._quote).
    from xinyong.ledger.store import _quote

    return _quote(name)


#: The scratch schemas of evaluations on PostgreSQL (one per run).
_SCRATCH_PREFIX = "xinyong_eval_"


def sweep_abandoned_schemas(con: Any) -> list[str]:
    """Drop the scratch schemas that no live session holds (their evaluation was
    killed before its cleanup ran); a running evaluation holds a session-level
    advisory lock on its schema's name, released by PostgreSQL when its connection
    ends. Returns the schemas dropped."""
    dropped = []
    rows = con.execute(
        "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", [_SCRATCH_PREFIX]
    ).fetchall()
    for (name,) in rows:
        try:
            quoted = _pg_ident(name)
        except ValueError:
            continue  # not a name this module makes
        got = con.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [name]).fetchone()
        if not got or not got[0]:
            continue  # a live evaluation's schema
        try:
            con.execute(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")
            dropped.append(name)
        finally:
            con.execute("SELECT pg_advisory_unlock(hashtext(%s))", [name])
    con.commit()
    return dropped


@contextmanager
def postgres_store(
    store: Any, url: str, as_of: datetime, known_at: datetime, reads: Sequence[str] | None = None
) -> Iterator[EngineStore]:
    """The ledger copied (COPY, CSV) into a fresh schema of the database at ``url``;
    the schema is dropped afterwards, whatever happens."""
    import psycopg
    import pyarrow.csv as pacsv

    try:
        backend = ibis.connect(url) if url.startswith(("postgres://", "postgresql://")) else None
    except Exception as exc:
        raise EngineError(f"--pg-url {url}: cannot connect to PostgreSQL: {exc}") from None
    if backend is None:
        raise EngineError(f"--pg-url {url}: expected postgresql://user@host:port/database")
    con: psycopg.Connection[Any] = backend.con
    schema = f"{_SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
    try:
        # The session holds its schema's lock until it ends, killed or not; schemas of
        # evaluations killed before they could drop them are swept first.
        con.execute("SELECT pg_advisory_lock(hashtext(%s))", [schema])
        sweep_abandoned_schemas(con)
        reader = ledger_batches(store, as_of, known_at, reads=reads)
        body = ", ".join(f"{_pg_ident(f.name)} {_pg_type(f.type)}" for f in reader.schema)
        names = ", ".join(_pg_ident(f.name) for f in reader.schema)
        with con.cursor() as cur:
            # The evaluation hashes the ledger for its joins and windows: PostgreSQL's
            # default 4 MB per operation sends them to disk or to nested loops.
            cur.execute("SET work_mem = '256MB'")
            # Its subqueries (CTEs read twice, temp memtables) carry no statistics; an
            # estimate of one row makes the planner pick nested loops, quadratic in the
            # number of subjects. A batch evaluation wants hash and merge joins only.
            cur.execute("SET enable_nestloop = off")
            cur.execute(f"CREATE SCHEMA {schema}")
            cur.execute(f"CREATE TABLE {schema}.records ({body})")
            options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
            with cur.copy(f"COPY {schema}.records ({names}) FROM STDIN WITH (FORMAT csv)") as cp:
                for batch in reader:
                    sink = pa.BufferOutputStream()
                    pacsv.write_csv(pa.Table.from_batches([batch]), sink, options)
                    cp.write(sink.getvalue().to_pybytes())
            cur.execute(f"ANALYZE {schema}.records")
        con.commit()
        yield EngineStore(backend, {"records": backend.table("records", database=schema)})
    finally:
        try:
            con.rollback()
            with con.cursor() as cur:
                cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            con.commit()
        finally:
            backend.disconnect()


# --------------------------------------------------------------------------- Spark

_SESSION: Any = None


def spark_session(master: str = "local[2]") -> Any:
    """One Spark session per process (Spark allows no second one with another master)."""
    global _SESSION
    if _SESSION is not None:
        have = _SESSION.sparkContext.master
        if have != master:
            raise EngineError(
                f"a Spark session with master {have} is already running in this process; "
                f"--spark-master {master} needs a new process"
            )
        return _SESSION
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineError("--engine spark needs pyspark: pip install 'pyspark<4.1'") from None
    cores = master[len("local[") : -1] if master.startswith("local[") else ""
    shuffle = cores if cores.isdigit() else "16"
    builder = (
        SparkSession.builder.master(master)
        .appName("xinyong-evaluate")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", shuffle)
        .config("spark.driver.memory", os.environ.get("XINYONG_SPARK_MEMORY", "2g"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # The evaluation is one wide plan (every rule a CASE column): whole-stage code
        # generation exceeds the JVM's 64 KB method limit, then falls back to the
        # interpreter anyway after compiling for nothing.
        .config("spark.sql.codegen.wholeStage", "false")
        # The results (scores, entries, consequences) come back to the driver whole
        # (`_fetch`), to be materialized in the registry: Spark's default cap on them
        # (1 GiB) would refuse a large city outright, so there is none (the driver's
        # memory bounds them). Task results go to the driver directly rather than
        # through the block manager: at 1 M persons (119-275 MB per task) one run in
        # three lost a result there (TaskResultLost, README "Per engine"), and a run
        # with these settings did not.
        .config("spark.driver.maxResultSize", "0")
        .config("spark.task.maxDirectResultSize", "2047m")
        .config("spark.rpc.message.maxSize", "2047")
    )
    try:
        _SESSION = builder.getOrCreate()
    except Exception as exc:
        raise EngineError(f"--engine spark: cannot start Spark ({master}): {exc}") from None
    _SESSION.sparkContext.setLogLevel("ERROR")
    return _SESSION


def write_ledger_parquet(
    store: Any,
    folder: Path,
    as_of: datetime,
    known_at: datetime,
    partitions: int,
    reads: Sequence[str] | None = None,
) -> int:
    """The ledger as Parquet under ``folder``, hive-partitioned by ``_part`` (a hash of
    the subject id modulo ``partitions``); returns the number of rows."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    t = ledger_rows(store, as_of, known_at, reads)
    t = t.select(*ledger_columns(store), _part=(t.subject_id.hash() % partitions).abs())
    reader = t.to_pyarrow_batches(chunk_size=200_000)
    fields = [
        pa.field(f.name, pa.timestamp("us")) if pa.types.is_timestamp(f.type) else f
        for f in reader.schema
    ]
    schema = pa.schema(fields)
    rows = 0

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal rows
        for b in reader:
            rows += b.num_rows
            yield pa.RecordBatch.from_arrays(
                [pc.cast(c, f.type) for c, f in zip(b.columns, fields, strict=True)],
                schema=schema,
            )

    ds.write_dataset(
        batches(),
        folder,
        schema=schema,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("_part", pa.int64())]), flavor="hive"),
        existing_data_behavior="overwrite_or_ignore",
    )
    return rows


@contextmanager
def spark_store(
    store: Any,
    master: str,
    as_of: datetime,
    known_at: datetime,
    partitions: int = SPARK_PARTITIONS,
    reads: Sequence[str] | None = None,
) -> Iterator[EngineStore]:
    session = spark_session(master)
    folder = Path(tempfile.mkdtemp(prefix="xinyong-ledger-"))
    try:
        write_ledger_parquet(store, folder, as_of, known_at, partitions, reads)
        backend = ibis.pyspark.connect(session)
        name = f"records_{uuid.uuid4().hex[:12]}"
        # The plan reads the ledger many times (scope, revocations, retention, lists):
        # cached once in executor memory, it is read from Parquet once.
        frame = session.read.parquet(str(folder)).drop("_part").cache()
        frame.createOrReplaceTempView(name)
        try:
            yield EngineStore(backend, {"records": backend.table(name)})
        finally:
            session.catalog.dropTempView(name)
            frame.unpersist()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- DuckDB


@contextmanager
def duckdb_subset_store(
    store: Any, as_of: datetime, known_at: datetime, reads: Sequence[str]
) -> Iterator[EngineStore]:
    """The records of ``reads`` (and every revocation) as a temporary table of the
    registry's own connection: an incremental evaluation on DuckDB."""
    name = f"_xin_subset_{uuid.uuid4().hex[:12]}"
    backend = store.ibis
    backend.create_table(name, ledger_rows(store, as_of, known_at, reads), temp=True)
    try:
        yield EngineStore(backend, {"records": backend.table(name)})
    finally:
        # A generated name (no input in it).
        store.sql.execute(f"DROP TABLE IF EXISTS {name}")


# --------------------------------------------------------------------------- evaluate


def _arrow(backend: Any, t: ir.Table) -> pa.Table:
    if backend.name != "postgres":
        return t.to_pyarrow()
    # Ibis compiles with sqlglot's copy=False: sqlglot's PostgreSQL rewrite of anti
    # joins (into NOT EXISTS, as PostgreSQL has no ANTI JOIN) then misses a subquery
    # that two parts of the tree share, and PostgreSQL gets "LEFT ANTI JOIN". The
    # public ibis.to_sql compiles on a copy; the query's memtables (the calendar, the
    # consequence rules) are created first, as Ibis does before any execution.
    # PostgreSQL also types a decimal literal (a score's base, points) NUMERIC, and so
    # the sums; the outer cast makes them the double precision the schema says.
    sql = ibis.to_sql(t, dialect="postgres", pretty=False)
    backend._run_pre_execute_hooks(t)
    schema = t.schema()
    loose = {c: "decimal" if ty.is_floating() else ty for c, ty in schema.items()}
    q = backend.sql(sql, schema=loose)
    return q.select(**{c: q[c].cast(ty) for c, ty in schema.items()}).to_pyarrow()


def _fetch(backend: Any, t: ir.Table, columns: dict[str, str]) -> ir.Table:
    """An engine's result as a memtable (cast to the registry's types) for the registry."""
    schema = ibis.schema(columns).to_pyarrow()
    data = _arrow(backend, t)
    # One chunk per column: Spark builds a DataFrame from Arrow only from plain arrays.
    arrays = [data.column(c).cast(schema.field(c).type).combine_chunks() for c in columns]
    return ibis.memtable(pa.Table.from_arrays(arrays, schema=schema))


def default_timeline(engine: str) -> bool:
    """Whether ``evaluate`` materializes timelines on ``engine`` (see ``evaluate_on``)."""
    return engine != "spark"


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise EngineError(f"--engine {engine}: expected one of {', '.join(ENGINES)}")


def evaluate_on(
    engine: str,
    store: Any,
    packs: tuple[Pack, ...] | None = None,
    *,
    as_of: Instant = None,
    known_at: Instant = None,
    pg_url: str | None = None,
    spark_master: str | None = None,
    timeline: bool | None = None,
    subjects: Sequence[str] | None = None,
) -> Evaluation:
    """``evaluate()`` on ``engine``; for postgres and spark the results are computed
    there and returned as in-memory tables that ``materialize(store, ...)`` writes.

    ``subjects``: the results of those subjects only, from a copy of the records they
    rest on (see the module docstring), on every engine, DuckDB included; what
    ``engine.incremental.replace_rows`` writes (an incremental run on a DuckDB
    registry runs the compiled plans instead: engine/incremental.py ``recompute``).

    ``timeline`` (default: on DuckDB and PostgreSQL) materializes every instant
    (engine/timeline.py). Spark evaluates as of one instant by default: the timeline
    query, planned as ~100 small stages, took over 10 minutes on a 200-person city
    here (against seconds on DuckDB), so a Spark run is a point run and checks at
    other instants replay on the registry."""
    check_engine(engine)
    if timeline is None:
        timeline = default_timeline(engine)
    # A timeline reads every record known at known_at, whenever it occurred
    # (scope.open_ledger with max(as_of, known_at)); a copy must hold the same.
    now = now_utc()
    t_as_of, t_known = _instant(as_of, now), _instant(known_at, now)
    if packs is None:
        from xinyong.packs import installed_packs

        packs = tuple(installed_packs(store, t_as_of))
    reads = None
    if subjects is not None:
        from xinyong.engine.incremental import reading_subjects

        subjects = sorted(set(subjects))
        reads = reading_subjects(store, subjects)
    elif engine == "duckdb":
        return evaluate(store, packs, as_of=t_as_of, known_at=t_known, timeline=timeline)
    reach = max(t_as_of, t_known) if timeline else t_as_of
    where: Any
    if engine == "duckdb":
        assert reads is not None
        where = duckdb_subset_store(store, reach, t_known, reads)
    elif engine == "postgres":
        url = pg_url or os.environ.get("XINYONG_PG_URL")
        if not url:
            raise EngineError(
                "--engine postgres needs --pg-url postgresql://user@host:port/database "
                "(or XINYONG_PG_URL)"
            )
        where = postgres_store(store, url, reach, t_known, reads)
    else:
        where = spark_store(store, spark_master or "local[2]", reach, t_known, reads=reads)
    with where as remote:
        ev = evaluate(remote, packs, as_of=t_as_of, known_at=t_known, timeline=timeline)
        entries = _fetch(remote.ibis, ev.list_entries, ENTRY_COLUMNS)
        line = None
        if ev.score_timeline is not None:
            line = _fetch(remote.ibis, ev.score_timeline, TIMELINE_COLUMNS)
            scores = _at(line, ev.as_of)
        else:
            scores = _fetch(remote.ibis, ev.scores, SCORE_COLUMNS)
        # As materialize() does on DuckDB: consequences from the scores and entries
        # just computed (sent back as memtables), not derived a second time.
        # Their timestamps take the ledger's timestamp type on that engine (Spark's
        # has no scale, an Arrow one has microseconds), so that unions line up.
        ts = remote.table("records").schema()["occurred_at"]

        def remote_ts(t: ir.Table) -> ir.Table:
            return t.cast({c: ts for c, k in t.schema().items() if k.is_timestamp()})

        remote.tables.update(scores=scores, list_entries=remote_ts(entries))
        if line is not None:
            remote.tables["score_timeline"] = remote_ts(line)
        cons = _fetch(remote.ibis, _from_materialized(remote, ev), CONSEQUENCE_COLUMNS)
    if subjects is not None:
        # The copy also held organizations (and revocations) the subjects' results
        # rest on; their own rows are not asked for (some are incomplete).
        scores, entries, cons = (_keep(t, subjects) for t in (scores, entries, cons))
        line = None if line is None else _keep(line, subjects)
    return Evaluation(
        as_of=ev.as_of,
        known_at=ev.known_at,
        packs=ev.packs,
        scores=scores,
        list_entries=entries,
        consequences=cons,
        score_timeline=line,
        subjects=None if subjects is None else tuple(subjects),
    )


def _keep(t: ir.Table, subjects: Sequence[str]) -> ir.Table:
    """The rows of an in-memory result table that belong to ``subjects``."""
    import pyarrow.compute as pc

    data = t.to_pyarrow()
    mask = pc.is_in(data.column("subject_id"), value_set=pa.array(subjects, pa.string()))
    return ibis.memtable(data.filter(mask))
