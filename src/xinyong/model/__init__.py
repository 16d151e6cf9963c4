"""Scorecard models: train a points scorecard on any table, evaluate it, and put it
in a pack's ``score.scorecard`` section (the commercial system)."""

from __future__ import annotations

from xinyong.model.modelfile import (
    TrainedModel,
    build_model,
    dump_model,
    load_model,
    merge_scorecard_text,
    save_model,
)
from xinyong.model.scoring import (
    SCORE_MAX,
    SCORE_MIN,
    TIERS,
    Discrimination,
    Reason,
    clamp,
    discrimination,
    grade_of,
    raw_scores,
    reason_codes,
)
from xinyong.model.table import ModelInputError, TrainingTable, load_training_table, read_table
from xinyong.model.train import TrainingOptions, TrainingResult, train

__all__ = [
    "SCORE_MAX",
    "SCORE_MIN",
    "TIERS",
    "Discrimination",
    "ModelInputError",
    "Reason",
    "TrainedModel",
    "TrainingOptions",
    "TrainingResult",
    "TrainingTable",
    "build_model",
    "clamp",
    "discrimination",
    "dump_model",
    "grade_of",
    "load_model",
    "load_training_table",
    "merge_scorecard_text",
    "raw_scores",
    "read_table",
    "reason_codes",
    "save_model",
    "train",
]
