"""How the project words what is wrong with an input file (one way, everywhere)."""

from __future__ import annotations

import yaml
from pydantic import ValidationError


def validation_problems(exc: ValidationError) -> str:
    """One indented line per problem: the place in the document and what is wrong."""
    return "\n".join(
        f"  {'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
    )


def yaml_problem(exc: yaml.YAMLError) -> str:
    """Where the YAML broke (line and column when known) and why."""
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
    return f"{where} not valid YAML: {getattr(exc, 'problem', None) or exc}"
