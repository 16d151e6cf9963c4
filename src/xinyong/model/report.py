"""`xinyong model report`: an offline HTML validation report of a scorecard.

One self-contained file, like the demo report (inline CSS and SVG charts from
``xinyong.reports.charts``, no scripts, nothing fetched): ROC, KS, Gini,
calibration per score band, the binning table of every feature, the score
distributions of goods and bads, the points table, and, when given, drift
against the training population and disparity between groups.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from markupsafe import Markup

from xinyong.model.validation import Validation
from xinyong.reports.charts import _PALETTE, FULL, HALF, _svg
from xinyong.reports.html import _env

GOOD, BAD, GREY = _PALETTE[0], _PALETTE[1], _PALETTE[5]


def roc_chart(v: Validation) -> str:
    fig, ax = plt.subplots(figsize=(HALF, 3.6))
    fpr, tpr = v.roc
    ax.plot([0, 1], [0, 1], color=GREY, linestyle="--", linewidth=1, label="chance")
    ax.plot(fpr, tpr, color=GOOD, linewidth=2, label=f"scorecard (AUC {v.auc:.3f})")
    ax.set_xlabel("share of goods refused (false positive rate)")
    ax.set_ylabel("share of bads refused (true positive rate)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(frameon=False, loc="lower right", fontsize=9)
    ax.grid(alpha=0.3)
    return _svg(fig, "ROC curve")


def ks_chart(v: Validation) -> str:
    fig, ax = plt.subplots(figsize=(HALF, 3.6))
    grid = np.sort(np.unique(v.scores))
    for label, mask, color in (("bads", v.target == 1, BAD), ("goods", v.target == 0, GOOD)):
        s = np.sort(v.scores[mask])
        ax.step(grid, np.searchsorted(s, grid, side="right") / max(1, len(s)), where="post",
                color=color, linewidth=2, label=f"{label} (cumulative share)")  # fmt: skip
    ax.axvline(v.ks_score, color=GREY, linestyle=":", linewidth=1)
    ax.text(v.ks_score, 0.04, f" KS {v.ks:.3f} at {v.ks_score:g}", fontsize=9, color=GREY)
    ax.set_xlabel("score")
    ax.set_ylabel("share at or below the score")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False, loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)
    return _svg(fig, "KS: cumulative score distributions")


def calibration_chart(v: Validation) -> str:
    fig, ax = plt.subplots(figsize=(HALF, 3.6))
    rows = v.calibration
    xs = np.arange(len(rows))
    ax.bar(xs, [r.observed * 100 for r in rows], color=GOOD, alpha=0.85, label="observed")
    ax.plot(xs, [r.predicted * 100 for r in rows], color=BAD, marker="o", linewidth=2,
            label="predicted by the scale")  # fmt: skip
    ax.set_xticks(xs, [f"{r.lower:g}" for r in rows], rotation=45, ha="right")
    ax.set_xlabel("score band (lower edge)")
    ax.set_ylabel("bad rate (%)")
    ax.legend(frameon=False, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _svg(fig, "Calibration: bad rate per score band")


def distribution_chart(v: Validation, low: float, high: float) -> str:
    fig, ax = plt.subplots(figsize=(FULL, 3.2))
    edges = [float(e) for e in np.arange(low, high + 25, 25)]
    for label, mask, color in (("goods", v.target == 0, GOOD), ("bads", v.target == 1, BAD)):
        ax.hist(v.scores[mask], bins=edges, density=True, alpha=0.55, color=color,
                label=f"{label} ({int(mask.sum()):,})")  # fmt: skip
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.set_xlim(low, high)
    ax.legend(frameon=False, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _svg(fig, "Score distribution of goods and bads")


def psi_chart(bands: list[dict[str, Any]]) -> str:
    fig, ax = plt.subplots(figsize=(FULL, 3.0))
    xs = np.arange(len(bands))
    ax.bar(xs - 0.2, [b["expected"] * 100 for b in bands], width=0.4, color=GREY,
           label="training")  # fmt: skip
    ax.bar(xs + 0.2, [b["actual"] * 100 for b in bands], width=0.4, color=GOOD, label="now")
    ax.set_xticks(xs, [f"{b['lower']:g}" for b in bands], rotation=45, ha="right")
    ax.set_xlabel("score band (lower edge)")
    ax.set_ylabel("share of subjects (%)")
    ax.legend(frameon=False, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return _svg(fig, "Score distribution: training and now")


def render_model_report(
    model: Any,
    validation: Validation,
    *,
    title: str,
    source: str,
    disparities: list[dict[str, Any]] | None = None,
    stability: dict[str, Any] | None = None,
) -> str:
    low, high = model.score_range.min, model.score_range.max
    charts = {
        "roc": roc_chart(validation),
        "ks": ks_chart(validation),
        "calibration": calibration_chart(validation),
        "distribution": distribution_chart(validation, low, high),
    }
    if stability is not None:
        charts["psi"] = psi_chart(stability["psi"]["bands"])
    template = _env().get_template("model_report.html.j2")
    # The SVG is made by matplotlib from numbers and our own labels, not input text.
    return template.render(
        title=title,
        source=source,
        model=model,
        v=validation,
        charts={k: Markup(c) for k, c in charts.items()},
        disparities=disparities or [],
        stability=stability,
    )


def write_model_report(html: str, out_dir: Path, name: str = "model-report.html") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)  # nothing half-written
    return path
