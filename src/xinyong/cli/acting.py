"""Who a command acts as: the local operator, or ``--as NAME`` with its key.

Every command that reads or changes the registry goes through
``xinyong.access.operations`` with the principal resolved here; a refusal
(bad key, missing permission, no consent, wrong purpose, unlicensed system,
purged history) is already audited there and ends the command with exit 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from xinyong.cli.common import fail
from xinyong.ledger.location import registry_exists

AsOption = Annotated[
    str | None,
    typer.Option("--as", help="Act as this principal (default: the local operator)."),
]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", envvar="XINYONG_KEY", help="The principal's API key (with --as)."),
]
CaseOption = Annotated[
    str | None, typer.Option("--case", help="The case an auditor reads personal data for.")
]


@contextmanager
def refusals() -> Iterator[None]:
    """A refusal becomes one line on stderr and exit 1."""
    from xinyong.access.permissions import Refused

    try:
        yield
    except Refused as exc:
        fail(f"refused ({exc.permission}): {exc}")


def acting(db: Path, as_: str | None, key: str | None, *, must_exist: bool = True):  # type: ignore[no-untyped-def]
    """(registry, principal) for a command."""
    from xinyong.access import operations as ops
    from xinyong.access.principals import local_operator

    if must_exist and not registry_exists(db):
        fail(f"no registry at {db}; create one with `xinyong init --db {db}`")
    reg = ops.Registry(db)
    if as_ is None:
        return reg, local_operator()
    with refusals():
        return reg, ops.authenticate(reg, as_, key or "")
