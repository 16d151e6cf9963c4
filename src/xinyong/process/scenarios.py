"""Access scenarios: the inquiry, purge and licence paths, as data.

A scenario file (YAML, in ``process/scenarios/``) sets up a fresh registry with
the named shipped packs, sources and principals, then runs steps in order,
each as a principal (``as:``, default the local operator) through the same
operations layer the CLI and the HTTP API use, and states what must follow.
Expectations come from the cited provision, not from running the code.

Format::

    scenario: title (the provision)
    packs: [financial]                      # shipped packs to install
    sources: {lender:bank-a: lender}        # source id -> kind
    subjects: {S: &S "371082199005171230"}  # names for ids (YAML anchors)
    principals:                             # name -> role and scope
      bank-a: {role: service, source: lender:bank-a, services: [finance.credit]}
    steps:
      - cite: Art. 18                       # required: the provision tested
        records: [...]                      # imported (recorded_at: optional)
      - cite: ...
        as: bank-a
        inquire: {subject: *S, purpose: loan_approval}
        expect:
          refused: inquire:consent          # the permission the refusal names
          records: 3                        # ledger size after the step
          last_audit: {action: inquire, outcome: refused}
          sections: {query_records: 1}      # inquire: records per report section
      - {cite: ..., report: {subject: *S}, expect: {charged: false, inquiries: 1}}
      - {cite: ..., score: {subject: *S, system: commercial, at: ...},
         expect: {score: null}}             # or scored: true / false
      - {cite: ..., check: {subject: *S, service: flight, at: ..., known_at: ...},
         expect: {decision: deny}}
      - {cite: ..., purge: {now: 2026-01-01}, expect: {purged: [ids]}}
      - {cite: ..., bind: {system: commercial, operator: ...}}
"""

from __future__ import annotations

import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from xinyong.access import operations as ops
from xinyong.access.permissions import Refused
from xinyong.access.principals import Principal, local_operator
from xinyong.ledger.store import Store
from xinyong.problems import load_document
from xinyong.timeutil import parse_instant

SCENARIO_DIR = Path(__file__).parent / "scenarios"


class AccessScenarioError(ValueError):
    """An access scenario file that does not parse or follow the format."""


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    cite: str
    as_: str | None = Field(default=None, alias="as")
    records: list[dict[str, Any]] | None = None
    recorded_at: date | datetime | str | None = None
    inquire: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    score: dict[str, Any] | None = None
    check: dict[str, Any] | None = None
    purge: dict[str, Any] | None = None
    bind: dict[str, Any] | None = None
    expect: dict[str, Any] = Field(default_factory=dict)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: str
    description: str = ""
    packs: list[str]
    sources: dict[str, str] = Field(default_factory=dict)
    subjects: dict[str, str] = Field(default_factory=dict)
    principals: dict[str, dict[str, Any]] = Field(default_factory=dict)
    steps: list[Step]


def scenario_paths() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.yaml"))


def _instant(value: Any) -> Any:
    return None if value is None else parse_instant(value)


def _plain(value: Any) -> Any:
    """YAML dates as the ISO text intake reads."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _setup(reg: ops.Registry, sc: Scenario) -> dict[str, Principal]:
    from xinyong.ledger.intake import register_source
    from xinyong.packs import install_pack, shipped_pack_paths

    shipped = {p.stem: p for p in shipped_pack_paths()}
    with reg.store() as store:
        for name in sc.packs:
            install_pack(store, shipped[name])
        for source, kind in sc.sources.items():
            register_source(store, source, kind)
    operator = local_operator()
    principals = {"operator": operator}
    for name, spec in sc.principals.items():
        _, key = ops.add_principal(
            reg,
            operator,
            name,
            spec["role"],
            source=spec.get("source"),
            services=spec.get("services"),
            subject_id=spec.get("subject_id"),
        )
        principals[name] = ops.authenticate(reg, name, key)
    return principals


def _run_step(reg: ops.Registry, who: Principal, step: Step) -> Any:
    if step.records is not None:
        from xinyong.ledger.intake import submit

        with reg.store() as store:
            result = submit(
                store, _plain(step.records), strict=True, recorded_at=_instant(step.recorded_at)
            )
        if result.rejected:
            raise AssertionError(f"records rejected: {[r.reason for r in result.rejects]}")
        return result
    if step.inquire is not None:
        return ops.inquire(reg, who, step.inquire["subject"], step.inquire["purpose"])
    if step.report is not None:
        return ops.subject_report(reg, who, step.report["subject"])
    if step.score is not None:
        s = step.score
        return ops.score(
            reg,
            who,
            s["subject"],
            s["system"],
            at=_instant(s.get("at")),
            known_at=_instant(s.get("known_at")),
        )
    if step.check is not None:
        c = step.check
        return ops.check(
            reg,
            who,
            c["subject"],
            c["service"],
            at=_instant(c.get("at")),
            known_at=_instant(c.get("known_at")),
        )
    if step.purge is not None:
        return ops.purge(
            reg,
            who,
            dry_run=bool(step.purge.get("dry_run")),
            now=_instant(step.purge.get("now")),
        )
    if step.bind is not None:
        return ops.bind_licence(reg, who, step.bind["system"], step.bind["operator"])
    raise AssertionError("a step needs one of records, inquire, report, score, check, purge, bind")


def _compare(
    reg: ops.Registry, result: Any, refusal: Refused | None, expect: dict[str, Any]
) -> list[str]:
    problems = []
    if "refused" in expect:
        if refusal is None:
            problems.append(f"expected refusal {expect['refused']!r}, got an answer")
        elif refusal.permission != expect["refused"]:
            problems.append(f"refused with {refusal.permission!r}, expected {expect['refused']!r}")
    elif refusal is not None:
        problems.append(f"unexpected refusal: {refusal}")
    for key, want in expect.items():
        got: Any
        if key == "refused":
            continue
        if key == "records":
            with reg.store() as store:
                row = store.sql.execute("SELECT count(*) FROM records").fetchone()
            got = row[0] if row else 0
        elif key == "last_audit":
            last = list(reg.audit.entries())[-1]
            got = {k: getattr(last, k) for k in want}
        elif result is None:
            problems.append(f"{key}: no answer to compare")
            continue
        elif key == "sections":
            got = {
                s["section"]: len(s["records"]) for s in result["sections"] if s["section"] in want
            }
        elif key == "inquiries":
            got = len(result.inquiries)
        elif key == "scored":
            got = result.score is not None
        elif key == "charged":
            got = result.charged
        elif key in ("score", "grade", "decision"):
            got = getattr(result, key)
            if key == "score" and got is not None and want is not None:
                got = round(float(got), 6)
                want = round(float(want), 6)
        elif key == "purged":
            got = sorted(t.record_id for t in result)
            want = sorted(want)
        else:
            problems.append(f"unknown expectation {key!r}")
            continue
        if got != want:
            problems.append(f"{key}: expected {want!r}, got {got!r}")
    return problems


def run_scenario(path: Path) -> list[str]:
    """The failures of one scenario file (empty when it holds)."""
    sc = load_document(Scenario, path, error=AccessScenarioError, kind="access scenario")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        reg = ops.Registry(Path(tmp) / "registry.duckdb")
        Store(reg.db).close()  # a fresh registry file
        with reg.holding():
            principals = _setup(reg, sc)
            for n, step in enumerate(sc.steps, start=1):
                who = principals[step.as_ or "operator"]
                result, refusal = None, None
                try:
                    result = _run_step(reg, who, step)
                except Refused as exc:
                    refusal = exc
                for problem in _compare(reg, result, refusal, step.expect):
                    failures.append(f"{path.name}: step {n} ({step.cite}): {problem}")
    return failures
