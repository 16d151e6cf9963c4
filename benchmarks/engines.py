"""Per engine, as a ratio to DuckDB: import, evaluation (point, full, incremental)
and check latency. One command, figures for README.md and docs/SCALE.md.

    .venv/bin/python benchmarks/engines.py [--persons 100000]
        [--engines duckdb,postgres,spark1,spark2] [--pg-server postgresql://postgres@/postgres]
        [--skip point,incremental,checks]

A synthetic city (xinyong.sim, deterministic; kept in benchmarks/data/engines-city-<persons>)
is measured on each engine, each in a process of its own, one after the other:

- ``duckdb``: a DuckDB registry file; ``postgres``: a PostgreSQL registry (a database
  ``xin_bench_<pid>`` created on ``--pg-server`` and dropped afterwards), evaluated in
  it as ``xinyong evaluate --db postgresql://…`` does; ``spark1``/``spark2``: Spark in
  local mode with 1 and 2 cores on a copy of the DuckDB registry just imported
  (``xinyong evaluate --engine spark``: the ledger written to Parquet, evaluated there,
  the results materialized in the registry).
- ``import``: the real intake (``ledger.intake.import_file`` of every Parquet file of
  the city, shipped packs and sources installed first), records per second. Spark has
  no registry of its own (its Parquet copy of the ledger is written inside each
  evaluation, and counted there).
- ``point``: ``backends.evaluate_on`` as of 2026-11-01 without timelines, materialized
  (what this benchmark measured before; on Spark it is what ``full`` is).
- ``full``: ``engine.incremental.evaluate_registry(full=True)`` as ``xinyong evaluate
  --full`` runs it (timelines on DuckDB and PostgreSQL, a point run on Spark), the
  snapshot's publication timed apart.
- ``import_new`` and ``incremental``: 1 % new records (copies, under new ids, of a
  seeded sample of the ledger, as benchmarks/run.py makes them; the same file for
  every engine) imported, then ``evaluate_registry`` as ``xinyong evaluate`` runs it
  (incremental when it can be: ``mode``/``why`` say which).
- ``checks``: single checks of sampled subjects through ``access.operations.check`` (the
  CLI's code path: the gate, the published snapshot on a DuckDB registry or the
  registry's tables on PostgreSQL, the audit entry), median and p99, the store opened
  per check as one CLI process does and held open as a server worker does; and the
  wall time of whole ``xinyong check`` processes. Spark has none (checks read the
  registry, the same DuckDB file as ``duckdb``).

Times are wall seconds; ``cpu_seconds`` add up this process, its children (Spark's
JVM) and, for ``postgres``, the PostgreSQL server's processes (all of them: other
users of the server count too). Each evaluation's materialized tables are
fingerprinted (row count and an MD5 over all rows, timestamps as epoch microseconds,
so a DuckDB and a PostgreSQL registry compare) and must equal DuckDB's. Every step's
result is written as soon as it is measured to benchmarks/results/engines-<persons>.json;
the runs of engines not named in ``--engines`` that file already holds are kept.
Spark's input, the ``duckdb`` run's imported registry, is kept in benchmarks/data; to
build it again without replacing a recorded ``duckdb`` run, import only, into another
results file: ``--engines duckdb --skip point,full,incremental,checks --out FILE``.
The ``start`` step of a Spark run records its driver memory (``XINYONG_SPARK_MEMORY``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"
RESULTS = ROOT / "results"
AS_OF = "2026-11-01"
#: engine name -> (the evaluation engine, Spark master, where the registry lives)
ENGINES: dict[str, tuple[str, str | None, str]] = {
    "duckdb": ("duckdb", None, "duckdb"),
    "postgres": ("duckdb", None, "postgresql"),  # evaluated in its own registry
    "spark1": ("spark", "local[1]", "duckdb"),
    "spark2": ("spark", "local[2]", "duckdb"),
}
STEPS = ("import", "point", "full", "import_new", "incremental", "checks")
#: The share of new records of the incremental step (issue 8 item 3: 1 %).
NEW_SHARE = 0.01
CHECK_SUBJECTS = 200
CLI_CHECKS = 10
FINGERPRINTED = ("scores", "list_entries", "consequences", "score_timeline")


def city(persons: int) -> Path:
    from xinyong.sim import generate_city

    path = DATA / f"engines-city-{persons}"
    if not path.exists():
        DATA.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        generate_city(tmp, persons=persons, organizations=max(persons // 20, 10))
        tmp.rename(path)
    return path


def base_registry(persons: int) -> Path:
    """The DuckDB registry as the ``duckdb`` step ``import`` left it (Spark's input)."""
    return DATA / f"engines-{persons}.duckdb"


def new_records_file(persons: int) -> Path:
    return DATA / f"engines-new-{persons}.parquet"


def subjects_file(persons: int) -> Path:
    return DATA / f"engines-subjects-{persons}.json"


# --------------------------------------------------------------------------- measuring


def _postgres_pids() -> list[Any]:
    import psutil

    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


def cpu_seconds(with_postgres: bool) -> float:
    """CPU seconds (user + system) of this process and its children, and of the
    PostgreSQL server's processes with ``with_postgres``."""
    import psutil

    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    if with_postgres:
        procs += _postgres_pids()
    # Children that ended and were waited for (``xinyong check`` processes).
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = children.ru_utime + children.ru_stime
    for p in procs:
        try:
            t = p.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += t.user + t.system
    return total


@contextmanager
def timed(out: dict[str, Any], with_postgres: bool) -> Iterator[None]:
    """Wall and CPU seconds and the load average around a step, into ``out``."""
    cpu, started = cpu_seconds(with_postgres), time.perf_counter()
    out["load_before"] = round(os.getloadavg()[0], 2)
    yield
    out["seconds"] = round(time.perf_counter() - started, 3)
    out["cpu_seconds"] = round(cpu_seconds(with_postgres) - cpu, 2)
    out["load_after"] = round(os.getloadavg()[0], 2)


def fingerprint(store: Any) -> dict[str, list[Any]]:
    """Row count and the MD5 of all rows of each materialized table, read out of the
    registry (DuckDB or PostgreSQL) and hashed in one in-memory DuckDB: columns by
    name, timestamps as epoch microseconds, rows in one order."""
    import duckdb
    import pyarrow as pa

    out: dict[str, list[Any]] = {}
    con = duckdb.connect()
    try:
        for table in FINGERPRINTED:  # fixed names, no input
            data = store.sql.execute(f"SELECT * FROM {table}").to_arrow_table()
            if table == "score_timeline" and data.num_rows == 0:
                continue  # a point run materializes no timeline
            columns = []
            for name in sorted(data.column_names):
                quoted = '"' + name.replace('"', '""') + '"'
                is_ts = pa.types.is_timestamp(data.schema.field(name).type)
                columns.append(f"epoch_us({quoted})" if is_ts else quoted)
            row = f"CAST(row({', '.join(columns)}) AS VARCHAR)"
            con.register("t", data)
            got = con.execute(
                f"SELECT count(*), md5(string_agg({row}, '|' ORDER BY {row})) FROM t"
            ).fetchone()
            con.unregister("t")
            assert got is not None
            out[table] = [int(got[0]), got[1]]
    finally:
        con.close()
    return out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# --------------------------------------------------------------------------- one engine


def _import(store: Any, files: list[Path], sources: list[dict[str, Any]]) -> dict[str, Any]:
    from xinyong.ledger.intake import import_file, register_source
    from xinyong.packs import install_pack, shipped_pack_paths

    for path in shipped_pack_paths():
        install_pack(store, path)
    for item in sources:
        register_source(store, item["source_id"], item["kind"])
    accepted = rejected = 0
    started = time.perf_counter()
    for path in files:
        result = import_file(store, path, progress=False)
        accepted += result.accepted
        rejected += result.rejected
    seconds = time.perf_counter() - started
    return {"accepted": accepted, "rejected": rejected, "records_per_s": round(accepted / seconds)}


def _write_new_records(store: Any, path: Path) -> int:
    """1 % new records, deterministic (benchmarks/run.py ``_new_records``): copies under
    new ids of a seeded sample of a DuckDB registry's records, revocations and
    registry records left out (a second revocation of a record is refused)."""
    import pyarrow.parquet as pq

    table = store.sql.execute(
        "SELECT 'inc/' || record_id AS record_id, subject_id, type, "
        "strftime(occurred_at + INTERVAL 8 HOUR, '%Y-%m-%dT%H:%M:%S+08:00') AS occurred_at, "
        "source, attributes FROM records "
        "WHERE type <> 'record.revoked' AND type NOT LIKE 'registry.%' "
        f"USING SAMPLE {NEW_SHARE * 100:.3f} PERCENT (bernoulli, 7)"
    ).to_arrow_table()
    pq.write_table(table, path)
    return int(table.num_rows)


def _write_subjects(store: Any, path: Path) -> None:
    """Subjects to check: half with a consequence, half any subject of the ledger."""
    half = CHECK_SUBJECTS // 2
    with_consequence = store.sql.execute(
        "SELECT subject_id FROM (SELECT DISTINCT subject_id FROM consequences) "
        f"USING SAMPLE {half} ROWS (reservoir, 7)"
    ).fetchall()
    anyone = store.sql.execute(
        "SELECT subject_id FROM (SELECT DISTINCT subject_id FROM records) "
        f"USING SAMPLE {half} ROWS (reservoir, 11)"
    ).fetchall()
    path.write_text(json.dumps(sorted({str(r[0]) for r in [*with_consequence, *anyone]})))


def _checks(db: str, subjects: list[str], with_postgres: bool) -> dict[str, Any]:
    """Single checks through the CLI's code path (``access.operations.check``)."""
    from collections import Counter

    from xinyong.access import operations as ops
    from xinyong.access.principals import local_operator

    reg, who = ops.Registry(db), local_operator()  # type: ignore[arg-type]
    out: dict[str, Any] = {"subjects": len(subjects)}

    def ask_all() -> tuple[float, list[float], Counter[str], Counter[str]]:
        times, sources, decisions = [], Counter[str](), Counter[str]()
        for subject in subjects:
            t0 = time.perf_counter()
            answer = ops.check(reg, who, subject, "flight")
            times.append(time.perf_counter() - t0)
            sources[str(answer.answered_from)] += 1
            decisions[str(answer.decision)] += 1
        return times[0], times[1:], sources, decisions

    def summary(first: float, times: list[float]) -> dict[str, float]:
        return {
            "first_ms": round(first * 1000, 3),
            "median_ms": round(statistics.median(times) * 1000, 3),
            "p99_ms": round(_percentile(times, 0.99) * 1000, 3),
        }

    per: dict[str, Any] = {}
    with timed(per, with_postgres):
        first, times, sources, decisions = ask_all()
    out["opened_per_check"] = {**summary(first, times), **per}
    out["answered_from"] = dict(sources)
    out["decisions"] = dict(decisions)
    held: dict[str, Any] = {}
    with reg.holding(), timed(held, with_postgres):
        first, times, _, _ = ask_all()
    out["store_held"] = {**summary(first, times), **held}
    xinyong = str(Path(sys.executable).with_name("xinyong"))
    walls = []
    for subject in subjects[:CLI_CHECKS]:
        t0 = time.perf_counter()
        subprocess.run(
            [xinyong, "check", subject, "flight", "--db", db, "--json"],
            check=True,
            capture_output=True,
        )
        walls.append(time.perf_counter() - t0)
    out["cli_process"] = {
        "runs": len(walls),
        "median_s": round(statistics.median(walls), 3),
        "min_s": round(min(walls), 3),
    }
    return out


def _create_database(server: str) -> str:
    import psycopg

    name = f"xin_bench_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # name: digits only
        con.execute(f"CREATE DATABASE {name}")
    return f"{server.rsplit('/', 1)[0]}/{name}"


def _drop_database(server: str, url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(server, autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def engine_run(
    name: str, persons: int, server: str, skip: set[str], emit: Callable[[dict[str, Any]], None]
) -> None:
    """Every step on one engine, each step's figures passed to ``emit`` when measured."""
    from xinyong.catalog import load_catalog
    from xinyong.checks.snapshot import publish
    from xinyong.engine import materialize
    from xinyong.engine.backends import evaluate_on, spark_session
    from xinyong.engine.incremental import evaluate_registry
    from xinyong.ledger.intake import import_file
    from xinyong.ledger.store import Store
    from xinyong.timeutil import parse_instant

    engine, master, where = ENGINES[name]
    pg = where == "postgresql"
    as_of = parse_instant(AS_OF)
    services = sorted(load_catalog().services)
    folder = city(persons)
    files = sorted(folder.glob("records-*.parquet"))
    sources = json.loads((folder / "sources.json").read_text())
    db: str
    if pg:
        db = _create_database(server)
    else:
        path = DATA / f"engines-{persons}-{name}.duckdb"
        for leftover in (path, *path.parent.glob(path.name + ".*")):
            leftover.unlink(missing_ok=True)
        if master is not None or "import" in skip:
            # Spark's input; with --skip import, the registry of an earlier run
            shutil.copy(base_registry(persons), path)
        db = str(path)
    try:
        if master is not None:
            step: dict[str, Any] = {"step": "start"}
            with timed(step, False):
                session = spark_session(master)
            # XINYONG_SPARK_MEMORY (default 2g), as the run found it
            step["driver_memory"] = session.conf.get("spark.driver.memory")
            emit(step)
        with Store(db) as store:
            if master is None and "import" not in skip:
                step = {"step": "import", "records_files": len(files)}
                with timed(step, pg):
                    step |= _import(store, files, sources)
                emit(step)
                if name == "duckdb":
                    store.sql.execute("CHECKPOINT")
                    shutil.copy(db, base_registry(persons))
                    new_rows = _write_new_records(store, new_records_file(persons))
                    emit({"step": "new_records_written", "rows": new_rows})
            if master is None and "point" not in skip:
                step = {"step": "point"}
                with timed(step, pg):
                    materialize(store, evaluate_on(engine, store, as_of=as_of, timeline=False))
                step["fingerprint"] = fingerprint(store)
                emit(step)
            if "full" not in skip:
                step = {"step": "full"}
                if not pg:  # DuckDB's buffer pool limit as the evaluation found it
                    got = store.sql.execute("SELECT current_setting('memory_limit')").fetchone()
                    step["memory_limit"] = got[0] if got else None
                with timed(step, pg):
                    out = evaluate_registry(
                        store, engine, as_of=as_of, full=True, spark_master=master
                    )
                t0 = time.perf_counter()
                publish(store, services)
                step |= {
                    "publish_seconds": round(time.perf_counter() - t0, 3),
                    "mode": out.mode,
                    "timeline": master is None,
                    "subjects": out.subjects_recomputed,
                    "fingerprint": fingerprint(store),
                }
                emit(step)
                if name == "duckdb":
                    _write_subjects(store, subjects_file(persons))
            if "incremental" not in skip:
                new = new_records_file(persons)
                step = {"step": "import_new"}
                with timed(step, pg):
                    result = import_file(store, new, progress=False)
                step |= {
                    "accepted": result.accepted,
                    "records_per_s": round(result.accepted / step["seconds"]),
                }
                emit(step)
                step = {"step": "incremental"}
                with timed(step, pg):
                    out = evaluate_registry(store, engine, as_of=as_of, spark_master=master)
                t0 = time.perf_counter()
                publish(store, services)
                step |= {
                    "publish_seconds": round(time.perf_counter() - t0, 3),
                    "mode": out.mode,
                    "why": out.why,
                    "subjects_recomputed": out.subjects_recomputed,
                    "fingerprint": fingerprint(store),
                }
                emit(step)
        if master is None and "checks" not in skip:
            subjects = json.loads(subjects_file(persons).read_text())
            # PostgreSQL's CPU is left out: a check's connection (its server process)
            # ends with the check, and its CPU time with it.
            step = {"step": "checks"}
            with timed(step, False):
                step |= _checks(db, subjects, False)
            emit(step)
    finally:
        if pg:
            _drop_database(server, db)
        else:
            for leftover in (Path(db), *Path(db).parent.glob(Path(db).name + ".*")):
                leftover.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the report


def compare(runs: dict[str, dict[str, Any]]) -> None:
    """Ratios to DuckDB and fingerprint equality, per step, into each run."""
    base = runs.get("duckdb", {})
    for name, run in runs.items():
        for step, got in run.items():
            if not isinstance(got, dict):
                continue
            ref = base.get(step)
            # Spark's runs are point runs: its full run compares with DuckDB's point
            # run; its incremental one with DuckDB's (a timeline run) on the tables a
            # point run shares with a timeline run (consequences of a timeline run
            # hold every interval, a point run's only those in force at as_of).
            like = None
            if name.startswith("spark") and step == "full":
                ref = base.get("point")
            elif name.startswith("spark") and step == "incremental":
                like = {"scores", "list_entries"}
            if not isinstance(ref, dict):
                continue
            if "seconds" in got and ref.get("seconds"):
                got["ratio_to_duckdb"] = round(got["seconds"] / ref["seconds"], 2)
            if "fingerprint" in got and "fingerprint" in ref:
                mine, theirs = got["fingerprint"], ref["fingerprint"]
                shared = sorted(set(mine) & set(theirs) & (like or set(mine)))
                got["same_as_duckdb"] = all(mine[t] == theirs[t] for t in shared)
                got["compared_tables"] = shared


def table(result: dict[str, Any]) -> str:
    lines = [
        "| engine | import rec/s | point s | full s | incremental s (mode) | "
        "check median / p99 ms | `xinyong check` s | same as DuckDB |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def s(step: dict[str, Any] | None) -> str:
        if not step:
            return "–"
        ratio = step.get("ratio_to_duckdb")
        return f"{step['seconds']:.1f}" + (f" ({ratio}×)" if ratio is not None else "")

    for name, run in result["runs"].items():
        imp, chk = run.get("import"), run.get("checks")
        inc = run.get("incremental")
        same = [
            run[k].get("same_as_duckdb")
            for k in ("point", "full", "incremental")
            if isinstance(run.get(k), dict) and "same_as_duckdb" in run[k]
        ]
        lines.append(
            f"| {name} | {imp['records_per_s'] if imp else '–'} | {s(run.get('point'))} | "
            f"{s(run.get('full'))} | {s(inc)}{' ' + inc['mode'] if inc else ''} | "
            + (
                f"{chk['opened_per_check']['median_ms']} / {chk['opened_per_check']['p99_ms']} | "
                f"{chk['cli_process']['median_s']} | "
                if chk
                else "– | – | "
            )
            + f"{all(same) if same else '–'} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--persons", type=int, default=100_000)
    ap.add_argument("--engines", default="duckdb,postgres,spark1,spark2")
    ap.add_argument(
        "--pg-server",
        default=os.environ.get("XINYONG_TEST_PG", "postgresql://postgres@/postgres"),
        help="a PostgreSQL server (its maintenance database) to create the registry on",
    )
    ap.add_argument("--skip", default="", help=f"steps to leave out, of {','.join(STEPS)}")
    ap.add_argument("--out", help="results file (default results/engines-<persons>.json)")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    args = ap.parse_args()
    skip = {s for s in args.skip.split(",") if s}
    if args.phase:
        engine_run(
            args.phase,
            args.persons,
            args.pg_server,
            skip,
            lambda step: print(json.dumps(step), flush=True),
        )
        return
    import psutil

    t = time.perf_counter()
    folder = city(args.persons)
    print(f"city {folder} ready in {time.perf_counter() - t:.1f} s", flush=True)
    target = Path(args.out) if args.out else RESULTS / f"engines-{args.persons}.json"
    result: dict[str, Any] = {
        "persons": args.persons,
        "as_of": AS_OF,
        "machine": {
            "cpu": platform.machine(),
            "cores": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "shared": "2 cores shared with other jobs while measured (see load_*)",
            "when": datetime.now().isoformat(timespec="seconds"),
        },
        "runs": {},
    }
    if target.exists():  # runs of other engines measured before on the same city
        before = json.loads(target.read_text())
        if before.get("persons") == args.persons:
            result["runs"] = {
                k: v for k, v in before["runs"].items() if k not in args.engines.split(",")
            }
    RESULTS.mkdir(exist_ok=True)
    state = tempfile.mkdtemp(prefix="xin-bench-state-")
    env = {**os.environ, "XINYONG_STATE_DIR": state}  # a PostgreSQL registry's side files
    failed = False
    for name in args.engines.split(","):
        if name not in ENGINES:
            sys.exit(f"--engines: {name}? expected some of {', '.join(ENGINES)}")
        cmd = [sys.executable, __file__, "--phase", name, "--persons", str(args.persons)]
        cmd += ["--pg-server", args.pg_server, "--skip", ",".join(skip)]
        run: dict[str, Any] = {
            "load_at_start": [round(x, 2) for x in os.getloadavg()],
            "skipped": sorted(skip),
        }
        result["runs"][name] = run
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.startswith("{"):
                    continue
                step = json.loads(line)
                run[step.pop("step")] = step
                print(name, json.dumps(step), flush=True)
                compare(result["runs"])
                target.write_text(json.dumps(result, indent=2) + "\n")
        if proc.returncode != 0:
            print(f"{name} failed (exit {proc.returncode})", file=sys.stderr)
            run["failed"] = proc.returncode
            failed = True
            break
    shutil.rmtree(state, ignore_errors=True)
    compare(result["runs"])
    target.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(table(result))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
