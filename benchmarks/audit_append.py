"""Audit chain appends: N processes appending M entries each at once (each append
durable before it returns), then one bulk append of K entries, then `verify`; on a
DuckDB registry's file chain or a PostgreSQL registry's table.

    python benchmarks/audit_append.py --db /tmp/r.duckdb --processes 4 --entries 250
    python benchmarks/audit_append.py --db postgresql://postgres@/bench --processes 4

Prints JSON: wall and CPU seconds (this process and its children; on PostgreSQL the
server's own CPU is not included), appends per second, per-append latency median and
p99, the bulk append's and verify's seconds, and the load average."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import time

from xinyong.audit.chain import AuditChain


def _writer(db: str, name: str, entries: int, start: float, out: mp.Queue) -> None:
    chain = AuditChain.of_registry(db)
    while time.time() < start:
        time.sleep(0.001)
    took = []
    for i in range(entries):
        t0 = time.perf_counter()
        chain.append(
            principal=name, role="service", action="check", outcome="allowed",
            subject=f"s{i}", detail={"service": "flight", "decision": "allow"},
        )  # fmt: skip
        took.append(time.perf_counter() - t0)
    out.put(took)


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--entries", type=int, default=250)
    ap.add_argument("--bulk", type=int, default=100_000)
    args = ap.parse_args()

    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    cpu0 = _cpu()
    start = time.time() + 3.0  # after every process has started
    procs = [
        ctx.Process(target=_writer, args=(args.db, f"w{n}", args.entries, start, out))
        for n in range(args.processes)
    ]
    for p in procs:
        p.start()
    took = [t for _ in procs for t in out.get()]
    for p in procs:
        p.join()
    wall = time.time() - start  # from the common start to the last writer's end
    chain = AuditChain.of_registry(args.db)
    events = [
        {"principal": "bulk", "role": "service", "action": "check", "outcome": "allowed",
         "subject": f"s{i}", "detail": {"bulk": True}}
        for i in range(args.bulk)
    ]  # fmt: skip
    b0 = time.perf_counter()
    chain.append_many(events)
    bulk = time.perf_counter() - b0
    v0 = time.perf_counter()
    report = chain.verify()
    verify = time.perf_counter() - v0
    took.sort()
    print(
        json.dumps(
            {
                "db": "postgresql" if args.db.startswith("postgres") else "duckdb file",
                "processes": args.processes,
                "appends": len(took),
                "appends_wall_s": round(wall, 2),
                "appends_per_s": round(len(took) / wall),
                "append_median_ms": round(statistics.median(took) * 1000, 2),
                "append_p99_ms": round(took[int(len(took) * 0.99)] * 1000, 2),
                "bulk_entries": args.bulk,
                "bulk_s": round(bulk, 2),
                "verify_s": round(verify, 2),
                "verify_ok": report.ok,
                "entries": report.entries,
                "cpu_s": round(_cpu() - cpu0, 2),
                "loadavg": os.getloadavg(),
            }
        )
    )


if __name__ == "__main__":
    main()
