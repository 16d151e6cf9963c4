"""A module imported on first use.

The check and score fast path (``checks/snapshot.py``) answers from a small
SQLite file in well under the time it takes to import DuckDB, Ibis, pandas and
pyarrow; modules on that path name their heavy dependencies through ``lazy`` so
that a ``xinyong check`` process loads them only when it falls back to the
registry.

Not the stdlib's ``importlib.util.LazyLoader``: on Python 3.11 it is not thread-safe
(a second thread touching the module while the first runs it sees a half-initialized
module: an AttributeError seen in ``xinyong serve`` under load). Here the first
attribute read calls ``importlib.import_module``, whose per-module import lock makes
every other thread wait for the finished module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any


class _Deferred(ModuleType):
    """Stands for a module until an attribute of it is read."""

    def __getattr__(self, attr: str) -> Any:  # only for attributes not set on self
        module = importlib.import_module(self.__name__)
        return getattr(module, attr)


def lazy(name: str) -> ModuleType:
    """The module ``name``, imported when one of its attributes is first read."""
    if name in sys.modules:
        return sys.modules[name]
    if importlib.util.find_spec(name) is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    return _Deferred(name)
