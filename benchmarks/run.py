"""The registry benchmark: one command, figures for README.md.

    .venv/bin/python benchmarks/run.py [--persons 100000 --persons 1000000 ...]

For each size: generate a synthetic city (xinyong.sim, deterministic), import
it from Parquet, evaluate every shipped pack and materialize the results, run
a hand-written DuckDB SQL query computing the same Rongcheng scores (the
baseline the engine is compared with, as a ratio, results checked equal), time
single checks against the in-process consequence index (median, p99) and bulk
checks per second, and evaluate the same Rongcheng score rules per subject with
zen-engine on a sample (ratio against the relational engine on the same
subjects). Each phase runs in its own process so that its peak memory (max RSS)
is its own. Results go to benchmarks/results/<persons>.json and a Markdown table
is printed.
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
        started = time.perf_counter()
        accepted = rejected = 0
        per_batch = []
        for path in files:
            t0 = time.perf_counter()
            result = import_file(store, path, progress=False)
            per_batch.append(round(time.perf_counter() - t0, 3))
            accepted += result.accepted
            rejected += result.rejected
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "accepted": accepted,
        "rejected": rejected,
        "records_per_s": accepted / seconds,
        "batch_seconds": per_batch,
    }


def phase_evaluate_point(db: Path) -> dict[str, Any]:
    """The evaluation as of one instant, without timelines (what evaluate did before
    issue 8), for comparison."""
    from xinyong.engine import evaluate, materialize
    from xinyong.ledger.store import Store
    from xinyong.timeutil import parse_instant

    with Store(db) as store:
        started = time.perf_counter()
        run_id = materialize(store, evaluate(store, as_of=parse_instant(AS_OF)))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "run_id": run_id}


def phase_evaluate(db: Path) -> dict[str, Any]:
    """What `xinyong evaluate` does: timelines of every pack, materialized, and the
    snapshot published."""
    from xinyong.catalog import load_catalog
    from xinyong.checks.snapshot import publish
    from xinyong.engine import evaluate, materialize
    from xinyong.ledger.store import Store
    from xinyong.timeutil import parse_instant

    with Store(db) as store:
        started = time.perf_counter()
        run_id = materialize(store, evaluate(store, as_of=parse_instant(AS_OF), timeline=True))
        seconds = time.perf_counter() - started
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
        "publish_seconds": publish_seconds,
        "run_id": run_id,
        **counts,
    }


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


def _rongcheng_pack(store: Any) -> Any:
    from xinyong.packs import installed_packs

    return next(p for p in installed_packs(store) if p.system == "rongcheng")


def phase_engine_scores(db: Path) -> dict[str, Any]:
    """The engine computing only the Rongcheng scores (what the baseline computes)."""
    from xinyong.engine import evaluate
    from xinyong.ledger.store import Store
    from xinyong.timeutil import parse_instant

    with Store(db) as store:
        pack = _rongcheng_pack(store)
        started = time.perf_counter()
        scores = evaluate(store, [pack], as_of=parse_instant(AS_OF)).scores
        table = scores.select("subject_id", "score").to_pyarrow()
        seconds = time.perf_counter() - started
    rows = dict(zip(table["subject_id"].to_pylist(), table["score"].to_pylist(), strict=True))
    (DATA / "engine_scores.json").write_text(json.dumps(rows))
    return {"seconds": seconds, "subjects_scored": len(rows)}


def phase_baseline(db: Path) -> dict[str, Any]:
    """Hand-written DuckDB SQL for the same Rongcheng scores."""
    sys.path.insert(0, str(ROOT))
    from baseline_sql import rongcheng_scores_sql
    from xinyong.ledger.store import Store
    from xinyong.timeutil import parse_instant

    with Store(db) as store:
        pack = _rongcheng_pack(store)
        sql, params = rongcheng_scores_sql(pack, parse_instant(AS_OF), store)
        started = time.perf_counter()
        rows = store.sql.execute(sql, params).fetchall()
        seconds = time.perf_counter() - started
    engine = json.loads((DATA / "engine_scores.json").read_text())
    mismatched = sum(1 for s, v in rows if abs(engine.get(s, float("nan")) - v) > 1e-9)
    return {
        "seconds": seconds,
        "subjects_scored": len(rows),
        "mismatches": mismatched + abs(len(engine) - len(rows)),
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
    "compile": phase_compile,
    "check_process": phase_check_process,
    "replay": phase_replay,
    "engine_scores": phase_engine_scores,
    "baseline": phase_baseline,
    "checks": phase_checks,
    "zen": phase_zen,
}


def _run_phase(name: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", name, *args],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sys.exit(f"phase {name} failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {name}: {json.dumps(result)[:300]}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, action="append", help="city sizes (persons)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.phase:
        if opts.phase == "generate":
            result = phase_generate(int(opts.args[0]), Path(opts.args[1]))
        else:
            result = PHASES[opts.phase](*(Path(a) for a in opts.args))  # type: ignore[operator]
        result["peak_rss_mib"] = round(_peak_mib(), 1)
        print(json.dumps(result))
        return
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
        db = DATA / f"registry-{persons}.duckdb"
        result: dict[str, Any] = {"persons": persons, "machine": machine}
        if not (city / "sources.json").exists():
            result["generate"] = _run_phase("generate", str(persons), str(city))
        result["import"] = _run_phase("import", str(city), str(db))
        for name in ("evaluate_point", "evaluate", "compile", "check_process", "replay"):
            result[name] = _run_phase(name, str(db))
        for name in ("engine_scores", "baseline", "checks", "zen"):
            result[name] = _run_phase(name, str(db))
        result["ratios"] = {
            "engine_vs_sql_baseline": result["engine_scores"]["seconds"]
            / result["baseline"]["seconds"],
            "zen_eval_vs_engine": result["zen"]["zen_eval_vs_engine"],
            "zen_end_to_end_vs_engine": result["zen"]["zen_end_to_end_vs_engine"],
        }
        (RESULTS / f"{persons}.json").write_text(json.dumps(result, indent=2))
        _print_table(result)


def _print_table(r: dict[str, Any]) -> None:
    imp, ev, ch = r["import"], r["evaluate"], r["checks"]
    print(
        f"\n| persons | records | import rec/s | evaluate s | eval peak MiB | "
        f"engine/SQL | check median µs | check p99 µs | bulk checks/s | "
        f"zen/engine (eval only) | zen/engine (end to end) |\n"
        f"|---|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {r['persons']:,} | {imp['accepted']:,} | {imp['records_per_s']:,.0f} | "
        f"{ev['seconds']:.1f} | {ev['peak_rss_mib']:,.0f} | "
        f"{r['ratios']['engine_vs_sql_baseline']:.2f} | {ch['median_us']:.2f} | "
        f"{ch['p99_us']:.2f} | {ch['bulk_checks_per_s']:,.0f} | "
        f"{r['ratios']['zen_eval_vs_engine']:.2f}× | "
        f"{r['ratios']['zen_end_to_end_vs_engine']:.1f}× |"
    )
    pt, cp, rp = r["evaluate_point"], r["check_process"], r["replay"]
    print(
        f"\n| persons | evaluate, point (s) | evaluate, timelines (s) | ratio | "
        f"score intervals | publish (s) | check process, median (s) | replay check (s) | "
        f"explain (s) |\n|---|---|---|---|---|---|---|---|---|\n"
        f"| {r['persons']:,} | {pt['seconds']:.1f} | {ev['seconds']:.1f} | "
        f"{ev['seconds'] / pt['seconds']:.1f}× | {ev['score_timeline']:,} | "
        f"{ev['publish_seconds']:.1f} | {cp['median_s']:.2f} | "
        f"{rp['replay_check_seconds']:.1f} | {rp['explain_seconds']:.1f} |"
    )


if __name__ == "__main__":
    main()
