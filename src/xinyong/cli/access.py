"""Access commands: principals, the audit chain, licences."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from xinyong.cli import app
from xinyong.cli.acting import AsOption, CaseOption, KeyOption, acting, refusals
from xinyong.cli.common import DEFAULT_DB, DbOption, JsonOption, console, emit_json, refused_input

principals_app = typer.Typer(
    help="Who may call the registry: principals and keys.", no_args_is_help=True
)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
licences_app = typer.Typer(help="Licences of commercial scoring systems.", no_args_is_help=True)
app.add_typer(principals_app, name="principals")
app.add_typer(audit_app, name="audit")
app.add_typer(licences_app, name="licences")


@principals_app.command("add")
def principals_add(
    name: Annotated[str, typer.Argument(help="e.g. bank-a")],
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="source, service, subject, operator, adjudicator, auditor, regulator, public",
        ),
    ],
    source: Annotated[str | None, typer.Option("--source", help="Its source id.")] = None,
    service: Annotated[
        list[str] | None, typer.Option("--service", help="A service it may check (repeatable).")
    ] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Its own subject id.")] = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Add a principal and print its first API key (shown this once only)."""
    from xinyong.access import operations as ops

    reg, who = acting(db, as_, key)
    with refused_input(), refusals():
        principal, secret = ops.add_principal(
            reg, who, name, role, source=source, services=service, subject_id=subject
        )
    if json:
        emit_json({**principal.public(), "key": secret})
    else:
        console.print(f"principal [bold]{name}[/] ({role}) added; its key (shown once):")
        console.print(secret, highlight=False, markup=False)


@principals_app.command("list")
def principals_list(
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Principals, their scope and key ids (never the keys)."""
    from xinyong.access import operations as ops

    reg, who = acting(db, as_, key)
    with refusals():
        principals = ops.list_principals(reg, who)
    if json:
        emit_json([p.public() for p in principals])
        return
    table = Table("name", "role", "scope", "live keys", "revoked")
    for p in principals:
        scope = p.source or p.subject_id or ", ".join(p.services)
        live = sum(1 for k in p.keys if k.revoked_at is None)
        table.add_row(p.name, p.role, scope or "", str(live), p.revoked_at or "")
    console.print(table)


@principals_app.command("revoke")
def principals_revoke(
    name: Annotated[str, typer.Argument()],
    key_id: Annotated[str | None, typer.Option("--key-id", help="Only this key.")] = None,
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Revoke a principal (all its keys) or one of its keys."""
    from xinyong.access import operations as ops

    reg, who = acting(db, as_, key)
    with refused_input(), refusals():
        principal = ops.revoke_principal(reg, who, name, key_id)
    if json:
        emit_json(principal.public())
    else:
        console.print(f"revoked {'key ' + key_id + ' of ' if key_id else ''}{name}")


@principals_app.command("key")
def principals_key(
    name: Annotated[str, typer.Argument()],
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Issue a new key for a principal (shown this once only)."""
    from xinyong.access import operations as ops

    reg, who = acting(db, as_, key)
    with refused_input(), refusals():
        secret = ops.new_key(reg, who, name)
    if json:
        emit_json({"name": name, "key_id": secret.split(".")[1], "key": secret})
    else:
        console.print(secret, highlight=False, markup=False)


@audit_app.command("verify")
def audit_verify(
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Walk the hash chain; exit 1 and name the first bad entry on tampering."""
    from xinyong.access import operations as ops

    reg, who = acting(db, as_, key)
    with refusals():
        report = ops.audit_verify(reg, who)
    if json:
        from xinyong.access import shapes

        emit_json(shapes.chain_report(report))
    elif report.ok:
        console.print(f"audit chain intact: {report.entries} entries")
    else:
        console.print(f"[red]audit chain broken[/] at entry {report.first_bad}: {report.reason}")
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("show")
def audit_show(
    subject: Annotated[str, typer.Option("--subject", help="Who looked at this subject.")],
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
    case: CaseOption = None,
) -> None:
    """Who read, checked or decided what about a subject, and why."""
    from xinyong.access import operations as ops

    reg, who = acting(db, as_, key)
    with refused_input(), refusals():
        entries = ops.audit_show(reg, who, subject, case=case)
    if json:
        emit_json([e.model_dump() for e in entries])
        return
    table = Table("#", "when", "who", "role", "action", "outcome", "purpose")
    for e in entries:
        table.add_row(str(e.seq), e.at, e.principal, e.role, e.action, e.outcome, e.purpose or "")
    console.print(table)


@licences_app.command("bind")
def licences_bind(
    system: Annotated[str, typer.Argument(help="e.g. commercial")],
    operator: Annotated[str, typer.Argument(help="The licensed firm's unified social credit code")],
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Bind a scoring system to the firm that runs it: it then answers only while the
    firm holds a current admin.license_granted."""
    from xinyong.access import operations as ops

    reg, who = acting(db, as_, key)
    with refused_input(), refusals():
        operator_id = ops.bind_licence(reg, who, system, operator)
    if json:
        emit_json({"system": system, "operator_id": operator_id})
    else:
        console.print(f"{system} is run by {operator_id} and needs its current licence")


@licences_app.command("status")
def licences_status(
    system: Annotated[str, typer.Argument()],
    db: DbOption = DEFAULT_DB,
    json: JsonOption = False,
    as_: AsOption = None,
    key: KeyOption = None,
) -> None:
    """Whether a system's operator holds a current licence now."""
    from xinyong.access import operations as ops

    reg, who = acting(db, as_, key)
    with refused_input(), refusals():
        status = ops.licence_status(reg, who, system)
    if json:
        emit_json(status.public())
    else:
        console.print(status.reason if not status.current else f"{system}: {status.reason}")
