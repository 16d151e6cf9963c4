"""Consequences: what a subject (or its legal representative) gets on a service.

From every list entry not over at ``as_of`` (no end, or as_of < end_at; also
entries still in their grace period, whose start lies ahead): since = start_at,
until = end_at. From every grade at ``as_of``: since =
as_of, until open; on a timeline (``led.timeline``), from every entry with a
period and every grade period (engine/timeline.py), since/until its own.
A rule that ``reaches`` a legal-role relation gives the
consequence to the person the relation names instead of the subject: for a
list entry, one row per representative whose tenure intersects the entry
(tenure = from that representative record's occurrence to the next one of the
same organization), since/until the intersection; for a grade, the
representative at ``as_of``. Representative records are read when the pack
declares the relation (whatever its scope says), known and not revoked. For a
relation declared with ``transferred_by``, a list entry reaches the person who
held the role when it started until a court transfers it (engine/transfers.py).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from xinyong.catalog import load_catalog
from xinyong.engine.scope import Ledger, attr, instant_value, not_revoked
from xinyong.engine.transfers import holders, transfers
from xinyong.packs.schema import Pack, RelationUse

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


def _rule_table(pack: Pack, kind: str) -> ir.Table | None:
    """The pack's consequence rules of one kind ('list' or 'grade') as a small table,
    so that one join applies them all (rather than one query per rule)."""
    lists = {s.id: s for s in pack.lists}
    rows = []
    for rule in pack.consequences:
        if kind == "list" and rule.list is not None:
            spec = lists[rule.list]
            keys = [rule.list]
            basis = rule.legal_basis or spec.legal_basis
            remedy = rule.remedy or spec.remedy or None
        elif kind == "grade" and rule.grades is not None:
            keys = list(rule.grades)
            basis = rule.legal_basis or (pack.score.legal_basis if pack.score else "")
            remedy = rule.remedy or None
        else:
            continue
        for key in keys:
            rows.append(
                {
                    "_basis": key,
                    "service": rule.service,
                    "effect": rule.effect,
                    "rule_id": rule.id,
                    "legal_basis": basis,
                    "remedy": remedy,
                    "_reaches": rule.reaches,
                }
            )
    if not rows:
        return None
    schema = {
        "_basis": "string",
        "service": "string",
        "effect": "string",
        "rule_id": "string",
        "legal_basis": "string",
        "remedy": "string",
        "_reaches": "string",
    }
    return ibis.memtable(rows, schema=schema)


def consequences(
    pack: Pack, led: Ledger, entries: ir.Table | None, scores: ir.Table | None
) -> list[ir.Table]:
    bases = []
    list_rules = _rule_table(pack, "list")
    if entries is not None and list_rules is not None:
        # Entries not over at as_of, also those still in their grace period: a
        # consequence is an interval, so the index can answer any later instant.
        # On a timeline, every entry with a period, also those over by as_of.
        over = ibis.literal(True) if led.timeline else entries.end_at > led.as_of
        e = entries.filter(
            entries.end_at.isnull() | (over & (entries.start_at < entries.end_at)),
        )
        base = e.select(
            _sid=e.subject_id, _key=e.list_id, _ekey=e.key, since=e.start_at, until=e.end_at
        )
        bases.append(("list", base, list_rules))
    grade_rules = _rule_table(pack, "grade")
    if scores is not None and grade_rules is not None and led.timeline:
        # ``scores``: the grade periods of the pack's timeline (engine/timeline.py).
        base = scores.select(
            _sid=scores.subject_id,
            _key=scores.grade,
            _ekey=ibis.null("string"),
            since=scores.since,
            until=scores.until,
        )
        bases.append(("grade", base, grade_rules))
    elif scores is not None and grade_rules is not None:
        s = scores.filter(scores.grade.notnull())
        base = s.select(
            _sid=s.subject_id,
            _key=s.grade,
            _ekey=ibis.null("string"),
            since=instant_value(led.as_of),
            until=ibis.null("timestamp"),
        )
        bases.append(("grade", base, grade_rules))
    out = []
    relations = sorted({r.reaches for r in pack.consequences} - {"subject"})
    for kind, base, rules in bases:
        j = base.join(rules, base._key == rules._basis)
        j = j.mutate(
            system=ibis.literal(pack.system), basis_kind=ibis.literal(kind), basis_id=j._key
        )
        own = j.filter(j._reaches == "subject")
        out.append(
            _shape(
                own.mutate(
                    subject_id=own._sid,
                    via_relation=ibis.null("string"),
                    via_subject=ibis.null("string"),
                )
            )
        )
        for relation in relations:
            use = next(r for r in pack.relations if r.id == relation)
            moved = use if kind == "list" and use.transferred_by else None
            keys = {s.key for s in pack.lists}
            key = next(iter(keys)) if len(keys) == 1 else None
            out.append(_reach(relation, led, j.filter(j._reaches == relation), moved, key))
    return out


def _reach(
    relation: str,
    led: Ledger,
    base: ir.Table,
    moved: RelationUse | None = None,
    key: str | None = None,
) -> ir.Table:
    """Consequences given to the person the relation names, during its tenure (or,
    for a relation the court transfers, while they hold the restriction: transfers)."""
    reps = representatives(relation, led)
    if moved is None:
        j = base.join(reps, base._sid == reps._org)
    else:
        j = holders(base, reps, transfers(moved, key, led))
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
        via_relation=ibis.literal(relation),
        via_subject=j._sid,
    )
    t = t.filter(t.until.isnull() | (t.since < t.until))
    return _shape(t)


def _shape(t: ir.Table) -> ir.Table:
    return t.select(**{c: t[c].cast(ty) for c, ty in COLUMNS.items()})
