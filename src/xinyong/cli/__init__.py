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


def _register() -> None:
    # Imported for their side effect of adding commands to `app`.
    import importlib

    for module in ("core", "access", "subject", "due_process", "model", "demo", "serve"):
        try:
            importlib.import_module(f"xinyong.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"xinyong.cli.{module}":
                raise


def main() -> None:
    _register()
    app()
