"""What every command shares: the registry option, time options, the error
boundary, output."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from xinyong.timeutil import parse_instant

# soft_wrap: a message is never broken into lines (a terminal wraps it; a pipe keeps it)
console = Console(soft_wrap=True)
err_console = Console(stderr=True)

DbOption = Annotated[
    Path,
    typer.Option(
        "--db",
        envvar="XINYONG_DB",
        help="Registry file (made by `xinyong init`).",
        show_default=True,
    ),
]
DEFAULT_DB = Path("xinyong.duckdb")
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]

#: The instants a question may name: the engine adds terms of years to them, and
#: nothing the registry holds lies outside.
EARLIEST = datetime(1900, 1, 1)
LATEST = datetime(2199, 12, 31)


def fail(message: str, code: int = 1) -> NoReturn:
    # escape: a message quotes user input (paths, ids), never to be read as markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def instant(value: str | None, option: str) -> datetime | None:
    """An --at/--as-of/--known-at value; a bare date means 00:00 Asia/Shanghai."""
    if value is None:
        return None
    try:
        parsed = parse_instant(value)
    except ValueError as exc:
        fail(f"{option}: {exc}; use ISO 8601, e.g. 2026-05-01 or 2026-05-01T09:30:00+08:00", 2)
    except OverflowError:  # in range as written, out of range in UTC (0001-01-01)
        fail(f"{option}: {value!r} lies outside 1900-01-01 .. 2199-12-31", 2)
    if not EARLIEST <= parsed <= LATEST:
        fail(f"{option}: {value!r} lies outside 1900-01-01 .. 2199-12-31", 2)
    return parsed


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")


def describe(exc: BaseException) -> str:
    """One line (what, where, what to do) for a failure a user can cause."""
    import duckdb

    if isinstance(exc, IsADirectoryError):
        return f"{exc.filename} is a directory; name a file"
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    if isinstance(exc, RecursionError):
        return "input nested too deeply to read (e.g. a pack condition); simplify it"
    if isinstance(exc, OverflowError):
        return f"a date or number out of range: {exc}"
    if isinstance(exc, MemoryError):
        return "out of memory; split the input or raise the machine's memory"
    if isinstance(exc, duckdb.Error):
        return f"registry: {str(exc).splitlines()[0]}"
    if isinstance(exc, ValueError):
        return str(exc)
    return (
        f"unexpected failure ({type(exc).__name__}: {exc}); please report it with the "
        "command that caused it (XINYONG_DEBUG=1 shows the traceback)"
    )


#: What typer itself turns into output and exit codes (usage errors: 2).
_PASS_THROUGH = (typer.Exit, typer.Abort, typer.TyperException)


class BoundaryGroup(TyperGroup):
    """The one error boundary: whatever a command raises ends in one `error:` line and
    exit 1 (refused input); usage errors keep click's exit 2. XINYONG_DEBUG=1 lets the
    traceback through."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except Exception as exc:
            if os.environ.get("XINYONG_DEBUG"):
                raise
            fail(describe(exc))


@contextmanager
def refused_input() -> Iterator[None]:
    """Turn the domain's errors into a message and exit code 1 (what the boundary does
    for every command; kept for a block that must end before output is printed)."""
    try:
        yield
    except _PASS_THROUGH:
        raise
    except Exception as exc:
        if os.environ.get("XINYONG_DEBUG"):
            raise
        fail(describe(exc))


def open_store(
    db: Path, *, read_only: bool = False, needs_packs: bool = False, must_exist: bool = True
) -> Any:
    """The registry at `db`, which must exist (only `init` creates one; must_exist=False
    lets a command create it too). Readers open it read-only: no schema setup, shared
    with other readers. needs_packs: refuse a registry with no rule packs (every
    answer would be `allow`)."""
    from xinyong.ledger.store import Store

    store = Store(db, read_only=read_only, create=not must_exist)
    if needs_packs and not store.has_packs():
        store.close()
        fail(
            f"registry {db} has no rule packs installed, so it can answer nothing; "
            f"install them with `xinyong init --db {db}` or `xinyong packs install`"
        )
    return store
