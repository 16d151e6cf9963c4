"""Training a points scorecard with optbinning and exporting it in the pack format.

Pipeline: optimal binning of every candidate feature (optbinning's
``BinningProcess``: numeric features in ordered bins, categorical ones in
groups of categories with rare categories pooled; features below a minimum
information value are dropped), logistic regression on the weight-of-evidence
of the bins, and "pdo_odds" scaling: ``base_score`` points at good:bad odds of
``base_odds``, and ``pdo`` more points for each doubling of the odds. With
``span``, the scale is then stretched (still a pdo/odds scale, with another pdo
and base score) so that the best possible subject scores the top of the range
and the worst possible the bottom.

The export makes each feature's best bin worth 0 points and every other bin
the (negative, whole) points it costs; ``offset`` is the score of a subject in
the best bin of every feature. The same numbers a person reads in the YAML are
the ones ``xinyong model evaluate`` and the engine compute with.

Validation is either stratified k-fold cross-validation (the model shipped is
then fitted on all rows) or a stratified held-out split (the model shipped is
the one fitted on the training part, so the held-out AUC is its own).
"""

from __future__ import annotations

import hashlib
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from optbinning import BinningProcess
from optbinning import Scorecard as OptbScorecard
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split

from xinyong.model.scoring import clamp, discrimination, raw_scores
from xinyong.model.table import ModelInputError, TrainingTable
from xinyong.packs.schema import Scorecard, ScorecardBin, ScorecardFeature

SPLIT_DIGITS = 4  # bin edges are rounded so the YAML shows exactly what the model uses
MIN_CLASS_ROWS = 10  # fewer bad (or good) rows than this cannot be binned meaningfully
TRENDS = ("ascending", "descending", "peak", "valley", "auto", "auto_asc_desc", "none")


@dataclass(frozen=True)
class TrainingOptions:
    pdo: float = 50.0
    base_score: float = 600.0
    base_odds: float = 20.0
    folds: int = 5
    holdout: float | None = None  # share of rows held out instead of k-fold CV
    min_iv: float = 0.02
    max_bins: int = 6
    min_bin_size: float = 0.01  # share of rows; no bin (or pre-bin) for a smaller sliver
    rare_share: float = 0.02  # categories rarer than this are pooled in one bin
    monotonic: bool = True  # points rise or fall steadily with a feature: explainable
    trends: dict[str, str] = field(default_factory=dict)  # per-column event-rate trend
    span: tuple[float, float] | None = None  # stretch the points to this score range
    seed: int = 0

    def check(self) -> None:
        for name in ("pdo", "base_odds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive")
        if self.holdout is None and self.folds < 2:
            raise ValueError("--folds must be at least 2")
        if self.holdout is not None and not 0.05 <= self.holdout <= 0.5:
            raise ValueError("--holdout must be a share between 0.05 and 0.5")
        if self.max_bins < 2:
            raise ValueError("--max-bins must be at least 2")
        if self.min_iv < 0:
            raise ValueError("--min-iv must not be negative")
        if not 0 < self.min_bin_size < 0.5:
            raise ValueError("--min-bin-size must be between 0 and 0.5")
        if not 0 <= self.rare_share < 0.5:
            raise ValueError("--rare-share must be between 0 and 0.5")
        for column, trend in self.trends.items():
            if trend not in TRENDS:
                raise ValueError(
                    f"--monotonic {column}={trend}: the trend is one of {', '.join(TRENDS)}"
                )
        if self.span is not None and not self.span[0] < self.span[1]:
            raise ValueError("--span must be LOW,HIGH with LOW below HIGH")

    @property
    def validation(self) -> str:
        if self.holdout is not None:
            return f"stratified held-out split ({self.holdout:.0%} of rows, seed {self.seed})"
        return f"{self.folds}-fold stratified cross-validation (seed {self.seed})"


@dataclass
class Fitted:
    scorecard: Scorecard
    information_value: dict[str, float]
    dropped: dict[str, str] = field(default_factory=dict)
    scale: tuple[float, float] = (50.0, 600.0)  # effective (pdo, base score at base odds)


def _fit_params(name: str, categorical: bool, options: TrainingOptions) -> dict[str, Any]:
    params: dict[str, Any] = {}
    trend = options.trends.get(name)
    if trend is None and options.monotonic and not categorical:
        trend = "auto_asc_desc"
    if trend is not None and trend != "none":
        params["monotonic_trend"] = trend
    if categorical and options.rare_share > 0:
        params["cat_cutoff"] = options.rare_share
    return params


def _fit_once(
    features: pd.DataFrame, bad: np.ndarray, categorical: list[str], options: TrainingOptions
) -> OptbScorecard:
    names = list(features.columns)
    cats = [n for n in names if n in categorical]
    process = BinningProcess(
        names,
        categorical_variables=cats or None,
        max_n_bins=options.max_bins,
        min_bin_size=options.min_bin_size,
        min_prebin_size=options.min_bin_size,
        split_digits=SPLIT_DIGITS,
        selection_criteria={"iv": {"min": options.min_iv}},
        binning_fit_params={n: _fit_params(n, n in cats, options) for n in names},
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


def _category(value: Any) -> float | str:
    """A category as the pack writes it: a number for a numeric code, else text."""
    if isinstance(value, str):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    return float(value) if isinstance(value, int | float) else str(value)


def _fit(
    features: pd.DataFrame, bad: np.ndarray, categorical: list[str], options: TrainingOptions
) -> Fitted:
    """Fit, then drop any feature whose coefficient has the wrong sign (more risk in
    its bins would raise the score; a symptom of collinear features) and refit."""
    names = list(features.columns)
    wrong_sign: dict[str, str] = {}
    while True:
        model = _fit_once(features[names], bad, categorical, options)
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
        wrong_sign[name] = "its points would run against its risk (collinear with other features)"
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
    raw: list[tuple[str, list[dict[str, Any]], np.ndarray]] = []
    for name in selected:
        binned = fitted_process.get_binned_variable(name)
        points = table[table["Variable"] == name]["Points"].to_numpy(dtype="float64")
        if name in categorical:
            shapes: list[dict[str, Any]] = [
                {"values": [_category(v) for v in group]} for group in binned.splits
            ]
        else:
            edges: list[float | None] = [None, *(float(s) for s in binned.splits), None]
            shapes = [{"lower": edges[i], "upper": edges[i + 1]} for i in range(len(edges) - 1)]
        # Table rows: the regular bins, then Special (unused), then Missing.
        values = np.append(points[: len(shapes)], points[-1])
        raw.append((name, [*shapes, {"missing": True}], values))
    intercept = float(getattr(model, "intercept_", 0.0) or 0.0)
    best_total = intercept + sum(float(v.max()) for _, _, v in raw)
    worst_total = intercept + sum(float(v.min()) for _, _, v in raw)
    stretch, offset = 1.0, best_total
    if options.span is not None and best_total > worst_total:
        low, high = options.span
        stretch, offset = (high - low) / (best_total - worst_total), high
    exported: list[ScorecardFeature] = []
    for name, shapes, values in raw:
        scaled = (values - values.max()) * stretch
        bins = [
            ScorecardBin(**shape, points=_whole(p)) for shape, p in zip(shapes, scaled, strict=True)
        ]
        if all(b.points == 0 for b in bins):
            dropped[name] = "no bin worth a point more than another"
            continue
        exported.append(ScorecardFeature(feature=name, bins=bins))
    if not exported:
        raise ModelInputError(_no_signal(list(features.columns), options))
    card = Scorecard(offset=_whole(offset), features=exported, pdo=round(options.pdo * stretch, 4))
    # The stretched scale is score' = stretch * score + (offset - stretch * best_total).
    base = stretch * options.base_score + (offset - stretch * best_total)
    return Fitted(card, iv, dropped, (options.pdo * stretch, base))


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
    auc: float  # mean CV AUC, or the held-out AUC
    auc_std: float
    fold_aucs: list[float]
    folds: int  # 0 for a held-out split
    validation: str
    rows: int
    bad_rate: float
    candidates: list[str]
    categorical: list[str]
    dropped: dict[str, str]
    information_value: dict[str, float]
    pdo: float  # effective scale of the exported points
    base_score: float
    fitted_rows: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=int))

    @property
    def cv_auc(self) -> float:
        return self.auc

    @property
    def cv_auc_std(self) -> float:
        return self.auc_std


def _check_classes(table: TrainingTable) -> None:
    y = table.target
    bads, goods = int(y.sum()), int(len(y) - y.sum())
    for n, what in ((bads, "bad"), (goods, "good")):
        if n < MIN_CLASS_ROWS:
            raise ModelInputError(
                f"{table.path}: only {n} {what} row(s) in {table.target_column!r}"
                f" ({table.target_column} = {table.bad_value!r} is bad); training needs at"
                f" least {MIN_CLASS_ROWS} of each"
            )


def _scored_auc(fitted: Fitted, x: pd.DataFrame, y: np.ndarray) -> float:
    scores = clamp(raw_scores(fitted.scorecard, x))
    return discrimination(y, scores).auc


def train(
    table: TrainingTable, options: TrainingOptions | None = None, *, trained_on: str = ""
) -> TrainingResult:
    """Validate (k-fold CV or a held-out split) and fit the scorecard to ship.

    Every AUC reported is that of the exported, whole-point scorecard (clamped to
    the score range) on rows it was not fitted on: the model as it will be used.
    """
    options = options or TrainingOptions()
    options.check()
    _check_classes(table)
    x, y = table.features, table.target
    cats = list(table.categorical)
    logging.getLogger("optbinning").setLevel(logging.WARNING)
    if options.holdout is not None:
        fit_idx, test_idx = train_test_split(
            np.arange(len(y)), test_size=options.holdout, stratify=y, random_state=options.seed
        )
        if int(y[test_idx].sum()) == 0:
            raise ModelInputError(f"{table.path}: the held-out rows have no bad row")
        final = _fit(x.iloc[fit_idx], y[fit_idx], cats, options)
        aucs = [_scored_auc(final, x.iloc[test_idx], y[test_idx])]
        folds = 0
    else:
        folds = min(options.folds, int(min(y.sum(), len(y) - y.sum())))
        aucs = []
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=options.seed)
        for train_idx, held in splitter.split(x, y):
            try:
                fold = _fit(x.iloc[train_idx], y[train_idx], cats, options)
            except ModelInputError:
                aucs.append(0.5)  # a fold with no signal ranks at chance
                continue
            aucs.append(_scored_auc(fold, x.iloc[held], y[held]))
        fit_idx = np.arange(len(y))
        final = _fit(x, y, cats, options)
    auc = float(np.mean(aucs))
    card = final.scorecard.model_copy(
        update={
            "cv_auc": round(auc, 4) if options.holdout is None else None,
            "holdout_auc": round(auc, 4) if options.holdout is not None else None,
            "trained_on": trained_on or describe(table),
        }
    )
    return TrainingResult(
        scorecard=card,
        auc=auc,
        auc_std=float(np.std(aucs)),
        fold_aucs=aucs,
        folds=folds,
        validation=options.validation,
        rows=table.rows,
        bad_rate=float(np.mean(y)),
        candidates=list(x.columns),
        categorical=cats,
        dropped={**table.dropped, **final.dropped},
        information_value=final.information_value,
        pdo=final.scale[0],
        base_score=final.scale[1],
        fitted_rows=np.asarray(fit_idx),
    )


def probability_of_bad(
    scores: np.ndarray, *, pdo: float, base_score: float, base_odds: float
) -> np.ndarray:
    """The bad probability a score stands for on its pdo/odds scale."""
    log_odds = math.log(base_odds) + (np.asarray(scores, dtype="float64") - base_score) * (
        math.log(2) / pdo
    )
    return 1.0 / (1.0 + np.exp(log_odds))


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
