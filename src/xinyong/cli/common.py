"""What every command shares: the registry option, time options, errors, output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from xinyong.timeutil import parse_instant

console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[
    Path,
    typer.Option(
        "--db",
        envvar="XINYONG_DB",
        help="Registry file (DuckDB).",
        show_default=True,
    ),
]
DEFAULT_DB = Path("xinyong.duckdb")
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def instant(value: str | None, option: str) -> datetime | None:
    """An --at/--as-of/--known-at value; a bare date means 00:00 Asia/Shanghai."""
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        fail(f"{option}: {exc}", 2)


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")


@contextmanager
def refused_input() -> Iterator[None]:
    """Turn the domain's errors into a message and exit code 1."""
    from xinyong.catalog.identifiers import InvalidIdentifier
    from xinyong.ledger.store import RegistryInUse
    from xinyong.packs.loader import PackError

    try:
        yield
    except (InvalidIdentifier, PackError, RegistryInUse, ValueError, FileNotFoundError) as exc:
        fail(str(exc))


def open_store(db: Path, *, must_exist: bool = True) -> Any:
    from xinyong.ledger.store import Store

    if must_exist and not db.exists():
        fail(f"no registry at {db}; create one with `xinyong init --db {db}`")
    return Store(db)
