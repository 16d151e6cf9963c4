"""A model against a live registry: drift (``xinyong model monitor``) and
disparity by age band, province and sex (``xinyong model disparity --db``).

The features are the pack's, computed by the engine (``feature_table``) as of
an instant for the subjects the pack may score; the scores are the model's
scorecard applied to them. Outcomes, where asked for, are read from the
records that occurred in the months after that instant, with the definition
the commercial label uses (``xinyong.sim``): a payment 90 or more days past
due, a contract, guarantee or private-lending breach, or a court listing.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xinyong.model.disparity import disparity, identity_groups
from xinyong.model.drift import band_edges, band_shares, bin_shares, compare, status
from xinyong.model.modelfile import TrainedModel
from xinyong.model.scoring import clamp, raw_scores
from xinyong.model.table import ModelInputError
from xinyong.model.validation import predicted_bad_rate
from xinyong.packs.schema import Pack
from xinyong.timeutil import to_local_iso

BAD_TYPES = (
    "finance.contract_breach",
    "finance.guarantee_breach",
    "finance.private_lending_breach",
    "court.listing_decision",
)
DEEP_ARREARS_DAYS = 90
GROUPINGS = ("age_band", "province", "sex")


def _day(at: datetime) -> str:
    """The Shanghai date of an instant, as messages show it."""
    return (to_local_iso(at) or "")[:10]


def pack_for(store: Any, model: TrainedModel, at: datetime, system: str | None) -> Pack:
    """The installed pack that computes the model's features (``system`` if named)."""
    from xinyong.packs.loader import installed_packs

    wanted = {sf.feature for sf in model.scorecard.features}
    packs = installed_packs(store, at)
    for pack in packs:
        if system is not None and pack.system != system:
            continue
        if pack.score is not None and wanted <= {f.id for f in pack.score.features}:
            return pack
    named = f"pack {system!r}" if system else "pack"
    raise ModelInputError(
        f"no installed {named} in force at {_day(at)} computes the model's features"
        f" ({', '.join(sorted(wanted))})"
    )


def registry_features(store: Any, pack: Pack, at: datetime) -> pd.DataFrame:
    from xinyong.engine import feature_table

    # What the registry knows now about the subjects as they stood at `at`.
    return store.ibis.execute(feature_table(store, pack, as_of=at))


def _scores(model: TrainedModel, features: pd.DataFrame) -> np.ndarray:
    return clamp(
        raw_scores(model.scorecard, features), model.score_range.min, model.score_range.max
    )


def population_stability(model: TrainedModel, features: pd.DataFrame) -> dict[str, Any]:
    """PSI over score bands and CSI per feature of ``features`` against the
    training population the model file records."""
    ref = model.reference
    if ref is None:
        raise ModelInputError(
            "the model file has no training distributions (`reference`); retrain it with"
            " this version of `xinyong model train`"
        )
    scores = _scores(model, features)
    edges = band_edges(model.score_range.min, model.score_range.max)
    expected = [b.share for b in ref.score_bands]
    psi = compare("score", expected, band_shares(scores, edges))
    bands = [
        {"lower": b.lower, "upper": b.upper, "expected": e, "actual": round(a, 6)}
        for b, e, a in zip(ref.score_bands, expected, psi.actual, strict=True)
    ]
    csi = [
        compare(sf.feature, ref.features[sf.feature], bin_shares(sf, features[sf.feature]))
        for sf in model.scorecard.features
        if sf.feature in ref.features
    ]
    worst = max([psi.index, *(c.index for c in csi)])
    return {
        "subjects": int(len(features)),
        "training_rows": ref.rows,
        "mean_score": round(float(scores.mean()), 3),
        "status": status(worst),
        "psi": {**psi.as_dict(), "bands": bands},
        "csi": [c.as_dict() for c in csi],
        "thresholds": {"stable": "< 0.1", "watch": "0.1 - 0.25", "act": "> 0.25"},
    }


def monitor(store: Any, model: TrainedModel, at: datetime, system: str | None) -> dict[str, Any]:
    """Drift of the subjects a pack scores at ``at`` from the training population."""
    if model.reference is None:
        population_stability(model, pd.DataFrame())  # raises the missing-reference error
    pack = pack_for(store, model, at, system)
    features = registry_features(store, pack, at)
    if features.empty:
        raise ModelInputError(f"pack {pack.system} scores no subject at {_day(at)}")
    return {"system": pack.system, "at": to_local_iso(at), **population_stability(model, features)}


def outcomes(store: Any, subjects: list[str], at: datetime, months: int) -> np.ndarray | None:
    """1 where the subject defaulted in the ``months`` after ``at`` (the label's
    definition), or None when the registry does not reach that far yet."""
    records = store.table("records")
    until = at + timedelta(days=round(months * 365.25 / 12))
    latest = store.ibis.execute(records.occurred_at.max())
    if latest is None or pd.Timestamp(latest) < pd.Timestamp(until):
        return None
    from xinyong.catalog.vocabulary import attribute_column

    dpd = records[attribute_column("days_past_due")]
    bad = records.filter(
        records.occurred_at > at,
        records.occurred_at <= until,
        records.type.isin(list(BAD_TYPES))
        | ((records.type == "loan.payment_overdue") & (dpd >= DEEP_ARREARS_DAYS)),
    )
    hit = set(store.ibis.execute(bad.select("subject_id").distinct())["subject_id"])
    return np.array([1 if s in hit else 0 for s in subjects], dtype="int8")


def registry_disparity(
    store: Any,
    model: TrainedModel,
    at: datetime,
    system: str | None,
    *,
    cutoff: float,
    outcome_months: int = 12,
) -> dict[str, Any]:
    """Disparity by age band, province and sex (from the identity number)."""
    pack = pack_for(store, model, at, system)
    features = registry_features(store, pack, at)
    if features.empty:
        raise ModelInputError(f"pack {pack.system} scores no subject at {_day(at)}")
    scores = _scores(model, features)
    predicted = predicted_bad_rate(model, scores)
    ids = [str(s) for s in features["subject_id"]]
    bad = outcomes(store, ids, at, outcome_months)
    groups = identity_groups(ids, date.fromisoformat(_day(at)))
    return {
        "system": pack.system,
        "at": to_local_iso(at),
        "subjects": len(ids),
        "outcomes": (
            f"defaults in the {outcome_months} months after {_day(at)}"
            if bad is not None
            else f"not yet observable ({outcome_months} months after {_day(at)} is beyond"
            " the registry's records)"
        ),
        "groupings": [
            disparity(scores, g, cutoff=cutoff, predicted=predicted, bad=bad, name=name)
            for name, g in groups.items()
        ],
    }


def shipped_model_path() -> Path:
    """The model file of the shipped commercial scorecard (with its training
    distributions), written by ``xinyong model train-commercial``."""
    return Path(__file__).resolve().parent / "commercial-model.yaml"


def shipped_monitor(store: Any, at: datetime) -> dict[str, Any] | None:
    """Drift of the registry's commercial population, when the installed commercial
    pack carries the shipped scorecard (else None: another model is in use)."""
    from xinyong.model.modelfile import load_model
    from xinyong.packs.loader import installed_packs

    model = load_model(shipped_model_path())
    pack = next((p for p in installed_packs(store, at) if p.system == "commercial"), None)
    if pack is None or pack.score is None or pack.score.scorecard != model.scorecard:
        return None
    try:
        return monitor(store, model, at, "commercial")
    except ModelInputError:
        return None  # no one scored yet
