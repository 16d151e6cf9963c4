"""Scores and grades: one grouped pass over a system's visible records.

Every points rule (and every scorecard feature) is one CASE column of a single
``GROUP BY subject_id`` aggregate; only rules with ``max_count`` need a ranked
pass, and only over the records of their own type. The population is every
subject with at least one visible record in the system's scope; consent,
``min_age`` (persons only) and ``subject_kinds`` then decide who is scored.

Decisions the schema leaves open: a window of N days counts records that
occurred at or after ``as_of - N days``; a record whose ``multiplier`` is NULL
does not count; consent is the later of the latest grant and the latest
withdrawal for this system (a withdrawal at the same instant wins); ties in
``max_count`` recency go to the larger record_id. A rule counts records that
occurred on or after its ``applies_from`` (default: the pack's effective date);
``min_history`` ("insufficient data") is one more condition on who is scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import ibis
import ibis.expr.types as ir

from xinyong.engine.features import (
    bin_points,
    feature_metric,
    feature_value,
    holds,
    with_conditions,
)
from xinyong.engine.scope import (
    AT,
    CONSENT_GRANTED,
    CONSENT_WITHDRAWN,
    Ledger,
    add_local,
    age_at_instant,
    attr,
    both,
    days_before,
    now,
    record_resolver,
    subject_keys,
)
from xinyong.packs.expressions import parse, to_ibis
from xinyong.packs.schema import Pack, Score, ScoreRule
from xinyong.timeutil import local_midnight


@dataclass(frozen=True)
class Part:
    """One column of points in the subject aggregate: a rule or a scorecard feature."""

    column: str
    rule_id: str
    dimension: str | None
    description: str
    best: float  # the most a subject could get from it (0 for a deduction rule)


def rule_match(rule: ScoreRule, t: ir.Table, led: Ledger, *, since: date | None = None) -> Any:
    """Whether a record counts for ``rule``; ``since``: the first local day it applies
    to (``Pack.applies_from``: the rule's own, else the pack's effective date)."""
    cond = both(t.type == rule.type, holds(rule.when, t))
    first = since or rule.applies_from
    if first is not None:
        cond = cond & (t.occurred_at >= local_midnight(first))
    if rule.window_days is not None:
        cond = cond & (t.occurred_at >= days_before(now(led, t), rule.window_days))
    if rule.multiplier is not None:
        cond = cond & rule_points(rule, t).notnull()
    return cond


def rule_points(rule: ScoreRule, t: ir.Table) -> ir.Value:
    if rule.multiplier is None:
        return ibis.literal(float(rule.points))
    factor = to_ibis(parse(rule.multiplier), record_resolver(t))
    return (ibis.literal(float(rule.points)) * factor).cast("float64")


def counted(rule: ScoreRule, led: Ledger, vis: ir.Table, *, since: date | None = None) -> ir.Table:
    """The records a rule counts (``episode``: the deepest of each episode;
    ``max_count``: the most recent ones)."""
    t = vis.filter(rule_match(rule, vis, led, since=since))
    t = t.mutate(points=rule_points(rule, t))
    if rule.episode is not None:
        t = _deepest_per_episode(rule, led, vis, t)
    if rule.max_count is None:
        return t
    w = ibis.window(
        group_by=[t[k] for k in subject_keys(led)],
        order_by=[t.occurred_at.desc(), t.record_id.desc()],
    )
    ranked = t.mutate(_rank=ibis.row_number().over(w))
    return ranked.filter(ranked._rank < rule.max_count).drop("_rank")


def _deepest_per_episode(rule: ScoreRule, led: Ledger, vis: ir.Table, t: ir.Table) -> ir.Table:
    """Of the records of one episode (same subject and ``episode.key``, no ending record
    between them), the one with the most points in absolute value (ties: the most
    recent). An ending record at the same instant as a report closes the episode
    the report belongs to; a record without the key is an episode of its own."""
    assert rule.episode is not None
    ep = rule.episode
    key = attr(t, ep.key).cast("string")
    t = t.mutate(_epkey=ibis.coalesce(key, "#" + t.record_id))
    enders = vis.filter(vis.type.isin(list(ep.ended_by)))
    # On a timeline every row carries its instant: episodes are counted per instant.
    at = led.timeline
    enders = enders.select(
        _esid=enders.subject_id,
        _ekey=attr(enders, ep.key).cast("string"),
        _eocc=enders.occurred_at,
        _eat=enders[AT] if at else ibis.literal(0),
    )
    pairs = t.select(
        _rid=t.record_id,
        _sid=t.subject_id,
        _k=t._epkey,
        _occ=t.occurred_at,
        _pat=t[AT] if at else ibis.literal(0),
    )
    on = [pairs._sid == enders._esid, pairs._k == enders._ekey, enders._eocc < pairs._occ]
    pairs = pairs.left_join(enders, [*on, pairs._pat == enders._eat] if at else on)
    episodes = pairs.group_by(["_rid", "_pat"]).aggregate(_episode=pairs._eocc.count())
    on = [t.record_id == episodes._rid]
    t = t.left_join(episodes, [*on, t[AT] == episodes._pat] if at else on).drop("_rid", "_pat")
    w = ibis.window(
        group_by=[t.subject_id, t._epkey, t._episode, *([t[AT]] if at else [])],
        order_by=[t.points.abs().desc(), t.occurred_at.desc(), t.record_id.desc()],
    )
    t = t.mutate(_deep=ibis.row_number().over(w))
    return t.filter(t._deep == 0).drop("_deep", "_epkey", "_episode")


def conditions(pack: Pack, vis: ir.Table) -> ir.Table:
    """``vis`` with the pack's score conditions as columns (``features.with_conditions``)."""
    score = pack.score
    if score is None:
        return vis
    return with_conditions(vis, [r.when for r in score.rules] + [f.when for f in score.features])


def _aggregate(pack: Pack, led: Ledger, vis: ir.Table, metrics: dict[str, Any]) -> ir.Table:
    """Group the visible records by subject with ``metrics``; keep the scored subjects."""
    score = pack.score
    assert score is not None
    base: dict[str, Any] = {"_kind": vis.subject_kind.max(), "_birth": vis.birth_date.max()}
    if score.consent_required:
        mine = attr(vis, "system") == pack.system
        for name, ty in (("_granted", CONSENT_GRANTED), ("_withdrawn", CONSENT_WITHDRAWN)):
            hit = (vis.type == ty) & mine
            base[name] = ibis.cases((hit, vis.occurred_at), else_=None).max()
    if score.min_history is not None:
        hist = score.min_history
        old_enough = add_local(vis.occurred_at, ibis.interval(months=hist.months)) <= now(led, vis)
        base["_history"] = ibis.cases(
            (vis.type.isin(list(hist.types)) & old_enough, 1), else_=0
        ).sum()
    agg = vis.group_by(subject_keys(led)).aggregate(**base, **metrics)
    return agg.filter(eligible(score, agg, led))


def feature_values(pack: Pack, led: Ledger, vis: ir.Table) -> ir.Table:
    """subject_id plus one float64 column per feature (named by its id), scored subjects only."""
    score = pack.score
    assert score is not None
    metrics = {
        f"_m{i}": feature_metric(f, vis, now(led, vis)) for i, f in enumerate(score.features)
    }
    agg = _aggregate(pack, led, vis, metrics)
    values = {
        f.id: feature_value(f, agg[f"_m{i}"], now(led, agg)) for i, f in enumerate(score.features)
    }
    return agg.select(subject_id=agg.subject_id, **values)


def subject_parts(pack: Pack, led: Ledger, vis: ir.Table) -> tuple[ir.Table, list[Part]]:
    """Scored subjects: subject_id plus one points column per rule or feature."""
    score = pack.score
    assert score is not None
    metrics: dict[str, Any] = {}
    parts: list[Part] = []
    ranked: list[tuple[str, ir.Table]] = []
    features = {f.id: f for f in score.features}
    if score.scorecard is not None:
        # The feature's value (not only its aggregate) is computed in the aggregation:
        # each bin then reads a column. Computed after it, the value's expression (days
        # since, an age) was inlined in every bin's bounds, three times per bin: the
        # commercial pack's plan was 180 kB of SQL, most of a replay's binding time.
        at = vis[AT].max() if led.timeline else led.as_of  # the group's instant
        for i, sf in enumerate(score.scorecard.features):
            f = features[sf.feature]
            metrics[f"_m{i}"] = feature_value(f, feature_metric(f, vis, now(led, vis)), at)
    else:
        for i, rule in enumerate(score.rules):
            since = pack.applies_from(rule)
            if rule.max_count is None and rule.episode is None:
                hit = rule_match(rule, vis, led, since=since)
                metrics[f"_s{i}"] = ibis.cases((hit, rule_points(rule, vis)), else_=None).sum()
            else:
                c = counted(rule, led, vis, since=since)
                ranked.append(
                    (f"_s{i}", c.group_by(subject_keys(led)).aggregate(_v=c.points.sum()))
                )
    agg = _aggregate(pack, led, vis, metrics)
    for col, sums in ranked:
        if led.timeline:
            sums = sums.rename(_sid="subject_id", _sat=AT)
            on = [agg.subject_id == sums._sid, agg[AT] == sums._sat]
            agg = agg.left_join(sums, on).drop("_sid", "_sat").rename({col: "_v"})
        else:
            sums = sums.rename(_sid="subject_id")
            agg = agg.left_join(sums, agg.subject_id == sums._sid).drop("_sid").rename({col: "_v"})
    out: dict[str, Any] = {"subject_id": agg.subject_id}
    if led.timeline:
        out[AT] = agg[AT]
    if score.scorecard is not None:
        for i, sf in enumerate(score.scorecard.features):
            f = features[sf.feature]
            out[f"p{i}"] = bin_points(sf, agg[f"_m{i}"])
            best = max((b.points for b in sf.bins), default=0.0)
            parts.append(Part(f"p{i}", f.id, f.dimension, f.description, best))
    else:
        for i, rule in enumerate(score.rules):
            total = agg[f"_s{i}"].fill_null(0.0).cast("float64")
            if rule.cap_points is not None:
                total = total.clip(-rule.cap_points, rule.cap_points)
            out[f"p{i}"] = total
            parts.append(Part(f"p{i}", rule.id, None, rule.note or rule.id, 0.0))
    return agg.select(**out), parts


def eligible(score: Score, agg: ir.Table, led: Ledger) -> Any:
    cond = agg._kind.isin(list(score.subject_kinds))
    if score.min_age is not None:
        old_enough = (age_at_instant(agg._birth, now(led, agg)) >= score.min_age).fill_null(False)
        cond = cond & ((agg._kind != "person") | old_enough)
    if score.consent_required:
        cond = cond & (
            agg._granted.notnull()
            & (agg._withdrawn.isnull() | (agg._granted > agg._withdrawn)).fill_null(False)
        )
    if score.min_history is not None:
        cond = cond & (agg._history > 0)
    return cond


def scores_of(pack: Pack, parts: ir.Table, spec: list[Part]) -> ir.Table:
    score = pack.score
    assert score is not None
    start = score.scorecard.offset if score.scorecard is not None else score.base
    total: Any = ibis.literal(float(start))
    for p in spec:
        total = total + parts[p.column]
    if score.min_score is not None or score.max_score is not None:
        total = total.clip(score.min_score, score.max_score)
    value = total.cast("float64")
    at = {AT: parts[AT]} if AT in parts.columns else {}
    t = parts.select(
        system=ibis.literal(pack.system), subject_id=parts.subject_id, **at, score=value
    )
    return t.mutate(grade=grade_of(score, t.score))


def grade_of(score: Score, value: ir.Value) -> ir.Value:
    branches = []
    for band in score.grades:
        cond = ibis.literal(True) if band.min is None else (value >= band.min)
        branches.append((cond, ibis.literal(band.grade)))
    if not branches:
        return ibis.null("string")
    return ibis.cases(*branches, else_=ibis.null("string"))
