"""Training a points scorecard with optbinning and exporting it in the pack format.

Pipeline: optimal binning of every candidate feature (optbinning's
``BinningProcess``; features below a minimum information value are dropped),
logistic regression on the weight-of-evidence of the bins, and "pdo_odds"
scaling: ``base_score`` points at good:bad odds of ``base_odds``, and ``pdo``
more points for each doubling of the odds.

The export makes each feature's best bin worth 0 points and every other bin
the (negative, whole) points it costs; ``offset`` is the score of a subject in
the best bin of every feature. The same numbers a person reads in the YAML are
the ones ``xinyong model evaluate`` and the engine compute with.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from optbinning import BinningProcess
from optbinning import Scorecard as OptbScorecard
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from xinyong.model.scoring import clamp, discrimination, raw_scores
from xinyong.model.table import ModelInputError, TrainingTable
from xinyong.packs.schema import Scorecard, ScorecardBin, ScorecardFeature

SPLIT_DIGITS = 4  # bin edges are rounded so the YAML shows exactly what the model uses


@dataclass(frozen=True)
class TrainingOptions:
    pdo: float = 50.0
    base_score: float = 600.0
    base_odds: float = 20.0
    folds: int = 5
    min_iv: float = 0.02
    max_bins: int = 6
    min_bin_size: float = 0.01  # share of rows; no bin (or pre-bin) for a smaller sliver
    monotonic: bool = True  # points rise or fall steadily with a feature: explainable
    seed: int = 0

    def check(self) -> None:
        for name in ("pdo", "base_odds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive")
        if self.folds < 2:
            raise ValueError("--folds must be at least 2")
        if self.max_bins < 2:
            raise ValueError("--max-bins must be at least 2")
        if self.min_iv < 0:
            raise ValueError("--min-iv must not be negative")
        if not 0 < self.min_bin_size < 0.5:
            raise ValueError("--min-bin-size must be between 0 and 0.5")


@dataclass
class Fitted:
    scorecard: Scorecard
    information_value: dict[str, float]
    dropped: dict[str, str] = field(default_factory=dict)


def _fit_once(features: pd.DataFrame, bad: np.ndarray, options: TrainingOptions) -> OptbScorecard:
    names = list(features.columns)
    trend = {"monotonic_trend": "auto_asc_desc"} if options.monotonic else {}
    process = BinningProcess(
        names,
        max_n_bins=options.max_bins,
        min_bin_size=options.min_bin_size,
        min_prebin_size=options.min_bin_size,
        split_digits=SPLIT_DIGITS,
        selection_criteria={"iv": {"min": options.min_iv}},
        binning_fit_params={n: dict(trend) for n in names} if trend else None,
    )
    model = OptbScorecard(
        binning_process=process,
        estimator=LogisticRegression(max_iter=1000),
        scaling_method="pdo_odds",
        scaling_method_params={
            "pdo": options.pdo,
            "odds": options.base_odds,
            "scorecard_points": options.base_score,
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optbinning's solver chatter on tiny folds
        try:
            model.fit(features, bad, metric_missing="empirical", metric_special="empirical")
        except ValueError as exc:
            if "0 feature" in str(exc) or "n_features" in str(exc):
                raise ModelInputError(_no_signal(names, options)) from None
            raise
    return model


def _fit(features: pd.DataFrame, bad: np.ndarray, options: TrainingOptions) -> Fitted:
    """Fit, then drop any feature whose coefficient has the wrong sign (more risk in
    its bins would raise the score; a symptom of collinear features) and refit."""
    names = list(features.columns)
    wrong_sign: dict[str, str] = {}
    while True:
        model = _fit_once(features[names], bad, options)
        fitted_process = model.binning_process_
        assert fitted_process is not None
        selected = [str(v) for v in fitted_process.get_support(names=True)]
        # WoE is log(good share / bad share) and the target is 1 for bad, so every
        # coefficient of a sensible model is negative.
        coefs = np.asarray(model.estimator_.coef_).ravel()  # type: ignore[attr-defined]
        worst = int(np.argmax(coefs))
        if coefs[worst] <= 0 or len(selected) == 1:
            break
        name = selected[worst]
        wrong_sign[name] = (
            "dropped: its points would run against its risk (collinear with other features)"
        )
        names.remove(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside optbinning
        summary = fitted_process.summary().set_index("name")
    iv = {str(k): float(v) for k, v in summary["iv"].items()}
    dropped = {
        n: f"information value {iv.get(n, 0.0):.4f} below {options.min_iv}"
        for n in names
        if n not in selected
    }
    dropped.update(wrong_sign)
    table = model.table(style="detailed")
    offset = 0.0
    exported: list[ScorecardFeature] = []
    for name in selected:
        splits = [float(s) for s in fitted_process.get_binned_variable(name).splits]
        rows = table[table["Variable"] == name]
        points = rows["Points"].to_numpy(dtype="float64")
        regular, missing = points[: len(splits) + 1], points[-1]
        best = float(max(regular.max(), missing))
        offset += best
        edges: list[float | None] = [None, *splits, None]
        bins = [
            ScorecardBin(lower=edges[i], upper=edges[i + 1], points=_whole(p - best))
            for i, p in enumerate(regular)
        ]
        bins.append(ScorecardBin(missing=True, points=_whole(missing - best)))
        if all(b.points == 0 for b in bins):
            dropped[name] = "no bin worth a point more than another"
            continue
        exported.append(ScorecardFeature(feature=name, bins=bins))
    if not exported:
        raise ModelInputError(_no_signal(list(features.columns), options))
    offset += float(getattr(model, "intercept_", 0.0) or 0.0)
    card = Scorecard(offset=_whole(offset), features=exported, pdo=options.pdo)
    return Fitted(card, iv, dropped)


def _whole(x: float) -> float:
    return float(np.rint(x)) + 0.0  # + 0.0 turns -0.0 into 0.0


def _no_signal(names: list[str], options: TrainingOptions) -> str:
    return (
        f"no feature separates bad from good rows (information value >= {options.min_iv});"
        f" candidates were: {', '.join(names)}"
    )


@dataclass(frozen=True)
class TrainingResult:
    scorecard: Scorecard
    cv_auc: float
    cv_auc_std: float
    fold_aucs: list[float]
    folds: int
    rows: int
    bad_rate: float
    candidates: list[str]
    dropped: dict[str, str]
    information_value: dict[str, float]


def train(
    table: TrainingTable, options: TrainingOptions | None = None, *, trained_on: str = ""
) -> TrainingResult:
    """Cross-validate (stratified k-fold) and fit the final scorecard on all rows.

    The CV AUC is that of the exported, whole-point scorecard (clamped to the
    score range) on each held-out fold: the model as it will be used.
    """
    options = options or TrainingOptions()
    options.check()
    x, y = table.features, table.target
    minority = int(min(y.sum(), len(y) - y.sum()))
    folds = min(options.folds, minority)
    if folds < 2:
        raise ModelInputError(
            f"{table.path}: only {minority} row(s) of the rarer class in {table.target_column!r};"
            " cross-validation needs at least 2"
        )
    logging.getLogger("optbinning").setLevel(logging.WARNING)
    aucs: list[float] = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=options.seed)
    for train_idx, test_idx in splitter.split(x, y):
        try:
            fold = _fit(x.iloc[train_idx], y[train_idx], options)
        except ModelInputError:
            aucs.append(0.5)  # a fold with no signal ranks at chance
            continue
        scores = clamp(raw_scores(fold.scorecard, x.iloc[test_idx]))
        aucs.append(discrimination(y[test_idx], scores).auc)
    final = _fit(x, y, options)
    cv_auc = float(np.mean(aucs))
    card = final.scorecard.model_copy(
        update={"cv_auc": round(cv_auc, 4), "trained_on": trained_on or describe(table)}
    )
    return TrainingResult(
        scorecard=card,
        cv_auc=cv_auc,
        cv_auc_std=float(np.std(aucs)),
        fold_aucs=aucs,
        folds=folds,
        rows=table.rows,
        bad_rate=float(np.mean(y)),
        candidates=list(x.columns),
        dropped=final.dropped,
        information_value=final.information_value,
    )


def describe(table: TrainingTable) -> str:
    """Where a model came from: file name, content digest, rows and bad rate."""
    digest = _sha256(table.path)
    return (
        f"{table.path.name} (sha256 {digest[:16]}, {table.rows} rows, target"
        f" {table.target_column} = {table.bad_value!r} for bad, bad rate"
        f" {float(np.mean(table.target)):.2%})"
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
