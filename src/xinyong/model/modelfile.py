"""The model file: a YAML document whose ``scorecard`` block is exactly a pack's
``score.scorecard`` section, plus the target it was trained for and a summary
of the training (not needed to score, kept so a reader can judge the model).

    scorecard:            # paste under `score:` in a pack, or `xinyong model merge`
      offset: 712.0
      pdo: 50.0
      trained_on: ...
      cv_auc: 0.78
      features:
      - feature: overdue_24m
        bins:
        - {upper: 0.5, points: 0.0}
        - {lower: 0.5, upper: 1.5, points: -41.0}
        - {lower: 1.5, points: -97.0}
        - {missing: true, points: 0.0}
    target: {column: defaulted_next_12m, bad: '1'}
    ...
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

from xinyong.model.drift import band_edges, band_shares, bin_shares
from xinyong.model.scoring import SCORE_MAX, SCORE_MIN, TIERS, clamp, raw_scores
from xinyong.model.table import ModelInputError
from xinyong.model.train import TrainingOptions, TrainingResult
from xinyong.packs.schema import GradeBand, Scorecard
from xinyong.problems import load_document


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Strict):
    column: str
    bad: str


class ScoreRange(_Strict):
    min: float = SCORE_MIN
    max: float = SCORE_MAX


class ScoreBand(_Strict):
    lower: float
    upper: float
    share: float


class Reference(_Strict):
    """The training population's distributions, which drift is measured against:
    the share of scores in each band, and the share of each feature's values in
    each of its bins (in the bins' order)."""

    rows: int
    score_bands: list[ScoreBand]
    features: dict[str, list[float]]


class TrainingSummary(_Strict):
    rows: int
    bad_rate: float
    validation: str
    auc: float  # mean CV AUC, or the held-out AUC, of the exported scorecard
    auc_std: float = 0.0
    fold_aucs: list[float] = Field(default_factory=list)
    folds: int  # 0 for a held-out split
    # The effective scale of the points: base_score at good:bad odds base_odds,
    # pdo more points per doubling of the odds (after any stretch to `span`).
    base_score: float
    base_odds: float
    pdo: float
    span: list[float] | None = None
    min_iv: float
    max_bins: int
    min_bin_size: float = 0.01
    rare_share: float = 0.02
    monotonic: bool = True
    trends: dict[str, str] = Field(default_factory=dict)
    seed: int
    candidates: list[str]
    categorical: list[str] = Field(default_factory=list)
    unseen_categories: str = "an unseen category takes its feature's missing bin"
    dropped: dict[str, str] = Field(default_factory=dict)
    information_value: dict[str, float] = Field(default_factory=dict)
    trained_at: str = ""
    method: str = (
        "optbinning BinningProcess (optimal binning, categories grouped, IV selection) +"
        " logistic regression on WoE, pdo_odds scaling; AUC of the exported scorecard on"
        " rows it was not fitted on"
    )


class TrainedModel(_Strict):
    scorecard: Scorecard
    target: Target
    score_range: ScoreRange = Field(default_factory=ScoreRange)
    grades: list[GradeBand] = Field(default_factory=lambda: list(TIERS))
    training: TrainingSummary | None = None
    reference: Reference | None = None


def reference_of(
    card: Scorecard, features: pd.DataFrame, score_range: ScoreRange | None = None
) -> Reference:
    """The distributions of ``features`` (the rows the model was fitted on)."""
    rng = score_range or ScoreRange()
    edges = band_edges(rng.min, rng.max)
    scores = clamp(raw_scores(card, features), rng.min, rng.max)
    shares = band_shares(scores, edges)
    return Reference(
        rows=len(features),
        score_bands=[
            ScoreBand(lower=lo, upper=hi, share=sh)
            for lo, hi, sh in zip(edges[:-1], edges[1:], shares, strict=True)
        ],
        features={sf.feature: bin_shares(sf, features[sf.feature]) for sf in card.features},
    )


def build_model(
    result: TrainingResult,
    *,
    target: str,
    bad: str,
    options: TrainingOptions,
    features: pd.DataFrame | None = None,
) -> TrainedModel:
    """The model file's content; ``features`` (the training table's features) gives
    the reference distributions for drift."""
    reference = None
    if features is not None:
        reference = reference_of(result.scorecard, features.iloc[result.fitted_rows])
    return TrainedModel(
        scorecard=result.scorecard,
        target=Target(column=target, bad=bad),
        reference=reference,
        training=TrainingSummary(
            rows=result.rows,
            bad_rate=round(result.bad_rate, 6),
            validation=result.validation,
            auc=round(result.auc, 6),
            auc_std=round(result.auc_std, 6),
            fold_aucs=[round(a, 6) for a in result.fold_aucs],
            folds=result.folds,
            base_score=round(result.base_score, 4),
            base_odds=options.base_odds,
            pdo=round(result.pdo, 4),
            span=list(options.span) if options.span else None,
            min_iv=options.min_iv,
            max_bins=options.max_bins,
            min_bin_size=options.min_bin_size,
            rare_share=options.rare_share,
            monotonic=options.monotonic,
            trends=dict(options.trends),
            seed=options.seed,
            candidates=result.candidates,
            categorical=result.categorical,
            dropped=result.dropped,
            information_value={k: round(v, 6) for k, v in result.information_value.items()},
            trained_at=datetime.now().astimezone().isoformat(timespec="seconds"),
        ),
    )


class _Flow(dict[str, Any]):
    """A mapping written on one line (a bin)."""


class _FlowList(list[Any]):
    """A list written on one line (shares)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _FlowList,
    lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True),
)


_Dumper.add_representer(
    _Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
)


def _scorecard_plain(card: Scorecard) -> dict[str, Any]:
    plain = card.model_dump(mode="json", exclude_none=True)
    for feature in plain["features"]:
        feature["bins"] = [
            _Flow({k: v for k, v in b.items() if not (k == "missing" and v is False)})
            for b in feature["bins"]
        ]
    # Reading order: the numbers that say what the model is, then its bins.
    head: dict[str, Any] = {
        k: plain[k] for k in ("offset", "pdo", "trained_on", "cv_auc", "holdout_auc") if k in plain
    }
    return {**head, "features": plain["features"]}


def scorecard_yaml(card: Scorecard, indent: int = 0) -> str:
    """``scorecard:`` and its block, indented by ``indent`` spaces."""
    text = yaml.dump(
        {"scorecard": _scorecard_plain(card)},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
    pad = " " * indent
    return "".join(pad + line if line.strip() else line for line in text.splitlines(True))


def dump_model(model: TrainedModel) -> str:
    rest = model.model_dump(mode="json", exclude={"scorecard"}, exclude_none=True)
    rest["target"] = _Flow(rest["target"])
    rest["score_range"] = _Flow(rest["score_range"])
    if "reference" in rest:
        ref = rest["reference"]
        ref["score_bands"] = [_Flow(b) for b in ref["score_bands"]]
        ref["features"] = {k: _FlowList(v) for k, v in ref["features"].items()}
    rest["grades"] = [
        _Flow({k: v for k, v in g.items() if k != "illustrative"}) for g in rest["grades"]
    ]
    header = (
        "# A points scorecard trained by `xinyong model train`. The `scorecard` block is a\n"
        "# pack's score.scorecard section: paste it under `score:` or run\n"
        "# `xinyong model merge MODEL PACK`.\n"
    )
    body = yaml.dump(rest, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return header + scorecard_yaml(model.scorecard) + body


def save_model(model: TrainedModel, path: str | Path) -> None:
    Path(path).write_text(dump_model(model), "utf-8")


def load_model(path: str | Path) -> TrainedModel:
    return load_document(TrainedModel, path, error=ModelInputError, kind="model file")


_SCORE_KEY = re.compile(r"^score:\s*(#.*)?$")
_SCORECARD_KEY = re.compile(r"^(?P<pad>[ ]+)scorecard:")


def merge_scorecard_text(pack_text: str, card: Scorecard) -> str:
    """``pack_text`` with its ``score.scorecard`` block replaced by ``card`` (or added
    at the end of ``score:``), leaving every other line and comment as it was."""
    for sf in card.features:
        # A pack's features are aggregates (numbers): a text category would never
        # match, and every subject would silently take the missing bin.
        text = [v for b in sf.bins for v in (b.values or []) if isinstance(v, str)]
        if text:
            raise ModelInputError(
                f"scorecard feature {sf.feature!r} bins text categories ({text[0]!r}, ...);"
                " a pack's features are numbers, so it cannot go into a pack"
            )
    lines = pack_text.splitlines(True)
    start = next((i for i, ln in enumerate(lines) if _SCORE_KEY.match(ln)), None)
    if start is None:
        raise ModelInputError("the pack has no top-level `score:` section")
    end = next(
        (j for j in range(start + 1, len(lines)) if lines[j][:1] not in (" ", "\n", "#", "")),
        len(lines),
    )
    indent = 2
    for i in range(start + 1, end):
        m = _SCORECARD_KEY.match(lines[i])
        if m:
            indent = len(m["pad"])
            stop = next(
                (
                    j
                    for j in range(i + 1, end)
                    if lines[j].strip()
                    and not lines[j].lstrip().startswith("#")
                    and len(lines[j]) - len(lines[j].lstrip(" ")) <= indent
                ),
                end,
            )
            return "".join([*lines[:i], scorecard_yaml(card, indent), *lines[stop:]])
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    block = scorecard_yaml(card, indent)
    before = lines[:end]
    if before and not before[-1].endswith("\n"):
        before[-1] += "\n"
    return "".join([*before, block, *lines[end:]])
