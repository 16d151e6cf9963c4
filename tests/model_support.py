"""Helpers shared by the `xinyong model` tests: the CLI runner and a mixed-type
table whose signal is carried by categories only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

import xinyong.cli.model  # noqa: F401  (adds the `model` group to the app)
from xinyong.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["model", *args])
    return result.exit_code, result.output


PURPOSE_LOG_ODDS = {"car": -0.6, "furniture": 0.0, "education": 0.6, "business": 1.6}


def mixed_table(n: int, seed: int) -> pd.DataFrame:
    """A table whose signal is carried by categories only: the purpose of the loan
    (text) and a region code (a number that means a category). Income is noise."""
    rng = np.random.default_rng(seed)
    purpose = rng.choice(
        ["car", "furniture", "education", "business", "boat", "pony"],
        n, p=[0.35, 0.3, 0.2, 0.13, 0.01, 0.01],
    )  # fmt: skip
    region = rng.choice([11, 22, 33, 44], n)
    log_odds = (
        -2.2
        + np.array([PURPOSE_LOG_ODDS.get(p, 0.0) for p in purpose])
        + np.where(region == 33, 1.2, 0.0)
    )
    bad = rng.random(n) < 1 / (1 + np.exp(-log_odds))
    return pd.DataFrame(
        {
            "loan_id": np.arange(n),
            "purpose": purpose,
            "region": region,
            "income": rng.normal(6000, 1500, n).round(0),
            "branch": "main",
            "postcode": [f"P{v:04d}" for v in rng.integers(0, 400, n)],
            "religion": rng.choice(["a", "b"], n),
            "nationality": rng.choice(["x", "y"], n),
            "outcome": np.where(bad, "bad", "good"),
        }
    )


def train_mixed(work: Path) -> tuple[Path, dict]:
    """Train on 2,500 rows of ``mixed_table`` with a 30 % held-out split."""
    path = work / "mixed.csv"
    mixed_table(2500, seed=5).to_csv(path, index=False)
    out = work / "mixed.yaml"
    code, output = run(
        "train", str(path), "--target", "outcome", "--bad", "bad", "--out", str(out),
        "--categorical", "region", "--protected", "nationality", "--holdout", "0.3",
        "--seed", "3", "--json",
    )  # fmt: skip
    assert code == 0, output
    return out, json.loads(output)
