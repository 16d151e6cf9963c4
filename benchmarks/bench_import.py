"""Bulk-import benchmark on the synthetic city (`xinyong.sim.generate_city`, the
project's one data generator).

    .venv/bin/python benchmarks/bench_import.py [--persons N] [--organizations N]
        [--single N] [--data DIR] [--struct]

Default: the yearly Parquet files of a city of 100 000 persons and 5 000
organizations (about 1.3 M records) are imported batch by batch into a fresh
registry, like `xinyong demo`. `--single N` instead imports the first N records
of the city (all years, in order) as ONE Parquet file, i.e. one batch. `--struct`
writes that single file's attributes as a Parquet struct instead of JSON text.
`--data DIR` writes the generated city to DIR (kept) instead of a temporary folder.

Prints wall time, CPU time (process time: Python plus DuckDB's threads, which
run in this process) and records/s.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from xinyong.ledger.intake import import_file, register_source
from xinyong.ledger.store import Store
from xinyong.sim import generate_city
from xinyong.sim.generate import CityFiles


def _city(data: Path, persons: int, organizations: int) -> CityFiles:
    t0 = time.perf_counter()
    city = generate_city(data, persons=persons, organizations=organizations)
    print(
        f"city: {persons} persons, {organizations} organizations, {city.records} records "
        f"in {len(city.years)} yearly files ({time.perf_counter() - t0:.1f} s)"
    )
    return city


def _single(city: CityFiles, n: int, path: Path, struct: bool) -> int:
    """The first n records of the city as one Parquet file; the number written."""
    parts, got = [], 0
    for year in city.years:
        t = pq.read_table(year.path)
        parts.append(t.slice(0, n - got))
        got += parts[-1].num_rows
        if got >= n:
            break
    table = pa.concat_tables(parts)
    if struct:
        attrs = [json.loads(a) for a in table.column("attributes").to_pylist()]
        table = table.set_column(
            table.schema.get_field_index("attributes"), "attributes", pa.array(attrs)
        )
    pq.write_table(table, path)
    return table.num_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--persons", type=int, default=100_000)
    ap.add_argument("--organizations", type=int, default=5_000)
    ap.add_argument(
        "--single", type=int, default=0, metavar="N", help="import the first N records as one file"
    )
    ap.add_argument("--struct", action="store_true", help="with --single: attributes as struct")
    ap.add_argument("--data", type=Path, default=None, help="write the city here (kept)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "city"
        city = _city(data, args.persons, args.organizations)
        if args.single:
            path = Path(tmp) / "records.parquet"
            n = _single(city, args.single, path, args.struct)
            batches = [(path, city.years[-1].recorded_at, n)]
        else:
            batches = [(y.path, y.recorded_at, y.records) for y in city.years]
        total = sum(b[2] for b in batches)
        with Store(Path(tmp) / "registry.duckdb") as store:
            for source_id, kind in city.sources:
                register_source(store, source_id, kind)
            accepted = rejected = 0
            w0, c0 = time.perf_counter(), time.process_time()
            for path, recorded_at, _ in batches:
                res = import_file(store, path, progress=False, recorded_at=recorded_at)
                accepted += res.accepted
                rejected += res.rejected
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    print(
        f"imported {total} records in {len(batches)} batch(es): accepted {accepted}, "
        f"rejected {rejected}"
    )
    print(
        f"wall {wall:.2f} s, CPU {cpu:.2f} s: {total / wall:,.0f} records/s "
        f"({total / cpu:,.0f} per CPU second) on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
