"""The pack linter: every safeguard of DESIGN.md produces its finding."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from xinyong.packs import Pack, load_pack, shipped_pack_paths
from xinyong.packs.lint import Finding, family_tie, lint, special_category

BASE: dict[str, Any] = {
    "meta": {
        "system": "testcity",
        "version": "1",
        "effective_from": "2024-01-01",
        "title": "Test",
        "authority": "Test court",
        "legal_basis": "Test Act, Art. 1",
    },
    "scope": {
        "record_types": ["court.listing_decision", "court.obligation_fulfilled"],
        "source_kinds": ["court"],
    },
    "lists": [
        {
            "id": "debtors",
            "name": "Debtors",
            "entry_type": "court.listing_decision",
            "key": "case_no",
            "terms": [{"years": 2, "legal_basis": "Test Act, Art. 2"}],
            "exclusions": [
                {"id": "minors", "when": "subject.age < 18", "legal_basis": "Test Act, Art. 4"}
            ],
            "legal_basis": "Test Act, Art. 1",
        }
    ],
    "consequences": [
        {
            "id": "no_flight",
            "list": "debtors",
            "service": "flight",
            "effect": "deny",
            "legal_basis": "Test Act, Art. 5",
        }
    ],
    # issue 9: a pack that lists or grades must say how a subject objects
    "process": {
        "grounds": ["should_not_be_listed"],
        "review": {"days": 15, "unit": "days"},
        "correction": {"days": 3, "unit": "working_days"},
        "legal_basis": "Test Act, Art. 6",
    },
}


def make(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    raw.update(copy.deepcopy(changes))
    return raw


def pack(raw: dict[str, Any]) -> Pack:
    return Pack.model_validate(raw)


def errors(p: Pack) -> list[Finding]:
    return [f for f in lint(p) if f.level == "error"]


def warnings(p: Pack) -> list[Finding]:
    return [f for f in lint(p) if f.level == "warning"]


def has(findings: list[Finding], rule_id: str, text: str) -> bool:
    return any(f.rule_id == rule_id and text in f.message for f in findings)


def test_clean_minimal_pack_passes() -> None:
    assert lint(pack(make())) == []


def test_finding_is_readable() -> None:
    f = Finding("error", "lists.debtors", "no legal basis")
    assert str(f) == "error: lists.debtors: no legal basis"


# -- special categories -----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "ethnic_minority",
        "race",
        "religious_affiliation",
        "political_opinion",
        "union_member",
        "health_record",
        "medical_history",
        "genetic_risk",
        "biometric_match",
        "face_match",
        "fingerprint_hits",
        "sexual_orientation",
        "speech_violation",
        "social_connections",
        "contacts_count",
        "friends_with_debtors",
        "association_membership",
    ],
)
def test_special_category_list_id_is_an_error(name: str) -> None:
    raw = make()
    raw["lists"][0]["id"] = name
    raw["consequences"][0]["list"] = name
    assert has(errors(pack(raw)), f"lists.{name}", "special-category")


def test_special_category_in_condition_is_an_error() -> None:
    raw = make()
    raw["lists"][0]["when"] = "religion == 'x' and case_no != ''"
    found = errors(pack(raw))
    assert has(found, "lists.debtors", "concerns religion")
    assert has(found, "lists.debtors", "not an attribute")


def test_special_category_relation_is_an_error() -> None:
    raw = make(relations=[{"id": "social_contacts", "legal_basis": "x"}])
    assert has(errors(pack(raw)), "relations.social_contacts", "special-category")


@pytest.mark.parametrize(
    "name",
    [
        "dishonest_debtors",
        "hospital.priority",
        "post_loan_management",
        "loan_arrears",
        "civic.blood_donation",
        "registry.legal_representative",
        "restrict.rail.high_speed",
    ],
)
def test_ordinary_names_are_not_special(name: str) -> None:
    assert special_category(name) is None
    assert not family_tie(name)


# -- relations and family ties ------------------------------------------------------


def test_family_relation_is_always_an_error() -> None:
    raw = make(relations=[{"id": "spouse", "legal_basis": "Some Act, Art. 9"}])
    raw["consequences"].append(
        {
            "id": "no_flight_spouse",
            "list": "debtors",
            "service": "flight",
            "effect": "deny",
            "reaches": "spouse",
            "legal_basis": "Some Act, Art. 9",
        }
    )
    found = errors(pack(raw))
    assert has(found, "relations.spouse", "family tie")
    assert has(found, "relations.spouse", "not a legal-role relation defined in the catalog")
    assert has(found, "no_flight_spouse", "family tie")


@pytest.mark.parametrize("name", ["children_school", "household_members", "parent", "relatives"])
def test_family_ids_are_errors(name: str) -> None:
    raw = make()
    raw["consequences"][0]["id"] = name
    assert has(errors(pack(raw)), name, "family tie")


def _with_legal_rep() -> dict[str, Any]:
    raw = make(relations=[{"id": "legal_representative", "legal_basis": "Test Act, Art. 7"}])
    raw["scope"]["record_types"].append("registry.legal_representative")
    raw["scope"]["source_kinds"].append("regulator")
    raw["consequences"].append(
        {
            "id": "no_flight_rep",
            "list": "debtors",
            "service": "flight",
            "effect": "deny",
            "reaches": "legal_representative",
            "legal_basis": "Test Act, Art. 7",
        }
    )
    return raw


def test_declared_legal_role_relation_passes() -> None:
    assert lint(pack(_with_legal_rep())) == []


def test_consequence_on_undeclared_relation_is_an_error() -> None:
    p = pack(_with_legal_rep())
    undeclared = p.model_copy(update={"relations": []})  # the schema would refuse it
    assert has(errors(undeclared), "no_flight_rep", "does not declare")


def test_relation_not_in_catalog_is_an_error() -> None:
    raw = _with_legal_rep()
    raw["relations"] = [{"id": "business_partner", "legal_basis": "Test Act, Art. 7"}]
    raw["consequences"][1]["reaches"] = "business_partner"
    found = errors(pack(raw))
    assert has(found, "relations.business_partner", "not a legal-role relation")
    assert has(found, "no_flight_rep", "not a legal-role relation")


def test_relation_without_legal_basis_is_an_error() -> None:
    raw = _with_legal_rep()
    raw["relations"][0]["legal_basis"] = ""
    found = errors(pack(raw))
    assert has(found, "relations.legal_representative", "no legal basis")
    assert has(found, "no_flight_rep", "without a legal basis")


def test_relation_record_type_must_be_in_scope() -> None:
    raw = _with_legal_rep()
    raw["scope"]["record_types"].remove("registry.legal_representative")
    assert has(errors(pack(raw)), "relations.legal_representative", "scope omits")


# -- terms, legal bases, catalog references -----------------------------------------


def test_unbounded_list_not_curable_is_an_error() -> None:
    raw = make()
    raw["lists"][0]["terms"] = [{"open_ended": True, "legal_basis": "Test Act, Art. 2"}]
    assert has(errors(pack(raw)), "lists.debtors", "no maximum term")


def test_unbounded_list_curable_with_removal_passes() -> None:
    raw = make()
    spec = raw["lists"][0]
    spec["terms"] = [{"open_ended": True, "legal_basis": "Test Act, Art. 2"}]
    spec["curable"] = True
    assert has(errors(pack(raw)), "lists.debtors", "no maximum term")  # curable, no removal
    spec["removal"] = [{"type": "court.obligation_fulfilled", "legal_basis": "Test Act, Art. 10"}]
    assert errors(pack(raw)) == []


@pytest.mark.parametrize(
    ("path", "rule_id"),
    [
        (("meta",), "meta"),
        (("lists", 0), "lists.debtors"),
        (("lists", 0, "terms", 0), "lists.debtors.terms[0]"),
        (("lists", 0, "exclusions", 0), "lists.debtors.exclusions.minors"),
        (("consequences", 0), "no_flight"),
    ],
)
def test_missing_legal_basis_is_an_error(path: tuple[Any, ...], rule_id: str) -> None:
    raw = make()
    node: Any = raw
    for step in path:
        node = node[step]
    node["legal_basis"] = "  "
    assert has(errors(pack(raw)), rule_id, "no legal basis")


def test_missing_legal_basis_on_removal_score_rule_and_retention() -> None:
    raw = make(
        score={
            "base": 100,
            "subject_kinds": ["organization"],
            "rules": [{"id": "listed", "type": "court.listing_decision", "points": -10}],
        },
        retention=[{"id": "keep", "types": ["court.listing_decision"], "years": 5}],
    )
    raw["lists"][0]["removal"] = [{"type": "court.obligation_fulfilled"}]
    found = errors(pack(raw))
    assert has(found, "listed", "no legal basis")
    assert has(found, "retention.keep", "no legal basis")
    assert has(found, "lists.debtors.removal[0]", "no legal basis")


def test_unknown_service_is_an_error() -> None:
    raw = make()
    raw["consequences"][0]["service"] = "spaceflight"
    assert has(errors(pack(raw)), "no_flight", "service 'spaceflight' is not in the catalog")


def test_unknown_record_type_and_source_kind_are_errors() -> None:
    raw = make()
    raw["scope"]["record_types"].append("court.mystery")
    raw["scope"]["source_kinds"].append("police")
    found = errors(pack(raw))
    assert has(found, "scope.record_types.court.mystery", "not in the catalog")
    assert has(found, "scope.source_kinds.police", "not in the catalog")


def test_condition_name_must_be_an_attribute() -> None:
    raw = make()
    raw["lists"][0]["terms"][0]["when"] = "days_past_due > 3"
    assert has(errors(pack(raw)), "lists.debtors.terms[0]", "'days_past_due'")


def test_score_rule_type_outside_scope_is_an_error() -> None:
    raw = make(
        score={
            "base": 100,
            "subject_kinds": ["organization"],
            "legal_basis": "Test Act",
            "rules": [
                {"id": "late", "type": "utility.late_payment", "points": -5, "legal_basis": "x"}
            ],
        }
    )
    assert has(errors(pack(raw)), "late", "outside the pack's scope")


def test_consent_required_needs_consent_types_in_scope() -> None:
    raw = make(
        score={
            "base": 100,
            "consent_required": True,
            "min_age": 18,
            "legal_basis": "Test Act",
            "rules": [
                {"id": "listed", "type": "court.listing_decision", "points": -5, "legal_basis": "x"}
            ],
        }
    )
    found = errors(pack(raw))
    assert has(found, "scope", "subject.consent_granted")
    assert has(found, "scope", "subject.consent_withdrawn")
    raw["scope"]["record_types"] += ["subject.consent_granted", "subject.consent_withdrawn"]
    assert errors(pack(raw)) == []


# -- minors ---------------------------------------------------------------------------


def test_list_without_minors_exclusion_is_an_error() -> None:
    raw = make()
    raw["lists"][0]["exclusions"] = []
    assert has(errors(pack(raw)), "lists.debtors", "Minors are never listed")


@pytest.mark.parametrize(
    ("when", "ok"),
    [
        ("subject.age < 18", True),
        ("subject.age <= 17", True),
        ("18 > subject.age", True),
        ("subject.age < 18 or case_no == 'x'", True),
        ("subject.age < 16", False),
        ("subject.age < 18 and case_no == 'x'", False),
    ],
)
def test_minors_exclusion_must_cover_every_minor(when: str, ok: bool) -> None:
    raw = make()
    raw["lists"][0]["exclusions"][0]["when"] = when
    assert has(errors(pack(raw)), "lists.debtors", "Minors are never listed") is not ok


def test_list_of_organizations_needs_no_minors_exclusion() -> None:
    raw = make()
    raw["lists"][0]["exclusions"] = []
    raw["lists"][0]["subject_kinds"] = ["organization"]
    assert errors(pack(raw)) == []


def test_detrimental_grade_consequence_needs_adult_min_age() -> None:
    raw = make(
        score={
            "base": 100,
            "legal_basis": "Test Act",
            "rules": [
                {
                    "id": "listed",
                    "type": "court.listing_decision",
                    "points": -50,
                    "legal_basis": "x",
                }
            ],
            "grades": [{"grade": "good", "min": 80}, {"grade": "bad"}],
        }
    )
    raw["consequences"].append(
        {
            "id": "bad_no_credit",
            "grades": ["bad"],
            "service": "finance.credit",
            "effect": "deny",
            "legal_basis": "Test Act, Art. 6",
        }
    )
    assert has(errors(pack(raw)), "bad_no_credit", "Minors are never listed")
    raw["score"]["min_age"] = 18
    assert errors(pack(raw)) == []


# -- warnings -------------------------------------------------------------------------


def test_unrelated_domain_warning() -> None:
    raw = make()
    raw["scope"]["record_types"].append("traffic.red_light")
    raw["scope"]["source_kinds"].append("city")
    raw["lists"].append(
        {
            "id": "red_lights",
            "name": "Red lights",
            "entry_type": "traffic.red_light",
            "key": "ticket_no",
            "terms": [{"days": 90, "legal_basis": "Test Act, Art. 3"}],
            "exclusions": [
                {"id": "minors", "when": "subject.age < 18", "legal_basis": "Test Act, Art. 4"}
            ],
            "legal_basis": "Test Act, Art. 3",
        }
    )
    raw["consequences"] += [
        {
            "id": "red_no_flight",
            "list": "red_lights",
            "service": "flight",
            "effect": "deny",
            "legal_basis": "Test Act, Art. 3",
        },
        {
            "id": "red_discount",
            "list": "red_lights",
            "service": "transit.discount",
            "effect": "discount",
            "legal_basis": "Test Act, Art. 3",
        },
    ]
    p = pack(raw)
    assert errors(p) == []
    found = warnings(p)
    assert [f.rule_id for f in found] == ["red_no_flight"]
    assert "EU AI Act Art. 5(1)(c)(i)" in found[0].message
    assert "traffic.red_light (traffic)" in found[0].message


def test_illustrative_consequence_warning() -> None:
    raw = make()
    raw["consequences"][0]["illustrative"] = True
    found = warnings(pack(raw))
    assert has(found, "no_flight", "illustrative")


# -- the shipped packs ------------------------------------------------------------------


def _shipped(name: str) -> Pack:
    paths = {p.stem: p for p in shipped_pack_paths()}
    return load_pack(paths[name])


@pytest.mark.parametrize("name", ["judicial", "financial"])
def test_shipped_pack_is_clean(name: str) -> None:
    assert [str(f) for f in lint(_shipped(name))] == []


def test_rongcheng_has_only_the_expected_warnings() -> None:
    p = _shipped("rongcheng")
    found = lint(p)
    assert [str(f) for f in found if f.level == "error"] == []
    unrelated = sorted(f.rule_id for f in found if "Art. 5(1)(c)(i)" in f.message)
    assert unrelated == [
        "restrict.admin.approval",
        "restrict.gov.support",
        "restrict.procurement.bid",
    ]
    for f in found:
        if "Art. 5(1)(c)(i)" in f.message:
            assert "traffic.red_light (traffic)" in f.message
            assert "civic." not in f.message  # positive points cannot cause a deny
    illustrative = sorted(f.rule_id for f in found if "illustrative" in f.message)
    assert illustrative == sorted(c.id for c in p.consequences)
    assert len(found) == len(unrelated) + len(illustrative)


# -- no retroactivity (Legislation Law Art. 104) and ranges ------------------------


def test_detrimental_rule_reaching_back_is_refused() -> None:
    raw = make()
    raw["lists"][0]["applies_from"] = "2023-06-01"  # the pack is in force from 2024-01-01
    assert has(errors(pack(raw)), "lists.debtors", "Legislation Law, Art. 104")


def test_favourable_rule_may_reach_back_citing_its_basis() -> None:
    raw = make()
    raw["scope"]["record_types"] += ["civic.blood_donation"]
    raw["scope"]["source_kinds"] += ["city"]
    raw["score"] = {
        "base": 100,
        "min_score": 0,
        "rules": [
            {
                "id": "blood",
                "type": "civic.blood_donation",
                "points": 5,
                "applies_from": "2023-01-01",
                "legal_basis": "Test Act, Art. 7",
            }
        ],
    }
    assert has(errors(pack(raw)), "blood", "must cite its basis")
    raw["score"]["rules"][0]["retroactive_basis"] = "Test Act, Art. 9: favourable to citizens"
    assert errors(pack(raw)) == []
    raw["score"]["rules"][0]["points"] = -5
    assert has(errors(pack(raw)), "blood", "never applies retroactively")


def test_points_system_without_a_floor_is_warned() -> None:
    raw = make()
    raw["scope"]["record_types"] += ["utility.theft"]
    raw["scope"]["source_kinds"] += ["utility"]
    raw["score"] = {
        "base": 100,
        "rules": [{"id": "theft", "type": "utility.theft", "points": -60, "legal_basis": "T"}],
    }
    assert has(warnings(pack(raw)), "score", "no floor")
    raw["score"]["min_score"] = 0
    assert not has(warnings(pack(raw)), "score", "no floor")
