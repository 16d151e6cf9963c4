"""The append-only bitemporal ledger: storage, intake and bulk import.

The store's names are loaded on first use (PEP 562), so that ``ledger.generation``
(read on the check fast path) does not import DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xinyong.ledger.store import RegistryError, RegistryInUse, RegistryOutdated, Store

__all__ = ["RegistryError", "RegistryInUse", "RegistryOutdated", "Store"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from xinyong.ledger import store

    return getattr(store, name)
