"""The shipped packs load; broken packs give errors that name file and place."""

from __future__ import annotations

from pathlib import Path

import pytest

from xinyong.catalog import load_catalog
from xinyong.ledger.store import Store
from xinyong.packs import PackError, install_pack, load_pack, shipped_pack_paths

MINE = ("judicial", "rongcheng", "financial")


def _paths() -> dict[str, Path]:
    return {p.stem: p for p in shipped_pack_paths()}


@pytest.mark.parametrize("path", shipped_pack_paths(), ids=lambda p: p.stem)
def test_shipped_pack_loads(path: Path) -> None:
    pack = load_pack(path)
    assert pack.system == path.stem
    assert pack.meta.legal_basis


def test_my_packs_are_shipped() -> None:
    assert set(MINE) <= set(_paths())


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("meta:\n  system: x\n  title: [unclosed\n", "utf-8")
    with pytest.raises(PackError) as exc:
        load_pack(bad)
    assert "broken.yaml" in str(exc.value)
    assert "line" in str(exc.value)


def test_not_a_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n", "utf-8")
    with pytest.raises(PackError, match="list.yaml"):
        load_pack(bad)


def test_invalid_pack_names_file_and_place(tmp_path: Path) -> None:
    text = _paths()["judicial"].read_text("utf-8").replace("effect: deny", "effect: banish", 1)
    bad = tmp_path / "judicial-bad.yaml"
    bad.write_text(text, "utf-8")
    with pytest.raises(PackError) as exc:
        load_pack(bad)
    message = str(exc.value)
    assert "judicial-bad.yaml" in message
    assert "consequences.0.effect" in message


def test_unknown_field_is_refused(tmp_path: Path) -> None:
    text = (
        _paths()["financial"]
        .read_text("utf-8")
        .replace("  version:", "  colour: red\n  version:", 1)
    )
    bad = tmp_path / "financial-bad.yaml"
    bad.write_text(text, "utf-8")
    with pytest.raises(PackError, match=r"meta\.colour"):
        load_pack(bad)


def test_install_refuses_a_pack_with_lint_errors(tmp_path: Path) -> None:
    text = (
        _paths()["judicial"]
        .read_text("utf-8")
        .replace('when: "subject.age < 18"', 'when: "subject.age < 14"')
    )
    bad = tmp_path / "judicial-minors.yaml"
    bad.write_text(text, "utf-8")
    with Store(tmp_path / "r.duckdb") as store, pytest.raises(PackError) as exc:
        install_pack(store, bad)
    assert "Minors are never listed" in str(exc.value)


def test_judicial_restrictions() -> None:
    pack = load_pack(_paths()["judicial"])
    consumption = {s for s, v in load_catalog().services.items() if v.domain == "consumption"}
    on_subject = {c.service for c in pack.consequences if c.reaches == "subject"}
    on_rep = {c.service for c in pack.consequences if c.reaches == "legal_representative"}
    discipline = {
        "procurement.bid",
        "admin.approval",
        "gov.support",
        "finance.credit",
        "market.access",
        "qualification.recognition",
    }
    # every consumption restriction in the catalog (item (7), schooling, has no service:
    # declined), on the subject and the legal representative; joint discipline on the
    # subject only (Fa Fa [2019] No. 35)
    assert on_subject == consumption | discipline
    assert on_rep == consumption
    assert all(c.effect == "deny" and c.list == "dishonest_debtors" for c in pack.consequences)
    (spec,) = pack.lists
    # Art. 10 ¶1 triggers end open-ended listings only (Art. 10 ¶2); early deletion
    # (Art. 2 ¶2) ends termed ones; revocation (Art. 9) any.
    assert {(r.type, r.applies_to) for r in spec.removal} == {
        ("court.obligation_fulfilled", "open_ended"),
        ("court.settlement_performed", "open_ended"),
        ("court.creditor_withdrew", "open_ended"),
        ("court.enforcement_ended", "open_ended"),
        ("court.early_deletion", "termed"),
        ("court.listing_revoked", "any"),
    }
    assert spec.curable and spec.key == "case_no"
    (relation,) = pack.relations
    assert relation.transferred_by == "court.restriction_transferred"


def test_judicial_publishes_the_art_6_fields() -> None:
    # Fa Shi [2017] No. 7, Art. 6: person: name, sex, age, ID number; organization:
    # name, code, legal representative's name; the obligation and how far it was
    # performed; the conduct; the case number, filing date and enforcing court.
    (spec,) = load_pack(_paths()["judicial"]).lists
    assert {
        "name",
        "gender",
        "age",
        "subject_id",
        "legal_representative_name",
        "obligation_performance",
        "ground",
        "case_no",
        "occurred_at",
        "enforcing_court",
    } <= set(spec.public_fields)


def test_effective_dates_are_shanghai_dates(tmp_path: Path) -> None:
    from xinyong.checks import explain
    from xinyong.checks.questions import UnknownName
    from xinyong.packs import installed_packs
    from xinyong.timeutil import parse_instant

    with Store(tmp_path / "r.duckdb") as store:
        install_pack(store, _paths()["judicial"])
        # in force from 2017-05-01 00:00 Asia/Shanghai, which is 2017-04-30 16:00 UTC
        at = parse_instant("2017-05-01T00:30:00+08:00")
        assert [p.system for p in installed_packs(store, at)] == ["judicial"]
        before = parse_instant("2017-04-30T23:30:00+08:00")
        assert installed_packs(store, before) == []
        with pytest.raises(UnknownName, match=r"not yet in force .*\(from 2017-05-01\)"):
            explain(store, "371082198903120114", system="judicial", at=before)
        with pytest.raises(UnknownName, match="unknown system 'nowhere'"):
            explain(store, "371082198903120114", system="nowhere", at=at)


def test_rongcheng_published_values() -> None:
    pack = load_pack(_paths()["rongcheng"])
    assert pack.score is not None
    rules = {r.type: r for r in pack.score.rules}
    published = {
        "finance.contract_breach": -20,
        "court.breach_liability": -50,
        "loan.payment_overdue": -10,
        "finance.private_lending_breach": -20,
        "finance.illegal_fundraising_investigation": -40,
        "finance.guarantee_breach": -20,
        "court.debt_liability": -30,
        "market.pyramid_selling_or_fraud": -30,
        "market.counterfeit_goods": -30,
        "utility.late_payment": -20,
        "utility.arrears_judgment": -50,
        "utility.heating_tampering": -50,
        "utility.theft": -60,
        "utility.equipment_destruction": -100,
    }
    for type_, points in published.items():
        assert rules[type_].points == points
        assert not rules[type_].illustrative
    for type_, rule in rules.items():
        if type_ not in published:
            assert rule.illustrative, type_
    assert pack.score.base == 1000 and pack.score.consent_required and pack.score.min_age == 18
    assert all(b.illustrative for b in pack.score.grades)
    assert all(c.illustrative for c in pack.consequences)


def test_financial_retention_and_access() -> None:
    pack = load_pack(_paths()["financial"])
    # It reports and imposes nothing; its one list records the courts' list of
    # dishonest debtors (Fa Shi [2017] No. 7, Art. 8 ¶2) for the report.
    assert pack.score is None and not pack.consequences
    assert [s.id for s in pack.lists] == ["dishonest_debtors"]
    debt = next(r for r in pack.retention if "court.debt_liability" in r.types)
    assert (debt.start, debt.ended_by) == ("conduct_end", ["court.obligation_fulfilled"])
    overdue = next(r for r in pack.retention if "loan.payment_overdue" in r.types)
    assert (overdue.years, overdue.start, overdue.key) == (5, "conduct_end", "account_id")
    assert set(overdue.ended_by) == {"loan.overdue_cured", "loan.closed"}
    assert pack.access is not None and pack.access.consent_required
    assert {"subject.consent_granted", "subject.consent_withdrawn"} <= set(pack.scope.record_types)
