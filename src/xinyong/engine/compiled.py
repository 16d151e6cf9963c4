"""Compiled replays: one subject's results at any instant without building the
evaluation again.

A replay (``checks/questions.py``: a check at a known_at before the last run's
knowledge, ``score --at``, ``explain``) evaluates a few packs for one subject. The
evaluation is the same Ibis expression every time except for three inputs: the
instant (``as_of``), the knowledge (``known_at``) and the subject. Here it is built
once per pack and mode over fixed inputs, compiled to SQL once, and kept:

- the records come from ``_xr_records``, a temporary table filled before each
  replay with the records of the subjects (and of the organizations that named one
  of them legal representative, as ``scope.open_ledger`` reaches), known at
  ``known_at`` and occurred by the horizon; the revocations of those records from
  ``_xr_revocations`` (a revocation may belong to another subject);
- ``as_of`` and ``known_at`` are the statement's parameters ``$as_of`` and
  ``$known_at``; the engine's functions take an instant as an expression
  (an ``ibis.param`` while compiling), so everything derived from it is computed
  by the SQL;
- memtables (the working-day calendar, the packs' rule tables) become tables named
  by a digest of their content (``_xr_m_…``).

Modes: ``timeline`` (``engine/timeline.py``: score intervals, list entries and
consequences with their periods; as_of is only the ledger's horizon), ``point``
(scores, list entries, consequences, contributions, reasons and the visible records
of the report, at ``as_of``) and ``recompute``, incremental evaluation's
(engine/incremental.py, ``insert_outputs``): a timeline whose consequences are
derived, as a full evaluation's are (evaluation.py ``_from_materialized``), from the
rows of ``score_timeline`` and ``list_entries`` in the registry (those of the
subjects just inserted, those of the organizations read as they stand), not from
the score timeline computed a second time. A replay never runs it.

A compiled plan is kept per process, and stored in the registry table
``replay_plans`` by a process that may write (``xinyong packs compile`` stores the
plans of every installed pack version; any writer stores what it compiles), so that
a later process (one CLI command) runs the stored SQL with DuckDB alone, never
importing Ibis (DuckDB's Python client imports pandas itself when it binds a
parameter). A plan's key is a digest of the pack's content, its system and version,
the backend (DuckDB and its version), xinyong's version, a digest of the engine's
sources, the catalog and the plan-building functions here, and the mode; a stored
plan is used only when every one of these matches exactly and the tables it reads
exist (fail closed: otherwise it is compiled again).

The placeholders are put in by compiling each output twice with two different
sentinel instants and replacing each sentinel's SQL literal: the two texts must then
be identical (the sentinel appears only as itself, never folded into another
literal), or the replay refuses to compile (and ``checks`` falls back to the
evaluation).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import duckdb

import xinyong
from xinyong.catalog.vocabulary import REVOKED, attribute_column
from xinyong.packs.schema import Pack

RECORDS = "_xr_records"
REVOCATIONS = "_xr_revocations"
SUBJECTS = "_xr_subjects"
#: Bump when the shape of a stored plan changes.
PLAN_FORMAT = 1
MODES = ("timeline", "point", "recompute")
#: Modes a replay runs; ``recompute`` is incremental evaluation's (``insert_outputs``).
REPLAY_MODES = ("timeline", "point")
OUTPUTS = {
    "timeline": ("score_timeline", "list_entries", "consequences"),
    # In this order: consequences read the rows of the first two just inserted.
    "recompute": ("score_timeline", "list_entries", "consequences"),
    "point": ("scores", "list_entries", "consequences", "contributions", "reasons", "report"),
}
REPORT_COLUMNS = (
    "subject_id",
    "record_id",
    "type",
    "occurred_at",
    "recorded_at",
    "source",
    "attributes",
    "retention_end",
)
_DDL = (
    "CREATE TABLE IF NOT EXISTS replay_plans (plan_key VARCHAR PRIMARY KEY, "
    "system VARCHAR NOT NULL, version VARCHAR NOT NULL, pack_sha256 VARCHAR NOT NULL, "
    "backend VARCHAR NOT NULL, xinyong_version VARCHAR NOT NULL, engine_sha256 VARCHAR NOT "
    "NULL, mode VARCHAR NOT NULL, plan VARCHAR NOT NULL, compiled_at TIMESTAMP NOT NULL)"
)
_KEY_FIELDS = (
    "system",
    "version",
    "pack_sha256",
    "backend",
    "xinyong_version",
    "engine_sha256",
    "mode",
)
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_SENTINELS = (datetime(2999, 1, 2, 3, 4, 5, 678901), datetime(2998, 2, 3, 4, 5, 6, 789012))
# A sentinel year left in a plan as a number (a literal the instant was folded into),
# not as digits inside a name: a memtable's hashed name may contain "2999".
_LEFT_SENTINEL = re.compile(r"(?<![0-9A-Za-z_])(?:2999|2998)(?![0-9A-Za-z_])")


class NotCompilable(RuntimeError):
    """An evaluation the compiled path cannot express (the caller evaluates instead)."""


@dataclass(frozen=True)
class Plan:
    key: str
    fields: dict[str, str]
    #: output name -> SQL text with $as_of / $known_at placeholders
    outputs: dict[str, str]
    #: the content-named tables the SQL reads besides the replay's inputs
    tables: tuple[str, ...]


_PLANS: dict[str, Plan] = {}
#: The content of the tables the plans compiled in this process read (by name).
_DATA: dict[str, Any] = {}
_LOCK = threading.Lock()
#: What the current process did, for tests and benchmarks: "compiled", "stored", "loaded".
events: deque[tuple[str, str]] = deque(maxlen=1000)


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise NotCompilable(f"not a plain identifier: {name!r}")
    return name


@cache
def engine_sha256() -> str:
    """A digest of the sources a plan is built from: the engine, the condition
    language, the pack schema, the calendar, the time helpers, the catalog and the
    functions here that build and compile a plan."""
    digest = hashlib.sha256()
    root = resources.files("xinyong")
    files = sorted(
        [f"engine/{p.name}" for p in root.joinpath("engine").iterdir() if p.name.endswith(".py")]
        + [
            "packs/expressions.py",
            "packs/schema.py",
            "calendar.py",
            "timeutil.py",
            "catalog/catalog.yaml",
            "catalog/vocabulary.py",
        ]
    )
    for name in files:
        if name == "engine/compiled.py":
            continue  # its plan-building functions below, not how a replay loads inputs
        digest.update(name.encode() + b"\0" + root.joinpath(name).read_bytes() + b"\0")
    for fn in (_outputs, _recompute_parts, _sentinel_sql, _swap_memtables, _compile):
        digest.update(inspect.getsource(fn).encode())
    return digest.hexdigest()


def plan_fields(pack: Pack, mode: str) -> dict[str, str]:
    if mode not in MODES:
        raise ValueError(f"unknown replay mode {mode!r}")
    return {
        "system": pack.system,
        "version": pack.meta.version,
        "pack_sha256": hashlib.sha256(pack.model_dump_json().encode()).hexdigest(),
        "backend": f"duckdb {duckdb.__version__}",
        "xinyong_version": xinyong.__version__,
        "engine_sha256": engine_sha256(),
        "mode": mode,
    }


def _key(fields: dict[str, str]) -> str:
    text = json.dumps({"format": PLAN_FORMAT, **fields}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# --- the inputs of one replay -------------------------------------------------------


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


def _load_inputs(
    con: duckdb.DuckDBPyConnection, horizon: datetime, known_at: datetime, subjects: Sequence[str]
) -> None:
    """Fill _xr_records and _xr_revocations for these subjects as scope.open_ledger
    reads them: recorded by known_at, occurred by the horizon; the subjects' records
    and those of the organizations that named one of them (``person_id``: as legal
    representative, or as the person a court transferred a restriction to,
    ``scope._represented``); the revocations of any of those records (whoever's
    subject they name). Set-based: the subjects go to the temporary table
    ``_xr_subjects`` (one statement), and every read is a join against it."""
    for name in (SUBJECTS, RECORDS, REVOCATIONS):
        if name == SUBJECTS:
            con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} (subject_id VARCHAR)")
        else:
            con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} AS FROM records LIMIT 0")
        con.execute(f"DELETE FROM {name}")
    if not subjects:
        return
    # One list parameter, not one placeholder per subject.
    con.execute(f"INSERT INTO {SUBJECTS} SELECT DISTINCT unnest(?::VARCHAR[])", [list(subjects)])
    known = "recorded_at <= $known_at AND occurred_at <= $horizon"
    times = {"known_at": known_at, "horizon": horizon}
    col = _ident(attribute_column("person_id"))
    con.execute(
        f"INSERT INTO {RECORDS} FROM records WHERE {known} AND subject_id IN ("
        f"SELECT subject_id FROM {SUBJECTS} UNION SELECT subject_id FROM records "
        f"WHERE {known} AND {col} IN (SELECT subject_id FROM {SUBJECTS}))",
        times,
    )
    # The revocations are found on two narrow columns and only then read whole, by
    # rowid: the same join reading every column of the ledger took 15x longer (most
    # replays find none). The subjects' own records are read directly: fetching
    # scattered rows by rowid costs more than the scan.
    target = _ident(attribute_column("target_record_id"))
    con.execute(
        f"INSERT INTO {REVOCATIONS} FROM records WHERE rowid IN (SELECT rowid FROM records "
        f"WHERE type = $revoked AND {known} AND {target} IN (SELECT record_id FROM {RECORDS}))",
        {**times, "revoked": REVOKED},
    )


# --- building and compiling ---------------------------------------------------------


def _outputs(store: Any, pack: Pack, mode: str, as_of: Any, known_at: Any) -> dict[str, Any]:
    """The Ibis expressions of one pack's replay over the input tables."""
    import ibis

    from xinyong.engine.consequences import COLUMNS as CONSEQUENCE_COLUMNS
    from xinyong.engine.evaluation import (
        ENTRY_COLUMNS,
        SCORE_COLUMNS,
        _union,
        pack_point,
        pack_timeline,
    )
    from xinyong.engine.explain import CONTRIBUTION_COLUMNS, REASON_COLUMNS
    from xinyong.engine.retention import visible
    from xinyong.engine.scope import Ledger, revocations
    from xinyong.engine.timeline import COLUMNS as TIMELINE_COLUMNS

    schema = store.table("records").schema()
    records = ibis.table(schema, name=RECORDS)
    led = Ledger(
        store,
        records,
        revocations(ibis.table(schema, name=REVOCATIONS)),
        as_of,
        known_at,
        None,
        timeline=mode != "point",
    )
    columns = {
        "score_timeline": TIMELINE_COLUMNS,
        "scores": SCORE_COLUMNS,
        "list_entries": ENTRY_COLUMNS,
        "consequences": CONSEQUENCE_COLUMNS,
        "contributions": CONTRIBUTION_COLUMNS,
        "reasons": REASON_COLUMNS,
    }
    parts: dict[str, list[Any]]
    if mode == "recompute":
        parts = _recompute_parts(store, pack, led, records)
    elif mode == "timeline":
        parts = pack_timeline(pack, led)
    else:
        parts = pack_point(pack, led, explain=True)
    out = {name: _union(tables, columns[name]) for name, tables in parts.items() if tables}
    if mode == "point" and pack.report:
        vis = visible(pack, led)
        out["report"] = vis.select(*REPORT_COLUMNS, system=ibis.literal(pack.system))
    return out


def _recompute_parts(store: Any, pack: Pack, led: Any, records: Any) -> dict[str, list[Any]]:
    """``pack_timeline``'s outputs, its consequences read from the registry's
    ``score_timeline`` and ``list_entries`` (evaluation.py ``_from_materialized``),
    restricted to the subjects whose records were loaded."""
    import ibis

    from xinyong.engine.consequences import consequences
    from xinyong.engine.lists import list_entries
    from xinyong.engine.timeline import grade_periods, score_timeline

    line = score_timeline(pack, led) if pack.score is not None else None
    entries = list_entries(pack, led)
    loaded = records.select("subject_id").distinct()
    stored_entries = stored_line = None
    if pack.lists:
        t = ibis.table(store.table("list_entries").schema(), name="list_entries")
        stored_entries = t.filter(t.system == pack.system, t.subject_id.isin(loaded.subject_id))
    if pack.score is not None:
        t = ibis.table(store.table("score_timeline").schema(), name="score_timeline")
        stored_line = grade_periods(
            t.filter(t.system == pack.system, t.subject_id.isin(loaded.subject_id))
        )
    return {
        "score_timeline": [line] if line is not None else [],
        "list_entries": [entries] if entries is not None else [],
        "consequences": consequences(pack, led, stored_entries, stored_line),
    }


def _sentinel_sql(value: datetime) -> str:
    """How Ibis writes the timestamp literal ``value`` in DuckDB SQL."""
    import ibis

    p = ibis.param("timestamp")
    t = ibis.table({"x": "timestamp"}, name="t")
    sql = ibis.to_sql(t.filter(t.x == p), dialect="duckdb", params={p: value})
    found = re.findall(r"MAKE_TIMESTAMP\([^()]*\)", sql)
    if len(found) != 1:
        raise NotCompilable(f"cannot find the timestamp literal in {sql!r}")
    return str(found[0])


def _swap_memtables(store: Any, expr: Any, tables: dict[str, Any]) -> Any:
    """``expr`` with each memtable replaced by a table named by its content."""
    import ibis
    import ibis.expr.operations as ops
    import pyarrow as pa

    mapping = {}
    for op in expr.op().find(ops.InMemoryTable):
        data = op.data.to_pyarrow(op.schema)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, data.schema) as writer:
            writer.write_table(data)
        name = "_xr_m_" + hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:24]
        tables[name] = data
        mapping[op] = ibis.table(op.schema, name=name).op()
    return expr.op().replace(mapping).to_expr() if mapping else expr


def _compile(store: Any, pack: Pack, mode: str, fields: dict[str, str]) -> tuple[Plan, dict]:
    """The plan of ``pack`` in ``mode``: its outputs built once as Ibis expressions over
    two timestamp parameters, rendered to DuckDB SQL twice with the sentinel instants
    swapped. Each sentinel's literal becomes ``$as_of`` / ``$known_at``; the two
    renderings must then be the same text, and no sentinel year may be left as a
    number, or the evaluation used an instant in a way a parameter cannot carry
    (e.g. a constant folded from it), and NotCompilable says so.

    One build, not one per rendering: Ibis names and orders the common subexpressions
    of a build by the hashes of its operations, which include the parameters', so two
    builds could render in different orders (rarely: a plan refused for nothing)."""
    import ibis

    tables: dict[str, Any] = {}
    p_as_of, p_known = ibis.param("timestamp"), ibis.param("timestamp")
    built = {
        name: _swap_memtables(store, expr, tables)
        for name, expr in _outputs(store, pack, mode, p_as_of, p_known).items()
    }
    texts: list[dict[str, str]] = []
    for as_of_s, known_s in (_SENTINELS, _SENTINELS[::-1]):
        lit_as_of, lit_known = _sentinel_sql(as_of_s), _sentinel_sql(known_s)
        done = {}
        for name, expr in built.items():
            sql = ibis.to_sql(expr, dialect="duckdb", params={p_as_of: as_of_s, p_known: known_s})
            sql = sql.replace(lit_as_of, "CAST($as_of AS TIMESTAMP)")
            sql = sql.replace(lit_known, "CAST($known_at AS TIMESTAMP)")
            done[name] = sql
        texts.append(done)
    if texts[0] != texts[1] or any(_LEFT_SENTINEL.search(sql) for sql in texts[0].values()):
        raise NotCompilable(
            f"the {pack.system} {mode} replay does not take its instants as parameters"
        )
    plan = Plan(_key(fields), fields, texts[0], tuple(sorted(tables)))
    return plan, tables


# --- storing and loading --------------------------------------------------------------


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])


def _stored(store: Any, key: str, fields: dict[str, str]) -> Plan | None:
    con = store.sql
    if not _has_table(con, "replay_plans"):
        return None
    row = con.execute(
        f"SELECT {', '.join(_KEY_FIELDS)}, plan FROM replay_plans WHERE plan_key = ?", [key]
    ).fetchone()
    if row is None:
        return None
    if dict(zip(_KEY_FIELDS, row[:-1], strict=True)) != fields:
        return None  # fail closed: a plan for something else
    body = json.loads(row[-1])
    if body.get("format") != PLAN_FORMAT or body.get("key") != key:
        return None
    tables = tuple(body["tables"])
    for name in tables:
        if not _IDENT.match(name) or not _has_table(con, name):
            return None
    return Plan(key, fields, dict(body["outputs"]), tables)


def _create_tables(store: Any, tables: dict[str, Any], *, temporary: bool) -> None:
    con = store.sql
    for name, data in tables.items():
        if _has_table(con, _ident(name)):
            continue
        view = "_xr_arrow_source"
        con.register(view, data)
        try:
            kind = "TEMP TABLE" if temporary else "TABLE"
            con.execute(f"CREATE {kind} IF NOT EXISTS {name} AS FROM {view}")
        finally:
            con.unregister(view)


def _store(store: Any, plan: Plan) -> None:
    con = store.sql
    body = json.dumps(
        {"format": PLAN_FORMAT, "key": plan.key, "outputs": plan.outputs, "tables": plan.tables}
    )
    con.execute(_DDL)
    con.execute("DELETE FROM replay_plans WHERE plan_key = ?", [plan.key])
    con.execute(
        f"INSERT INTO replay_plans (plan_key, {', '.join(_KEY_FIELDS)}, plan, compiled_at) "
        f"VALUES (?, {_placeholders(len(_KEY_FIELDS))}, ?, now()::TIMESTAMP)",
        [plan.key, *[plan.fields[k] for k in _KEY_FIELDS], body],
    )


def plan_for(store: Any, pack: Pack, mode: str) -> Plan:
    """The compiled plan of ``pack`` in ``mode``: kept in this process, else stored in
    the registry under the exact key, else compiled now (and stored when the store
    may be written)."""
    fields = plan_fields(pack, mode)
    key = _key(fields)
    con = store.sql
    plan = _PLANS.get(key) or _stored(store, key, fields)
    if plan is not None and key not in _PLANS:
        events.append(("loaded", key))
    missing = [] if plan is None else [t for t in plan.tables if not _has_table(con, t)]
    if plan is None or any(t not in _DATA for t in missing):
        plan, tables = _compile(store, pack, mode, fields)
        _DATA.update(tables)
        events.append(("compiled", key))
        missing = [t for t in plan.tables if not _has_table(con, t)]
    writable = not getattr(store, "read_only", True)
    # A plan kept from another connection or registry: its tables made here (temporary
    # when this process may not write the registry).
    _create_tables(store, {t: _DATA[t] for t in missing}, temporary=not writable)
    if writable and _stored(store, key, fields) is None:
        _store(store, plan)
        events.append(("stored", key))
    _PLANS[key] = plan
    return plan


def store_plans(store: Any, packs: Iterable[Pack]) -> int:
    """Compile and store the plans of ``packs`` (every mode) that the registry lacks;
    the number stored. For a writer (``xinyong packs compile``)."""
    if getattr(store, "read_only", True):
        raise ValueError("plans are stored by a process that may write the registry")
    if getattr(store, "backend", "duckdb") != "duckdb":
        raise ValueError(
            "compiled replay plans are DuckDB SQL; a registry on PostgreSQL replays "
            "through the engine (nothing to compile)"
        )
    done = 0
    for pack in packs:
        for mode in MODES:
            fields = plan_fields(pack, mode)
            if _stored(store, _key(fields), fields) is None:
                plan_for(store, pack, mode)
                done += 1
    return done


# --- running --------------------------------------------------------------------------


def _duckdb_only(store: Any) -> None:
    """Plans are DuckDB SQL run on the registry's connection: a registry on another
    backend (PostgreSQL) replays through the engine instead."""
    if getattr(store, "backend", "duckdb") != "duckdb":
        raise NotCompilable(f"no compiled plans on a {store.backend} registry")


def replay(
    store: Any,
    packs: Iterable[Pack],
    *,
    mode: str,
    as_of: datetime,
    known_at: datetime,
    subjects: Sequence[str],
    outputs: Iterable[str],
) -> dict[str, list[dict[str, Any]]]:
    """The rows of ``outputs`` for ``subjects``, over ``packs`` (their union, in pack
    order), as ``evaluation.evaluate`` gives them with ``timeline=mode == 'timeline'``
    (and ``explain=True`` in point mode). Instants are naive UTC."""
    _duckdb_only(store)
    if mode not in REPLAY_MODES:
        raise ValueError(f"no replay in mode {mode!r} (it reads the materialized tables)")
    wanted = tuple(dict.fromkeys(subjects))
    names = tuple(outputs)
    unknown = set(names) - set(OUTPUTS[mode])
    if unknown:
        raise ValueError(f"no output {sorted(unknown)} in a {mode} replay")
    plans = [plan_for(store, pack, mode) for pack in packs]
    # On a timeline every known record is seen (scope: they occurred by known_at).
    horizon = max(as_of, known_at) if mode == "timeline" else as_of
    result: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    keep = set(wanted)
    with _LOCK:
        con = store.sql
        _load_inputs(con, horizon, known_at, wanted)
        with _planned_lightly(con):
            for plan in plans:
                for name in names:
                    sql = plan.outputs.get(name)
                    if sql is None:
                        continue
                    cur = con.execute(sql, _instants(sql, horizon, known_at))
                    cols = [d[0] for d in cur.description]
                    result[name] += [
                        row
                        for row in (dict(zip(cols, r, strict=True)) for r in cur.fetchall())
                        if row["subject_id"] in keep
                    ]
    return result


def _instants(sql: str, horizon: datetime, known_at: datetime) -> dict[str, datetime]:
    """The parameters a plan's statement names: ``$as_of`` (the horizon) and ``$known_at``."""
    return {k: v for k, v in (("as_of", horizon), ("known_at", known_at)) if f"${k}" in sql}


#: Up to this many input records a replay's statements run unoptimized (below).
LIGHT_PLANNING_ROWS = 20_000


@contextmanager
def _planned_lightly(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the plans without DuckDB's optimizer when their input is a few records.

    A plan is 20-300 kB of SQL; over one subject's records DuckDB executes it in
    about 10 ms of CPU, but optimizing it (common subexpressions, expression
    rewriting, filter pushdown over hundreds of operators) took as long again as
    binding it: measured at 100 k persons, the 23 statements of an ``explain`` took
    2.2 s unoptimized against 4.5 s optimized. The optimizer never changes a
    result, only the plan; on large inputs (an incremental run over thousands of
    subjects) the join order matters, so it stays on there. The setting is the
    connection's own and is restored after."""
    row = con.execute(f"SELECT count(*) FROM {RECORDS}").fetchone()
    if row is None or int(row[0]) > LIGHT_PLANNING_ROWS:
        yield
        return
    con.execute("PRAGMA disable_optimizer")
    try:
        yield
    finally:
        con.execute("PRAGMA enable_optimizer")


def plans(store: Any, packs: Iterable[Pack], mode: str) -> list[Plan]:
    """The compiled plans of ``packs`` in ``mode`` (``plan_for``: kept, stored, or
    compiled now); raises NotCompilable on a registry that is not DuckDB."""
    _duckdb_only(store)
    return [plan_for(store, pack, mode) for pack in packs]


def insert_outputs(
    store: Any,
    compiled: Sequence[Plan],
    *,
    mode: str,
    as_of: datetime,
    known_at: datetime,
    subjects: Sequence[str],
    outputs: Iterable[str],
) -> None:
    """Insert the rows of ``outputs`` for ``subjects`` (as ``replay`` gives them)
    straight into the registry's tables of the same names, inside the caller's
    transaction: the inputs are loaded with joins against ``_xr_subjects`` and each
    plan's SQL feeds an ``INSERT … SELECT``, no row is fetched into Python
    (incremental evaluation, engine/incremental.py)."""
    _duckdb_only(store)
    names = tuple(outputs)
    unknown = set(names) - set(OUTPUTS[mode])
    if unknown:
        raise ValueError(f"no output {sorted(unknown)} in a {mode} replay")
    horizon = as_of if mode == "point" else max(as_of, known_at)
    with _LOCK:
        con = store.sql
        _load_inputs(con, horizon, known_at, subjects)
        if not subjects:
            return
        with _planned_lightly(con):  # a due-process recompute: one subject's records
            for name in names:
                cur = con.execute(f"SELECT * FROM {_ident(name)} LIMIT 0")
                cols = ", ".join(_ident(d[0]) for d in cur.description)
                for plan in compiled:
                    sql = plan.outputs.get(name)
                    if sql is None:
                        continue
                    con.execute(
                        f"INSERT INTO {name} ({cols}) SELECT {cols} FROM ({sql}) AS _xr_out "
                        f"WHERE subject_id IN (SELECT subject_id FROM {SUBJECTS})",
                        _instants(sql, horizon, known_at),
                    )
        events.append(("inserted", f"{mode}:{len(subjects)}"))
