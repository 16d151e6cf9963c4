"""The append-only bitemporal ledger: storage, intake and bulk import."""

from xinyong.ledger.store import RegistryError, RegistryInUse, RegistryOutdated, Store

__all__ = ["RegistryError", "RegistryInUse", "RegistryOutdated", "Store"]
