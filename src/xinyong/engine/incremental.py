"""Incremental evaluation: after an import, recompute only the subjects it changed.

``evaluate_registry`` is what ``xinyong evaluate`` runs. It extends the latest run
(``eval_runs``) when that is safe, and otherwise evaluates in full and says why
(``Outcome.why``). The one way to recompute a set of subjects is here
(``recompute``): a due-process decision (process/recompute.py) uses it too.

When a run can be extended (``plan``), all of these hold, else the run is a full one:
- the latest run materialized the same kind of results (timelines, or a point run);
- it recorded how many records had been purged (schema 4) and none was purged since
  (a purge deletes records without a new batch);
- no pack was installed since it, and the packs in force at the new ``as_of`` are the
  ones in force at its ``as_of`` (system, version, effective date);
- the new ``known_at`` is not earlier than its ``known_at`` (knowledge only grows);
- a point run (no timelines) keeps its ``as_of``: at a new instant, windows, retention
  ends and ages move for subjects with no new record, and finding which would repeat
  the timeline's breakpoints; ``evaluate`` materializes timelines by default, and a
  point run (Spark's default) at a new instant is a full one.
Licence bindings are no reason: the engine never reads them (checks do, at answer
time).

Which subjects change (``changed_subjects``). A timeline materialized at
(as_of, known_at) depends on the records known at ``known_at`` only: every known
record occurred before ``known_at`` (intake refuses conduct recorded before it
occurred), windows, retention ends, age thresholds and grace periods are breakpoints
inside the timeline, and ``as_of`` only picks the ``scores`` rows out of
``score_timeline``. So the subjects whose results can differ are those a new record
(a batch after the run's ``last_batch``, known at the new ``known_at``) bears on:
1. the record's own subject;
2. the subject of every record it names (``target_record_id`` of a revocation, an
   objection, a statement or a repair application; ``objection_id`` of a decision;
   ``repair_id``), and so on along those names (a decision names an objection that
   names the disputed record): a revocation removes another subject's record;
3. every person named (``person_id``) on a record of a subject from 1 or 2: the
   legal representatives and the persons a court transferred a restriction to, whose
   consequences rest on the organization's lists, grades and tenures
   (engine/consequences.py ``_reach``, engine/transfers.py).
A person's results also read the organizations that named them (scope.py
``_represented``); those organizations' own results do not rest on the person's
records, so they are read (``reading_subjects``), not recomputed. Consent records
and ages are the subject's own records and birth date (1).

Then ``scores`` at the new ``as_of`` is taken again from the whole ``score_timeline``
(one cheap query) when ``as_of`` moved: on a timeline, a subject with no new record
may still change grade between the two instants.

Recomputing (``recompute``, the one way; due-process decisions use it too):
- on a DuckDB registry evaluated with DuckDB (the default), the packs' compiled
  timeline plans (engine/compiled.py mode ``recompute``: the timeline, its
  consequences read from the rows just inserted as a full run derives them from
  what it materialized; point plans for a point run) run over the changed
  subjects: their records and those of the organizations that named them
  are loaded with joins against a temporary table of the subject ids, and each
  plan's SQL is inserted straight into the materialized tables. The plans are
  compiled once (``xinyong packs compile``, or the first incremental run compiles
  and stores them in ``replay_plans``); a run with stored or kept plans builds no
  Ibis expression and fetches no row into Python;
- on PostgreSQL (a PostgreSQL registry or ``--engine postgres``) and Spark, and for a
  pack the compiled path cannot express, the evaluation runs on that engine over a
  copy of the records of the subjects read (engine/backends.py
  ``evaluate_on(subjects=...)``), as before, and its rows are written.

Writing: the rows of the recomputed subjects in ``scores``, ``score_timeline``,
``list_entries`` and ``consequences`` are replaced, and the new ``eval_runs`` row
written, in ONE transaction (the compiled plans execute inside it): a killed
evaluate leaves the previous run answering. On a timeline, the subjects' ``scores``
are their ``score_timeline`` rows holding at ``as_of`` (and the whole ``scores`` is
taken again when ``as_of`` moved, above).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from xinyong.catalog import load_catalog
from xinyong.catalog.vocabulary import attribute_column
from xinyong.checks.index import RunInfo, latest_run
from xinyong.engine.evaluation import Evaluation, _transaction
from xinyong.ledger.memory import duckdb_memory
from xinyong.ledger.store import registered
from xinyong.packs.schema import Pack
from xinyong.timeutil import now_utc, to_local_iso

#: Attributes that name another record (whose subject a new record bears on).
REFERENCES = ("target_record_id", "objection_id", "repair_id")

#: The materialized tables, each with a subject_id column.
TABLES = ("scores", "score_timeline", "list_entries", "consequences")


@dataclass(frozen=True)
class Plan:
    """Whether the next run extends ``run`` (``subjects``: those to recompute)."""

    mode: str  # "incremental" | "full"
    why: str | None = None
    run: RunInfo | None = None
    subjects: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    run_id: int
    mode: str
    why: str | None
    subjects_recomputed: int
    #: how the subjects were recomputed (``recompute``): compiled, evaluated, none; full
    how: str = "full"
    #: wall seconds per step (plan, plans, evaluate, write)
    seconds: dict[str, float] = field(default_factory=dict)


def _columns(names: Iterable[str]) -> list[str]:
    known = load_catalog().attribute_columns
    return [attribute_column(n) for n in names if n in known]


def _purged(store: Any) -> int:
    row = store.sql.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'tombstones'"
    ).fetchone()
    if not row or not row[0]:
        return 0
    row = store.sql.execute("SELECT count(*) FROM tombstones").fetchone()
    return int(row[0]) if row else 0


def _pack_key(packs: Iterable[Pack]) -> list[tuple[str, str, str]]:
    return sorted((p.system, p.meta.version, str(p.meta.effective_from)) for p in packs)


def plan(
    store: Any,
    packs: Sequence[Pack],
    *,
    as_of: datetime,
    known_at: datetime,
    timeline: bool,
    full: bool = False,
) -> Plan:
    """Whether a run at (as_of, known_at) can extend the latest one (module docstring)."""
    from xinyong.packs import installed_packs

    run = latest_run(store)
    if full:
        return Plan("full", "--full asked for", run)
    if run is None:
        return Plan("full", "no earlier run", run)
    n = run.run_id
    if bool(run.timeline) != timeline:
        kind = "timelines" if run.timeline else "a point run"
        return Plan("full", f"run {n} materialized {kind}, this run does not", run)
    row = store.sql.execute("SELECT purged FROM eval_runs WHERE run_id = ?", [n]).fetchone()
    if row is None or row[0] is None:
        return Plan("full", f"run {n} predates incremental evaluation", run)
    if _purged(store) != row[0]:
        return Plan("full", f"records purged since run {n}", run)
    row = store.sql.execute("SELECT max(installed_at) FROM packs").fetchone()
    if row and row[0] is not None and row[0] > run.evaluated_at:
        return Plan("full", f"packs installed since run {n}", run)
    if _pack_key(installed_packs(store, run.as_of)) != _pack_key(packs):
        return Plan("full", f"the packs in force differ from run {n}'s", run)
    if known_at < run.known_at:
        return Plan("full", f"known_at is before run {n}'s", run)
    if not timeline and as_of != run.as_of:
        return Plan("full", f"a point run at another as_of than run {n}'s", run)
    return Plan("incremental", None, run, tuple(changed_subjects(store, run.last_batch, known_at)))


def changed_subjects(store: Any, last_batch: int | None, known_at: datetime) -> list[str]:
    """The subjects whose results records of batches after ``last_batch`` (known at
    ``known_at``) bear on (module docstring, 1 to 3), sorted."""
    refs = _columns(REFERENCES)
    cols = ", ".join(["subject_id", *refs])
    new = store.sql.execute(
        f"SELECT {cols} FROM records WHERE batch_id > ? AND recorded_at <= ?",
        [-1 if last_batch is None else last_batch, known_at],
    ).to_arrow_table()
    subjects: set[str] = set()
    seen: set[str] = set()
    while new.num_rows:
        subjects.update(new.column("subject_id").to_pylist())
        named = {v for c in refs for v in new.column(c).to_pylist() if v is not None} - seen
        if not named:
            break
        seen |= named
        with registered(store.sql, _xin_named=pa.table({"record_id": sorted(named)})):
            new = store.sql.execute(
                f"SELECT {cols} FROM records WHERE record_id IN (SELECT record_id FROM _xin_named)"
            ).to_arrow_table()
    return related_subjects(store, subjects)


def related_subjects(store: Any, subjects: Iterable[str]) -> list[str]:
    """The subjects and every person named (``person_id``) on a record of theirs: the
    persons whose results rest on theirs (module docstring, 3), sorted."""
    wanted = sorted(set(subjects))
    if not wanted:
        return []
    col = attribute_column("person_id")
    with registered(store.sql, _xin_wanted=pa.table({"subject_id": wanted})):
        rows = store.sql.execute(
            f"SELECT DISTINCT {col} FROM records WHERE {col} IS NOT NULL "
            "AND subject_id IN (SELECT subject_id FROM _xin_wanted)"
        ).fetchall()
    return sorted(set(wanted) | {str(r[0]) for r in rows})


def reading_subjects(store: Any, subjects: Sequence[str]) -> list[str]:
    """The subjects whose records the results of ``subjects`` rest on: themselves and
    the organizations that named one of them (``person_id``), sorted."""
    wanted = sorted(set(subjects))
    if not wanted:
        return []
    col = attribute_column("person_id")
    with registered(store.sql, _xin_wanted=pa.table({"subject_id": wanted})):
        rows = store.sql.execute(
            f"SELECT DISTINCT subject_id FROM records WHERE {col} IN "
            "(SELECT subject_id FROM _xin_wanted)"
        ).fetchall()
    return sorted(set(wanted) | {str(r[0]) for r in rows})


def last_batch(store: Any, known_at: datetime) -> int | None:
    """The newest batch known at ``known_at`` (a run's knowledge): also one whose
    records were all duplicates (no record carries its id), so that it does not
    leave the run stale (``checks.index.run_is_current`` reads ``batches``)."""
    row = store.sql.execute(
        "SELECT greatest((SELECT max(batch_id) FROM batches WHERE recorded_at <= ?), "
        "(SELECT max(batch_id) FROM records WHERE recorded_at <= ?))",
        [known_at, known_at],
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def record_run(
    store: Any,
    *,
    as_of: datetime,
    known_at: datetime,
    timeline: bool,
    mode: str,
    recomputed: int | None,
) -> int:
    """The new ``eval_runs`` row (inside the caller's transaction); its run_id."""
    row = store.sql.execute("SELECT coalesce(max(run_id), 0) + 1 FROM eval_runs").fetchone()
    assert row is not None
    run_id = int(row[0])
    store.sql.execute(
        "INSERT INTO eval_runs (run_id, as_of, known_at, evaluated_at, last_batch, timeline, "
        "mode, purged, subjects_recomputed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run_id,
            as_of,
            known_at,
            now_utc(),
            last_batch(store, known_at),
            timeline,
            mode,
            _purged(store),
            recomputed,
        ],
    )
    return run_id


def replace_rows(store: Any, evaluation: Evaluation, subjects: Sequence[str]) -> None:
    """Replace the rows of ``subjects`` in the materialized tables with the
    evaluation's (restricted to them); inside the caller's transaction."""
    line = evaluation.score_timeline
    frames = {
        "scores": evaluation.scores.to_pyarrow(),
        "score_timeline": None if line is None else line.to_pyarrow(),
        "list_entries": evaluation.list_entries.to_pyarrow(),
        "consequences": evaluation.consequences.to_pyarrow(),
    }
    _delete_rows(store, subjects)
    for table in TABLES:
        frame = frames[table]
        if frame is not None and frame.num_rows:
            cols = ", ".join(frame.column_names)
            with registered(store.sql, _xin_rows=frame):
                store.sql.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _xin_rows")


def _delete_rows(store: Any, subjects: Sequence[str]) -> None:
    """Delete the rows of ``subjects`` from the materialized tables (inside the
    caller's transaction)."""
    with registered(store.sql, _xin_subjects=pa.table({"subject_id": sorted(set(subjects))})):
        for table in TABLES:
            store.sql.execute(
                f"DELETE FROM {table} WHERE subject_id IN (SELECT subject_id FROM _xin_subjects)"
            )


def rescore(store: Any, as_of: datetime) -> None:
    """``scores`` at ``as_of`` taken again from the whole ``score_timeline``."""
    store.sql.execute("DELETE FROM scores")
    store.sql.execute(
        "INSERT INTO scores (system, subject_id, score, grade) "
        "SELECT system, subject_id, score, grade FROM score_timeline "
        "WHERE valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)",
        [as_of, as_of],
    )


def recompute(
    store: Any,
    subjects: Sequence[str],
    *,
    as_of: datetime,
    known_at: datetime,
    timeline: bool,
    packs: Sequence[Pack] | None = None,
    engine: str = "duckdb",
    pg_url: str | None = None,
    spark_master: str | None = None,
    then: Callable[[], None] | None = None,
    seconds: dict[str, float] | None = None,
) -> str:
    """Replace the rows of ``subjects`` in the materialized tables with their results
    at (as_of, known_at), and run ``then`` (the caller's ``eval_runs`` write) in the
    same ONE transaction. How (the return value):

    - ``"compiled"``: on a DuckDB registry evaluated with DuckDB, the packs' compiled
      plans (engine/compiled.py, mode ``recompute``: a timeline whose consequences
      read the rows just inserted, as a full run's do; ``point`` for a point run;
      kept in the process, stored in ``replay_plans`` by ``xinyong packs compile``,
      else compiled and stored now) run over the subjects' records: the inputs are
      loaded with joins against a temporary table of the subject ids and each
      plan's SQL is inserted straight into the materialized tables, no Ibis
      expression built (when the plans are stored or kept) and no row fetched into
      Python;
    - ``"evaluated"``: otherwise (``--engine postgres`` or ``spark``, a PostgreSQL
      registry, a pack the compiled path cannot express), the evaluation runs on
      ``engine`` over a copy of the records the subjects' results rest on
      (backends.evaluate_on) and its rows are written (``replace_rows``);
    - ``"none"``: no subjects (``then`` still runs).

    ``scores`` on a timeline: the rows of ``score_timeline`` holding at ``as_of``.
    ``seconds``: filled with the time of each step."""
    from xinyong.engine import compiled

    timer = _Timer(seconds)
    wanted = sorted(set(subjects))
    if wanted and packs is None:
        from xinyong.packs import installed_packs

        packs = installed_packs(store, as_of)
    mode = "recompute" if timeline else "point"
    plans: list[compiled.Plan] | None = None
    evaluation: Evaluation | None = None
    if wanted and engine == "duckdb" and getattr(store, "backend", "duckdb") == "duckdb":
        try:
            with timer("plans"):
                plans = compiled.plans(store, packs or (), mode)
        except compiled.NotCompilable:
            plans = None
    if wanted and plans is None:
        from xinyong.engine.backends import evaluate_on

        with timer("evaluate"):
            evaluation = evaluate_on(
                engine,
                store,
                None if packs is None else tuple(packs),
                as_of=as_of,
                known_at=known_at,
                pg_url=pg_url,
                spark_master=spark_master,
                timeline=timeline,
                subjects=wanted,
            )
    with timer("write"), _transaction(store):
        if evaluation is not None:
            replace_rows(store, evaluation, wanted)
        elif plans is not None:
            _delete_rows(store, wanted)
            outputs = [o for o in compiled.OUTPUTS[mode] if o in TABLES]
            compiled.insert_outputs(
                store,
                plans,
                mode=mode,
                as_of=as_of,
                known_at=known_at,
                subjects=wanted,
                outputs=outputs,
            )
            if timeline:
                with registered(store.sql, _xin_subjects=pa.table({"subject_id": wanted})):
                    store.sql.execute(
                        "INSERT INTO scores (system, subject_id, score, grade) "
                        "SELECT system, subject_id, score, grade FROM score_timeline "
                        "WHERE subject_id IN (SELECT subject_id FROM _xin_subjects) "
                        "AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)",
                        [as_of, as_of],
                    )
        if then is not None:
            then()
    return "compiled" if plans is not None else "evaluated" if evaluation is not None else "none"


class _Timer:
    """Wall seconds per step, added to ``into`` (when given)."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into = into

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.into is not None:
                self.into[step] = self.into.get(step, 0.0) + time.perf_counter() - t0


def evaluate_registry(
    store: Any,
    engine: str = "duckdb",
    *,
    as_of: datetime | None = None,
    known_at: datetime | None = None,
    full: bool = False,
    pg_url: str | None = None,
    spark_master: str | None = None,
    timeline: bool | None = None,
) -> Outcome:
    """Evaluate every installed pack and materialize the results: incrementally when
    the latest run can be extended (``plan``), else in full. ``timeline``: the
    engine's default (``backends.default_timeline``) unless given. DuckDB runs under
    ``XINYONG_EVAL_MEMORY``."""
    from xinyong.engine.backends import default_timeline, evaluate_on
    from xinyong.engine.evaluation import materialize
    from xinyong.packs import installed_packs

    with evaluation_memory(store):
        with store.settled():  # no batch stamped before now is still in flight
            now = now_utc()
        t_as_of, t_known = as_of or now, known_at or now
        timeline = default_timeline(engine) if timeline is None else timeline
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        packs = tuple(installed_packs(store, t_as_of))
        chosen = plan(store, packs, as_of=t_as_of, known_at=t_known, timeline=timeline, full=full)
        seconds["plan"] = time.perf_counter() - t0
        if chosen.mode == "full":
            whole = evaluate_on(
                engine,
                store,
                packs,
                as_of=t_as_of,
                known_at=t_known,
                pg_url=pg_url,
                spark_master=spark_master,
                timeline=timeline,
            )
            run_id = materialize(store, whole)
            row = store.sql.execute(
                "SELECT subjects_recomputed FROM eval_runs WHERE run_id = ?", [run_id]
            ).fetchone()
            return Outcome(run_id, "full", chosen.why, int(row[0]) if row and row[0] else 0)
        assert chosen.run is not None
        run = chosen.run
        ran: list[int] = []

        def finish() -> None:
            if timeline and t_as_of != run.as_of:
                rescore(store, t_as_of)
            ran.append(
                record_run(
                    store,
                    as_of=t_as_of,
                    known_at=t_known,
                    timeline=timeline,
                    mode="incremental",
                    recomputed=len(chosen.subjects),
                )
            )

        how = recompute(
            store,
            chosen.subjects,
            as_of=t_as_of,
            known_at=t_known,
            timeline=timeline,
            packs=packs,
            engine=engine,
            pg_url=pg_url,
            spark_master=spark_master,
            then=finish,
            seconds=seconds,
        )
        why = f"extends run {run.run_id} (as of {to_local_iso(run.as_of)})"
        return Outcome(ran[0], "incremental", why, len(chosen.subjects), how, seconds)


@contextmanager
def evaluation_memory(store: Any) -> Iterator[None]:
    """DuckDB's memory limit during an evaluation of a DuckDB registry
    (``XINYONG_EVAL_MEMORY``, ledger/memory.py); PostgreSQL and Spark have their own."""
    if getattr(store, "backend", "duckdb") != "duckdb":
        yield
        return
    with duckdb_memory(store.sql, "XINYONG_EVAL_MEMORY"):
        yield
