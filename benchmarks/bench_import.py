"""Bulk-import benchmark on the synthetic city (`xinyong.sim.generate_city`, the
project's one data generator): records/s and peak memory of `import_file` on ONE
Parquet file, with (a) typed attributes (a STRUCT column) and (b) JSON-text
attributes, beside a floor and, optionally, the implementation of another checkout.

    .venv/bin/python benchmarks/bench_import.py [--city DIR | --persons N]
        [--rows N] [--work DIR] [--baseline SRC] [--batch-rows N] [--only KINDS]

`--city DIR`: an existing city (the yearly `records-*.parquet` and `sources.json`
that `generate_city` writes; read only); otherwise a city of `--persons` persons is
generated under the work folder. The first `--rows` records of the city (all
years, in order; default all) are written once as one JSON-text Parquet file and
once as a struct-typed one (DuckDB `json_transform` to the catalog's attribute
types; a null field is an absent key), row groups of 122 880 rows, under `--work`
(default a temporary folder, removed after).

Each measurement runs in a fresh process (so peak RSS is its own) importing the
file into a fresh registry with the city's sources registered:
  new-struct, new-json   this checkout's `import_file`
  floor                  `INSERT INTO records SELECT ... FROM read_parquet(...)`: the
                         JSON-text file copied into the records table with no
                         validation, canonical form or hash (what storage alone costs)
  old-struct, old-json   with `--baseline SRC` (e.g. a worktree of main's `src`):
                         that checkout's `import_file`, same file, for the ratio
Prints wall and CPU seconds, records/s, peak RSS (ru_maxrss) per run, and one JSON
line per run. Peak RSS against the file's size (e.g. `--rows 1000000`, then no
`--rows` on a larger city) shows whether a whole-file import's memory is bounded: it
must not grow with the file (README, "Import (issue 8 item 5)").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_SQL_TYPES = {"string": "VARCHAR", "int64": "BIGINT", "float64": "DOUBLE"}


def _sources(city: Path) -> list[dict[str, str]]:
    return list(json.loads((city / "sources.json").read_text()))


def write_inputs(city: Path, rows: int | None, work: Path) -> tuple[Path, Path, int]:
    """(json file, struct file, records): the first `rows` records of the city."""
    import duckdb

    from xinyong.catalog import load_catalog

    files = sorted(str(p) for p in city.glob("records-*.parquet"))
    if not files:
        raise SystemExit(f"{city}: no records-*.parquet (a city written by generate_city)")
    struct = (
        "{"
        + ", ".join(
            f'"{n}": "{_SQL_TYPES[k]}"' for n, k in sorted(load_catalog().attribute_columns.items())
        )
        + "}"
    )
    limit = f"LIMIT {int(rows)}" if rows else ""
    src = f"(SELECT * FROM read_parquet($files) {limit})"
    out_json, out_struct = work / "records-json.parquet", work / "records-struct.parquet"
    with duckdb.connect() as con:
        con.execute("SET memory_limit = '2GB'")
        con.execute("SET enable_progress_bar = false")
        opts = "(FORMAT parquet, ROW_GROUP_SIZE 122880, COMPRESSION zstd)"
        if not out_json.exists():
            con.execute(f"COPY {src} TO '{out_json}' {opts}", {"files": files})
        if not out_struct.exists():
            con.execute(
                f"COPY (SELECT record_id, subject_id, type, occurred_at, source, "
                f"json_transform(attributes, '{struct}') AS attributes FROM {src}) "
                f"TO '{out_struct}' {opts}",
                {"files": files},
            )
        row = con.execute("SELECT count(*) FROM read_parquet(?)", [str(out_json)]).fetchone()
    return out_json, out_struct, int(row[0]) if row else 0


def child(kind: str, path: Path, db: Path, city: Path, batch_rows: int | None) -> None:
    """One measured import (in its own process); prints one JSON line."""
    from xinyong.ledger.intake import import_file, register_source
    from xinyong.ledger.store import Store, record_columns

    with Store(db) as store:
        for item in _sources(city):
            register_source(store, item["source_id"], item["kind"])
        w0, c0 = time.perf_counter(), time.process_time()
        if kind == "floor":
            cols = list(record_columns())
            given = {"record_id", "subject_id", "type", "source", "attributes"}
            select = ", ".join(
                c
                if c in given
                else "CAST(occurred_at AS TIMESTAMP)"
                if c == "occurred_at"
                else "'person'"
                if c == "subject_kind"
                else "now()::TIMESTAMP"
                if c == "recorded_at"
                else "1"
                if c == "batch_id"
                else "unhex(md5(attributes))"
                if c == "content_hash"
                else "'x'"
                if c == "source_kind"
                else "NULL"
                for c in cols
            )
            con = store.sql
            con.execute("BEGIN")
            con.execute(
                f"INSERT INTO records ({', '.join(cols)}) SELECT {select} FROM read_parquet(?)",
                [str(path)],
            )
            con.execute("COMMIT")
            row = con.execute("SELECT count(*) FROM records").fetchone()
            rows = accepted = int(row[0]) if row else 0
            rejected = 0
        else:
            res = import_file(store, path, progress=False, batch_rows=batch_rows)
            rows, accepted, rejected = res.rows, res.accepted, res.rejected
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "kind": kind,
                "rows": rows,
                "accepted": accepted,
                "rejected": rejected,
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "records_per_s": round(rows / wall),
                "peak_rss_mib": round(peak / 2**20),
            }
        )
    )


def _run(
    kind: str, path: Path, work: Path, city: Path, src: Path, batch_rows: int | None
) -> dict[str, Any]:
    db = work / f"registry-{kind}.duckdb"
    for p in (db, Path(f"{db}.wal")):
        p.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", kind, str(path), str(db), str(city)]
    if batch_rows:
        cmd += ["--batch-rows", str(batch_rows)]
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    for p in (db, Path(f"{db}.wal")):
        p.unlink(missing_ok=True)
    if out.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--city", type=Path, default=None, help="an existing city (read only)")
    ap.add_argument("--persons", type=int, default=100_000, help="else generate this many")
    ap.add_argument("--rows", type=int, default=None, help="first N records (default all)")
    ap.add_argument("--work", type=Path, default=None, help="keep the input files here")
    ap.add_argument("--baseline", type=Path, default=None, help="src of another checkout")
    ap.add_argument("--batch-rows", type=int, default=None, help="import with --batch-rows")
    ap.add_argument(
        "--only",
        default="new-struct,new-json,floor,old-struct,old-json",
        help="comma-separated runs",
    )
    ap.add_argument("--child", nargs=4, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, path, db, city = args.child
        child(kind, Path(path), Path(db), Path(city), args.batch_rows)
        return
    src = Path(__file__).resolve().parent.parent / "src"
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        city = args.city
        if city is None:
            from xinyong.sim import generate_city

            city = work / "city"
            if not (city / "sources.json").exists():
                generate_city(city, persons=args.persons, organizations=args.persons // 20)
        t0 = time.perf_counter()
        json_file, struct_file, n = write_inputs(city, args.rows, work)
        print(f"input: {n} records, one file each ({time.perf_counter() - t0:.0f} s to write)")
        runs: list[dict[str, Any]] = []
        for kind in args.only.split(","):
            if kind.startswith("old") and args.baseline is None:
                continue
            path = struct_file if kind.endswith("struct") else json_file
            res = _run(
                kind,
                path,
                work,
                city,
                args.baseline if kind.startswith("old") else src,
                args.batch_rows,
            )
            runs.append(res)
            print(
                f"{kind:>10}: {res['rows']} rows ({res['accepted']} accepted, "
                f"{res['rejected']} rejected) wall {res['wall_s']:.1f} s, CPU "
                f"{res['cpu_s']:.1f} s: {res['records_per_s']:,} records/s, "
                f"peak RSS {res['peak_rss_mib']} MiB",
                flush=True,
            )
            print(json.dumps(res), flush=True)
        by = {r["kind"]: r for r in runs}
        for v in ("struct", "json"):
            new, old = by.get(f"new-{v}"), by.get(f"old-{v}")
            if new and old:
                print(f"new ÷ old ({v}): {new['records_per_s'] / old['records_per_s']:.2f}×")
    print(f"on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
