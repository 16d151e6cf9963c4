"""The operator's HTML report: one self-contained file (inline CSS and SVG, no
scripts, nothing fetched), so it opens offline and can be archived."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from xinyong.reports.charts import HALF, barh_chart, grades_chart, list_sizes_chart
from xinyong.reports.statistics import Summary


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("xinyong.reports", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["thousands"] = lambda n: f"{n:,}" if isinstance(n, int | float) else n
    return env


def charts(summary: Summary) -> dict[str, Markup]:
    endings = summary.performance_vs_term()
    ordered = sorted(endings.items(), key=lambda kv: -kv[1])
    refused = summary.refused[:20]
    svgs = {
        "list_sizes": list_sizes_chart(summary.list_sizes),
        "grades": grades_chart(summary.grades),
        "refused": barh_chart(
            [r["service"] for r in refused],
            [r["subjects"] for r in refused],
            "Checks refused per service",
            "subjects refused",
        ),
        "endings": barh_chart(
            [k for k, _ in ordered],
            [v for _, v in ordered],
            "How list entries ended",
            "entries",
            width=HALF,
        ),
    }
    # The SVG is produced by matplotlib from numbers and our own labels, not input text.
    return {k: Markup(v) for k, v in svgs.items()}


def render_report(summary: Summary, *, title: str, context: dict[str, Any] | None = None) -> str:
    template = _env().get_template("report.html.j2")
    return template.render(title=title, s=summary, charts=charts(summary), **(context or {}))


def write_report(
    summary: Summary, path: str | Path, *, title: str, context: dict[str, Any] | None = None
) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(summary, title=title, context=context), encoding="utf-8")
    return out
