"""Scorecard features: aggregates of a subject's visible records, binned into points.

Values when a subject has no matching record: ``count`` and ``distinct`` are 0;
``sum``, ``max`` and ``days_since_last`` are NULL (the ``missing`` bin);
``age`` is the age at ``as_of`` (NULL for organizations). ``days_since_last``
counts whole days (floor of elapsed seconds / 86400).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from xinyong.engine.scope import age_at_instant, attr, both, condition, days_before
from xinyong.packs.schema import Feature, ScorecardFeature


def when_column(text: str) -> str:
    """The column of ``with_conditions`` that holds condition ``text``."""
    return "_when_" + hashlib.sha1(text.encode()).hexdigest()[:12]


def with_conditions(t: ir.Table, texts: list[str | None]) -> ir.Table:
    """``t`` plus one boolean column per distinct condition text: rules and features
    that share a condition (every Rongcheng rule counts conduct at 18 or older)
    then read one column instead of each computing it again."""
    distinct = sorted({x for x in texts if x is not None})
    return t.mutate(**{when_column(x): condition(x, t) for x in distinct}) if distinct else t


def holds(text: str | None, t: ir.Table) -> ir.BooleanValue | None:
    """A pack condition on the rows of ``t`` (its ``with_conditions`` column if any)."""
    if text is not None and when_column(text) in t.columns:
        return t[when_column(text)]
    return condition(text, t)


def feature_filter(f: Feature, t: ir.Table, as_of: datetime | ir.Value) -> Any:
    cond = t.type.isin(list(f.types)) if f.types else None
    cond = both(cond, holds(f.when, t))
    if f.window_days is not None:
        cond = both(cond, t.occurred_at >= days_before(as_of, f.window_days))
    return cond if cond is not None else ibis.literal(True)


def feature_metric(f: Feature, t: ir.Table, as_of: datetime | ir.Value) -> ir.Value:
    """The grouped aggregate behind a feature (one column of the subject aggregate)."""
    cond = feature_filter(f, t, as_of)
    if f.aggregate == "count":
        return ibis.cases((cond, 1), else_=0).sum()
    if f.aggregate == "age":
        return t.birth_date.max()
    if f.aggregate == "days_since_last":
        return ibis.cases((cond, t.occurred_at), else_=ibis.null("timestamp")).max()
    value = attr(t, f.attribute or "")
    picked = ibis.cases((cond, value), else_=ibis.null())
    if f.aggregate == "sum":
        return picked.sum()
    if f.aggregate == "max":
        return picked.max()
    return picked.nunique()  # distinct


def feature_value(f: Feature, metric: ir.Value, as_of: datetime | ir.Value) -> ir.Value:
    """Turn the aggregate into the feature value (float64)."""
    if f.aggregate == "age":
        return age_at_instant(metric, as_of).cast("float64")
    if f.aggregate == "days_since_last":
        start = ibis.literal(as_of) if isinstance(as_of, datetime) else as_of
        seconds = start.epoch_seconds() - metric.epoch_seconds()
        return (seconds / 86400).floor().cast("float64")
    if f.aggregate in ("count", "distinct"):
        return metric.fill_null(0).cast("float64")
    return metric.cast("float64")


def bin_points(sf: ScorecardFeature, value: ir.Value) -> ir.Value:
    """Points of the first bin holding ``value`` ([lower, upper), or one of a
    categorical bin's values); a value no bin holds earns 0, or the missing bin's
    points when the feature is categorical (a category unseen in training)."""
    branches = []
    unseen = 0.0
    for b in sf.bins:
        if b.missing:
            branches.append((value.isnull(), ibis.literal(float(b.points))))
            continue
        cond = value.notnull()
        if b.values is not None:
            # Feature values are numbers here, so only numeric categories can match.
            numbers = [float(v) for v in b.values if not isinstance(v, str)]
            cond = cond & value.isin(numbers) if numbers else ibis.literal(False)
        if b.lower is not None:
            cond = cond & (value >= b.lower)
        if b.upper is not None:
            cond = cond & (value < b.upper)
        branches.append((cond, ibis.literal(float(b.points))))
    if any(b.values is not None for b in sf.bins):
        unseen = next((float(b.points) for b in sf.bins if b.missing), 0.0)
    if not branches:
        return ibis.literal(0.0)
    return ibis.cases(*branches, else_=ibis.literal(unseen))


def best_points(sf: ScorecardFeature) -> float:
    return max((b.points for b in sf.bins), default=0.0)
