"""Validating a scorecard on a labelled table: the numbers of the validation report.

Conventions: the target is 1 for bad; a higher score means less risk, so the
ROC curve ranks by the negated score. WoE of a bin = ln(share of all goods in
the bin / share of all bads in the bin) (optbinning's sign: risky bins are
negative); IV = sum over bins of (good share - bad share) * WoE; KS = the
largest gap between the cumulative score distributions of bads and goods.
Predicted bad rates come from the model's pdo/odds scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from xinyong.model.drift import band_edges
from xinyong.model.scoring import bin_index, clamp, discrimination, raw_scores
from xinyong.model.train import probability_of_bad
from xinyong.packs.schema import ScorecardBin, ScorecardFeature

WOE_FLOOR = 0.5  # counts below this are taken as 0.5 so that an empty side has a finite WoE


def bin_label(b: ScorecardBin, categorical: bool = False) -> str:
    if b.missing:
        return "missing or unseen" if categorical else "missing"
    if b.values is not None:
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in b.values)
    lo = "−∞" if b.lower is None else _number(b.lower)
    hi = "∞" if b.upper is None else _number(b.upper)
    return f"[{lo}, {hi})"


def _number(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 10_000 and x == int(x) else f"{x:g}"


@dataclass(frozen=True)
class BinRow:
    label: str
    points: float
    count: int
    share: float
    bads: int
    event_rate: float | None
    woe: float
    iv: float


@dataclass(frozen=True)
class FeatureBinning:
    feature: str
    kind: str
    iv: float
    rows: list[BinRow]


@dataclass(frozen=True)
class CalibrationRow:
    lower: float
    upper: float
    count: int
    observed: float
    predicted: float


@dataclass
class Validation:
    rows: int
    bads: int
    bad_rate: float
    auc: float
    gini: float
    ks: float
    ks_score: float
    mean_score: float
    roc: tuple[list[float], list[float]]
    scores: np.ndarray = field(repr=False)
    target: np.ndarray = field(repr=False)
    calibration: list[CalibrationRow]
    binning: list[FeatureBinning]
    grades: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "bads": self.bads,
            "bad_rate": round(self.bad_rate, 6),
            "auc": round(self.auc, 6),
            "gini": round(self.gini, 6),
            "ks": round(self.ks, 6),
            "ks_score": self.ks_score,
            "mean_score": round(self.mean_score, 3),
            "grades": self.grades,
            "calibration": [
                {**c.__dict__, "observed": round(c.observed, 6), "predicted": round(c.predicted, 6)}
                for c in self.calibration
            ],
            "binning": [
                {
                    "feature": f.feature,
                    "kind": f.kind,
                    "iv": round(f.iv, 6),
                    "bins": [
                        {
                            **r.__dict__,
                            "share": round(r.share, 6),
                            "event_rate": None if r.event_rate is None else round(r.event_rate, 6),
                            "woe": round(r.woe, 6),
                            "iv": round(r.iv, 6),
                        }
                        for r in f.rows
                    ],
                }
                for f in self.binning
            ],
        }


def ks_statistic(bad: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(KS, the score where the gap is largest)."""
    order = np.sort(np.unique(scores))
    s_bad, s_good = np.sort(scores[bad == 1]), np.sort(scores[bad == 0])
    cdf_bad = np.searchsorted(s_bad, order, side="right") / max(1, len(s_bad))
    cdf_good = np.searchsorted(s_good, order, side="right") / max(1, len(s_good))
    gap = np.abs(cdf_bad - cdf_good)
    i = int(np.argmax(gap))
    return float(gap[i]), float(order[i])


def feature_binning(sf: ScorecardFeature, values: pd.Series, bad: np.ndarray) -> FeatureBinning:
    idx = bin_index(sf, values)
    categorical = any(b.values is not None for b in sf.bins)
    n_bad_all, n_good_all = max(1, int(bad.sum())), max(1, int(len(bad) - bad.sum()))
    rows: list[BinRow] = []
    for i, b in enumerate(sf.bins):
        inside = idx == i
        count, bads = int(inside.sum()), int(bad[inside].sum())
        goods = count - bads
        good_share = max(goods, WOE_FLOOR) / n_good_all
        bad_share = max(bads, WOE_FLOOR) / n_bad_all
        woe = float(np.log(good_share / bad_share)) if count else 0.0
        iv = (goods / n_good_all - bads / n_bad_all) * woe if count else 0.0
        rows.append(
            BinRow(
                label=bin_label(b, categorical),
                points=b.points,
                count=count,
                share=count / max(1, len(bad)),
                bads=bads,
                event_rate=bads / count if count else None,
                woe=woe,
                iv=float(iv),
            )
        )
    kind = "categorical" if categorical else "numeric"
    return FeatureBinning(sf.feature, kind, float(sum(r.iv for r in rows)), rows)


def calibration(
    scores: np.ndarray, bad: np.ndarray, predicted: np.ndarray, *, low: float, high: float
) -> list[CalibrationRow]:
    """Observed and predicted bad rate per 50-point score band (bands with rows)."""
    edges = band_edges(low, high)
    idx = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, len(edges) - 2)
    out = []
    for i in range(len(edges) - 1):
        inside = idx == i
        if inside.any():
            out.append(
                CalibrationRow(
                    lower=edges[i],
                    upper=edges[i + 1],
                    count=int(inside.sum()),
                    observed=float(bad[inside].mean()),
                    predicted=float(predicted[inside].mean()),
                )
            )
    return out


def predicted_bad_rate(model: Any, scores: np.ndarray) -> np.ndarray:
    """The bad rate each score stands for on the model's scale (pdo 50 and 600 at
    20:1 when the model file does not say)."""
    t = model.training
    pdo = t.pdo if t else (model.scorecard.pdo or 50.0)
    return probability_of_bad(
        scores,
        pdo=pdo,
        base_score=t.base_score if t else 600.0,
        base_odds=t.base_odds if t else 20.0,
    )


def validate(model: Any, features: pd.DataFrame, bad: np.ndarray) -> Validation:
    """Every number of the report for ``model`` (a TrainedModel) on a labelled table."""
    from xinyong.model.scoring import grade_of

    card = model.scorecard
    low, high = model.score_range.min, model.score_range.max
    scores = clamp(raw_scores(card, features), low, high)
    result = discrimination(bad, scores)
    fpr, tpr, _ = roc_curve(bad, -scores)
    ks, ks_score = ks_statistic(bad, scores)
    grades: dict[str, int] = {band.grade: 0 for band in model.grades}
    for s in scores:
        g = grade_of(float(s), model.grades)
        if g is not None:
            grades[g] += 1
    return Validation(
        rows=result.rows,
        bads=int(bad.sum()),
        bad_rate=result.bad_rate,
        auc=result.auc,
        gini=result.gini,
        ks=ks,
        ks_score=ks_score,
        mean_score=float(scores.mean()),
        roc=([float(v) for v in fpr], [float(v) for v in tpr]),
        scores=scores,
        target=bad,
        calibration=calibration(scores, bad, predicted_bad_rate(model, scores), low=low, high=high),
        binning=[feature_binning(sf, features[sf.feature], bad) for sf in card.features],
        grades=grades,
    )
