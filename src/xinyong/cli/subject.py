"""Subject-facing, public and reporting commands: report, inquire, public search,
purge, statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from xinyong.cli import app
from xinyong.cli.acting import AsOption, CaseOption, KeyOption, acting, refusals
from xinyong.cli.common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    console,
    emit_json,
    fail,
    instant,
    refused_input,
)

public_app = typer.Typer(help="The public lists (SPC Art. 6).", no_args_is_help=True)
app.add_typer(public_app, name="public")


@app.command()
def report(
    subject: Annotated[str, typer.Argument(help="Identity number or unified social credit code")],
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="json, html or pdf")] = "html",
    at: Annotated[str | None, typer.Option("--at", help="As of (default now).")] = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
    case: CaseOption = None,
) -> None:
    """The subject report over every system: scores, lists, consequences, the PBoC
    sections, disputes, statements, who looked, rights and deadlines."""
    from xinyong.access import operations as ops
    from xinyong.reports.subject_report import write_report

    if fmt not in ("json", "html", "pdf"):
        fail(f"--format {fmt!r}: one of json, html, pdf", 2)
    at_t = instant(at, "--at")
    reg, who = acting(db, as_, key)
    with refused_input(), refusals():
        built = ops.subject_report(reg, who, subject, at=at_t, case=case)
        path = write_report(built, out, fmt)
    payload = {
        "subject_id": built.subject_id,
        "format": fmt,
        "out": str(path),
        "at": built.at,
        "charged": built.charged,
    }
    if json:
        emit_json(payload)
    else:
        console.print(f"report for {built.subject_id} written to {path}")


@app.command()
def inquire(
    subject: Annotated[str, typer.Argument(help="Identity number or unified social credit code")],
    purpose: Annotated[
        str,
        typer.Option(
            "--purpose",
            help="loan_approval, credit_card_approval, guarantee_review, post_loan_management",
        ),
    ],
    system: Annotated[str, typer.Option("--system")] = "financial",
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """A lender reads SUBJECT's credit report (needs consent and an allowed purpose;
    every read is recorded as inquiry.made)."""
    from xinyong.access import operations as ops

    reg, who = acting(db, as_, key)
    with refused_input(), refusals():
        answer = ops.inquire(reg, who, subject, purpose, system=system)
    if json:
        emit_json(answer)
        return
    console.print(
        f"{answer['system']} report of {answer['subject_id']} for {purpose} "
        f"(recorded as {answer['inquiry_record']})"
    )
    for sec in answer["sections"]:
        console.print(f"  {sec['title']}: {len(sec['records'])} records")


@public_app.command("search")
def public_search(
    text: Annotated[str, typer.Argument(help="A name, a masked id or a case number")],
    at: Annotated[str | None, typer.Option("--at", help="As of (default now).")] = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Search the public lists: only each list's public fields, identifiers masked."""
    from xinyong.access import operations as ops

    reg, who = acting(db, as_, key)
    with refused_input(), refusals():
        results = ops.public_search(reg, who, text, at=instant(at, "--at"))
    if json:
        emit_json({"results": results})
        return
    if not results:
        console.print("no public entry matches")
        return
    keys = sorted({k for r in results for k in r} - {"system", "list", "list_name"})
    table = Table("list", *keys)
    for r in results:
        table.add_row(r["list"], *(str(r.get(k) if r.get(k) is not None else "") for k in keys))
    console.print(table)


@app.command()
def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what is due.")] = False,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Delete records past the retention of every pack that holds them, leaving
    tombstones (record, type, subject, purge date, rule)."""
    from xinyong.access import operations as ops

    reg, who = acting(db, as_, key)
    with refused_input(), refusals():
        stones = ops.purge(reg, who, dry_run=dry_run)
    if json:
        from xinyong.access import shapes

        emit_json(shapes.purge_result(stones, dry_run))
        return
    verb = "due" if dry_run else "purged"
    console.print(f"{len(stones)} records {verb}")
    for t in stones[:20]:
        console.print(f"  {t.record_id} {t.type} {t.subject_id} ({t.rule})", highlight=False)


@app.command()
def statistics(
    start: Annotated[str, typer.Option("--start", help="First day (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option("--end", help="Last day (YYYY-MM-DD).")],
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Aggregate statistics without personal data (operator, auditor, regulator)."""
    from datetime import date

    from xinyong.access import operations as ops

    try:
        d_start, d_end = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        fail(f"--start/--end: {exc}", 2)
    reg, who = acting(db, as_, key)
    with refused_input(), refusals():
        summary = ops.statistics(reg, who, d_start, d_end)
    if json:
        emit_json(summary)
        return
    for key_name in ("records", "subjects", "active_entries", "minors_listed"):
        console.print(f"{key_name}: {summary.get(key_name)}", highlight=False)
