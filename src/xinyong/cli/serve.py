"""`xinyong serve`: the HTTP API and the pages, under uvicorn."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from xinyong.cli import app
from xinyong.cli.common import DEFAULT_DB, DbOption, console, fail
from xinyong.ledger.location import pg_url, registry_exists

DEMO_PRINCIPALS: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("demo-operator", "operator", {}),
    ("demo-public", "public", {}),
    ("demo-auditor", "auditor", {}),
    ("demo-regulator", "regulator", {}),
    ("demo-adjudicator", "adjudicator", {}),
    ("demo-airline", "service", {"services": ["flight", "train.high_speed", "hotel.star_rated"]}),
)


def demo_keys(db: Path, subject: str | None = None) -> list[tuple[str, str, str]]:
    """Create (or give a fresh key to) the demo principals; returns (name, role, key).
    The local operator does it, audited like any principal change."""
    from xinyong.access import operations as ops
    from xinyong.access.principals import local_operator

    reg, who = ops.Registry(db), local_operator()
    book = reg.principals.load()
    wanted = list(DEMO_PRINCIPALS)
    if subject:
        wanted.append(("demo-subject", "subject", {"subject_id": subject}))
    out = []
    for name, role, scope in wanted:
        if name in book and not book[name].revoked_at:
            key = ops.new_key(reg, who, name)
        else:
            _, key = ops.add_principal(reg, who, name, role, **scope)  # type: ignore[arg-type]
        out.append((name, role, key))
    return out


def _a_listed_subject(db: Path) -> str | None:
    """A subject with an active list entry (for the demo subject principal)."""
    from xinyong.ledger.store import Store
    from xinyong.timeutil import now_utc

    with Store(db, read_only=True) as store:
        now = now_utc()
        row = store.sql.execute(
            "SELECT e.subject_id FROM list_entries e WHERE e.start_at <= ? "
            "AND (e.end_at IS NULL OR e.end_at > ?) AND EXISTS "
            "(SELECT 1 FROM records r WHERE r.subject_id = e.subject_id "
            "AND r.subject_kind = 'person') ORDER BY e.subject_id LIMIT 1",
            [now, now],
        ).fetchone()
    return row[0] if row else None


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Server processes (uvicorn workers).")
    ] = 1,
    demo_keys_: Annotated[
        bool,
        typer.Option(
            "--demo-keys",
            help="Create demo principals (one per role) and print their keys (never stored "
            "in clear).",
        ),
    ] = False,
    insecure_cookies: Annotated[
        bool,
        typer.Option(
            "--insecure-cookies",
            help="Session cookies without the Secure flag (only for plain HTTP beyond localhost).",
        ),
    ] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Serve the HTTP API (/docs, /openapi.json) and the pages for every role."""
    import uvicorn

    from xinyong.ledger.store import Store

    if not registry_exists(db):
        fail(f"no registry at {db}; create one with `xinyong init --db {db}` or `xinyong demo`")
    with Store(db, read_only=True) as store:  # fail closed: refuses what is not a registry
        if not store.has_packs():
            fail(f"registry {db} has no rule packs installed; it could answer nothing")
    if demo_keys_:
        console.print("demo principals (keys shown once; log in at /login):", highlight=False)
        for name, role, key in demo_keys(db, _a_listed_subject(db)):
            console.print(f"  {name:18} {role:12} {key}", highlight=False, markup=False)
    os.environ["XINYONG_SERVE_DB"] = pg_url(db) or str(db.resolve())
    os.environ["XINYONG_SERVE_WORKERS"] = str(workers)
    os.environ.setdefault("XINYONG_SESSION_SECRET", secrets.token_hex(32))
    if insecure_cookies:
        os.environ["XINYONG_INSECURE_COOKIES"] = "1"
    console.print(f"serving {db} on http://{host}:{port} (docs at /docs)", highlight=False)
    uvicorn.run(
        "xinyong.web.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )
