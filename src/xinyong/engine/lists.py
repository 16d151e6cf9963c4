"""List entries: one per entry record, with the instant and the reason it ends.

An entry record is a record of the list's ``entry_type`` in scope, of one of
its ``subject_kinds``, that occurred on or after the list's ``applies_from``
(default: the pack's effective date), for which ``when`` holds, no exclusion
holds (``subject.age`` is the age at the record's occurrence: minors are never
listed) and some term rule matches (a record no term rule fits is not listed).
start = the end of a period of ``start_delay_days`` + ``start_delay_attribute``
days (NULL attribute: 0) from the occurrence, counted as Civil Procedure Law
Art. 85 counts (``scope.with_period_end``). The term runs from the start on the
Asia/Shanghai calendar: years (+ ``extension_attribute`` years), then days;
open-ended: no term end.

The entry ends at the earliest of these, and on a tie the first in this order
names the reason: 'revoked' (the revocation's occurred_at), 'removal' (the
first removal record of the same subject, and key when ``match_key``, that
occurred at or after the entry record, and whose ``applies_to`` fits the
entry: open-ended or termed), 'superseded' (the start of the next entry of the
same subject and key, in (occurred_at, record_id) order, whose own end (its
end but for supersession; open = latest) is not earlier: a later decision on
the same case extends a listing, never shortens it), 'term', 'retention' (the
entry record's retention end). Removal and superseding records that are
themselves revoked do not count; events after ``as_of`` are not yet known. A
NULL key matches a NULL key. Entries that end at or before they start (e.g.
performed within the grace period) stay in the table but are never active.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from xinyong.engine.retention import with_retention_end
from xinyong.engine.scope import (
    Ledger,
    add_local,
    attr,
    both,
    boundary,
    condition,
    first_per_group,
    in_scope,
    not_revoked,
    union_all,
    with_period_end,
)
from xinyong.packs.schema import ListSpec, Pack
from xinyong.timeutil import local_midnight

FAR = datetime(9999, 12, 31)
END_REASONS = ("revoked", "removal", "superseded", "term", "retention")


def list_entries(pack: Pack, led: Ledger) -> ir.Table | None:
    return union_all([_entries(pack, spec, led) for spec in pack.lists])


def _days(t: ir.Table, n: int, attribute: str | None) -> Any:
    total: Any = ibis.literal(n)
    if attribute is not None:
        total = total + attr(t, attribute).fill_null(0).cast("int64")
    return total.cast("int64")


def _entry_records(pack: Pack, spec: ListSpec, led: Ledger) -> ir.Table:
    t = in_scope(pack, led.records)
    t = t.filter(
        t.type == spec.entry_type,
        t.subject_kind.isin(list(spec.subject_kinds)),
        t.occurred_at >= local_midnight(pack.applies_from(spec)),
    )
    cond = condition(spec.when, t)
    for ex in spec.exclusions:
        cond = both(cond, ~condition(ex.when, t))  # type: ignore[operator]
    if cond is not None:
        t = t.filter(cond)
    t = with_period_end(
        t, t.occurred_at, _days(t, spec.start_delay_days, spec.start_delay_attribute), "start_at"
    )
    term_branches = []
    end_branches = []
    for i, term in enumerate(spec.terms):
        hit = condition(term.when, t)
        hit = ibis.literal(True) if hit is None else hit
        term_branches.append((hit, ibis.literal(i)))
        if term.open_ended:
            end: Any = ibis.null("timestamp")
        else:
            years = _days(t, term.years or 0, spec.extension_attribute)
            end = add_local(t.start_at, years.as_interval("Y")) + ibis.interval(days=term.days or 0)
        end_branches.append((i, end))
    t = t.mutate(_term=ibis.cases(*term_branches, else_=ibis.null("int64")))
    t = t.filter(t._term.notnull())
    term_end = ibis.cases(*[(t._term == i, e) for i, e in end_branches], else_=None)
    open_ended = [i for i, term in enumerate(spec.terms) if term.open_ended]
    key = attr(t, spec.key).cast("string") if spec.key else ibis.null("string")
    t = t.mutate(
        _term_end=term_end.cast("timestamp"), _open=t._term.isin(open_ended or [-1]), key=key
    )
    return boundary(with_retention_end(pack, led, t, [spec.entry_type]), "entry_records")


def _entries(pack: Pack, spec: ListSpec, led: Ledger) -> ir.Table:
    e = _entry_records(pack, spec, led)
    e = e.select(
        "record_id",
        "subject_id",
        "key",
        "occurred_at",
        "start_at",
        "_term_end",
        "_open",
        "retention_end",
    )
    # Every helper reads the same base table and joins back once: nesting the
    # joins would repeat the base query in each later stage.
    rev = led.revocations
    rem = _first_removal(pack, spec, led, e)
    e = (
        e.left_join(rev, e.record_id == rev.target_record_id)
        .left_join(rem, e.record_id == rem._eid)
        .drop("target_record_id", "_eid")
    )
    own = [e.revoked_at, e._rem_at, e._term_end, e.retention_end]
    e = boundary(e.mutate(_own_end=ibis.least(*[c.fill_null(FAR) for c in own])), "entries")
    sup = _first_successor(led, e)
    e = e.left_join(sup, e.record_id == sup._sid_eid).drop("_sid_eid")

    def candidates(t: ir.Table) -> list[tuple[Any, Any]]:
        return [
            (t.revoked_at, t.revoking_record_id),
            (t._rem_at, t._rem_id),
            (t._sup_at, t._sup_id),
            (t._term_end, None),
            (t.retention_end, None),
        ]

    e = e.mutate(_end=ibis.least(*[c.fill_null(FAR) for c, _ in candidates(e)]))
    cands = candidates(e)
    reason = ibis.cases(
        *[
            (c.fill_null(FAR) == e._end, ibis.literal(r))
            for (c, _), r in zip(cands, END_REASONS, strict=True)
        ],
        else_=ibis.null("string"),
    )
    ending = ibis.cases(
        *[
            (reason == r, rid)
            for (_, rid), r in zip(cands, END_REASONS, strict=True)
            if rid is not None
        ],
        else_=ibis.null("string"),
    )
    open_ = e._end == FAR
    out = e.select(
        system=ibis.literal(pack.system),
        list_id=ibis.literal(spec.id),
        subject_id=e.subject_id,
        key=e.key,
        entry_record_id=e.record_id,
        occurred_at=e.occurred_at,
        start_at=e.start_at,
        end_at=ibis.cases((open_, ibis.null("timestamp")), else_=e._end),
        end_reason=ibis.cases((open_, ibis.null("string")), else_=reason),
        ending_record_id=ibis.cases((open_, ibis.null("string")), else_=ending),
    )
    return boundary(out, "list_entries")


def _same_key(a: ir.Value, b: ir.Value) -> Any:
    return a.identical_to(b)


def _first_removal(pack: Pack, spec: ListSpec, led: Ledger, e: ir.Table) -> ir.Table:
    visible = not_revoked(led, in_scope(pack, led.records))
    parts = []
    for rm in spec.removal:
        r = visible.filter(visible.type == rm.type)
        cond = condition(rm.when, r)
        if cond is not None:
            r = r.filter(cond)
        rkey = attr(r, spec.key).cast("string") if spec.key else ibis.null("string")
        r = r.select(_rsid=r.subject_id, _rkey=rkey, _rem_at=r.occurred_at, _rem_id=r.record_id)
        preds = [e.subject_id == r._rsid, r._rem_at >= e.occurred_at]
        if rm.applies_to != "any":
            preds.append(e._open if rm.applies_to == "open_ended" else ~e._open)
        if rm.match_key and spec.key:
            preds.append(_same_key(e.key, r._rkey))
        pairs = e.join(r, preds).select(_eid=e.record_id, _rem_at=r._rem_at, _rem_id=r._rem_id)
        parts.append(pairs)
    if not parts:
        return e.select(
            _eid=e.record_id, _rem_at=ibis.null("timestamp"), _rem_id=ibis.null("string")
        ).limit(0)
    out = parts[0]
    for p in parts[1:]:
        out = out.union(p, distinct=False)
    return first_per_group(out, ["_eid"], ["_rem_at", "_rem_id"])


def _first_successor(led: Ledger, e: ir.Table) -> ir.Table:
    """For each entry, the first later live entry of the same subject and key that
    lasts at least as long (its own end, NULL = open, is not earlier): the entry
    ends when that one starts. A later decision on the same case may extend a
    listing, never shorten it (Fa Shi [2017] No. 7, Art. 2); one that ends sooner
    runs beside it."""
    live = not_revoked(led, e)
    s = live.select(
        _ssid=live.subject_id,
        _skey=live.key,
        _socc=live.occurred_at,
        _sup_at=live.start_at,
        _sup_id=live.record_id,
        _s_own=live._own_end,
    )
    later = (s._socc > e.occurred_at) | ((s._socc == e.occurred_at) & (s._sup_id > e.record_id))
    covers = s._s_own >= e._own_end
    pairs = e.join(s, [e.subject_id == s._ssid, _same_key(e.key, s._skey), later, covers])
    pairs = pairs.select(_sid_eid=e.record_id, _socc=s._socc, _sup_at=s._sup_at, _sup_id=s._sup_id)
    first = first_per_group(pairs, ["_sid_eid"], ["_socc", "_sup_id"])
    return first.drop("_socc")
