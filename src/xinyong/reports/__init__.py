"""Reports: summary statistics over a registry and the operator's HTML report."""

from xinyong.reports.html import render_report, write_report
from xinyong.reports.statistics import Summary, lint_findings, summarize

__all__ = ["Summary", "lint_findings", "render_report", "summarize", "write_report"]
