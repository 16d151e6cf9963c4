"""The record and service vocabulary (CATALOG.md as data) and identifiers."""

from xinyong.catalog.vocabulary import AttributeSpec, Catalog, RecordType, load_catalog

__all__ = ["AttributeSpec", "Catalog", "RecordType", "load_catalog"]
