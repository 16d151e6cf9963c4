"""Disparity: what a scorecard's features do to groups it must not treat apart.

Groups (sex, age band, province, or any column of a table) are measured, never
used as features. For each group at the cut-off score: the approval rate (a
score at or above the cut-off), the adverse impact ratio (the group's approval
rate over the highest group's, flagged below 0.8: the "four-fifths rule" of
the US EEOC Uniform Guidelines, 29 CFR 1607.4(D), the usual yardstick), and,
where outcomes are known, the bad rate among the approved, the AUC within the
group and the calibration (observed against predicted bad rate).

Groups read from a Chinese identity number (GB 11643-1999): the first two
digits are the province of registration (GB/T 2260), the 17th digit is odd
for men and even for women, and digits 7-14 are the birth date.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from xinyong.model.scoring import discrimination

IMPACT_THRESHOLD = 0.8
MIN_GROUP_ROWS = 30  # smaller groups are shown but not flagged: their rates are noise

# GB/T 2260 province-level codes (first two digits of an identity number).
PROVINCES = {
    "11": "Beijing", "12": "Tianjin", "13": "Hebei", "14": "Shanxi", "15": "Inner Mongolia",
    "21": "Liaoning", "22": "Jilin", "23": "Heilongjiang", "31": "Shanghai", "32": "Jiangsu",
    "33": "Zhejiang", "34": "Anhui", "35": "Fujian", "36": "Jiangxi", "37": "Shandong",
    "41": "Henan", "42": "Hubei", "43": "Hunan", "44": "Guangdong", "45": "Guangxi",
    "46": "Hainan", "50": "Chongqing", "51": "Sichuan", "52": "Guizhou", "53": "Yunnan",
    "54": "Tibet", "61": "Shaanxi", "62": "Gansu", "63": "Qinghai", "64": "Ningxia",
    "65": "Xinjiang", "71": "Taiwan", "81": "Hong Kong", "82": "Macao",
}  # fmt: skip
AGE_BANDS = ((18, "18-24"), (25, "25-34"), (35, "35-44"), (45, "45-54"), (55, "55-64"),
             (65, "65+"))  # fmt: skip


def sex_of(identity: str) -> str | None:
    if len(identity) != 18 or not identity[16].isdigit():
        return None
    return "male" if int(identity[16]) % 2 else "female"


def province_of(identity: str) -> str | None:
    if len(identity) != 18:
        return None
    return PROVINCES.get(identity[:2], f"code {identity[:2]}")


def age_band(age: float | None) -> str | None:
    if age is None or np.isnan(age):
        return None
    label = None
    for lower, name in AGE_BANDS:
        if age >= lower:
            label = name
    return label or "under 18"


def age_on(identity: str, on: date) -> float | None:
    if len(identity) != 18:
        return None
    try:
        born = date(int(identity[6:10]), int(identity[10:12]), int(identity[12:14]))
    except ValueError:
        return None
    return float(on.year - born.year - ((on.month, on.day) < (born.month, born.day)))


def identity_groups(ids: list[str], on: date) -> dict[str, pd.Series]:
    """Age band (on ``on``), province and sex read from identity numbers."""
    return {
        "age_band": pd.Series([age_band(age_on(i, on)) for i in ids], dtype=object),
        "province": pd.Series([province_of(i) for i in ids], dtype=object),
        "sex": pd.Series([sex_of(i) for i in ids], dtype=object),
    }


@dataclass(frozen=True)
class GroupRow:
    group: str
    rows: int
    approval_rate: float
    impact_ratio: float
    flagged: bool
    mean_score: float
    predicted_bad_rate: float
    bad_rate_approved: float | None = None
    observed_bad_rate: float | None = None
    auc: float | None = None


def disparity(
    scores: np.ndarray,
    groups: pd.Series,
    *,
    cutoff: float,
    predicted: np.ndarray,
    bad: np.ndarray | None = None,
    name: str = "group",
) -> dict[str, Any]:
    """The disparity table of one grouping (rows with no group are "(unknown)")."""
    labels = groups.astype(object).where(groups.notna(), "(unknown)").astype(str).to_numpy()
    approved = np.asarray(scores) >= cutoff
    found: list[dict[str, Any]] = []
    for g in sorted(set(labels)):
        inside = labels == g
        row: dict[str, Any] = {
            "group": g,
            "rows": int(inside.sum()),
            "approval_rate": float(approved[inside].mean()),
            "mean_score": float(np.mean(scores[inside])),
            "predicted_bad_rate": float(np.mean(predicted[inside])),
        }
        if bad is not None:
            b = bad[inside]
            row["observed_bad_rate"] = float(b.mean())
            ok = approved[inside]
            row["bad_rate_approved"] = float(b[ok].mean()) if ok.any() else None
            both = 0 < b.sum() < len(b)
            row["auc"] = discrimination(b, scores[inside]).auc if both else None
        found.append(row)
    sized = [r for r in found if r["rows"] >= MIN_GROUP_ROWS] or found
    best = max(r["approval_rate"] for r in sized)
    rows = []
    for r in found:
        ratio = r["approval_rate"] / best if best > 0 else 1.0
        flagged = bool(ratio < IMPACT_THRESHOLD and r["rows"] >= MIN_GROUP_ROWS)
        rows.append(GroupRow(impact_ratio=ratio, flagged=flagged, **r))
    return {
        "group": name,
        "cutoff": cutoff,
        "threshold": IMPACT_THRESHOLD,
        "flagged": [r.group for r in rows if r.flagged],
        "groups": [_rounded(asdict(r)) for r in rows],
    }


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()}
