"""Retention: when a record stops counting and showing.

The first retention rule naming a record's type decides. Years are counted on
the Asia/Shanghai calendar. ``start: occurred``
runs ``years`` from the occurrence; ``start: conduct_end`` runs from the first
record of an ``ended_by`` type with the same subject and the same ``key``
attribute value that occurred at or after the record (in scope, not revoked,
known). Until the conduct has ended, the retention has not started (NULL end).
A record no rule names is kept (NULL end).
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir

from xinyong.engine.scope import Ledger, add_local, attr, in_scope, not_revoked
from xinyong.packs.schema import Pack, RetentionRule


def rule_by_type(pack: Pack) -> dict[str, RetentionRule]:
    chosen: dict[str, RetentionRule] = {}
    for rule in pack.retention:
        for t in rule.types:
            chosen.setdefault(t, rule)
    return chosen


def with_retention_end(
    pack: Pack, led: Ledger, t: ir.Table, types: list[str] | None = None
) -> ir.Table:
    """``t`` (records) plus a ``retention_end`` column; ``types``: the only record types
    ``t`` can hold, when known (rules for other types are left out of the query)."""
    by_type = rule_by_type(pack)
    if types is not None:
        by_type = {ty: rule for ty, rule in by_type.items() if ty in types}

    def from_occurrence(x: ir.Table) -> list[tuple[Any, Any]]:
        branches = []
        for rule in pack.retention:
            mine = [ty for ty, r in by_type.items() if r is rule]
            if rule.start == "occurred" and mine:
                branches.append(
                    (x.type.isin(mine), add_local(x.occurred_at, ibis.interval(years=rule.years)))
                )
        return branches

    conduct = [r for r in pack.retention if r.start == "conduct_end" and r in by_type.values()]
    if not conduct:
        branches = from_occurrence(t)
        if not branches:
            return t.mutate(retention_end=ibis.null("timestamp"))
        return t.mutate(retention_end=ibis.cases(*branches, else_=ibis.null("timestamp")))
    ends = _conduct_ends(pack, led, t, conduct, by_type)
    joined = t.left_join(ends, t.record_id == ends._rid).drop("_rid")
    branches = from_occurrence(joined)
    tail = joined._conduct_retention_end
    expr = ibis.cases(*branches, else_=tail) if branches else tail
    return joined.mutate(retention_end=expr).drop("_conduct_retention_end")


def _conduct_ends(
    pack: Pack,
    led: Ledger,
    t: ir.Table,
    rules: list[RetentionRule],
    by_type: dict[str, RetentionRule],
) -> ir.Table:
    visible = not_revoked(led, in_scope(pack, led.records))
    parts = []
    for rule in rules:
        mine = [ty for ty, r in by_type.items() if r is rule]
        if not mine:
            continue
        assert rule.key is not None
        recs = t.filter(t.type.isin(mine)).select(
            _rid=t.record_id, _sid=t.subject_id, _occ=t.occurred_at, _key=attr(t, rule.key)
        )
        enders = visible.filter(visible.type.isin(list(rule.ended_by)))
        enders = enders.select(
            _esid=enders.subject_id, _eocc=enders.occurred_at, _ekey=attr(enders, rule.key)
        )
        pairs = recs.join(
            enders,
            [recs._sid == enders._esid, recs._key == enders._ekey, enders._eocc >= recs._occ],
        )
        first = pairs.group_by("_rid").aggregate(_end=pairs._eocc.min())
        parts.append(
            first.select(
                "_rid",
                _conduct_retention_end=add_local(first._end, ibis.interval(years=rule.years)),
            )
        )
    if not parts:
        return t.select(_rid=t.record_id, _conduct_retention_end=ibis.null("timestamp")).limit(0)
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p, distinct=False)
    return out


def visible(pack: Pack, led: Ledger) -> ir.Table:
    """Records the pack's system may see and count at ``as_of``: in scope, known,
    not revoked and within retention, with their ``retention_end``."""
    t = with_retention_end(pack, led, not_revoked(led, in_scope(pack, led.records)))
    return t.filter(t.retention_end.isnull() | (t.retention_end > led.as_of))
