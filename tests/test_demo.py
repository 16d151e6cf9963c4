"""`xinyong demo` end to end on a small city: registry, summary JSON, offline HTML report."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import BACKENDS, pg_database, registry_at
from xinyong.cli import _register, app

_register()
runner = CliRunner()


@pytest.fixture(scope="module", params=BACKENDS)
def demo_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict]]:  # type: ignore[type-arg]
    """The demo on a DuckDB file (--db), and unchanged on PostgreSQL (XINYONG_DB)."""
    pytest.importorskip("xinyong.engine")
    out = tmp_path_factory.mktemp("demo")
    with registry_at(request.param, out) as db:
        args = ["demo", "--out", str(out), "--persons", "600",
                "--organizations", "30", "--start", "2024-01-01", "--end", "2026-11-01",
                "--seed", "5", "--json"]  # fmt: skip
        result = runner.invoke(app, args, env={"XINYONG_DB": db})
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout[result.stdout.index("{") :])
        yield out, summary


def test_summary_has_every_figure(demo_run: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    _, summary = demo_run
    assert summary["rejected"] == 0
    # one per year, 2024 to 2026, the demo's objections (issue 9) when it filed any
    # (and its administrative penalties after 2026-04-01)
    assert summary["batches"] == 3 + 1 + (summary["objections"]["filed"] > 0)
    assert summary["records_by_type"]["admin.penalty_decision"] > 0
    assert set(summary["objections"]) == {"filed", "open", "overdue", "upheld", "rejected"}
    assert summary["subjects"]["person"] > 500
    assert summary["list_sizes"] and summary["grades"]
    assert {"performance", "still listed"} & {e["ending"] for e in summary["endings"]}
    assert summary["minors_listed"] == 0
    assert set(summary["timings"]) >= {"generate", "import", "evaluate", "report", "total"}


def test_report_is_offline_html_with_svg_charts(demo_run: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    out, summary = demo_run
    html = (out / "report.html").read_text("utf-8")
    assert Path(summary["report"]) == out / "report.html"
    assert html.count("<svg") >= 3
    assert "<title>xinyong demo" in html
    assert "linter" in html.lower()
    assert "drift from its training population" in html  # the shipped commercial scorecard
    assert "<script" not in html
    # nothing fetched: no external scripts, styles, images or fonts
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", html)


def test_refuses_to_replace_a_registry_that_is_not_a_demo(tmp_path: Path) -> None:
    from xinyong.ledger.store import Store

    db = tmp_path / "real.duckdb"
    Store(db).close()
    result = runner.invoke(app, ["demo", "--db", str(db), "--out", str(tmp_path), "--persons", "5"])
    assert result.exit_code == 1
    assert "not a demo registry" in result.output
    assert db.exists()


def test_refuses_to_replace_a_postgresql_registry_that_is_not_a_demo(tmp_path: Path) -> None:
    with pg_database() as url:
        assert runner.invoke(app, ["init", "--db", url]).exit_code == 0
        args = ["demo", "--db", url, "--out", str(tmp_path), "--persons", "5"]
        result = runner.invoke(app, args)
        assert result.exit_code == 1
        assert "not a demo registry" in result.output
        result = runner.invoke(app, ["packs", "list", "--db", url, "--json"])
        assert result.exit_code == 0 and len(json.loads(result.stdout)) == 5
