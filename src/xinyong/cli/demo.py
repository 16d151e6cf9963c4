"""`xinyong demo`: a whole registry on a synthetic city, end to end.

Builds a fresh registry file, installs the shipped packs, registers the city's
sources, generates the city, imports it in yearly batches (each stamped with
the end of its year, so "known at" replays see what the registry knew then),
evaluates and materializes every pack, prints a summary and writes an offline
HTML report.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from xinyong.cli import app
from xinyong.cli.common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    console,
    emit_json,
    err_console,
    fail,
    refused_input,
)
from xinyong.ledger.location import display, is_pg, pg_url, registry_exists

DEMO_MARK = "demo"  # meta key that marks a registry this command may rebuild


def _is_demo_registry(db: Path) -> bool:
    import duckdb

    url = pg_url(db)
    if url is not None:  # an empty database is free to build in
        from xinyong.ledger import postgres

        return postgres.has_meta(url, DEMO_MARK) is not False

    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return False
    try:
        row = con.execute("SELECT value FROM meta WHERE key = ?", [DEMO_MARK]).fetchone()
    except duckdb.Error:
        row = None
    finally:
        con.close()
    return row is not None


def _remove_registry(db: Path) -> None:
    url = pg_url(db)
    if url is not None:
        from xinyong.ledger import postgres

        postgres.reset(url)
        return
    for path in (db, db.with_name(db.name + ".wal")):
        path.unlink(missing_ok=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - t0, 2)


@app.command()
def demo(
    db: DbOption = DEFAULT_DB,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the city files and the report.")
    ] = Path("out"),
    persons: Annotated[int, typer.Option(min=1)] = 100_000,
    organizations: Annotated[int, typer.Option(min=0)] = 5_000,
    start: Annotated[str, typer.Option(help="First day simulated (YYYY-MM-DD).")] = "2015-01-01",
    end: Annotated[
        str, typer.Option(help="Day the simulation ends; evaluated as of then.")
    ] = "2026-11-01",
    seed: int = 20140614,
    report: Annotated[
        Path | None, typer.Option(help="HTML report (default OUT/report.html).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing registry.")] = False,
    json: JsonOption = False,
) -> None:
    """Build a demo registry on a synthetic city and report on it."""
    try:
        d_start, d_end = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        fail(f"--start/--end: {exc}", 2)
    if d_end <= d_start:
        fail("--end must be after --start", 2)
    if registry_exists(db) and not force and not _is_demo_registry(db):
        fail(f"{db} exists and is not a demo registry; pass --force to replace it")
    with refused_input():
        summary = _run(
            db, out, persons, organizations, d_start, d_end, seed, report or out / "report.html"
        )
    if json:
        emit_json(summary)
    else:
        _print(summary)


def _run(
    db: Path,
    out: Path,
    persons: int,
    organizations: int,
    start: date,
    end: date,
    seed: int,
    report: Path,
) -> dict[str, Any]:
    from xinyong.catalog import load_catalog
    from xinyong.checks.snapshot import publish
    from xinyong.engine import evaluate, materialize
    from xinyong.ledger.intake import import_file, register_source
    from xinyong.ledger.store import Store
    from xinyong.packs import install_pack, shipped_pack_paths
    from xinyong.reports import lint_findings, summarize, write_report
    from xinyong.sim import generate_city
    from xinyong.timeutil import now_utc, parse_instant, to_local_iso

    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    _remove_registry(db)
    if not is_pg(db):
        db.parent.mkdir(parents=True, exist_ok=True)
    with Store(db) as store, _progress() as bar:
        store.sql.execute("INSERT INTO meta VALUES (?, ?)", [DEMO_MARK, "xinyong demo"])
        packs = [install_pack(store, p) for p in shipped_pack_paths()]
        city_dir = out / "city"
        task = bar.add_task("generating city", total=persons + organizations)
        with _timed(timings, "generate"):
            city = generate_city(
                city_dir,
                persons,
                organizations,
                start=start,
                end=end,
                seed=seed,
                progress=lambda done, _total: bar.update(task, completed=done),
            )
        for source_id, kind in city.sources:
            register_source(store, source_id, kind)
        task = bar.add_task("importing yearly batches", total=city.records)
        rejected = 0
        with _timed(timings, "import"):
            for year in city.years:
                bar.update(task, description=f"importing {year.year}")
                result = import_file(store, year.path, progress=False, recorded_at=year.recorded_at)
                rejected += result.rejected
                bar.advance(task, year.records)
        bar.update(task, description="importing yearly batches")
        at = parse_instant(end)
        from xinyong.process.objections import demo_objections
        from xinyong.sim.penalties import add_penalties

        add_penalties(store, at, seed)  # for the admin_penalty pack and credit repair
        demo_objections(store, at)  # a few disputes, some overdue, for the statistics
        task = bar.add_task("evaluating packs", total=2)
        with _timed(timings, "evaluate"):
            evaluation = evaluate(store, packs, as_of=at, known_at=at, timeline=True)
            bar.advance(task)
            materialize(store, evaluation)
            publish(store, sorted(load_catalog().services))
            bar.advance(task)
        task = bar.add_task("writing report", total=1)
        with _timed(timings, "report"):
            summary = summarize(store, start, end)
            summary.lint = lint_findings(packs)
            from xinyong.model.registry import shipped_monitor

            drift = shipped_monitor(store, at)  # the commercial scorecard against its training
            timings["total"] = round(time.perf_counter() - t_all, 2)
            summary.timings = timings
            path = write_report(
                summary,
                report,
                title=f"xinyong demo: a synthetic Rongcheng, {start.year}-{end.year}",
                context={
                    "city": city,
                    "packs": [{"system": p.system, "version": p.meta.version} for p in packs],
                    "generated_at": to_local_iso(now_utc().replace(microsecond=0)),
                    "drift": drift,
                },
            )
            bar.advance(task)
        timings["total"] = round(time.perf_counter() - t_all, 2)
    payload = summary.as_dict()
    payload.update(
        db=display(db),
        report=str(path),
        city=str(city_dir),
        rejected=rejected,
        packs=[f"{p.system}@{p.meta.version}" for p in packs],
    )
    return payload


def _print(summary: dict[str, Any]) -> None:
    console.print(
        f"[bold]xinyong demo[/]: {summary['records']:,} records on "
        + ", ".join(f"{n:,} {k}s" for k, n in summary["subjects"].items())
        + f" in {summary['batches']} batches; evaluated as of {summary['as_of']}"
    )
    sizes = Table(title="List sizes over time (active entries, 1 January)")
    lists = sorted({(r["system"], r["list_id"]) for r in summary["list_sizes"]})
    sizes.add_column("date")
    for system, list_id in lists:
        sizes.add_column(f"{system}/{list_id}", justify="right")
    dates = sorted({r["at"] for r in summary["list_sizes"] if r["at"][5:] == "01-01"})
    values = {(r["system"], r["list_id"], r["at"]): r["active"] for r in summary["list_sizes"]}
    for d in dates:
        sizes.add_row(d, *(f"{values.get((s, li, d), 0):,}" for s, li in lists))
    console.print(sizes)

    grades = Table(title="Grade distribution")
    for col in ("system", "grade", "subjects"):
        grades.add_column(col, justify="right" if col == "subjects" else "left")
    for g in summary["grades"]:
        grades.add_row(g["system"], g["grade"], f"{g['subjects']:,}")
    console.print(grades)

    refused = Table(title=f"Checks refused per service (as of {summary['as_of']})")
    refused.add_column("service")
    refused.add_column("subjects", justify="right")
    refused.add_column("systems")
    for r in summary["refused"]:
        refused.add_row(r["service"], f"{r['subjects']:,}", r["systems"])
    console.print(refused)

    endings = Table(title="How list entries ended")
    for col in ("list", "ending", "entries"):
        endings.add_column(col, justify="right" if col == "entries" else "left")
    for e in summary["endings"]:
        endings.add_row(f"{e['system']}/{e['list_id']}", e["ending"], f"{e['entries']:,}")
    console.print(endings)

    warnings = [f for f in summary["lint"] if f["level"] == "warning"]
    console.print(
        f"Linter: {len(warnings)} warning(s) on the shipped packs; "
        f"minors listed: {summary['minors_listed']}; rejected records: "
        f"{summary['rejected']}"
    )
    o = summary.get("objections") or {}
    if o:
        console.print(
            f"Objections: {o['filed']} filed, {o['open']} open, {o['overdue']} overdue, "
            f"{o['upheld']} upheld, {o['rejected']} rejected"
        )
    t = summary["timings"]
    console.print(
        "Timings: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in t.items())
        + f"\nReport: [bold]{summary['report']}[/]  Registry: {summary['db']}"
    )
