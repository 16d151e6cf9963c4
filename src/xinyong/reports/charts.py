"""Charts as inline SVG (matplotlib, text kept as text): the report works offline."""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib
from cycler import cycler

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

# Figure widths in inches for a full-width and a half-width section: about 72
# points to 96 pixels, so 10-point text shows near 13 px at either width.
FULL, HALF = 10.5, 5.0
_PALETTE = ["#1f5f8b", "#c0392b", "#27ae60", "#8e44ad", "#d68910", "#5d6d7e", "#17a589"]

plt.rcParams.update(
    {
        "svg.fonttype": "none",
        "svg.hashsalt": "xinyong",  # stable ids: the same report gives the same bytes
        "font.family": "sans-serif",
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.prop_cycle": cycler(color=_PALETTE),
    }
)


def _svg(fig: Figure, title: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    # Scale with the page; keep an accessible name.
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)
    return text.replace("<svg", f'<svg role="img" aria-label="{title}" class="chart"', 1)


def list_sizes_chart(sizes: list[dict[str, Any]]) -> str:
    fig, ax = plt.subplots(figsize=(FULL, 3.6))
    series: dict[str, tuple[list[Any], list[int]]] = {}
    for row in sizes:
        xs, ys = series.setdefault(f"{row['system']} / {row['list_id']}", ([], []))
        xs.append(row["at"][:7])
        ys.append(row["active"])
    for name, (xs, ys) in series.items():
        ax.plot(range(len(xs)), ys, label=name, linewidth=2)
    if series:
        xs = next(iter(series.values()))[0]
        step = max(1, len(xs) // 12)
        ax.set_xticks(range(0, len(xs), step), xs[::step], rotation=45, ha="right")
        ax.legend(frameon=False, fontsize=9)
    ax.set_ylabel("active entries")
    ax.grid(axis="y", alpha=0.3)
    return _svg(fig, "List sizes over time")


def grades_chart(grades: list[dict[str, Any]]) -> str:
    systems = sorted({g["system"] for g in grades})
    fig, axes = plt.subplots(1, max(1, len(systems)), figsize=(HALF, 2.6), squeeze=False)
    for ax, system in zip(axes[0], systems, strict=False):
        rows = [g for g in grades if g["system"] == system]
        ax.bar([g["grade"] for g in rows], [g["subjects"] for g in rows], color=_PALETTE[0])
        ax.set_title(system, fontsize=10)
        ax.tick_params(axis="x", labelsize=8, rotation=45)
        ax.grid(axis="y", alpha=0.3)
    return _svg(fig, "Grade distribution")


def barh_chart(
    labels: list[str], values: list[int], title: str, xlabel: str, *, width: float = FULL
) -> str:
    height = max(1.4, 0.2 * len(labels) + 0.7)
    fig, ax = plt.subplots(figsize=(width, height))
    ax.barh(labels[::-1], values[::-1], color=_PALETTE[1] if "refused" in title else _PALETTE[0])
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v:,}", va="center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig, title)
