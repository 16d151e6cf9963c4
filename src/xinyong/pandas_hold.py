"""Keeping pandas out of a short command that never uses it.

DuckDB's Python client (1.5) tries to import pandas, with numpy and pyarrow, every
time it binds a statement's parameters until the import succeeds, to recognise pandas
values among them: 0.5-0.6 s of a 2 s `xinyong explain` on this project's machine,
before the command has read anything. A command that answers from stored plans and
the snapshot never needs pandas, so while it runs the import is refused and DuckDB
binds as it does without pandas (`hold`; checked by tests/test_compiled.py).

The hold ends as soon as the process imports something that may need pandas: Ibis
(compiling a plan, evaluating on PostgreSQL or Spark) or the model package (scorecards
on pandas). Nothing else in the commands that hold it uses pandas; were something
to import it during the hold, the import fails with a message naming this module.

Python's own mechanism (a meta path finder, importlib.abc.MetaPathFinder) is used
because DuckDB offers no setting for this."""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType

#: Imports that end the hold: they may import pandas themselves.
RELEASED_BY = ("ibis", "xinyong.model")


class _Hold(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname != "pandas":
            return None  # the other finders find it
        # Imported (in sys.modules, also while it runs), not merely looked up: a
        # `lazy` module asks find_spec without importing it.
        if any(m in sys.modules for m in RELEASED_BY):
            release()
            return None
        raise ModuleNotFoundError(
            "pandas is held off while this command runs (xinyong.pandas_hold)", name="pandas"
        )


_HOLD = _Hold()


def release() -> None:
    """End the hold (nothing when there is none)."""
    if _HOLD in sys.meta_path:
        sys.meta_path.remove(_HOLD)


@contextmanager
def hold() -> Iterator[None]:
    """Refuse the import of pandas for the duration, unless pandas or a module that
    ends the hold is imported already (then nothing is held)."""
    if any(m in sys.modules for m in ("pandas", *RELEASED_BY)) or _HOLD in sys.meta_path:
        yield
        return
    sys.meta_path.insert(0, _HOLD)
    try:
        yield
    finally:
        release()
