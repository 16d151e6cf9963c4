"""Every shipped scenario file (all packs) runs against the engine and passes.

The expected outcomes in the files are derived by hand from the legal text; a
failure here is a disagreement between the engine and the law as the pack
encodes it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from xinyong.catalog.identifiers import parse_subject_id
from xinyong.packs.scenarios import (
    ScenarioError,
    load_scenario,
    run_scenario,
    shipped_scenario_paths,
)

PATHS = shipped_scenario_paths()


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_scenario_file(path: Path) -> None:
    failures = run_scenario(path)
    assert not failures, "\n".join(str(f) for f in failures)


def test_every_pack_of_mine_has_scenarios() -> None:
    covered = {name for p in PATHS for name in load_scenario(p).packs}
    assert {"judicial", "rongcheng", "financial"} <= covered


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_scenario_identifiers_are_valid(path: Path) -> None:
    scn = load_scenario(path)
    for case in scn.cases:
        assert case.cite.strip(), case.id
        for step in case.steps:
            for record in step.records:
                if record.get("record_id") in step.rejected:
                    continue
                parse_subject_id(record["subject_id"])
                person = (record.get("attributes") or {}).get("person_id")
                if person:
                    parse_subject_id(person)


def test_invalid_scenario_names_file_and_place(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "scenario: x\npacks: [judicial]\ncases:\n  - id: a\n    cite: y\n"
        "    expect:\n      - at: 2024-01-01\n        checks:\n"
        "          - {subject: s, service: flight}\n",
        "utf-8",
    )
    with pytest.raises(ScenarioError) as exc:
        load_scenario(bad)
    assert "bad.yaml" in str(exc.value)
    assert "cases.0.expect.0.checks.0.decision" in str(exc.value)
    (failure,) = run_scenario(bad)
    assert failure.scenario == "bad.yaml"


def test_runner_reports_a_difference(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        """
scenario: a deliberately wrong expectation
packs: [judicial]
defaults: {source: "court:371082-rongcheng"}
cases:
  - id: wrong-decision
    cite: "Fa Shi [2017] No. 7, Art. 1(1)"
    steps:
      - records:
          - {record_id: w-1, subject_id: "371082198903120114", type: court.listing_decision,
             occurred_at: 2024-01-10,
             attributes: {case_no: "(2024)X1", ground: able_but_refuses}}
    expect:
      - at: 2024-02-01
        checks:
          - {subject: "371082198903120114", service: flight, decision: allow}
""",
        "utf-8",
    )
    failures = run_scenario(wrong)
    assert len(failures) == 1
    text = str(failures[0])
    assert "wrong.yaml" in text and "wrong-decision" in text
    assert "2024-02-01" in text and "expected decision 'allow', got 'deny'" in text
