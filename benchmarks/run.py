"""The registry benchmark: one command, figures for README.md.

    .venv/bin/python benchmarks/run.py [--persons 100000 --persons 1000000 ...]

For each size: generate a synthetic city (xinyong.sim, deterministic), import
it from Parquet, evaluate every shipped pack as of one instant and materialize
the results (``evaluate_point``), run the hand-written DuckDB SQL of the same
evaluation (``baseline_full``, benchmarks/baseline_sql.py: the baseline the
engine is compared with, as a ratio of wall and of CPU seconds, its rows
checked equal to the engine's), evaluate with timelines as `xinyong evaluate`
does (``evaluate``; the baseline has no timelines, so this ratio is for scale
only), time single checks against the in-process consequence index (median,
p99) and bulk checks per second, and evaluate the same Rongcheng score rules
per subject with zen-engine on a sample (ratio against the relational engine on
the same subjects). Before the compiled plans and the replays are timed, the
ledger is rewritten in subject order (``compact``, as `xinyong compact`: its cost,
and one subject's input load before and after). Each phase runs in its own
process so that its peak memory (max RSS) is its own. Results go to
benchmarks/results/<persons>.json and a Markdown table is printed.

    .venv/bin/python benchmarks/run.py --persons 1000000 --registry COPY.duckdb \
        --phases evaluate_point,baseline_full,evaluate

runs only those phases on an existing registry (a copy: they write to it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"
RESULTS = ROOT / "results"
AS_OF = "2026-11-01"


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    """CPU seconds of this process, all threads (steadier than wall time on a shared
    machine)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# --------------------------------------------------------------------------- phases


def phase_generate(persons: int, city: Path) -> dict[str, Any]:
    from xinyong.sim import generate_city

    started = time.perf_counter()
    files = generate_city(city, persons=persons, organizations=max(persons // 20, 10))
    return {"seconds": time.perf_counter() - started, "records": files.records}


def phase_import(city: Path, db: Path) -> dict[str, Any]:
    from xinyong.ledger.intake import import_file, register_source
    from xinyong.ledger.store import Store
    from xinyong.packs import install_pack, shipped_pack_paths

    sources = json.loads((city / "sources.json").read_text())
    files = sorted(city.glob("records-*.parquet"))
    db.unlink(missing_ok=True)
    with Store(db) as store:
        for path in shipped_pack_paths():
            install_pack(store, path)
        for item in sources:
            register_source(store, item["source_id"], item["kind"])
        started, cpu = time.perf_counter(), _cpu()
        accepted = rejected = 0
        per_batch, per_file = [], []
        for path in files:
            t0, c0 = time.perf_counter(), _cpu()
            result = import_file(store, path, progress=False)
            wall, used = time.perf_counter() - t0, _cpu() - c0
            per_batch.append(round(wall, 3))
            accepted += result.accepted
            rejected += result.rejected
            # the cost per record as the ledger grows (the duplicate check reads it)
            per_file.append(
                {
                    "file": path.name,
                    "accepted": result.accepted,
                    "seconds": round(wall, 3),
                    "cpu_seconds": round(used, 3),
                    "ledger_before": accepted - result.accepted,
                    "load": round(os.getloadavg()[0], 2),
                }
            )
            print(f"    import {json.dumps(per_file[-1])}", file=sys.stderr, flush=True)
        seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "accepted": accepted,
        "rejected": rejected,
        "records_per_s": accepted / seconds,
        "batch_seconds": per_batch,
        "files": per_file,
    }


def phase_evaluate_point(db: Path) -> dict[str, Any]:
    """The evaluation as of one instant, without timelines (what evaluate did before
    issue 8), for comparison."""
    from xinyong.engine import evaluate, materialize
    from xinyong.ledger.store import Store
    from xinyong.timeutil import parse_instant

    with Store(db) as store:
        started, cpu = time.perf_counter(), _cpu()
        run_id = materialize(store, evaluate(store, as_of=parse_instant(AS_OF)))
        seconds, cpu = time.perf_counter() - started, _cpu() - cpu
        fingerprints = _fingerprints(store, {k: k for k in OUTPUTS})
    return {"seconds": seconds, "cpu_seconds": cpu, "run_id": run_id, "rows": fingerprints}


def phase_evaluate(db: Path) -> dict[str, Any]:
    """What `xinyong evaluate` does: timelines of every pack, materialized, and the
    snapshot published."""
    from xinyong.catalog import load_catalog
    from xinyong.checks.snapshot import publish
    from xinyong.engine import evaluate, materialize
    from xinyong.engine.incremental import evaluation_memory
    from xinyong.ledger.store import Store
    from xinyong.timeutil import parse_instant

    with Store(db) as store, evaluation_memory(store):
        started, cpu = time.perf_counter(), _cpu()
        run_id = materialize(store, evaluate(store, as_of=parse_instant(AS_OF), timeline=True))
        seconds, cpu = time.perf_counter() - started, _cpu() - cpu
        t0 = time.perf_counter()
        publish(store, sorted(load_catalog().services))
        publish_seconds = time.perf_counter() - t0
        counts = dict(
            store.sql.execute(
                "SELECT 'scores', count(*) FROM scores UNION ALL "
                "SELECT 'score_timeline', count(*) FROM score_timeline UNION ALL "
                "SELECT 'list_entries', count(*) FROM list_entries UNION ALL "
                "SELECT 'consequences', count(*) FROM consequences"
            ).fetchall()
        )
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "publish_seconds": publish_seconds,
        "run_id": run_id,
        **counts,
    }


#: The share of new records the incremental phase imports (issue 8 item 3: 1 %).
NEW_SHARE = 0.01

_CHECKSUM = "SELECT count(*), coalesce(sum(hash(t)), 0) FROM {} t"


def _new_records(store: Any, path: Path, share: float, subjects_share: float | None = None) -> int:
    """1 % new records, deterministic: copies (new ids) of a seeded sample of the
    ledger's records, as a late-arriving import would bring them; revocations and
    registry records are left out (a second revocation of a record is refused).
    ``subjects_share``: instead, every record of a seeded sample of that share of the
    subjects (1 % of the subjects hold about 1 % of the records)."""
    import pyarrow.parquet as pq

    if subjects_share is None:
        sample = f"USING SAMPLE {share * 100:.3f} PERCENT (bernoulli, 7)"
    else:
        sample = (
            "AND subject_id IN (SELECT subject_id FROM (SELECT DISTINCT subject_id FROM records) "
            f"USING SAMPLE {subjects_share * 100:.3f} PERCENT (bernoulli, 7))"
        )
    table = store.sql.execute(
        "SELECT 'inc/' || record_id AS record_id, subject_id, type, "
        "strftime(occurred_at + INTERVAL 8 HOUR, '%Y-%m-%dT%H:%M:%S+08:00') AS occurred_at, "
        "source, attributes FROM records "
        f"WHERE type <> 'record.revoked' AND type NOT LIKE 'registry.%' {sample}"
    ).to_arrow_table()
    pq.write_table(table, path)
    return table.num_rows


def phase_incremental(db: Path) -> dict[str, Any]:
    """Issue 8 item 3, two figures: 1 % new records on random subjects (``spread``:
    about 11 % of the subjects have one) and 1 % new records on 1 % of the subjects
    (``focused``). For each, on a copy of the evaluated registry: import them, then
    time the incremental evaluation and a full one of the same registry (both as
    `xinyong evaluate` runs them, wall and CPU seconds, the snapshot's publication
    timed apart); the materialized tables of both must be equal. The compiled plans
    the incremental run executes are compiled and stored once before
    (`xinyong packs compile`), timed apart (``compile_seconds``)."""
    from xinyong.engine import compiled
    from xinyong.engine.incremental import evaluate_registry
    from xinyong.ledger.store import Store
    from xinyong.packs import installed_packs
    from xinyong.timeutil import parse_instant

    with Store(db) as store:
        if store.sql.execute("SELECT count(*) FROM eval_runs").fetchone() == (0,):
            evaluate_registry(store, as_of=parse_instant(AS_OF))  # the run to extend
        t0, cpu = time.perf_counter(), _cpu()
        stored = compiled.store_plans(store, installed_packs(store, parse_instant(AS_OF)))
        compile_s, compile_cpu = time.perf_counter() - t0, _cpu() - cpu
    shapes = {"spread": None, "focused": NEW_SHARE}
    wanted = os.environ.get("XINYONG_BENCH_INCREMENTAL_SHAPES", "spread,focused").split(",")
    full = os.environ.get("XINYONG_BENCH_INCREMENTAL_FULL", "1") == "1"
    return {
        "compile_seconds": compile_s,
        "compile_cpu_seconds": compile_cpu,
        "plans_compiled": stored,
        **{name: _incremental(db, name, NEW_SHARE, shapes[name], full) for name in wanted},
    }


def _incremental(
    db: Path, name: str, share: float, subjects_share: float | None, full: bool = True
) -> dict[str, Any]:
    """``full``: also time a full evaluation of the registry with the new records
    and compare the tables; without it (``--incremental-no-full``, for sizes where a
    second full run does not fit), the ratio is taken against the ``evaluate`` phase's
    full run, before the new records (`_ratios`), and the tables are not compared."""
    import shutil

    from xinyong.catalog import load_catalog
    from xinyong.checks.snapshot import publish
    from xinyong.engine.incremental import TABLES, evaluate_registry
    from xinyong.ledger.intake import import_file
    from xinyong.ledger.store import Store
    from xinyong.timeutil import parse_instant

    copy = db.with_name(f"{db.stem}-incremental-{name}.duckdb")
    shutil.copy(db, copy)
    new = db.with_name(f"{db.stem}-new-{name}.parquet")
    try:
        with Store(copy) as store:
            before = store.sql.execute("SELECT count(*) FROM records").fetchone()
            rows = _new_records(store, new, share, subjects_share)
            t0 = time.perf_counter()
            imported = import_file(store, new, progress=False)
            import_seconds = time.perf_counter() - t0

            def run(full: bool) -> tuple[float, float, float, Any, list[Any]]:
                t0, cpu = time.perf_counter(), _cpu()
                out = evaluate_registry(store, as_of=parse_instant(AS_OF), full=full)
                seconds, cpu = time.perf_counter() - t0, _cpu() - cpu
                t0 = time.perf_counter()
                publish(store, sorted(load_catalog().services))
                sums = [store.sql.execute(_CHECKSUM.format(t)).fetchone() for t in TABLES]
                return seconds, cpu, time.perf_counter() - t0, out, sums

            inc_s, inc_cpu, inc_pub, inc, inc_sums = run(full=False)
            if full:
                full_s, full_cpu, full_pub, whole, full_sums = run(full=True)
                subjects = (whole.subjects_recomputed,)
            else:  # what a full run would evaluate: every subject of the ledger
                subjects = store.sql.execute(
                    "SELECT count(DISTINCT subject_id) FROM records"
                ).fetchone()
    finally:
        copy.unlink(missing_ok=True)
        Path(f"{copy}.generation").unlink(missing_ok=True)
        Path(f"{copy}.snapshot").unlink(missing_ok=True)
        new.unlink(missing_ok=True)
    out = {
        "records_before": before[0] if before else 0,
        "new_records": rows,
        "accepted": imported.accepted,
        "import_seconds": import_seconds,
        "mode": inc.mode,
        "why": inc.why,
        "recomputed_by": inc.how,
        "subjects_recomputed": inc.subjects_recomputed,
        "subjects": subjects[0] if subjects else None,
        "incremental_seconds": inc_s,
        "incremental_cpu_seconds": inc_cpu,
        "incremental_steps": {k: round(v, 3) for k, v in inc.seconds.items()},
        "publish_seconds": inc_pub,
    }
    if full:
        out.update(
            full_seconds=full_s,
            full_cpu_seconds=full_cpu,
            ratio=inc_s / full_s,
            ratio_cpu=inc_cpu / full_cpu,
            publish_seconds=(inc_pub + full_pub) / 2,
            tables_equal=inc_sums == full_sums,
        )
    return out


def _sample_subjects(db: Path) -> tuple[str, str]:
    """A subject with a grade consequence and one with a list consequence."""
    from xinyong.ledger.store import Store

    with Store(db, read_only=True) as store:
        graded = store.sql.execute(
            "SELECT min(subject_id) FROM consequences WHERE basis_kind = 'grade'"
        ).fetchone()
        listed = store.sql.execute(
            "SELECT min(subject_id) FROM consequences "
            "WHERE basis_kind = 'list' AND service = 'flight'"
        ).fetchone()
    assert graded is not None and listed is not None
    return str(graded[0]), str(listed[0])


def _walls(argv: list[list[str]]) -> list[float]:
    walls = []
    for args in argv:
        t0 = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
    return sorted(walls)


def phase_check_process(db: Path, runs: int = 10) -> dict[str, Any]:
    """Wall time of whole `xinyong check` processes (answered from the snapshot), at an
    earlier instant and now; and of `xinyong explain` processes (a replay through the
    stored plans, when `phase_compile` stored them)."""
    _, listed = _sample_subjects(db)
    xinyong = str(Path(sys.executable).with_name("xinyong"))
    walls = _walls(
        [
            [xinyong, "check", listed, "flight", *(["--at", "2025-06-01"] if i % 2 else [])]
            + ["--db", str(db), "--json"]
            for i in range(runs)
        ]
    )
    explains = _walls([[xinyong, "explain", listed, "--at", AS_OF, "--db", str(db), "--json"]] * 3)
    return {
        "runs": runs,
        "median_s": statistics.median(walls),
        "min_s": walls[0],
        "explain_cli_median_s": statistics.median(explains),
        "explain_cli_min_s": explains[0],
    }


def phase_compile(db: Path) -> dict[str, Any]:
    """`xinyong packs compile`: the replay plans of every installed pack version,
    compiled and stored in the registry (once per pack set and backend)."""
    xinyong = str(Path(sys.executable).with_name("xinyong"))
    t0 = time.perf_counter()
    out = subprocess.run(
        [xinyong, "packs", "compile", "--db", str(db), "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return {"seconds": time.perf_counter() - t0, **json.loads(out.stdout)}


def _input_loads(db: Path, subjects: list[str]) -> list[float]:
    """Seconds of a replay's input load (``compiled._load_inputs``: one subject's
    records, those of organizations naming it, the revocations of them) per subject,
    after one load to warm the process."""
    from xinyong.engine import compiled
    from xinyong.ledger.store import Store
    from xinyong.timeutil import parse_instant

    horizon = parse_instant(AS_OF).replace(tzinfo=None)
    with Store(db, read_only=True) as store:
        con = store.sql
        row = con.execute("SELECT max(recorded_at) FROM records").fetchone()
        known = row[0] if row else horizon
        compiled._load_inputs(con, horizon, known, subjects[:1])
        times = []
        for subject in subjects[1:]:
            t0 = time.perf_counter()
            compiled._load_inputs(con, horizon, known, [subject])
            times.append(time.perf_counter() - t0)
    return times


def phase_compact(db: Path, samples: int = 21) -> dict[str, Any]:
    """``xinyong compact`` (the ledger rewritten in subject order, revocations last):
    its cost, and a replay's input load for the same sampled subjects before and
    after (median; the baseline is the ledger as imported)."""
    from xinyong.ledger.compaction import compact
    from xinyong.ledger.store import Store

    with Store(db, read_only=True) as store:
        subjects = [
            str(r[0])
            for r in store.sql.execute(
                f"SELECT subject_id FROM records USING SAMPLE {int(samples)} ROWS (reservoir, 7)"
            ).fetchall()
        ]
    before = _input_loads(db, subjects)
    size = db.stat().st_size
    t0, c0 = time.perf_counter(), _cpu()
    with Store(db) as store:
        done = compact(store)
    seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    after = _input_loads(db, subjects)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "records": done.records,
        "row_groups_before": done.row_groups_before,
        "row_groups_after": done.row_groups_after,
        "file_mib_before": round(size / 2**20, 1),
        "file_mib_after": round(db.stat().st_size / 2**20, 1),
        "input_load_before_ms": round(statistics.median(before) * 1e3, 2),
        "input_load_after_ms": round(statistics.median(after) * 1e3, 2),
        "input_load_ratio": statistics.median(after) / statistics.median(before),
        "load": round(os.getloadavg()[0], 2),
    }


def phase_replay(db: Path, runs: int = 5) -> dict[str, Any]:
    """In-process: one-subject checks replayed (a known_at before the run's knowledge),
    scores replayed at an earlier instant, and explain; the first of each (loading or
    compiling the plans) apart from the median of the next ``runs``."""
    from xinyong.checks import check, explain, score_of
    from xinyong.engine import compiled
    from xinyong.ledger.store import Store
    from xinyong.timeutil import parse_instant

    graded, listed = _sample_subjects(db)
    at = parse_instant("2021-06-01")
    with Store(db, read_only=True) as store:
        row = store.sql.execute("SELECT max(recorded_at) FROM records").fetchone()
        before = row[0] if row else None  # knowledge before the last batch: a replay
        subjects = [
            str(r[0])
            for r in store.sql.execute(
                "SELECT DISTINCT subject_id FROM consequences ORDER BY subject_id LIMIT ?",
                [runs + 1],
            ).fetchall()
        ]

        def timed(ask: Any) -> tuple[float, list[float]]:
            times = []
            for subject in [listed, *subjects[:runs]]:
                t0 = time.perf_counter()
                ask(subject)
                times.append(time.perf_counter() - t0)
            return times[0], times[1:]

        first_check, checks = timed(lambda s: check(store, s, "flight", at=at, known_at=before))
        first_score, scores = timed(
            lambda s: score_of(store, s, "rongcheng", at=at, known_at=before)
        )
        first_explain, explains = timed(lambda s: explain(store, s, at=parse_instant(AS_OF)))
        answer = check(store, listed, "flight", at=at, known_at=before)
        t0 = time.perf_counter()
        score_of(store, graded, "rongcheng", at=parse_instant(AS_OF))
        lookup = time.perf_counter() - t0
    return {
        "replay_check_seconds": statistics.median(checks),
        "replay_check_first_seconds": first_check,
        "replay_score_seconds": statistics.median(scores),
        "replay_score_first_seconds": first_score,
        "explain_seconds": statistics.median(explains),
        "explain_first_seconds": first_explain,
        "replay_answered_from": answer.answered_from,
        "registry_score_lookup_seconds": lookup,
        "plan_events": sorted({e for e, _ in compiled.events}),
    }


OUTPUTS = {"scores": "b_scores", "list_entries": "b_list_entries", "consequences": "b_consequences"}


def _fingerprints(store: Any, tables: dict[str, str]) -> dict[str, list[Any]]:
    """Row count and the MD5 of all rows (as in benchmarks/engines.py) of each table."""
    out = {}
    for name, table in tables.items():  # fixed names, no input
        row = store.sql.execute(
            f"SELECT count(*), md5(string_agg(CAST(t AS VARCHAR), '|' "
            f"ORDER BY CAST(t AS VARCHAR))) FROM {table} AS t"
        ).fetchone()
        out[name] = [int(row[0]), row[1]]
    return out


def phase_baseline_full(db: Path) -> dict[str, Any]:
    """The whole point evaluation of every shipped pack as hand-written DuckDB SQL
    (benchmarks/baseline_sql.py), timed, and checked equal row for row with the
    engine's point evaluation that ``evaluate_point`` materialized just before."""
    sys.path.insert(0, str(ROOT))
    import baseline_sql
    from xinyong.ledger.store import Store
    from xinyong.packs import installed_packs
    from xinyong.timeutil import local_midnight, now_utc, parse_instant

    as_of = parse_instant(AS_OF)
    with Store(db) as store:
        packs = installed_packs(store, as_of)
        rc = next(p for p in packs if p.system == "rongcheng")
        baseline_sql.register(store, packs)
        known_at = store.sql.execute(
            "SELECT known_at FROM eval_runs ORDER BY run_id DESC"
        ).fetchone()
        started, cpu = time.perf_counter(), _cpu()
        baseline_sql.run(
            store,
            as_of,
            known_at[0] if known_at else now_utc(),
            local_midnight(rc.meta.effective_from),
        )
        seconds, cpu = time.perf_counter() - started, _cpu() - cpu
        engine = _fingerprints(store, {k: k for k in OUTPUTS})
        mine = _fingerprints(store, OUTPUTS)
        diff = {}
        for name, table in OUTPUTS.items():
            if engine[name] != mine[name]:
                extra = store.sql.execute(
                    f"SELECT count(*) FROM (SELECT * FROM {table} EXCEPT ALL SELECT * FROM {name})"
                ).fetchone()
                missing = store.sql.execute(
                    f"SELECT count(*) FROM (SELECT * FROM {name} EXCEPT ALL SELECT * FROM {table})"
                ).fetchone()
                assert extra is not None and missing is not None
                diff[name] = {"only_baseline": extra[0], "only_engine": missing[0]}
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rows": {k: v[0] for k, v in mine.items()},
        "equal": engine == mine,
        "differences": diff,
    }


def phase_checks(db: Path, n: int = 200_000) -> dict[str, Any]:
    from xinyong.catalog import load_catalog
    from xinyong.checks import ConsequenceIndex
    from xinyong.checks.index import micros
    from xinyong.ledger.store import Store
    from xinyong.timeutil import parse_instant

    with Store(db) as store:
        t0 = time.perf_counter()
        index = ConsequenceIndex.load(store)
        load_seconds = time.perf_counter() - t0
        subjects = [
            r[0]
            for r in store.sql.execute(
                "SELECT DISTINCT subject_id FROM records USING SAMPLE 20000 ROWS"
            ).fetchall()
        ]
        listed = [
            r[0]
            for r in store.sql.execute(
                "SELECT DISTINCT subject_id FROM consequences LIMIT 20000"
            ).fetchall()
        ]
    services = list(load_catalog().services)
    rng = random.Random(7)
    pool = subjects + listed  # about half with consequences, the realistic worst case
    queries = [(rng.choice(pool), rng.choice(services)) for _ in range(n)]
    at = micros(parse_instant(AS_OF))
    decide = index.decide
    timings = []
    clock = time.perf_counter_ns
    for s, v in queries:
        t = clock()
        decide(s, v, at)
        timings.append(clock() - t)
    # The timer's own cost, measured the same way, is subtracted.
    overhead = []
    for _ in range(20_000):
        t = clock()
        overhead.append(clock() - t)
    base = statistics.median(overhead)
    timings.sort()
    started = time.perf_counter()
    denied = sum(1 for s, v in queries if decide(s, v, at) == "deny")
    bulk = time.perf_counter() - started
    return {
        "index_load_seconds": load_seconds,
        "index_subjects": len(index),
        "checks": n,
        "median_us": max(timings[len(timings) // 2] - base, 0) / 1000,
        "p99_us": max(timings[int(len(timings) * 0.99)] - base, 0) / 1000,
        "bulk_checks_per_s": n / bulk,
        "denied": denied,
    }


def phase_zen(db: Path, sample: int = 100_000) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from zen_compare import run_zen

    return run_zen(db, sample, AS_OF)


PHASES = {
    "import": phase_import,
    "evaluate_point": phase_evaluate_point,
    "evaluate": phase_evaluate,
    "incremental": phase_incremental,
    "compact": phase_compact,
    "compile": phase_compile,
    "check_process": phase_check_process,
    "replay": phase_replay,
    "baseline_full": phase_baseline_full,
    "checks": phase_checks,
    "zen": phase_zen,
}


def _run_phase(name: str, *args: str) -> dict[str, Any]:
    # the phase's progress lines and errors go straight to this process's stderr
    out = subprocess.run(
        [sys.executable, __file__, "--phase", name, *args], stdout=subprocess.PIPE, text=True
    )
    if out.returncode != 0:
        sys.exit(f"phase {name} failed (exit {out.returncode}); its errors are above")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {name}: {json.dumps(result)[:300]}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, action="append", help="city sizes (persons)")
    parser.add_argument(
        "--registry",
        type=Path,
        help="use this existing registry (a copy you may write to) instead of generating "
        "and importing a city; one --persons gives its size",
    )
    parser.add_argument(
        "--phases",
        help="comma-separated phases to run (default all), e.g. evaluate_point,baseline_full",
    )
    parser.add_argument(
        "--incremental-shapes",
        default="spread,focused",
        help="the incremental phase's shapes of 1 %% new records: spread, focused or both",
    )
    parser.add_argument(
        "--incremental-no-full",
        action="store_true",
        help="the incremental phase does not run a second full evaluation; its ratio is "
        "against the evaluate phase's (for sizes where a second full run does not fit)",
    )
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if not set(opts.incremental_shapes.split(",")) <= {"spread", "focused"}:
        parser.error("--incremental-shapes: spread, focused or spread,focused")
    if not opts.phase:  # the phase processes read them from the environment they inherit
        os.environ["XINYONG_BENCH_INCREMENTAL_SHAPES"] = opts.incremental_shapes
        os.environ["XINYONG_BENCH_INCREMENTAL_FULL"] = "0" if opts.incremental_no_full else "1"
    if opts.phase:
        if opts.phase == "generate":
            result = phase_generate(int(opts.args[0]), Path(opts.args[1]))
        else:
            result = PHASES[opts.phase](*(Path(a) for a in opts.args))  # type: ignore[operator]
        result["peak_rss_mib"] = round(_peak_mib(), 1)
        print(json.dumps(result))
        return
    run_sizes(opts)


def run_sizes(opts: argparse.Namespace) -> None:
    sizes = opts.persons or [100_000]
    DATA.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "when": datetime.now().isoformat(timespec="seconds"),
    }
    for persons in sizes:
        print(f"persons={persons}", flush=True)
        city = DATA / f"city-{persons}"
        db = opts.registry or DATA / f"registry-{persons}.duckdb"
        wanted = set(opts.phases.split(",")) if opts.phases else None
        result: dict[str, Any] = {"persons": persons, "machine": machine}
        name = f"{persons}.json" if wanted is None else f"{persons}-{'-'.join(sorted(wanted))}.json"

        if opts.registry is None:
            if not (city / "sources.json").exists():
                result["generate"] = _run_phase("generate", str(persons), str(city))
                _save(result, name)
            result["import"] = _run_phase("import", str(city), str(db))
            _save(result, name)
        # The baseline compares its rows with the point evaluation just materialized,
        # so it runs right after it (the timeline evaluation replaces those rows).
        for phase in (
            "evaluate_point",
            "baseline_full",
            "evaluate",
            "incremental",
            "compact",
            "compile",
            "check_process",
            "replay",
            "checks",
            "zen",
        ):
            if wanted is None or phase in wanted:
                result[phase] = _run_phase(phase, str(db))
                _save(result, name)
        _print_table(result)
        if wanted is not None:
            print(json.dumps(result["ratios"], indent=2))


def _save(result: dict[str, Any], name: str) -> None:
    """Written after every phase: a long run that fails keeps what it measured."""
    result["ratios"] = _ratios(result)
    (RESULTS / name).write_text(json.dumps(result, indent=2))


def _ratios(r: dict[str, Any]) -> dict[str, Any]:
    """Engine ÷ hand-written SQL (the baseline computes one instant: the point
    evaluation is what it is compared with; the timeline evaluation, which computes
    every instant, is set against it too, for scale), and zen-engine ÷ engine."""
    out: dict[str, Any] = {}
    base, point, line = r.get("baseline_full"), r.get("evaluate_point"), r.get("evaluate")
    if base is not None and point is not None:
        out["baseline_equal"] = base["equal"]
        out["engine_point_vs_sql_baseline"] = point["seconds"] / base["seconds"]
        out["engine_point_vs_sql_baseline_cpu"] = point["cpu_seconds"] / base["cpu_seconds"]
    if base is not None and line is not None:
        out["engine_timeline_vs_sql_baseline_point"] = line["seconds"] / base["seconds"]
        out["engine_timeline_vs_sql_baseline_point_cpu"] = line["cpu_seconds"] / base["cpu_seconds"]
    inc = r.get("incremental") or {}
    for shape in ("spread", "focused"):
        one = inc.get(shape)
        if one and "ratio" not in one and line is not None:
            # no second full run: against the evaluate phase's (before the new records)
            out[f"incremental_{shape}_vs_evaluate"] = one["incremental_seconds"] / line["seconds"]
            out[f"incremental_{shape}_vs_evaluate_cpu"] = (
                one["incremental_cpu_seconds"] / line["cpu_seconds"]
            )
    if "zen" in r:
        out["zen_eval_vs_engine"] = r["zen"]["zen_eval_vs_engine"]
        out["zen_end_to_end_vs_engine"] = r["zen"]["zen_end_to_end_vs_engine"]
    return out


def _print_table(r: dict[str, Any]) -> None:
    """The Markdown tables README.md quotes; a table whose phases did not run (see
    ``--phases``) is left out, a missing figure is printed as n/a."""

    def get(*path: str) -> Any:
        node: Any = r
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    def f(value: Any, spec: str, suffix: str = "") -> str:
        return "n/a" if value is None else f"{format(value, spec)}{suffix}"

    imp, ev, ch, pt = (r.get(k) for k in ("import", "evaluate", "checks", "evaluate_point"))
    if r.get("compact"):
        print(
            f"\n| persons | compact s | compact CPU s | one subject's input load before (ms) | "
            f"after (ms) | ratio |\n|---|---|---|---|---|---|\n"
            f"| {r['persons']:,} | {f(get('compact', 'seconds'), '.1f')} | "
            f"{f(get('compact', 'cpu_seconds'), '.1f')} | "
            f"{f(get('compact', 'input_load_before_ms'), '.1f')} | "
            f"{f(get('compact', 'input_load_after_ms'), '.1f')} | "
            f"{f(get('compact', 'input_load_ratio'), '.3f')} |"
        )
    if imp or ev or ch:
        print(
            f"\n| persons | records | import rec/s | evaluate s | eval peak MiB | "
            f"engine/SQL (point, all packs) | check median µs | check p99 µs | bulk checks/s | "
            f"zen/engine (eval only) | zen/engine (end to end) |\n"
            f"|---|---|---|---|---|---|---|---|---|---|---|\n"
            f"| {r['persons']:,} | {f(get('import', 'accepted'), ',')} | "
            f"{f(get('import', 'records_per_s'), ',.0f')} | "
            f"{f(get('evaluate', 'seconds'), '.1f')} | "
            f"{f(get('evaluate', 'peak_rss_mib'), ',.0f')} | "
            f"{f(get('ratios', 'engine_point_vs_sql_baseline'), '.2f')} | "
            f"{f(get('checks', 'median_us'), '.2f')} | {f(get('checks', 'p99_us'), '.2f')} | "
            f"{f(get('checks', 'bulk_checks_per_s'), ',.0f')} | "
            f"{f(get('ratios', 'zen_eval_vs_engine'), '.2f', '×')} | "
            f"{f(get('ratios', 'zen_end_to_end_vs_engine'), '.1f', '×')} |"
        )
    if pt or ev or r.get("check_process") or r.get("replay"):
        line, point = get("evaluate", "seconds"), get("evaluate_point", "seconds")
        print(
            f"\n| persons | evaluate, point (s) | evaluate, timelines (s) | ratio | "
            f"score intervals | publish (s) | check process, median (s) | replay check (s) | "
            f"explain (s) |\n|---|---|---|---|---|---|---|---|---|\n"
            f"| {r['persons']:,} | {f(point, '.1f')} | {f(line, '.1f')} | "
            f"{f(line / point if line and point else None, '.1f', '×')} | "
            f"{f(get('evaluate', 'score_timeline'), ',')} | "
            f"{f(get('evaluate', 'publish_seconds'), '.1f')} | "
            f"{f(get('check_process', 'median_s'), '.2f')} | "
            f"{f(get('replay', 'replay_check_seconds'), '.1f')} | "
            f"{f(get('replay', 'explain_seconds'), '.1f')} |"
        )
    inc = r.get("incremental")
    if inc:
        print(
            f"\nplans compiled once before: {f(inc.get('compile_seconds'), '.1f')} s\n"
            f"\n| persons | new records | subjects recomputed | incremental (s) | full (s) | "
            f"incremental / full (wall) | (CPU) | publish (s) | equal |\n"
            f"|---|---|---|---|---|---|---|---|---|"
        )
        for name in ("spread", "focused"):
            one = inc.get(name)
            if not one:
                continue
            if "ratio" not in one:
                print(
                    f"| {r['persons']:,} ({name}) | {one['accepted']:,} | "
                    f"{one['subjects_recomputed']:,} of {f(one.get('subjects'), ',')} | "
                    f"{one['incremental_seconds']:.1f} | (evaluate phase) "
                    f"{f(get('evaluate', 'seconds'), '.1f')} | "
                    f"{f(get('ratios', f'incremental_{name}_vs_evaluate'), '.1%')} | "
                    f"{f(get('ratios', f'incremental_{name}_vs_evaluate_cpu'), '.1%')} | "
                    f"{one['publish_seconds']:.1f} | not compared |"
                )
                continue
            print(
                f"| {r['persons']:,} ({name}) | {one['accepted']:,} "
                f"({one['accepted'] / one['records_before']:.1%}) | "
                f"{one['subjects_recomputed']:,} of {one['subjects']:,} | "
                f"{one['incremental_seconds']:.1f} | {one['full_seconds']:.1f} | "
                f"{one['ratio']:.1%} | {f(one.get('ratio_cpu'), '.1%')} | "
                f"{one['publish_seconds']:.1f} | {one['tables_equal']} |"
            )


if __name__ == "__main__":
    main()
