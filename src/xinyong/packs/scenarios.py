"""Scenario files: the shipped packs' behaviour, written from the legal text.

A scenario file (YAML, beside the packs in ``packs/shipped/scenarios/``) feeds
records into a fresh registry and states what the registry must answer at
named instants. The expected outcomes are derived by hand from the cited
provision, never from running the code, so a scenario that fails is a
disagreement between the engine and the law as the pack encodes it.

Format::

    scenario: judicial - deletion triggers (Fa Shi [2017] No. 7, Art. 10)
    description: ...                      # optional
    packs: [judicial]                     # shipped pack names, or .yaml paths
                                          # relative to this file
    sources:                              # optional: source id -> kind; by default
      court:371082-rongcheng: court       # the kind is the id's prefix before ':'
    defaults: {source: court:371082-rongcheng}   # optional: merged into each record
    subjects: {D1: &D1 "371082198903120114"}     # optional: names the ids (anchors)
    cases:
      - id: obligation-fulfilled
        cite: Fa Shi [2017] No. 7, Art. 10(1)     # required: the provision tested
        description: ...                          # optional
        steps:                                    # submitted in order
          - recorded_at: 2024-01-12               # optional; default: the step's
            records:                              # latest occurred_at
              - {record_id: j-1, subject_id: ..., type: court.listing_decision,
                 occurred_at: 2024-01-10, attributes: {case_no: ..., ground: ...}}
            rejected: [record ids intake must refuse]   # optional
        expect:
          - at: 2024-02-01                        # the instant asked about
            known_at: 2024-01-15                  # optional: replay what was known then
            checks:
              - {subject: ..., service: flight, decision: deny,
                 reasons: [{system: judicial, list: dishonest_debtors, until: null}]}
            scores:
              - {subject: ..., system: rongcheng, score: 980, grade: A}  # score: null = none
            list_entries:
              - {subject: ..., system: judicial, list: dishonest_debtors, key: ...,
                 active: true, start: ..., end: ..., ending_record: ...}
              - {subject: ..., system: judicial, list: dishonest_debtors, absent: true}
            report:
              - {subject: ..., system: financial, section: overdue,
                 include: [record ids], exclude: [record ids]}
            explain:
              - {subject: ..., system: judicial, contains: [text, ...]}

Dates are ISO 8601 (a bare date is 00:00 Asia/Shanghai, as everywhere). In
``reasons`` every given field must match one reason of the answer: ``since`` and
``until`` as instants (``until: null`` = open-ended), ``legal_basis`` and
``remedy`` as substrings, ``via`` as a subset, anything else exactly. In
``list_entries`` the given fields select and must match at least one entry
(``start``/``end`` as instants); ``absent: true`` says no entry matches.

Each case runs in a registry of its own, so cases never see each other's
records. ``run_scenario(path)`` returns the failures; each names the file,
the case, the instant and the difference.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from xinyong.packs.loader import shipped_pack_paths
from xinyong.problems import load_document
from xinyong.timeutil import parse_instant, to_local_iso

Instant = datetime | date | str


class ScenarioError(ValueError):
    """A scenario file that does not parse or follow the format."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Expectation(_Model):
    """What every expectation names: whose, and with what knowledge."""

    subject: str
    known_at: Instant | None = None
    note: str = ""


class CheckExpectation(_Expectation):
    service: str
    decision: str
    reasons: list[dict[str, Any]] = Field(default_factory=list)


class ScoreExpectation(_Expectation):
    system: str
    score: float | None = None
    grade: str | None = None


class ListEntryExpectation(_Expectation):
    system: str
    list: str
    key: str | None = None
    entry_record: str | None = None
    absent: bool = False
    active: bool | None = None
    start: Instant | None = None
    end: Instant | None = None
    ending_record: str | None = None
    end_reason: str | None = None


class ReportExpectation(_Expectation):
    system: str
    section: str | None = None
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)


class ExplainExpectation(_Expectation):
    system: str | None = None
    contains: list[str] = Field(default_factory=list)


class Expectation(_Model):
    at: Instant
    known_at: Instant | None = None
    checks: list[CheckExpectation] = Field(default_factory=list)
    scores: list[ScoreExpectation] = Field(default_factory=list)
    list_entries: list[ListEntryExpectation] = Field(default_factory=list)
    report: list[ReportExpectation] = Field(default_factory=list)
    explain: list[ExplainExpectation] = Field(default_factory=list)
    note: str = ""


class Step(_Model):
    recorded_at: Instant | None = None
    records: list[dict[str, Any]]
    rejected: list[str] = Field(default_factory=list)
    note: str = ""


class Case(_Model):
    id: str
    cite: str = Field(min_length=1)
    description: str = ""
    steps: list[Step] = Field(default_factory=list)
    expect: list[Expectation] = Field(default_factory=list)


class Scenario(_Model):
    scenario: str
    description: str = ""
    packs: list[str] = Field(min_length=1)
    sources: dict[str, str] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)
    subjects: dict[str, str] = Field(
        default_factory=dict,
        description="names for the identifiers used (documentation, and a place for YAML anchors)",
    )
    cases: list[Case] = Field(min_length=1)


@dataclass(frozen=True)
class Failure:
    scenario: str
    case: str
    at: str
    message: str

    def __str__(self) -> str:
        return f"{self.scenario}: case {self.case!r} at {self.at}: {self.message}"


# ---------------------------------------------------------------------------


def scenario_dir() -> Path:
    return Path(__file__).parent / "shipped" / "scenarios"


def shipped_scenario_paths() -> list[Path]:
    """Every scenario file shipped, for every pack."""
    return sorted(p for p in scenario_dir().glob("*.yaml"))


def load_scenario(path: str | Path) -> Scenario:
    return load_document(Scenario, path, error=ScenarioError, kind="scenario")


def _pack_path(name: str, base: Path) -> Path:
    if not name.endswith(".yaml"):
        for p in shipped_pack_paths():
            if p.stem == name:
                return p
        raise ScenarioError(f"no shipped pack named {name!r}")
    for candidate in (base / name, base.parent / name):
        if candidate.exists():
            return candidate
    raise ScenarioError(f"pack file {name!r} not found beside {base}")


def _iso(value: Any) -> Any:
    """YAML dates and date-times as ISO text (a naive one is Asia/Shanghai)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _iso(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_iso(v) for v in value]
    return value


def _expected_instant(value: Instant) -> datetime:
    return parse_instant(value)


def _actual_instant(value: Any) -> datetime | None:
    """An instant from an answer: naive datetimes are UTC (the Python API);
    text is ISO 8601 (with its offset, or Asia/Shanghai without)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is None else parse_instant(value)
    return parse_instant(str(value))


def _show(value: Any) -> str:
    if isinstance(value, datetime):
        return to_local_iso(value) or "None"
    return repr(value)


def _dump(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return obj


def _same_instant(expected: Any, actual: Any) -> bool:
    if expected is None:
        return actual is None
    if actual is None:
        return False
    try:
        return _expected_instant(expected) == _actual_instant(actual)
    except ValueError:
        return False


def _reason_matches(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    for key, want in expected.items():
        have = actual.get(key)
        if key in ("since", "until"):
            if not _same_instant(want, have):
                return False
        elif key in ("legal_basis", "remedy"):
            if not isinstance(have, str) or str(want) not in have:
                return False
        elif key == "via":
            if not isinstance(have, dict) or not isinstance(want, dict):
                return False
            if any(have.get(k) != v for k, v in want.items()):
                return False
        elif have != want:
            return False
    return True


def _records(step: Step, defaults: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [_iso({**defaults, **r}) for r in step.records]


def _recorded_at(step: Step, records: list[dict[str, Any]]) -> datetime | None:
    if step.recorded_at is not None:
        return _expected_instant(step.recorded_at)
    times = []
    for r in records:
        try:
            times.append(parse_instant(r["occurred_at"]))
        except (KeyError, ValueError):
            continue
    return max(times) if times else None


def _source_kinds(scn: Scenario) -> dict[str, str]:
    kinds = dict(scn.sources)
    for case in scn.cases:
        for step in case.steps:
            for r in [scn.defaults, *step.records]:
                src = r.get("source")
                if isinstance(src, str) and src not in kinds and ":" in src:
                    kinds[src] = src.split(":", 1)[0]
    return kinds


class _CaseRun:
    def __init__(self, path: Path, scn: Scenario, case: Case) -> None:
        self.name = path.name
        self.scn = scn
        self.case = case
        self.failures: list[Failure] = []
        self.when = "setup"

    def fail(self, message: str) -> None:
        self.failures.append(Failure(self.name, self.case.id, self.when, message))

    def run(self, store: Any, path: Path) -> None:
        from xinyong.ledger.intake import register_source, submit
        from xinyong.packs.loader import install_pack

        for source_id, kind in _source_kinds(self.scn).items():
            register_source(store, source_id, kind)
        for name in self.scn.packs:
            install_pack(store, _pack_path(name, path.parent))
        for i, step in enumerate(self.case.steps):
            self.when = f"step {i + 1}"
            records = _records(step, self.scn.defaults)
            result = submit(store, records, recorded_at=_recorded_at(step, records))
            refused = {r.record_id: r for r in result.rejects}
            for rid in sorted(set(refused) - set(step.rejected), key=str):
                rej = refused[rid]
                self.fail(f"intake refused record {rid!r} ({rej.field}: {rej.reason})")
            for rid in sorted(set(step.rejected) - set(refused)):
                self.fail(f"intake accepted record {rid!r}, which the scenario expects refused")
        for exp in self.case.expect:
            self.when = _show(_expected_instant(exp.at))
            self.expectation(store, exp)

    # -- expectations ------------------------------------------------------------

    def _known(self, exp: Expectation, own: Instant | None) -> datetime | None:
        value = own if own is not None else exp.known_at
        return None if value is None else _expected_instant(value)

    def _label(self, subject: str, what: str, known_at: datetime | None) -> str:
        known = f" (known_at {_show(known_at)})" if known_at is not None else ""
        return f"{subject} {what}{known}"

    def expectation(self, store: Any, exp: Expectation) -> None:
        from xinyong.checks import check, explain, score_of

        at = _expected_instant(exp.at)
        if any(self._known(exp, c.known_at) is None for c in exp.checks):
            # Checks with everything known: materialize the timelines (once for all the
            # case's instants), so that they take the fast path (the consequence index
            # a service provider reads) instead of one replay each.
            from xinyong.checks.questions import _fast_path
            from xinyong.engine import evaluate, materialize

            if not _fast_path(store, at, None):
                materialize(store, evaluate(store, as_of=at, timeline=True))
        for c in exp.checks:
            known_at = self._known(exp, c.known_at)
            label = self._label(c.subject, f"service {c.service}", known_at)
            try:
                answer = _dump(check(store, c.subject, c.service, at=at, known_at=known_at))
            except Exception as exc:  # reported as a failure
                self.fail(f"{label}: check raised {type(exc).__name__}: {exc}")
                continue
            if answer.get("decision") != c.decision:
                self.fail(
                    f"{label}: expected decision {c.decision!r}, got {answer.get('decision')!r}"
                    f" (reasons: {_brief_reasons(answer.get('reasons') or [])})"
                )
            actual = answer.get("reasons") or []
            for want in c.reasons:
                if not any(_reason_matches(want, have) for have in actual):
                    self.fail(
                        f"{label}: no reason matches {want}; reasons: {_brief_reasons(actual)}"
                    )
        for s in exp.scores:
            known_at = self._known(exp, s.known_at)
            label = self._label(s.subject, f"score in {s.system}", known_at)
            try:
                answer = _dump(score_of(store, s.subject, s.system, at=at, known_at=known_at))
            except Exception as exc:
                self.fail(f"{label}: score_of raised {type(exc).__name__}: {exc}")
                continue
            given = s.model_fields_set
            if "score" in given:
                have = answer.get("score")
                ok = (
                    (have is None)
                    if s.score is None
                    else (have is not None and abs(float(have) - s.score) < 1e-6)
                )
                if not ok:
                    self.fail(f"{label}: expected score {s.score}, got {have}")
            if "grade" in given and answer.get("grade") != s.grade:
                self.fail(f"{label}: expected grade {s.grade!r}, got {answer.get('grade')!r}")
        explanations: dict[tuple[str, str | None, datetime | None], dict[str, Any]] = {}

        def explained(subject: str, system: str | None, known_at: datetime | None) -> Any:
            key = (subject, system, known_at)
            if key not in explanations:
                explanations[key] = _dump(
                    explain(store, subject, system=system, at=at, known_at=known_at)
                )
            return explanations[key]

        for e in exp.list_entries:
            known_at = self._known(exp, e.known_at)
            label = self._label(e.subject, f"list {e.system}/{e.list}", known_at)
            try:
                data = explained(e.subject, e.system, known_at)
            except Exception as exc:
                self.fail(f"{label}: explain raised {type(exc).__name__}: {exc}")
                continue
            self.list_entry(label, e, _system(data, e.system).get("list_entries", []))
        for r in exp.report:
            known_at = self._known(exp, r.known_at)
            label = self._label(r.subject, f"report of {r.system}", known_at)
            try:
                data = explained(r.subject, r.system, known_at)
            except Exception as exc:
                self.fail(f"{label}: explain raised {type(exc).__name__}: {exc}")
                continue
            sections = _system(data, r.system).get("report", [])
            if r.section is not None:
                sections = [s for s in sections if s.get("section") == r.section]
                if not sections:
                    self.fail(f"{label}: no report section {r.section!r}")
                    continue
            shown = {rec.get("record_id") for s in sections for rec in s.get("records", [])}
            missing = [x for x in r.include if x not in shown]
            extra = [x for x in r.exclude if x in shown]
            if missing:
                self.fail(
                    f"{label}: records {missing} not shown (shown: {sorted(map(str, shown))})"
                )
            if extra:
                self.fail(f"{label}: records {extra} shown but expected gone")
        for x in exp.explain:
            known_at = self._known(exp, x.known_at)
            label = self._label(x.subject, "explanation", known_at)
            try:
                text = json.dumps(explained(x.subject, x.system, known_at), ensure_ascii=False)
            except Exception as exc:
                self.fail(f"{label}: explain raised {type(exc).__name__}: {exc}")
                continue
            for needle in x.contains:
                if needle not in text:
                    self.fail(f"{label}: does not mention {needle!r}")

    def list_entry(
        self, label: str, e: ListEntryExpectation, rows: Iterable[Mapping[str, Any]]
    ) -> None:
        selected = [
            r
            for r in rows
            if r.get("list_id") == e.list
            and (e.key is None or r.get("key") == e.key)
            and (e.entry_record is None or r.get("entry_record_id") == e.entry_record)
        ]
        if e.absent:
            if selected:
                self.fail(f"{label}: expected no entry, found {_brief_entries(selected)}")
            return
        if not selected:
            self.fail(f"{label}: no entry (key {e.key!r})")
            return
        checks: list[tuple[str, Any, str]] = []
        given = e.model_fields_set
        if "active" in given:
            checks.append(("active", e.active, "active"))
        if "ending_record" in given:
            checks.append(("ending_record", e.ending_record, "ending_record_id"))
        if "end_reason" in given:
            checks.append(("end_reason", e.end_reason, "end_reason"))

        def matches(row: Mapping[str, Any]) -> bool:
            if "start" in given and not _same_instant(e.start, row.get("start_at")):
                return False
            if "end" in given and not _same_instant(e.end, row.get("end_at")):
                return False
            return all(row.get(col) == want for _, want, col in checks)

        if not any(matches(r) for r in selected):
            wanted = {
                k: getattr(e, k)
                for k in ("active", "start", "end", "ending_record", "end_reason")
                if k in given
            }
            self.fail(f"{label}: expected {wanted}, entries: {_brief_entries(selected)}")


def _system(data: Mapping[str, Any], system: str) -> Mapping[str, Any]:
    for s in data.get("systems", []):
        if s.get("system") == system:
            return s  # type: ignore[no-any-return]
    return {}


def _brief_reasons(reasons: Iterable[Mapping[str, Any]]) -> str:
    parts = []
    for r in reasons:
        basis = r.get("list") or r.get("grade")
        parts.append(
            f"{r.get('system')}/{basis}/{r.get('rule')} {r.get('since')}..{r.get('until')}"
        )
    return "[" + "; ".join(parts) + "]"


def _brief_entries(rows: Iterable[Mapping[str, Any]]) -> str:
    keep = (
        "key",
        "entry_record_id",
        "active",
        "start_at",
        "end_at",
        "end_reason",
        "ending_record_id",
    )
    return "; ".join(str({k: r.get(k) for k in keep}) for r in rows)


def run_scenario(path: str | Path) -> list[Failure]:
    """Run every case of a scenario file, each in a fresh registry; the failures."""
    from xinyong.ledger.store import Store

    path = Path(path)
    try:
        scn = load_scenario(path)
    except ScenarioError as exc:
        return [Failure(path.name, "(file)", "-", str(exc))]
    failures: list[Failure] = []
    for case in scn.cases:
        runner = _CaseRun(path, scn, case)
        with tempfile.TemporaryDirectory(prefix="xinyong-scenario-") as tmp:
            try:
                with Store(Path(tmp) / "registry.duckdb") as store:
                    runner.run(store, path)
            except Exception as exc:  # one broken case must not hide the rest
                runner.fail(f"error: {type(exc).__name__}: {exc}")
        failures.extend(runner.failures)
    return failures
