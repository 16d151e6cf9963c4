"""The `xinyong` command line. Each group lives in its own module; this one
assembles them. Exit codes: 0 success, 1 refused input, 2 usage error."""

from __future__ import annotations

import typer

from xinyong.cli.common import BoundaryGroup

app = typer.Typer(
    cls=BoundaryGroup,
    name="xinyong",
    help="A rule-of-law social-credit registry on an embedded DuckDB file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


#: The module that defines each top-level command or group. A command imports only
#: its own module (and ``core``, whose many commands keep the app a group), so that a
#: one-line question such as ``xinyong check`` does not build the whole command tree
#: (tests/test_cli.py checks this table against the registered commands).
COMMANDS = {
    **dict.fromkeys(
        (
            "init",
            "migrate",
            "compact",
            "sources",
            "import",
            "evaluate",
            "check",
            "score",
            "explain",
            "packs",
        ),
        "core",
    ),
    **dict.fromkeys(("principals", "audit", "licences"), "access"),
    **dict.fromkeys(("report", "inquire", "public", "purge", "statistics"), "subject"),
    **dict.fromkeys(("objections", "statements", "repair", "notices"), "due_process"),
    "model": "model",
    "demo": "demo",
    "serve": "serve",
}
MODULES = ("core", "access", "subject", "due_process", "model", "demo", "serve")


def _register(command: str | None = None) -> None:
    """Add the commands to `app` (imported for that side effect): those of
    ``command``'s module, or all of them for help, completion and unknown names."""
    import importlib

    module = COMMANDS.get(command or "")
    for name in MODULES if module is None else dict.fromkeys(("core", module)):
        try:
            importlib.import_module(f"xinyong.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"xinyong.cli.{name}":
                raise


def main() -> None:
    import sys

    _register(sys.argv[1] if len(sys.argv) > 1 else None)
    app()
