"""Due-process commands (issue 9): objections, statements, credit repair, notices.
They parse and render only; ``xinyong.access.due_process`` authorizes, performs and
audits. Bad input exits 1 with one line and writes nothing."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from xinyong.cli import app
from xinyong.cli.acting import AsOption, KeyOption, acting, refusals
from xinyong.cli.common import DEFAULT_DB, DbOption, JsonOption, console, emit_json, instant

objections_app = typer.Typer(
    help="Objections to records, and their decisions.", no_args_is_help=True
)
statements_app = typer.Typer(help="Statements a subject adds to its records.", no_args_is_help=True)
repair_app = typer.Typer(help="Credit repair of published penalties.", no_args_is_help=True)
notices_app = typer.Typer(help="Notices to subjects (outbox, SMTP).", no_args_is_help=True)
app.add_typer(objections_app, name="objections")
app.add_typer(statements_app, name="statements")
app.add_typer(repair_app, name="repair")
app.add_typer(notices_app, name="notices")

AtOption = Annotated[
    str | None, typer.Option("--at", help="When it happened (default now); ISO 8601.")
]


def _show(payload: Any, json: bool, columns: tuple[str, ...] = ()) -> None:
    if json:
        emit_json(payload)
        return
    if isinstance(payload, list):
        if not payload:
            console.print("none")
            return
        keys = [k for k in payload[0] if not columns or k in columns]
        table = Table(*keys)
        for row in payload:
            table.add_row(*("" if row[k] is None else str(row[k]) for k in keys))
        console.print(table)
        return
    for k, v in payload.items():
        console.print(f"{k}: {v}", highlight=False, markup=False)


@objections_app.command("file")
def objections_file(
    subject: Annotated[str, typer.Argument(help="The subject's identity number or code.")],
    record: Annotated[str, typer.Option("--record", help="The record objected to.")],
    ground: Annotated[
        str,
        typer.Option(
            "--ground",
            help="should_not_be_listed, inaccurate, should_have_been_deleted, not_mine, other",
        ),
    ],
    statement: Annotated[str, typer.Option("--statement", help="The subject's statement.")],
    at: AtOption = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """File an objection against a record (SPC Arts. 11-12, PBoC Art. 25)."""
    from xinyong.access import due_process as dp

    at_t = instant(at, "--at")
    reg, who = acting(db, as_, key)
    with refusals():
        _show(dp.file_objection(reg, who, subject, record, ground, statement, at=at_t), json)


@objections_app.command("decide")
def objections_decide(
    objection_id: Annotated[str, typer.Argument(help="The objection's id.")],
    uphold: Annotated[bool, typer.Option("--uphold", help="Uphold the objection.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject the objection.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="The decision's reason.")] = "",
    corrected_record: Annotated[
        str | None,
        typer.Option("--corrected-record", help="Ground inaccurate: the record replacing it."),
    ] = None,
    at: AtOption = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Decide an objection (or, after a reconsideration request, at the next level)."""
    from xinyong.access import due_process as dp
    from xinyong.cli.common import fail

    if uphold == reject:
        fail("give exactly one of --uphold or --reject", 2)
    at_t = instant(at, "--at")
    reg, who = acting(db, as_, key)
    with refusals():
        answer = dp.decide_objection(
            reg, who, objection_id, uphold=uphold, reason=reason, at=at_t,
            corrected_record=corrected_record,
        )  # fmt: skip
    _show(answer, json)


@objections_app.command("reconsider")
def objections_reconsider(
    objection_id: Annotated[str, typer.Argument(help="The objection's id.")],
    statement: Annotated[str, typer.Option("--statement", help="Why the decision is wrong.")],
    at: AtOption = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Ask the next level to reconsider a rejected objection, within the pack's window."""
    from xinyong.access import due_process as dp

    at_t = instant(at, "--at")
    reg, who = acting(db, as_, key)
    with refusals():
        _show(dp.reconsider_objection(reg, who, objection_id, statement, at=at_t), json)


@objections_app.command("list")
def objections_list(
    subject: Annotated[str | None, typer.Option("--subject", help="Only this subject's.")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only overdue ones.")] = False,
    at: Annotated[str | None, typer.Option("--at", help="As of (default now).")] = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Objections with their due dates and whether they are overdue."""
    from xinyong.access import due_process as dp

    at_t = instant(at, "--at")
    reg, who = acting(db, as_, key)
    with refusals():
        found = dp.list_objections(reg, who, subject=subject, overdue=overdue, at=at_t)
    _show(found, json, ("objection_id", "record_id", "system", "status", "due", "overdue"))


@statements_app.command("add")
def statements_add(
    subject: Annotated[str, typer.Argument(help="The subject's identity number or code.")],
    record: Annotated[str, typer.Option("--record", help="The record the statement is on.")],
    text: Annotated[str, typer.Option("--text", help="The statement (at most 4000 chars).")],
    at: AtOption = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Add the subject's statement to a record (PBoC Art. 16)."""
    from xinyong.access import due_process as dp

    at_t = instant(at, "--at")
    reg, who = acting(db, as_, key)
    with refusals():
        _show(dp.add_statement(reg, who, subject, record, text, at=at_t), json)


@repair_app.command("apply")
def repair_apply(
    subject: Annotated[str, typer.Argument(help="The subject's code.")],
    record: Annotated[str, typer.Option("--record", help="The published penalty decision.")],
    commitment: Annotated[
        str, typer.Option("--commitment", help="The public credit commitment.")
    ] = "",
    at: AtOption = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Apply for credit repair (NDRC Order No. 36)."""
    from xinyong.access import due_process as dp

    at_t = instant(at, "--at")
    reg, who = acting(db, as_, key)
    with refusals():
        _show(dp.apply_repair(reg, who, subject, record, commitment, at=at_t), json)


@repair_app.command("decide")
def repair_decide(
    repair_id: Annotated[str, typer.Argument(help="The repair application's id.")],
    grant: Annotated[bool, typer.Option("--grant", help="Grant the repair.")] = False,
    refuse: Annotated[bool, typer.Option("--refuse", help="Refuse the repair.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="The decision's reason.")] = "",
    at: AtOption = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Decide a credit repair application; a grant ends publication and sharing."""
    from xinyong.access import due_process as dp
    from xinyong.cli.common import fail

    if grant == refuse:
        fail("give exactly one of --grant or --refuse", 2)
    at_t = instant(at, "--at")
    reg, who = acting(db, as_, key)
    with refusals():
        _show(dp.decide_repair(reg, who, repair_id, grant=grant, reason=reason, at=at_t), json)


@repair_app.command("list")
def repair_list(
    subject: Annotated[str | None, typer.Option("--subject", help="Only this subject's.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="As of (default now).")] = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Credit repair applications and their status."""
    from xinyong.access import due_process as dp

    at_t = instant(at, "--at")
    reg, who = acting(db, as_, key)
    with refusals():
        found = dp.list_repairs(reg, who, subject=subject, at=at_t)
    _show(found, json, ("repair_id", "record_id", "status", "eligible_from", "decision_due"))


@notices_app.command("send")
def notices_send(
    smtp: Annotated[str, typer.Option("--smtp", help="HOST:PORT of the SMTP server.")],
    domain: Annotated[
        str, typer.Option("--domain", help="Mail domain of the subjects' portal mailboxes.")
    ] = "portal.xinyong.invalid",
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Queue the notices the ledger calls for and deliver every unsent one."""
    from xinyong.access import due_process as dp

    reg, who = acting(db, as_, key)
    with refusals():
        _show(dp.send_notices(reg, who, smtp, domain=domain), json)
