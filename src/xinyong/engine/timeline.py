"""Timelines: every score and grade a subject has at any instant, as valid-time
intervals ``[valid_from, valid_to)`` (``valid_to`` NULL: open-ended), with the
knowledge of one evaluation (``known_at``).

A score is a step function of time. It can change only at an instant when a
record starts or stops counting (its occurrence, the end of a rule's window, the
end of its retention, its revocation), when consent changes (a consent record's
occurrence), when an age threshold is crossed (``min_age``, an age bin of a
scorecard) or a minimum history is reached, or when a ``days_since_last`` feature
crosses one of its bin bounds. Those instants are the subject's *breakpoints*.
The score on each interval between two breakpoints is the score at its first
instant, computed by the same engine as a point evaluation (engine/scores.py),
whose "as of" is then a column (``_at``) instead of one literal: every record is
joined to the breakpoints of its subject at which it is visible. Consecutive
intervals with the same score and grade are merged.

Breakpoints are a superset of the instants where the score changes (an extra one
only splits an interval that the merge joins again); a missing one would be a
defect, so every kind of change above adds its instants. Breakpoints before the
pack's effective date are moved to it: the pack does not apply before.

Windows count records that occurred at or after ``as_of - N days``: a record
stops counting one microsecond (the timestamp resolution) after
``occurred_at + N days``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import ibis
import ibis.expr.types as ir

from xinyong.engine.retention import with_retention_end
from xinyong.engine.scope import (
    AT,
    CONSENT_GRANTED,
    LOCAL,
    Ledger,
    add_local,
    attr,
    boundary,
    in_scope,
    union_all,
)
from xinyong.engine.scores import conditions, scores_of, subject_parts
from xinyong.packs.schema import Pack
from xinyong.timeutil import local_midnight

COLUMNS = {
    "system": "string",
    "subject_id": "string",
    "valid_from": "timestamp",
    "valid_to": "timestamp",
    "score": "float64",
    "grade": "string",
}

_TICK = ibis.interval(microseconds=1)


def _records(pack: Pack, led: Ledger) -> ir.Table:
    """The pack's records with ``_end``: when each stops being visible (the earlier of
    its retention end and its revocation; NULL: never)."""
    recs = in_scope(pack, led.records)
    rev = led.revocations.select(_rtarget=led.revocations.target_record_id, _rat="revoked_at")
    t = recs.left_join(rev, recs.record_id == rev._rtarget).drop("_rtarget")
    t = with_retention_end(pack, led, t)
    end = ibis.cases(
        (t._rat.isnull(), t.retention_end),
        (t.retention_end.isnull(), t._rat),
        else_=ibis.least(t._rat, t.retention_end),
    )
    t = t.mutate(_end=end).drop("_rat")
    return t.filter(t._end.isnull() | (t._end > t.occurred_at))


def _birthdays(t: ir.Table, years: int) -> list[ir.Table]:
    """The instants a person turns ``years`` (00:00 local of the birthday; also the day
    after, for a 29 February birth in a common year)."""
    persons = t.filter(t.birth_date.notnull())
    day = persons.birth_date.cast("timestamp") + ibis.interval(years=years) - LOCAL
    return [_point(persons, day), _point(persons, day + ibis.interval(days=1))]


def _point(t: ir.Table, at: ir.Value) -> ir.Table:
    """(_psid, _at) of one kind of breakpoint, moved to the subject's ``_from``."""
    return t.select(_psid=t.subject_id, _at=ibis.greatest(at.cast("timestamp"), t._from))


def breakpoints(pack: Pack, t: ir.Table) -> ir.Table:
    """(_psid, _at): every instant at which a subject's score in ``pack`` may change
    (``t``: the pack's records of the subjects it may score, with ``_from``)."""
    score = pack.score
    assert score is not None
    parts = [
        _point(t, t.occurred_at),
        _point(t.filter(t._end.notnull()), t._end),
    ]
    windows: dict[int, set[str] | None] = {}
    for rule in score.rules:
        if rule.window_days is not None:
            seen = windows.setdefault(rule.window_days, set())
            if seen is not None:
                seen.add(rule.type)
    features = {f.id: f for f in score.features}
    for f in score.features:
        if f.window_days is not None:
            if not f.types:
                windows[f.window_days] = None
            else:
                seen = windows.setdefault(f.window_days, set())
                if seen is not None:
                    seen.update(f.types)
    for days, types in sorted(windows.items()):
        sel = t if types is None else t.filter(t.type.isin(sorted(types)))
        gone = sel.occurred_at + ibis.interval(days=days) + _TICK
        parts.append(_point(sel, gone))
    if score.min_history is not None:
        hist = score.min_history
        sel = t.filter(t.type.isin(list(hist.types)))
        reached = add_local(sel.occurred_at, ibis.interval(months=hist.months))
        parts.append(_point(sel, reached))
    if score.min_age is not None:
        parts += _birthdays(t, score.min_age)
    if score.scorecard is not None:
        for sf in score.scorecard.features:
            f = features[sf.feature]
            bounds = sorted(
                {
                    math.ceil(v)
                    for b in sf.bins
                    for v in (b.lower, b.upper)
                    if v is not None and math.isfinite(v) and v > 0
                }
            )
            if f.aggregate == "age":
                for years in bounds:
                    parts += _birthdays(t, years)
            elif f.aggregate == "days_since_last":
                sel = t.filter(t.type.isin(list(f.types))) if f.types else t
                for days in bounds:
                    crossed = sel.occurred_at + ibis.interval(days=days)
                    parts.append(_point(sel, crossed))
    out = union_all([p.select(_psid=p._psid, _at=p._at.cast("timestamp")) for p in parts])
    assert out is not None
    return out.distinct()


def _first_scorable(pack: Pack, t: ir.Table) -> ir.Table:
    """(_fsid, _from): per subject, an instant before which it cannot be scored (the
    pack's effective date, its first consent grant, its first minimum history, its
    coming of age); subjects that can never be scored (no grant, no history record,
    a kind the pack does not score) are left out. Breakpoints before it are moved to
    it: on those intervals there is no score, which one breakpoint says as well."""
    score = pack.score
    assert score is not None
    start = ibis.literal(local_midnight(pack.meta.effective_from))
    t = t.filter(t.subject_kind.isin(list(score.subject_kinds)))
    bounds: dict[str, ir.Value] = {"_kind": t.subject_kind.max()}
    if score.consent_required:
        hit = (t.type == CONSENT_GRANTED) & (attr(t, "system") == pack.system)
        bounds["_grant"] = ibis.cases((hit, t.occurred_at), else_=None).min()
    if score.min_history is not None:
        hist = score.min_history
        reached = add_local(t.occurred_at, ibis.interval(months=hist.months))
        hit = t.type.isin(list(hist.types))
        bounds["_hist"] = ibis.cases((hit, reached), else_=None).min()
    if score.min_age is not None:
        bounds["_adult"] = (
            t.birth_date.cast("timestamp") + ibis.interval(years=score.min_age) - LOCAL
        ).min()
    g = t.group_by("subject_id").aggregate(**bounds)
    for c in ("_grant", "_hist"):
        if c in g.columns:
            g = g.filter(g[c].notnull())
    froms = [start, *(g[c] for c in ("_grant", "_hist") if c in g.columns)]
    if "_adult" in g.columns:
        froms.append(ibis.cases((g._kind == "person", g._adult), else_=start).fill_null(start))
    return g.select(_fsid=g.subject_id, _from=ibis.greatest(*froms))


def score_timeline(pack: Pack, led: Ledger) -> ir.Table:
    """The pack's scores and grades as intervals (COLUMNS), as known at ``led.known_at``.

    ``led`` must see every known record (as_of at or after the last occurrence, which
    ``known_at`` is: intake refuses conduct recorded before it occurred)."""
    assert pack.score is not None
    t = boundary(_records(pack, led), "tlall")
    first = _first_scorable(pack, t)
    t = t.join(first, t.subject_id == first._fsid).drop("_fsid")
    # The score conditions as columns, once per record rather than once per record and
    # breakpoint, and one column each in the SQL instead of the condition in every rule.
    t = boundary(conditions(pack, t), "tlrec")
    points = boundary(breakpoints(pack, t), "tlbp")
    vis = t.join(
        points,
        [
            t.subject_id == points._psid,
            t.occurred_at <= points[AT],
            t._end.isnull() | (points[AT] < t._end),
        ],
    ).drop("_psid", "_from")
    at_led = replace(led, timeline=True)
    parts, spec = subject_parts(pack, at_led, vis)
    scored = scores_of(pack, parts, spec)
    scored = scored.select(_ssid=scored.subject_id, _sat=scored[AT], score="score", grade="grade")
    j = points.left_join(scored, [points._psid == scored._ssid, points[AT] == scored._sat])
    j = j.select(subject_id=j._psid, _at=j[AT], score=j.score, grade=j.grade)
    w = ibis.window(group_by=j.subject_id, order_by=j[AT])
    j = j.mutate(
        _first=ibis.row_number().over(w) == 0,
        _pscore=j.score.lag().over(w),
        _pgrade=j.grade.lag().over(w),
    )
    same = j.score.identical_to(j._pscore) & j.grade.identical_to(j._pgrade)
    changes = j.filter(j._first | ~same)
    w = ibis.window(group_by=changes.subject_id, order_by=changes[AT])
    changes = changes.mutate(valid_to=changes[AT].lead().over(w))
    kept = changes.filter(changes.score.notnull())
    return kept.select(
        system=ibis.literal(pack.system),
        subject_id=kept.subject_id,
        valid_from=kept[AT],
        valid_to=kept.valid_to,
        score=kept.score.cast("float64"),
        grade=kept.grade.cast("string"),
    )


def grade_periods(timeline: ir.Table) -> ir.Table:
    """Per system and subject, the periods of one grade (consecutive score intervals
    with the same grade merged): system, subject_id, grade, since, until."""
    t = timeline.filter(timeline.grade.notnull())
    w = ibis.window(group_by=[t.system, t.subject_id], order_by=t.valid_from)
    starts = (
        (ibis.row_number().over(w) == 0)
        | (t.grade != t.grade.lag().over(w))
        | t.valid_to.lag().over(w).isnull()
        | (t.valid_to.lag().over(w) != t.valid_from)
    )
    t = t.mutate(_start=ibis.cases((starts, 1), else_=0))
    cum = ibis.window(
        group_by=[t.system, t.subject_id], order_by=t.valid_from, preceding=None, following=0
    )
    t = t.mutate(_period=t._start.sum().over(cum))
    g = t.group_by(["system", "subject_id", "_period"]).aggregate(
        grade=t.grade.max(),
        since=t.valid_from.min(),
        _open=t.valid_to.isnull().any(),
        _last=t.valid_to.max(),
    )
    until = ibis.cases((g._open, ibis.null("timestamp")), else_=g._last)
    return g.select("system", "subject_id", "grade", "since", until=until)
