"""Load benchmark of `xinyong serve` over loopback (issue 11).

    .venv/bin/python benchmarks/serve_load.py [--db DEMO.duckdb] [--city DIR]
        [--workers N] [--seconds S] [--connections C] [--records N]

Starts the server on a copy of the demo registry (`xinyong demo`; made in a
temporary folder when --db is not given), creates a service, a court source and
an operator principal, and measures, each bounded in count and time:

1. single checks: Debian's `wrk` (C, event loop; `apt-get install wrk`) sends
   GET /v1/checks/{subject}/flight for S seconds over C connections, rotating
   over 10 000 demo subjects (a Lua script); requests/s and the latency
   percentiles wrk reports (p50, p99); then again over one connection (latency
   without queueing);
2. one bulk request of 100 000 checks (POST /v1/checks/bulk, httpx), cold (the
   server loads the consequence index) and warm;
3. bulk records: N records of the demo city (the last year's file, given new
   record ids) as one NDJSON body to POST /v1/records/bulk (httpx), records/s.

The generator runs on the same machine as the server (2 cores here): both
compete for the CPU, as they would on one box. Prints one JSON object and
writes it to benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


def _xinyong(*args: str) -> list[str]:
    """The `xinyong` command of this virtual environment."""
    return [str(Path(sys.executable).with_name("xinyong")), *args]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _demo(folder: Path) -> tuple[Path, Path]:
    db, city = folder / "demo.duckdb", folder / "city"
    subprocess.run(
        _xinyong("demo", "--db", str(db), "--out", str(city), "--json"),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return db, city


def _principals(db: Path) -> dict[str, str]:
    from xinyong.access import operations as ops
    from xinyong.access.principals import local_operator

    reg, op = ops.Registry(db), local_operator()
    keys = {}
    for name, role, scope in (
        ("bench-service", "service", {"services": ["flight"]}),
        ("bench-operator", "operator", {}),
    ):
        _, keys[role] = ops.add_principal(reg, op, name, role, **scope)  # type: ignore[arg-type]
    return keys


def _subjects(db: Path, n: int) -> list[str]:
    from xinyong.ledger.store import Store

    with Store(db, read_only=True) as store:
        rows = store.sql.execute(
            "SELECT DISTINCT subject_id FROM records ORDER BY subject_id LIMIT ?", [n]
        ).fetchall()
    return [r[0] for r in rows]


def _wait(url: str, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become ready")


def _wrk(url: str, key: str, subjects: list[str], seconds: int, connections: int) -> dict:
    script = Path(tempfile.mkdtemp()) / "checks.lua"
    paths = ",".join(f'"/v1/checks/{s}/flight"' for s in subjects)
    script.write_text(
        f"local paths = {{{paths}}}\n"
        "local i = 0\n"
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        "request = function()\n"
        "  i = i % #paths + 1\n"
        "  return wrk.format('GET', paths[i])\n"
        "end\n"
        "done = function(summary, latency, requests)\n"
        "  io.write(string.format('STATUS non2xx=%d errors=%d\\n', summary.errors.status, "
        "summary.errors.connect + summary.errors.read + summary.errors.write + "
        "summary.errors.timeout))\n"
        "  for _, p in pairs({50, 90, 99}) do\n"
        "    io.write(string.format('P%d %.3f\\n', p, latency:percentile(p) / 1000))\n"
        "  end\n"
        "end\n"
    )
    out = subprocess.run(
        [
            "wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s",
            "--timeout", "10s", "-s", str(script), url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    pct = {f"p{m[0]}_ms": float(m[1]) for m in re.findall(r"^P(\d+) ([\d.]+)$", out, re.M)}
    status = re.search(r"non2xx=(\d+) errors=(\d+)", out)
    return {
        "requests": total,
        "requests_per_s": rate,
        **pct,
        "non_2xx": int(status.group(1)) if status else None,
        "socket_errors": int(status.group(2)) if status else None,
        "seconds": seconds,
        "connections": connections,
    }


def _bulk_checks(url: str, key: str, subjects: list[str]) -> dict:
    body = {"service": "flight", "subjects": (subjects * (100_000 // len(subjects) + 1))[:100_000]}
    timings = []
    with httpx.Client(timeout=300) as client:
        for _ in range(2):
            t0 = time.perf_counter()
            answer = client.post(
                f"{url}/v1/checks/bulk", json=body, headers={"Authorization": f"Bearer {key}"}
            )
            timings.append(time.perf_counter() - t0)
            answer.raise_for_status()
    return {
        "checks": answer.json()["count"],
        "decisions": answer.json()["decisions"],
        "cold_s": round(timings[0], 3),
        "warm_s": round(timings[1], 3),
    }


def _bulk_records(url: str, key: str, city: Path, n: int) -> dict:
    files = sorted(city.rglob("records-*.parquet"))  # demo --out DIR writes DIR/city/
    table = pq.read_table(files[-1])
    rows = table.slice(0, n).to_pylist()
    lines = []
    for r in rows:
        attrs = r["attributes"]
        record = {
            "record_id": f"bench-{r['record_id']}",
            "subject_id": r["subject_id"],
            "type": r["type"],
            "occurred_at": str(r["occurred_at"]),
            "source": r["source"],
            "attributes": json.loads(attrs) if isinstance(attrs, str) else attrs,
        }
        lines.append(json.dumps(record, ensure_ascii=False, default=str))
    body = ("\n".join(lines) + "\n").encode("utf-8")
    with httpx.Client(timeout=600) as client:
        t0 = time.perf_counter()
        answer = client.post(
            f"{url}/v1/records/bulk",
            content=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"},
        )
        seconds = time.perf_counter() - t0
    answer.raise_for_status()
    result = json.loads(answer.text.splitlines()[-1])
    return {
        "records": len(lines),
        "bytes": len(body),
        **result,
        "seconds": round(seconds, 3),
        "records_per_s": round(len(lines) / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="a demo registry (default: make one)")
    parser.add_argument("--city", type=Path, help="its city folder (xinyong demo --out)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="xinyong-load-"))
    try:
        if args.db is None:
            db, city = _demo(work)
        else:
            db, city = work / "demo.duckdb", args.city or args.db.parent / "out"
            shutil.copy(args.db, db)  # the audit log and principals go beside the copy
        keys = _principals(db)
        subjects = _subjects(db, 10_000)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        server = subprocess.Popen(
            _xinyong("serve", "--db", str(db), "--port", str(port), "--workers", str(args.workers)),
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait(url)
            results: dict[str, Any] = {
                "machine": f"{os.cpu_count()} cores, generator and server on the same machine",
                "workers": args.workers,
                "subjects_in_rotation": len(subjects),
            }
            results["single_checks"] = _wrk(
                url, keys["service"], subjects, args.seconds, args.connections
            )
            # one connection: the latency of a check without queueing behind others
            results["single_checks_one_connection"] = _wrk(
                url, keys["service"], subjects, args.seconds, 1
            )
            results["bulk_checks"] = _bulk_checks(url, keys["service"], subjects)
            results["bulk_records"] = _bulk_records(url, keys["operator"], city, args.records)
        finally:
            server.terminate()
            server.wait(30)
        print(json.dumps(results, indent=2))
        out = ROOT / "benchmarks" / "results" / "serve_load.json"
        out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
