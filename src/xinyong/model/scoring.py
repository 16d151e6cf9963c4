"""Applying a pack scorecard to a feature table: scores, grades, reason codes, metrics.

This is the reference arithmetic of ``score.scorecard`` (schema.py): a feature
value falls in the first bin with ``lower <= value < upper`` (a missing bound
is unbounded) or, for a categorical feature, in the first bin that lists it; a
subject with no value takes the ``missing: true`` bin; a value no bin holds
earns 0 points, or the missing bin's points for a categorical feature (an
unseen category), as in ``xinyong.engine.features``; score = clamp(offset +
the sum of the bin points).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from xinyong.packs.schema import GradeBand, Scorecard, ScorecardFeature

# SOURCES.md §4 (Sesame Credit): range 350–950 and the five published tiers.
SCORE_MIN = 350.0
SCORE_MAX = 950.0
TIERS: tuple[GradeBand, ...] = (
    GradeBand(grade="excellent", min=700),
    GradeBand(grade="very_good", min=650),
    GradeBand(grade="good", min=600),
    GradeBand(grade="fair", min=550),
    GradeBand(grade="poor", min=350),
)


def category_key(value: object) -> float | str | None:
    """How a categorical value is compared: numbers as float, text stripped, an
    empty cell or NaN as missing (None). Words such as "none" are categories."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, str):
        text = value.strip()
        return text or None
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.number):
        x = float(value)
        return None if np.isnan(x) else x
    return str(value)


def is_categorical(feature: ScorecardFeature) -> bool:
    return any(b.values is not None for b in feature.bins)


def _categorical_points(feature: ScorecardFeature, values: pd.Series | np.ndarray) -> np.ndarray:
    keys = [category_key(v) for v in pd.Series(values, dtype=object)]
    missing = next((b.points for b in feature.bins if b.missing), 0.0)
    table: dict[float | str, float] = {}
    for b in feature.bins:
        for v in b.values or ():
            table.setdefault(category_key(v) or "", b.points)  # first bin listing it wins
    # An unseen category takes the missing bin (as the engine).
    return np.array([missing if k is None else table.get(k, missing) for k in keys], dtype=float)


def feature_points(feature: ScorecardFeature, values: pd.Series | np.ndarray) -> np.ndarray:
    """Points each value earns on one scorecard feature."""
    if is_categorical(feature):
        return _categorical_points(feature, values)
    x = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype="float64")
    present = ~np.isnan(x)
    points = np.zeros(len(x))
    assigned = np.zeros(len(x), dtype=bool)
    # The first bin holding a value wins; a value no bin holds earns 0 (as the engine).
    for b in feature.bins:
        mask = ~present if b.missing else present.copy()
        if not b.missing:
            if b.lower is not None:
                mask &= x >= b.lower
            if b.upper is not None:
                mask &= x < b.upper
        mask &= ~assigned
        points[mask] = b.points
        assigned |= mask
    return points


def bin_index(feature: ScorecardFeature, values: pd.Series | np.ndarray) -> np.ndarray:
    """The index of the bin each value falls in (-1: none), with the rules of
    ``feature_points``: the binning tables and the drift measures count these."""
    # Points i + 1 for bin i, so that "no bin" (0 points) reads as -1.
    numbered = ScorecardFeature(
        feature=feature.feature,
        bins=[b.model_copy(update={"points": float(i + 1)}) for i, b in enumerate(feature.bins)],
    )
    return feature_points(numbered, values).astype(int) - 1


def raw_scores(scorecard: Scorecard, features: pd.DataFrame) -> np.ndarray:
    """offset + the sum of bin points, before clamping."""
    total = np.full(len(features), float(scorecard.offset))
    for sf in scorecard.features:
        if sf.feature not in features.columns:
            raise KeyError(sf.feature)
        total += feature_points(sf, features[sf.feature])
    return total


def clamp(scores: np.ndarray, low: float = SCORE_MIN, high: float = SCORE_MAX) -> np.ndarray:
    return np.clip(scores, low, high)


def grade_of(score: float, bands: Sequence[GradeBand] = TIERS) -> str | None:
    """The first band (ordered high to low) whose min is <= score."""
    for band in bands:
        if band.min is None or band.min <= score:
            return band.grade
    return None


@dataclass(frozen=True)
class Reason:
    feature: str
    points_lost: float
    value: float | None


def reason_codes(
    scorecard: Scorecard, values: Mapping[str, float | None], n: int = 4
) -> list[Reason]:
    """The features that lowered this subject's score most: the points between the
    feature's best bin and the bin the subject is in, largest first, ties by name."""
    found: list[Reason] = []
    for sf in scorecard.features:
        raw = values.get(sf.feature)
        value = None if raw is None or pd.isna(raw) else float(raw)
        got = float(feature_points(sf, np.array([np.nan if value is None else value]))[0])
        lost = max(b.points for b in sf.bins) - got
        if lost > 0:
            found.append(Reason(sf.feature, lost, value))
    found.sort(key=lambda r: (-r.points_lost, r.feature))
    return found[:n]


@dataclass(frozen=True)
class Discrimination:
    auc: float
    gini: float
    rows: int
    bad_rate: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "auc": round(self.auc, 6),
            "gini": round(self.gini, 6),
            "rows": self.rows,
            "bad_rate": round(self.bad_rate, 6),
        }


def discrimination(bad: np.ndarray, scores: np.ndarray) -> Discrimination:
    """AUC of the score at ranking bad (1) below good (0); Gini = 2 AUC - 1."""
    auc = float(roc_auc_score(bad, -np.asarray(scores, dtype="float64")))
    return Discrimination(auc, 2 * auc - 1, int(len(bad)), float(np.mean(bad)))
