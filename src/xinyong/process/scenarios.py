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

Due process (issue 9; ``xinyong.access.due_process``). A step may name its
result (``name: O1``) so later steps refer to the objection or repair by name;
``error:`` expects a ``DueProcessError`` whose message contains the text (and then
nothing written: combine with ``records:``)::

      - {cite: Art. 11, name: O1, object: {subject: *S, record: c1,
           ground: should_not_be_listed, statement: ..., at: 2025-09-26},
         expect: {status: open, review_due: 2025-10-11}}
      - {cite: ..., decide: {objection: O1, uphold: true, reason: ..., at: ...},
         expect: {status: upheld, correction_due: 2025-10-14}}
      - {cite: ..., reconsider: {objection: O1, statement: ..., at: ...}}
      - {cite: ..., objections: {subject: *S, overdue: true, at: ...}, expect: {count: 1}}
      - {cite: ..., statement: {subject: *S, record: c1, text: ...}}
      - {cite: ..., name: R1, repair: {subject: *S, record: p1, commitment: ..., at: ...},
         expect: {eligible_from: 2026-07-15}}
      - {cite: ..., repair_decide: {repair: R1, grant: true, reason: ..., at: ...}}
      - {cite: ..., notices: {}, expect: {notices: [{kind: listing, record_id: c1}]}}
      - check expectations also take ``disputed`` and ``human_review`` (some reason marked)
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
from xinyong.process.objections import DueProcessError
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
    name: str | None = None
    object_: dict[str, Any] | None = Field(default=None, alias="object")
    decide: dict[str, Any] | None = None
    reconsider: dict[str, Any] | None = None
    objections: dict[str, Any] | None = None
    statement: dict[str, Any] | None = None
    repair: dict[str, Any] | None = None
    repair_decide: dict[str, Any] | None = None
    notices: dict[str, Any] | None = None
    search: dict[str, Any] | None = None
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


def _due_process_step(reg: ops.Registry, who: Principal, step: Step, names: dict[str, str]) -> Any:
    from xinyong.access import due_process as dp

    def ref(value: str) -> str:
        return names.get(value, value)

    if step.object_ is not None:
        o = step.object_
        return dp.file_objection(
            reg,
            who,
            o["subject"],
            o["record"],
            o["ground"],
            o.get("statement", "statement"),
            at=_instant(o.get("at")),
        )
    if step.decide is not None:
        d = step.decide
        return dp.decide_objection(
            reg,
            who,
            ref(d["objection"]),
            uphold=bool(d["uphold"]),
            reason=d.get("reason", "reason"),
            at=_instant(d.get("at")),
            corrected_record=d.get("corrected_record"),
        )
    if step.reconsider is not None:
        r = step.reconsider
        return dp.reconsider_objection(
            reg, who, ref(r["objection"]), r.get("statement", "statement"), at=_instant(r.get("at"))
        )
    if step.objections is not None:
        q = step.objections
        return dp.list_objections(
            reg,
            who,
            subject=q.get("subject"),
            overdue=bool(q.get("overdue")),
            at=_instant(q.get("at")),
        )
    if step.statement is not None:
        t = step.statement
        return dp.add_statement(
            reg, who, t["subject"], t["record"], t["text"], at=_instant(t.get("at"))
        )
    if step.repair is not None:
        r = step.repair
        return dp.apply_repair(
            reg, who, r["subject"], r["record"], r.get("commitment", ""), at=_instant(r.get("at"))
        )
    if step.repair_decide is not None:
        r = step.repair_decide
        return dp.decide_repair(
            reg,
            who,
            ref(r["repair"]),
            grant=bool(r["grant"]),
            reason=r.get("reason", "reason"),
            at=_instant(r.get("at")),
        )
    if step.search is not None:
        return ops.public_search(reg, who, step.search["text"], at=_instant(step.search.get("at")))
    if step.notices is not None:
        from xinyong.process import notices

        with reg.store() as store:
            notices.collect(store)
            return {"notices": notices.pending(store, subject=step.notices.get("subject"))}
    return None


def _run_step(
    reg: ops.Registry, who: Principal, step: Step, names: dict[str, str] | None = None
) -> Any:
    due = _due_process_step(reg, who, step, names if names is not None else {})
    if due is not None:
        return due
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
    reg: ops.Registry,
    result: Any,
    refusal: Refused | None,
    expect: dict[str, Any],
    error: str | None = None,
) -> list[str]:
    problems = []
    if "error" in expect:
        if error is None:
            problems.append(f"expected an error containing {expect['error']!r}, got none")
        elif str(expect["error"]) not in error:
            problems.append(f"error {error!r} does not contain {expect['error']!r}")
    elif error is not None:
        problems.append(f"unexpected error: {error}")
    if "refused" in expect:
        if refusal is None:
            problems.append(f"expected refusal {expect['refused']!r}, got an answer")
        elif refusal.permission != expect["refused"]:
            problems.append(f"refused with {refusal.permission!r}, expected {expect['refused']!r}")
    elif refusal is not None:
        problems.append(f"unexpected refusal: {refusal}")
    for key, want in expect.items():
        got: Any
        if key in ("refused", "error"):
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
        elif key in ("disputed", "human_review"):
            got = any(getattr(r, key) for r in result.reasons)
        elif key == "count":
            got = len(result)
        elif key == "notices":
            got = [{k: n[k] for k in w} for n, w in zip(result["notices"], want, strict=False)]
            if len(result["notices"]) != len(want):
                got = [n["kind"] + ":" + str(n["record_id"]) for n in result["notices"]]
        elif isinstance(result, dict) and key in result:
            got = result[key]
            want = _plain(want)
        elif isinstance(result, list) and key in ("status", "overdue", "review_due"):
            got = [r[key] for r in result]
            want = _plain(want)
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
            names: dict[str, str] = {}
            for n, step in enumerate(sc.steps, start=1):
                who = principals[step.as_ or "operator"]
                result, refusal, error = None, None, None
                try:
                    result = _run_step(reg, who, step, names)
                except Refused as exc:
                    refusal = exc
                except DueProcessError as exc:
                    error = str(exc)
                if step.name and isinstance(result, dict):
                    names[step.name] = result.get("objection_id") or result.get("repair_id") or ""
                for problem in _compare(reg, result, refusal, step.expect, error):
                    failures.append(f"{path.name}: step {n} ({step.cite}): {problem}")
    return failures
