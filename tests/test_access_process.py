"""Inquiries, licensing, purge (as scenario files), public lists and the subject
report (issue 10, items 3, 4, 5, 7, 8)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import make_person_id
from xinyong.access import operations as ops
from xinyong.access.principals import local_operator
from xinyong.cli import _register, app
from xinyong.ledger.intake import register_source, submit
from xinyong.ledger.store import Store
from xinyong.packs import install_pack, load_pack, shipped_pack_paths
from xinyong.packs.lint import lint
from xinyong.process.scenarios import run_scenario, scenario_paths
from xinyong.reports.subject_report import write_report
from xinyong.timeutil import now_utc

_register()
runner = CliRunner()

COURT = "court:371082-rongcheng"
DEBTOR = make_person_id(date(1980, 2, 29), 31)
LATE = make_person_id(date(1975, 8, 8), 44)
PAID = make_person_id(date(1982, 1, 1), 52)


@pytest.mark.parametrize("path", scenario_paths(), ids=lambda p: p.stem)
def test_access_scenario(path: Path) -> None:
    assert run_scenario(path) == []


def test_the_inquiry_paths_each_have_a_scenario() -> None:
    names = {p.stem for p in scenario_paths()}
    assert {"inquiry_consent_purpose", "purge_financial_art16", "licence_commercial"} <= names


def _registry(tmp_path: Path, packs: tuple[str, ...]) -> ops.Registry:
    db = tmp_path / "r.duckdb"
    shipped = {p.stem: p for p in shipped_pack_paths()}
    with Store(db) as store:
        for name in packs:
            install_pack(store, shipped[name])
        register_source(store, COURT, "court")
        register_source(store, "regulator:samr", "regulator")
        register_source(store, "lender:bank-a", "lender")
    return ops.Registry(db)


def _listing(
    rid: str,
    subject: str,
    occurred: date,
    case: str,
    ground: str = "evades_enforcement",
    **extra: int,
) -> dict:
    return {
        "record_id": rid,
        "subject_id": subject,
        "type": "court.listing_decision",
        "occurred_at": occurred.isoformat(),
        "source": COURT,
        "attributes": {"case_no": case, "ground": ground, **extra},
    }


def _name(rid: str, subject: str, name: str) -> dict:
    return {
        "record_id": rid,
        "subject_id": subject,
        "type": "registry.name",
        "occurred_at": "2020-01-01",
        "source": "regulator:samr",
        "attributes": {"name": name},
    }


def test_public_search_shows_only_active_entries_with_public_fields_masked(
    tmp_path: Path,
) -> None:
    reg = _registry(tmp_path, ("judicial",))
    today = now_utc().date()
    with reg.store() as store:
        result = submit(
            store,
            [
                _name("n1", DEBTOR, "张三"),
                _name("n2", LATE, "张四"),
                _name("n3", PAID, "张五"),
                _listing("j1", DEBTOR, today - timedelta(days=60), "(2026)鲁1082执1号"),
                # In its grace period (Fa Fa [2019] No. 35): not yet public.
                _listing("j2", LATE, today - timedelta(days=2), "(2026)鲁1082执2号", grace_days=30),
                # Obligation performed (Art. 10(1), which ends an open-ended ground (1)
                # listing; Art. 10 para. 2): leaves the public view at once.
                _listing(
                    "j3", PAID, today - timedelta(days=90), "(2026)鲁1082执3号", "able_but_refuses"
                ),
                {
                    "record_id": "f3",
                    "subject_id": PAID,
                    "type": "court.obligation_fulfilled",
                    "occurred_at": (today - timedelta(days=5)).isoformat(),
                    "source": COURT,
                    "attributes": {"case_no": "(2026)鲁1082执3号"},
                },
            ],
        )
    assert result.rejected == 0
    masked = DEBTOR[:6] + "********" + DEBTOR[14:]
    code = runner.invoke(app, ["public", "search", "张", "--json", "--db", str(reg.db)])
    assert code.exit_code == 0
    assert DEBTOR not in code.stdout  # the full identifier never leaves
    results = json.loads(code.stdout)["results"]
    assert [r["name"] for r in results] == ["张三"]
    public_fields = next(
        spec.public_fields
        for spec in load_pack(next(p for p in shipped_pack_paths() if p.stem == "judicial")).lists
        if spec.public_fields
    )
    (hit,) = results
    assert hit["masked_id"] == masked
    assert set(hit) == {"system", "list", "list_name", "masked_id", *public_fields}
    if "case_no" in public_fields:
        assert hit["case_no"] == "(2026)鲁1082执1号"
    who = local_operator()
    ops.evaluate(reg, who)  # from here on, the materialized entries answer
    for query in (masked, DEBTOR, "(2026)鲁1082执1号"):
        assert [r["masked_id"] for r in ops.public_search(reg, who, query)] == [masked]
    assert ops.public_search(reg, who, "(2026)鲁1082执2号") == []
    assert ops.public_search(reg, who, "(2026)鲁1082执3号") == []


def test_public_search_and_statistics_only_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The public search page and the statistics are reads: they answer while another
    process holds the registry open for reading (a writer's lock would be refused)."""
    reg = _registry(tmp_path, ("judicial",))
    who = local_operator()
    ops.evaluate(reg, who)
    monkeypatch.setenv("XINYONG_BUSY_TIMEOUT", "0")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from xinyong.ledger.store import Store\n"
            "with Store(sys.argv[1], read_only=True):\n"
            "    print('open', flush=True); time.sleep(60)",
            str(reg.db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert ops.public_search(reg, who, "张") == []
        today = now_utc().date()
        assert ops.statistics(reg, who, today - timedelta(days=30), today)["minors_listed"] == 0
    finally:
        holder.kill()
        holder.wait()


def test_the_linter_refuses_a_home_address_or_phone_among_public_fields() -> None:
    path = next(p for p in shipped_pack_paths() if p.stem == "judicial")
    text = path.read_text(encoding="utf-8")
    for private in ("home_address", "phone"):
        bad = text.replace("    public_fields:\n", f"    public_fields:\n      - {private}\n", 1)
        assert bad != text
        findings = lint(load_pack("bad.yaml", text=bad))
        assert any(f.level == "error" and private in f.message for f in findings), private


def test_an_inquiry_counts_in_the_commercial_score(tmp_path: Path) -> None:
    """Each read is an inquiry.made record, and the commercial score counts lenders'
    inquiries for new credit (its scope and features name inquiry.made)."""
    reg = _registry(tmp_path, ("financial", "commercial"))
    subject = make_person_id(date(1988, 4, 4), 61)
    consents = [
        {
            "record_id": f"k-{system}",
            "subject_id": subject,
            "type": "subject.consent_granted",
            "occurred_at": "2025-01-01",
            "source": "lender:bank-a",
            "attributes": {"system": system},
        }
        for system in ("financial", "commercial")
    ]
    # an account open long enough for the commercial pack's minimum history
    consents.append(
        {
            "record_id": "l-1",
            "subject_id": subject,
            "type": "loan.opened",
            "occurred_at": "2024-01-01",
            "source": "lender:bank-a",
            "attributes": {"account_id": "A1", "kind": "consumer", "amount": 1000},
        }
    )
    with reg.store() as store:
        assert submit(store, consents).rejected == 0
    _, key = ops.add_principal(
        reg, local_operator(), "bank-a", "service", source="lender:bank-a",
        services=["finance.credit"],
    )  # fmt: skip
    bank = ops.authenticate(reg, "bank-a", key)
    before = ops.score(reg, local_operator(), subject, "commercial").score
    answer = ops.inquire(reg, bank, subject, "loan_approval")
    queries = next(s for s in answer["sections"] if s["section"] == "query_records")
    assert [r["record_id"] for r in queries["records"]] == [answer["inquiry_record"]]
    after = ops.score(reg, local_operator(), subject, "commercial").score
    assert before is not None and after is not None
    assert after < before


def test_the_subject_report_renders_as_pdf_with_chinese_text(tmp_path: Path) -> None:
    for tool in ("pdftoppm", "pdffonts", "pdftotext"):
        assert shutil.which(tool), f"{tool} missing: install poppler-utils (.ci/run does)"
    reg = _registry(tmp_path, ("judicial", "financial"))
    with reg.store() as store:
        submit(
            store,
            [
                _name("n1", DEBTOR, "张三"),
                _listing("j1", DEBTOR, date(2026, 1, 10), "(2026)鲁1082执1号"),
            ],
        )
    report = ops.subject_report(reg, local_operator(), DEBTOR)
    assert [s["system"] for s in report.systems] == ["financial", "judicial"]
    judicial = next(s for s in report.systems if s["system"] == "judicial")
    assert judicial["list_entries"] and judicial["list_entries"][0]["active"]
    assert any("Art. 17" in r.legal_basis for r in report.rights)
    pdf = write_report(report, tmp_path / "report.pdf", "pdf")
    html = write_report(report, tmp_path / "report.html", "html")
    assert "张三" in html.read_text(encoding="utf-8")
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True)
    assert any(cjk in fonts.stdout for cjk in ("WenQuanYi", "NotoSansCJK", "Noto Sans CJK")), (
        fonts.stdout
    )
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True)
    assert "张三" in text.stdout and "信用报告" in text.stdout
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2
    for page in pages:
        with Image.open(page) as img:
            gray = img.convert("L")
            inked = sum(gray.histogram()[:200])
        assert inked > 200, f"{page.name} is blank"  # text on paper, not an empty page
