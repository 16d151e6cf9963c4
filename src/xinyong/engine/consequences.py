"""Consequences: what a subject (or its legal representative) gets on a service.

From every list entry active at ``as_of`` (start_at <= as_of < end_at, or no
end): since = start_at, until = end_at. From every grade at ``as_of``: since =
as_of, until open. A rule that ``reaches`` a legal-role relation gives the
consequence to the person the relation names instead of the subject: for a
list entry, one row per representative whose tenure intersects the entry
(tenure = from that representative record's occurrence to the next one of the
same organization), since/until the intersection; for a grade, the
representative at ``as_of``. Representative records are read when the pack
declares the relation (whatever its scope says), known and not revoked.
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir

from xinyong.catalog import load_catalog
from xinyong.engine.scope import Ledger, attr, not_revoked
from xinyong.packs.schema import ConsequenceRule, Pack

COLUMNS = {
    "system": "string",
    "subject_id": "string",
    "service": "string",
    "effect": "string",
    "rule_id": "string",
    "basis_kind": "string",
    "basis_id": "string",
    "legal_basis": "string",
    "since": "timestamp",
    "until": "timestamp",
    "remedy": "string",
    "via_relation": "string",
    "via_subject": "string",
}


def representatives(relation: str, led: Ledger) -> ir.Table:
    """Tenures: org, person, rep_from, rep_until (NULL while current)."""
    rel = load_catalog().relations[relation]
    t = not_revoked(led, led.records.filter(led.records.type == rel.record_type))
    t = t.select(
        _org=t.subject_id,
        _person=attr(t, rel.attribute).cast("string"),
        _from=t.occurred_at,
        _rid=t.record_id,
    )
    w = ibis.window(group_by=t._org, order_by=[t._from, t._rid])
    t = t.mutate(_until=t._from.lead().over(w))
    return t.filter(t._person.notnull())


def consequences(
    pack: Pack, led: Ledger, entries: ir.Table | None, scores: ir.Table | None
) -> list[ir.Table]:
    lists = {s.id: s for s in pack.lists}
    out = []
    for rule in pack.consequences:
        if rule.list is not None:
            if entries is None:
                continue
            spec = lists[rule.list]
            basis = rule.legal_basis or spec.legal_basis
            remedy = rule.remedy or spec.remedy or None
            e = entries.filter(
                entries.list_id == rule.list,
                entries.start_at <= led.as_of,
                entries.end_at.isnull() | (entries.end_at > led.as_of),
            )
            base = e.select(_sid=e.subject_id, basis_id=e.list_id, since=e.start_at, until=e.end_at)
            out.append(_reach(pack, rule, led, base, "list", basis, remedy))
        elif scores is not None:
            basis = rule.legal_basis or (pack.score.legal_basis if pack.score else "")
            s = scores.filter(scores.grade.isin(list(rule.grades or [])))
            base = s.select(
                _sid=s.subject_id,
                basis_id=s.grade,
                since=ibis.literal(led.as_of),
                until=ibis.null("timestamp"),
            )
            out.append(_reach(pack, rule, led, base, "grade", basis, rule.remedy or None))
    return out


def _reach(
    pack: Pack,
    rule: ConsequenceRule,
    led: Ledger,
    base: ir.Table,
    kind: str,
    basis: str,
    remedy: str | None,
) -> ir.Table:
    fixed: dict[str, Any] = {
        "system": ibis.literal(pack.system),
        "service": ibis.literal(rule.service),
        "effect": ibis.literal(rule.effect),
        "rule_id": ibis.literal(rule.id),
        "basis_kind": ibis.literal(kind),
        "legal_basis": ibis.literal(basis),
        "remedy": ibis.literal(remedy, type="string"),
    }
    if rule.reaches == "subject":
        t = base.mutate(
            subject_id=base._sid,
            via_relation=ibis.null("string"),
            via_subject=ibis.null("string"),
            **fixed,
        )
        return _shape(t)
    reps = representatives(rule.reaches, led)
    j = base.join(reps, base._sid == reps._org)
    since = ibis.greatest(j.since, j._from)
    until = ibis.cases(
        (j.until.isnull(), j._until),
        (j._until.isnull(), j.until),
        else_=ibis.least(j.until, j._until),
    )
    t = j.mutate(
        subject_id=j._person,
        since=since,
        until=until,
        via_relation=ibis.literal(rule.reaches),
        via_subject=j._sid,
        **fixed,
    )
    t = t.filter(t.until.isnull() | (t.since < t.until))
    return _shape(t)


def _shape(t: ir.Table) -> ir.Table:
    return t.select(**{c: t[c].cast(ty) for c, ty in COLUMNS.items()})
