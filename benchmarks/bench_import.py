"""Bulk-import benchmark: N valid synthetic records from Parquet into a fresh registry.

    .venv/bin/python benchmarks/bench_import.py [N] [--struct]

Prints the file size and the import rate (records/s). `--struct` writes the
attributes as a Parquet struct instead of JSON text.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from xinyong.ledger.intake import import_file, register_source
from xinyong.ledger.store import Store

_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_U = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_UW = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_OW = (3, 7, 9, 10, 5, 8, 4, 2)


def person(rng: np.random.Generator) -> str:
    y, m, d = int(rng.integers(1950, 2005)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    first = f"371082{y:04d}{m:02d}{d:02d}{int(rng.integers(0, 1000)):03d}"
    c = (12 - sum(int(a) * w for a, w in zip(first, _W, strict=True)) % 11) % 11
    return first + ("X" if c == 10 else str(c))


def org(i: int) -> str:
    body = f"{i:08d}"
    c = 11 - sum(int(a) * w for a, w in zip(body, _OW, strict=True)) % 11
    first = "91371082" + body + {10: "X", 11: "0"}.get(c, str(c))
    total = sum(_U.index(a) * w for a, w in zip(first, _UW, strict=True))
    return first + _U[(31 - total % 31) % 31]


def generate(n: int, path: Path, struct: bool = False) -> None:
    rng = np.random.default_rng(7)
    people = [person(rng) for _ in range(max(n // 5, 1))]
    orgs = [org(i) for i in range(max(n // 50, 1))]
    kinds = [
        ("court.listing_decision", "court:371082-rongcheng",
         lambda i: {"case_no": f"(2024)鲁1082执{i}号", "ground": "obstructs_enforcement",
                    "extension_years": 1}),
        ("loan.payment_overdue", "lender:bank-a",
         lambda i: {"account_id": f"acc{i % 9973}", "days_past_due": 30 + i % 60,
                    "amount_due": 1000.5}),
        ("traffic.red_light", "city:rongcheng", lambda i: {"ticket_no": f"T{i}"}),
        ("civic.volunteering", "city:rongcheng", lambda i: {"hours": 2 + i % 7}),
        ("utility.late_payment", "city:rongcheng", lambda i: {"account_id": f"u{i}"}),
    ]
    pick = rng.integers(0, len(kinds), n)
    subj = rng.integers(0, len(people), n)
    osub = rng.integers(0, len(orgs), n)
    is_org = rng.random(n) < 0.1
    day = rng.integers(0, 3 * 365, n)
    base = np.datetime64("2022-01-01")
    cols: dict[str, list] = {k: [] for k in ("record_id", "subject_id", "type", "occurred_at",
                                            "source", "attributes")}
    for i in range(n):
        t, s, attrs = kinds[pick[i]]
        cols["record_id"].append(f"r{i:09d}")
        cols["subject_id"].append(orgs[osub[i]] if is_org[i] else people[subj[i]])
        cols["type"].append(t)
        cols["occurred_at"].append(str(base + day[i]) if i % 2 else
                                   f"{base + day[i]}T10:{i % 60:02d}:00+08:00")
        cols["source"].append(s)
        a = attrs(i)
        cols["attributes"].append(a if struct else json.dumps(a, ensure_ascii=False))
    pq.write_table(pa.table(cols), path)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 1_000_000
    struct = "--struct" in sys.argv
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "records.parquet"
        t0 = time.perf_counter()
        generate(n, path, struct)
        print(f"generated {n} records in {time.perf_counter() - t0:.1f} s; "
              f"{path.stat().st_size / 1e6:.1f} MB Parquet")
        with Store(Path(d) / "registry.duckdb") as store:
            register_source(store, "court:371082-rongcheng", "court")
            register_source(store, "lender:bank-a", "lender")
            register_source(store, "city:rongcheng", "city")
            t0 = time.perf_counter()
            res = import_file(store, path, progress=False)
            dt = time.perf_counter() - t0
        print(f"accepted {res.accepted}, rejected {res.rejected} in {dt:.2f} s: "
              f"{n / dt:,.0f} records/s on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
