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

import yaml
from pydantic import BaseModel, ConfigDict, Field

from xinyong.model.scoring import SCORE_MAX, SCORE_MIN, TIERS
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


class TrainingSummary(_Strict):
    rows: int
    bad_rate: float
    folds: int
    cv_auc: float
    cv_auc_std: float
    fold_aucs: list[float]
    base_score: float
    base_odds: float
    pdo: float
    min_iv: float
    max_bins: int
    min_bin_size: float = 0.01
    monotonic: bool = True
    seed: int
    candidates: list[str]
    dropped: dict[str, str] = Field(default_factory=dict)
    information_value: dict[str, float] = Field(default_factory=dict)
    trained_at: str = ""
    method: str = (
        "optbinning BinningProcess (optimal binning, IV selection) + logistic regression on"
        " WoE, pdo_odds scaling; CV AUC of the exported scorecard on stratified k-fold"
        " held-out folds"
    )


class TrainedModel(_Strict):
    scorecard: Scorecard
    target: Target
    score_range: ScoreRange = Field(default_factory=ScoreRange)
    grades: list[GradeBand] = Field(default_factory=lambda: list(TIERS))
    training: TrainingSummary | None = None


def build_model(
    result: TrainingResult, *, target: str, bad: str, options: TrainingOptions
) -> TrainedModel:
    return TrainedModel(
        scorecard=result.scorecard,
        target=Target(column=target, bad=bad),
        training=TrainingSummary(
            rows=result.rows,
            bad_rate=round(result.bad_rate, 6),
            folds=result.folds,
            cv_auc=round(result.cv_auc, 6),
            cv_auc_std=round(result.cv_auc_std, 6),
            fold_aucs=[round(a, 6) for a in result.fold_aucs],
            base_score=options.base_score,
            base_odds=options.base_odds,
            pdo=options.pdo,
            min_iv=options.min_iv,
            max_bins=options.max_bins,
            min_bin_size=options.min_bin_size,
            monotonic=options.monotonic,
            seed=options.seed,
            candidates=result.candidates,
            dropped=result.dropped,
            information_value={k: round(v, 6) for k, v in result.information_value.items()},
            trained_at=datetime.now().astimezone().isoformat(timespec="seconds"),
        ),
    )


class _Flow(dict[str, Any]):
    """A mapping written on one line (a bin)."""


class _Dumper(yaml.SafeDumper):
    pass


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
        k: plain[k] for k in ("offset", "pdo", "trained_on", "cv_auc") if k in plain
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
