"""Population stability: how far today's scores and features have moved from the
training population.

PSI (population stability index) over score bands and CSI (the same index
over one feature's bins): sum over bands of (a - e) * ln(a / e), with e the
training share of a band and a the share now. The usual reading (Siddiqi,
*Credit Risk Scorecards*, 2006; Yurdakul, 2018): below 0.1 stable, 0.1 to 0.25
watch, above 0.25 act.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from xinyong.model.scoring import bin_index
from xinyong.packs.schema import ScorecardFeature

BAND_WIDTH = 50.0  # points per score band
SMALLEST_SHARE = 1e-4  # an empty band counts as this share, so the logarithm is finite

STABLE, WATCH = 0.1, 0.25
ACTIONS = {
    "stable": "none (keep monitoring)",
    "watch": "investigate the shift (population, products, data feeds); monitor monthly",
    "act": "the population has moved: validate the model on recent outcomes and retrain"
    " or recalibrate it",
}


def band_edges(low: float, high: float, width: float = BAND_WIDTH) -> list[float]:
    """Score band edges from ``low`` to ``high`` (the last band holds ``high``)."""
    n = max(1, int(np.ceil((high - low) / width)))
    return [low + i * width for i in range(n)] + [high]


def band_shares(scores: np.ndarray, edges: list[float]) -> list[float]:
    """Share of scores in each band [edges[i], edges[i+1]), the last one closed."""
    s = np.clip(np.asarray(scores, dtype="float64"), edges[0], edges[-1])
    idx = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(idx, minlength=len(edges) - 1)
    return _shares(counts)


def bin_shares(feature: ScorecardFeature, values: pd.Series | np.ndarray) -> list[float]:
    """Share of values in each of the feature's bins (in the bins' order)."""
    idx = bin_index(feature, values)
    counts = np.bincount(idx[idx >= 0], minlength=len(feature.bins))
    return _shares(counts)


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    if total == 0:
        return [0.0] * len(counts)
    return [round(float(c) / float(total), 6) for c in counts]


def stability_terms(expected: list[float], actual: list[float]) -> list[float]:
    """Each band's term (a - e) ln(a / e) of the index."""
    if len(expected) != len(actual):
        raise ValueError("the training and current distributions have different bands")
    e = np.maximum(np.asarray(expected, dtype="float64"), SMALLEST_SHARE)
    a = np.maximum(np.asarray(actual, dtype="float64"), SMALLEST_SHARE)
    return [float(t) for t in (a - e) * np.log(a / e)]


def stability_index(expected: list[float], actual: list[float]) -> float:
    return float(sum(stability_terms(expected, actual)))


def status(index: float) -> str:
    if index < STABLE:
        return "stable"
    return "watch" if index <= WATCH else "act"


@dataclass(frozen=True)
class Stability:
    """One distribution compared: the index, its reading and the named action."""

    name: str
    index: float
    status: str
    action: str
    expected: list[float]
    actual: list[float]
    terms: list[float]

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "index": round(self.index, 6),
            "status": self.status,
            "action": self.action,
            "expected": self.expected,
            "actual": [round(a, 6) for a in self.actual],
            "terms": [round(t, 6) for t in self.terms],
        }


def compare(name: str, expected: list[float], actual: list[float]) -> Stability:
    terms = stability_terms(expected, actual)
    index = float(sum(terms))
    st = status(index)
    return Stability(name, index, st, ACTIONS[st], list(expected), list(actual), terms)
