"""The append-only bitemporal ledger: storage, intake and bulk import."""

from xinyong.ledger.store import RegistryInUse, Store

__all__ = ["RegistryInUse", "Store"]
