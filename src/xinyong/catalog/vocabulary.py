"""Loads catalog.yaml into typed, validated objects.

The catalog drives intake validation, the ledger's typed attribute columns and
the pack linter, so it is parsed once and cached.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from xinyong.problems import safe_load

AttributeKind = Literal["string", "integer", "number", "enum", "person_id", "date"]

#: The longest text an attribute may hold unless the catalog says otherwise.
DEFAULT_MAX_LENGTH = 4000
#: The record type that revokes another record (``target_record_id``), whoever's.
REVOKED = "record.revoked"


class AttributeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: AttributeKind
    values: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    exclusive_min: float | None = None
    default: Any = None
    #: text attributes: at most this many characters (DEFAULT_MAX_LENGTH unless set)
    max_length: int | None = None
    #: may be left out without a default (e.g. one of decision_no or case_no)
    optional: bool = False

    @property
    def required(self) -> bool:
        return self.default is None and not self.optional

    @property
    def text_limit(self) -> int:
        return self.max_length if self.max_length is not None else DEFAULT_MAX_LENGTH

    @property
    def column_type(self) -> Literal["string", "int64", "float64"]:
        """The ledger column type that holds this attribute."""
        if self.type == "integer":
            return "int64"
        if self.type == "number":
            return "float64"
        return "string"


class RecordType(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    domain: str
    sources: tuple[str, ...]
    subject_kinds: tuple[str, ...] = ("person", "organization")
    attributes: dict[str, AttributeSpec]


class Relation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    record_type: str
    attribute: str
    from_kind: str
    to_kind: str


class Service(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: str


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    catalog_version: int
    subject_kinds: tuple[str, ...]
    source_kinds: tuple[str, ...]
    record_domains: tuple[str, ...]
    relations: dict[str, Relation]
    types: dict[str, RecordType]
    services: dict[str, Service]
    related_domains: dict[str, tuple[str, ...]]
    decisions: tuple[str, ...]
    systems: tuple[str, ...]
    attribute_columns: dict[str, Literal["string", "int64", "float64"]] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        columns: dict[str, str] = {}
        for name, rtype in self.types.items():
            object.__setattr__(rtype, "name", name)
            if rtype.domain not in self.record_domains:
                raise ValueError(f"type {name}: unknown domain {rtype.domain!r}")
            for kind in rtype.sources:
                if kind not in self.source_kinds:
                    raise ValueError(f"type {name}: unknown source kind {kind!r}")
            for attr, spec in rtype.attributes.items():
                # One ledger column per attribute name: a name must keep one type.
                seen = columns.setdefault(attr, spec.column_type)
                if seen != spec.column_type:
                    raise ValueError(
                        f"attribute {attr!r} is {seen} elsewhere but {spec.column_type} in {name}"
                    )
        for sname, service in self.services.items():
            if service.domain not in self.related_domains:
                raise ValueError(f"service {sname}: domain {service.domain!r} has no relations")
        object.__setattr__(self, "attribute_columns", dict(sorted(columns.items())))
        return self

    def is_related(self, record_domain: str, service: str) -> bool:
        """Whether records of this domain may justify a detrimental consequence on service."""
        return record_domain in self.related_domains[self.services[service].domain]


def attribute_column(name: str) -> str:
    """The ledger column that holds attribute `name` (prefixed so that no future
    attribute can collide with an envelope field)."""
    return f"attr_{name}"


@cache
def load_catalog() -> Catalog:
    text = resources.files("xinyong.catalog").joinpath("catalog.yaml").read_text("utf-8")
    return Catalog.model_validate(safe_load(text))
