"""Evaluation per engine, as a ratio to DuckDB: one command, figures for README.md.

    .venv/bin/python benchmarks/engines.py [--persons 100000]
        [--engines duckdb,postgres,spark1,spark2] [--pg-url postgresql://postgres@/postgres]

Builds (or reuses) a registry of a synthetic city (xinyong.sim, deterministic,
benchmarks/data/engines-<persons>.duckdb), then for each engine, in a process of
its own and on a copy of the registry: evaluates every shipped pack as of
2026-11-01 with ``xinyong.engine.backends.evaluate_on`` and materializes the
results. Times: ``start`` (a Spark session: the JVM), ``evaluate`` (copying the
ledger to the engine, the evaluation there, the results fetched back), and
``materialize``. ``spark1``/``spark2`` are Spark in local mode with 1 and 2 cores.
Each run's materialized tables are fingerprinted (row counts and an order-free
hash) and must equal DuckDB's. Results go to benchmarks/results/engines-<persons>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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
ENGINES = {
    "duckdb": ("duckdb", None),
    "postgres": ("postgres", None),
    "spark1": ("spark", "local[1]"),
    "spark2": ("spark", "local[2]"),
}


def build(persons: int) -> Path:
    from xinyong.ledger.intake import import_file, register_source
    from xinyong.ledger.store import Store
    from xinyong.packs import install_pack, shipped_pack_paths
    from xinyong.sim import generate_city

    db = DATA / f"engines-{persons}.duckdb"
    if db.exists():
        return db
    DATA.mkdir(exist_ok=True)
    city = DATA / f"engines-city-{persons}"
    generate_city(city, persons=persons, organizations=max(persons // 20, 10))
    tmp = db.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with Store(tmp) as store:
        for path in shipped_pack_paths():
            install_pack(store, path)
        for item in json.loads((city / "sources.json").read_text()):
            register_source(store, item["source_id"], item["kind"])
        for f in sorted(city.glob("records-*.parquet")):
            import_file(store, f, progress=False)
    tmp.rename(db)
    shutil.rmtree(city)
    return db


def fingerprint(store: Any) -> dict[str, list[Any]]:
    """Row count and the MD5 of all rows (every column, in one order) of each table."""
    out = {}
    for table in ("scores", "list_entries", "consequences"):  # fixed names, no input
        row = store.sql.execute(
            f"SELECT count(*), md5(string_agg(CAST(t AS VARCHAR), '|' "
            f"ORDER BY CAST(t AS VARCHAR))) FROM {table} AS t"
        ).fetchone()
        out[table] = [int(row[0]), row[1]]
    return out


def phase(name: str, db: Path, pg_url: str | None) -> dict[str, Any]:
    from xinyong.engine import materialize
    from xinyong.engine.backends import evaluate_on, spark_session
    from xinyong.ledger.store import Store
    from xinyong.timeutil import parse_instant

    engine, master = ENGINES[name]
    started = time.perf_counter()
    if master is not None:
        spark_session(master)
    start = time.perf_counter() - started
    with Store(db) as store:
        t0 = time.perf_counter()
        ev = evaluate_on(
            engine, store, as_of=parse_instant(AS_OF), pg_url=pg_url, spark_master=master
        )
        t1 = time.perf_counter()
        materialize(store, ev)
        t2 = time.perf_counter()
        fp = fingerprint(store)
    return {
        "engine": name,
        "start_seconds": round(start, 2),
        "evaluate_seconds": round(t1 - t0, 2),
        "materialize_seconds": round(t2 - t1, 2),
        # DuckDB's evaluate() is lazy: its rows are computed inside materialize, the
        # others' are computed (and fetched) in evaluate: the total is what compares.
        "total_seconds": round(t2 - t0, 2),
        "fingerprint": fp,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--persons", type=int, default=100_000)
    ap.add_argument("--engines", default="duckdb,postgres,spark1,spark2")
    ap.add_argument(
        "--pg-url", default=os.environ.get("XINYONG_PG_URL", "postgresql://postgres@/postgres")
    )
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, Path(args.db), args.pg_url)))
        return
    t = time.perf_counter()
    db = build(args.persons)
    print(f"registry {db} ready in {time.perf_counter() - t:.1f} s", flush=True)
    runs = []
    for name in args.engines.split(","):
        copy = DATA / f"engines-{args.persons}-{name}.duckdb"
        shutil.copy(db, copy)
        cmd = [
            sys.executable,
            __file__,
            "--phase",
            name,
            "--db",
            str(copy),
            "--pg-url",
            args.pg_url,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        copy.unlink(missing_ok=True)
        if out.returncode != 0:
            print(f"{name} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
            sys.exit(1)
        run = json.loads(out.stdout.strip().splitlines()[-1])
        runs.append(run)
        print(json.dumps(run), flush=True)
    base = next((r for r in runs if r["engine"] == "duckdb"), None)
    for r in runs:
        if base is not None:
            r["ratio_to_duckdb"] = round(r["total_seconds"] / base["total_seconds"], 1)
            r["same_as_duckdb"] = r["fingerprint"] == base["fingerprint"]
    import psutil

    result = {
        "persons": args.persons,
        "as_of": AS_OF,
        "machine": {
            "cpu": platform.machine(),
            "cores": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "shared": "2 cores shared with other jobs while measured",
            "when": datetime.now().isoformat(timespec="seconds"),
        },
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"engines-{args.persons}.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n| engine | start s | evaluate s | materialize s | total s | × DuckDB | same |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['engine']} | {r['start_seconds']} | {r['evaluate_seconds']} | "
            f"{r['materialize_seconds']} | {r['total_seconds']} | {r.get('ratio_to_duckdb')} | "
            f"{r.get('same_as_duckdb')} |"
        )


if __name__ == "__main__":
    main()
