"""Reading a YAML document into a pydantic model, and wording what is wrong with
it (one way, for packs, scenario files and model files)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

#: libyaml's safe loader where PyYAML was built with it (its wheels are): the same
#: documents and errors as the pure-Python one, about 10x faster. Five packs took
#: 1.1 s to parse in pure Python, a third of a replayed `explain` (measured).
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> object:
    """YAML text as plain data (mappings, lists, scalars), never objects."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 (a safe loader)


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


def load_document(
    model: type[M],
    source: str | Path,
    *,
    error: type[ValueError],
    kind: str,
    text: str | None = None,
) -> M:
    """Read `source` (or `text`, named `source`) as YAML and validate it as `model`.

    Every failure raises `error` with a message naming the file, the place and the
    reason: unreadable, not UTF-8, not YAML, not a mapping, or invalid as a `kind`.
    """
    name = str(source)
    if text is None:
        try:
            text = Path(source).read_text("utf-8")
        except OSError as exc:
            raise error(f"{name}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise error(f"{name}: not a {kind} (not UTF-8 text)") from None
    try:
        raw = safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{name}:{yaml_problem(exc)}") from None
    except RecursionError:
        raise error(f"{name}: not a {kind} (YAML nested too deeply)") from None
    if not isinstance(raw, dict):
        raise error(f"{name}: not a {kind} (a {kind} is a YAML mapping)")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise error(f"{name}: invalid {kind}:\n{validation_problems(exc)}") from None
    except RecursionError:
        # a condition of thousands of nested operators: no reader of the pack could follow it
        raise error(f"{name}: invalid {kind}: an expression is nested too deeply") from None
