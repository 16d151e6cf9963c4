"""Staging: what a whole-registry evaluation reads, computed once.

An evaluation of every subject reads the ledger many times per pack: the
visible records for the scores, the entry records, the removal and ending
records, the retention enders, the representatives, the revocations in every
"not revoked". Written as one Ibis expression, each of those re-reads (and
re-filters) ``records``. On DuckDB, ``stage`` computes the parts they share
once, as temporary tables of the evaluation's connection:

- the revocations (one scan of ``records``, shared by every pack);
- per pack with lists, its records: the types its lists read (entries,
  removals, retention endings; every type in its scope when it also has a
  score) and those of the relations it reaches along (representatives,
  transfers), with only the columns it can read (the envelope and the
  attributes its rules name);
- per score with ranked rules (``max_count``, episodes), its visible records with
  the rules' shared conditions as columns (``stage_visible``, point evaluations);

and leaves out a pack that cannot have any output (``live``: no entry record of
its lists, no record in its scope, no consent grant where consent is required),
at the cost of one look at the (type, source kind) pairs the ledger holds.

Every expression built on a staged ledger is the same as on the plain one (the
tests compare both with the reference and across engines). Other backends and
evaluations restricted to subjects are not staged: their expressions stay lazy.
``drop`` removes a staged evaluation's tables (``materialize`` calls it);
otherwise they go with the connection.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace
from functools import cache
from typing import Any

import ibis.expr.types as ir

from xinyong.catalog import load_catalog
from xinyong.catalog.vocabulary import attribute_column
from xinyong.engine.scope import CONSENT_GRANTED, Ledger
from xinyong.engine.scores import conditions
from xinyong.packs.schema import Pack

#: Envelope columns the engine reads.
ENVELOPE = (
    "record_id",
    "subject_id",
    "subject_kind",
    "birth_date",
    "type",
    "occurred_at",
    "source_kind",
)
#: Attributes the engine itself names (consent, relations, transfers).
ENGINE_ATTRIBUTES = ("system", "person_id")

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def stageable(led: Ledger) -> bool:
    backend = getattr(led.store, "ibis", None)
    return led.subjects is None and getattr(backend, "name", None) == "duckdb"


@cache
def _attribute_names() -> frozenset[str]:
    return frozenset(load_catalog().attribute_columns)


def pack_attributes(pack: Pack) -> list[str]:
    """Every catalog attribute the pack's text names (conditions, multipliers, keys,
    feature attributes...), and those the engine reads for it: a superset of the
    attributes its evaluation reads."""
    text = json.dumps(_structure(pack.model_dump(mode="json")))
    words = set(_WORD.findall(text))
    rel = load_catalog().relations
    words |= {rel[r.id].attribute for r in pack.relations if r.id in rel}
    words |= set(ENGINE_ATTRIBUTES)
    return sorted(words & _attribute_names())


#: Keys of a pack whose values are prose or what the engine does not evaluate.
_PROSE = frozenset(
    {
        "meta",
        "legal_basis",
        "description",
        "remedy",
        "title",
        "name",
        "note",
        "reason",
        "transfer_basis",
        "trained_on",
        "public_fields",
        "report",
        "process",
        "access",
    }
)


def _structure(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _structure(v) for k, v in value.items() if k not in _PROSE}
    if isinstance(value, list):
        return [_structure(v) for v in value]
    return value


def _relation_types(pack: Pack) -> list[str]:
    rel = load_catalog().relations
    types = {rel[r.id].record_type for r in pack.relations if r.id in rel}
    types |= {r.transferred_by for r in pack.relations if r.transferred_by is not None}
    return sorted(types)


def _temp(led: Ledger, what: str, t: ir.Table) -> tuple[str, ir.Table]:
    name = f"_xy_{what}_{uuid.uuid4().hex[:16]}"
    backend = led.store.ibis
    backend.create_table(name, t, temp=True)
    return name, backend.table(name)


def live(pack: Pack, present: set[tuple[str, str]]) -> bool:
    """Whether the pack can have any output, given the (type, source kind) pairs the
    ledger holds: a score needs a record in its scope (and a consent grant where
    consent is required, a record of a minimum-history type), a list its entry
    records. A pack that cannot is left out of the evaluation."""
    kinds = set(pack.scope.source_kinds)
    scoped = {t for t, k in present if k in kinds and t in pack.scope.record_types}
    if any(spec.entry_type in scoped for spec in pack.lists):
        return True
    score = pack.score
    if score is None or not scoped:
        return False
    if score.consent_required and CONSENT_GRANTED not in scoped:
        return False
    return score.min_history is None or bool(scoped & set(score.min_history.types))


def _list_types(pack: Pack) -> list[str] | None:
    """The record types a pack without a score reads (its lists' entry, removal and
    retention-ending records); None: every type in its scope."""
    if pack.score is not None:
        return None
    types: set[str] = set()
    entry_types = {spec.entry_type for spec in pack.lists}
    for spec in pack.lists:
        types |= {spec.entry_type, *(rm.type for rm in spec.removal)}
    for rule in pack.retention:
        if entry_types & set(rule.types):
            types |= set(rule.ended_by or [])
    return sorted(types)


def _ranked(pack: Pack) -> bool:
    """Whether the pack's score reads its visible records more than once."""
    score = pack.score
    return score is not None and any(
        r.max_count is not None or r.episode is not None for r in score.rules
    )


def stage(led: Ledger, packs: tuple[Pack, ...]) -> tuple[Ledger, dict[str, Ledger | None]]:
    """The ledger with its revocations staged, and per pack system the ledger that
    pack reads (None: nothing in its scope, the pack is left out). Unstaged (the
    same ledger for every pack) where ``stageable`` says no.

    A pack with lists reads its records several times (entries, removals, endings,
    retention, representatives): they are staged. A pack with a score only reads
    its visible records (``stage_visible``) straight from the ledger."""
    if not stageable(led):
        return led, {p.system: led for p in packs}
    names: list[str] = []
    name, rev = _temp(led, "revocations", led.revocations)
    names.append(name)
    base = replace(led, revocations=rev, staged=names)
    r = led.records
    rows = r.select("type", "source_kind").distinct().to_pyarrow().to_pylist()
    present = {(row["type"], row["source_kind"]) for row in rows}
    out: dict[str, Ledger | None] = {}
    for pack in packs:
        if not live(pack, present):
            out[pack.system] = None
            continue
        if not pack.lists:
            out[pack.system] = base
            continue
        kinds = list(pack.scope.source_kinds)
        types = _list_types(pack)
        extra = _relation_types(pack)
        scoped = r.type.isin(types if types is not None else list(pack.scope.record_types))
        keep = r.filter(scoped & r.source_kind.isin(kinds) | r.type.isin(extra or ["-"]))
        attrs = [attribute_column(a) for a in pack_attributes(pack)]
        columns = [*ENVELOPE, *(c for c in attrs if c in r.columns)]
        name, t = _temp(led, f"records_{pack.system}", keep.select(*columns))
        names.append(name)
        out[pack.system] = replace(base, records=t)
    return base, out


def stage_visible(led: Ledger, pack: Pack, vis: ir.Table) -> ir.Table:
    """A point evaluation's visible records of a scored pack (``retention.visible``),
    with its score conditions as columns, computed once: the subject aggregate and
    each ranked rule (``max_count``, episodes) read them."""
    vis = conditions(pack, vis)
    if not stageable(led) or not _ranked(pack):
        return vis
    attrs = [attribute_column(a) for a in pack_attributes(pack)]
    keep = [*ENVELOPE, *attrs, "retention_end"]
    vis = vis.select(*(c for c in vis.columns if c in keep or c.startswith("_when_")))
    name, t = _temp(led, f"visible_{pack.system}", vis)
    led.staged.append(name)
    return t


def drop(store: Any, led: Ledger | None) -> None:
    """Drop the temporary tables ``stage`` made for ``led``."""
    if led is None:
        return
    for name in led.staged:  # names made by _temp: fixed text and hex digits
        store.ibis.raw_sql(f'DROP TABLE IF EXISTS "{name}"')
    led.staged.clear()
