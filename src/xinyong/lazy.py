"""A module imported on first use (stdlib ``importlib.util.LazyLoader``).

The check and score fast path (``checks/snapshot.py``) answers from a small
SQLite file in well under the time it takes to import DuckDB, Ibis, pandas and
pyarrow; modules on that path name their heavy dependencies through ``lazy`` so
that a ``xinyong check`` process loads them only when it falls back to the
registry. Written by hand because the stdlib recipe is a few lines.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy(name: str) -> ModuleType:
    """The module ``name``, loaded when one of its attributes is first read."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
