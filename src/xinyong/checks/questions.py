"""The three questions a registry answers about one subject: may it use a
service (check), what is its score (score_of), and why (explain).

Checks and scores come from the materialized timelines when they cover the
question (the fast path: any instant, with the knowledge of the last run);
otherwise the evaluation is replayed for this subject alone with the same engine
(as of `at`, with what was known at `known_at`), so
an auditor's "why was I refused a flight on 3 May?" gets the answer the
registry would have given on 3 May.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from xinyong.catalog import load_catalog
from xinyong.catalog.identifiers import parse_subject_id
from xinyong.checks.answers import CheckAnswer, ScoreAnswer
from xinyong.checks.index import COLUMNS, ConsequenceIndex, latest_run, run_is_current
from xinyong.ledger.store import Store
from xinyong.packs import Pack, installed_packs
from xinyong.packs.loader import first_in_force
from xinyong.timeutil import age_on, local_date, now_utc, to_local_iso

#: The columns of a report's records (engine/compiled.py names them too).
REPORT_COLUMNS = (
    "record_id",
    "type",
    "occurred_at",
    "recorded_at",
    "source",
    "attributes",
    "retention_end",
)


class UnknownName(ValueError):
    """A service or system the registry does not know."""


def _normalize_subject(subject_id: str) -> str:
    return parse_subject_id(subject_id).value


def _check_service(service: str) -> None:
    services = load_catalog().services
    if service not in services:
        raise UnknownName(
            f"unknown service {service!r}; known services: {', '.join(sorted(services))}"
        )


def _pack_for(store: Store, system: str, at: datetime) -> Pack:
    packs = {p.system: p for p in installed_packs(store, at)}
    if system not in packs:
        first = first_in_force(store).get(system)
        if first is not None:
            raise UnknownName(f"system {system!r} is not yet in force at that time (from {first})")
        known = ", ".join(sorted(packs)) or "none installed"
        raise UnknownName(f"unknown system {system!r} at that time; installed: {known}")
    return packs[system]


def _versions(store: Store, at: datetime) -> dict[str, str]:
    """The pack version in force per system at ``at`` (as ``installed_packs`` picks)."""
    day = local_date(at)
    rows = store.sql.execute(
        "SELECT system, version, effective_from FROM packs ORDER BY system, effective_from"
    ).fetchall()
    chosen: dict[str, str] = {}
    for system, version, effective_from in rows:
        if effective_from <= day:
            chosen[system] = version
    return chosen


def _fast_path(store: Store, at: datetime, known_at: datetime | None) -> bool:
    """Whether the materialized timelines answer a question at `at` with knowledge
    `known_at`.

    They do when the latest run materialized timelines, nothing was imported or
    installed since, `known_at` asks for no less than the run knew, and every pack
    in force at `at` is the version the run evaluated (a timeline holds at any
    instant, earlier or later than the run's as_of, as known at its known_at; a
    system not yet in force at `at` has no results then).
    """
    run = latest_run(store)
    if run is None or not run.timeline or not run_is_current(store, run):
        return False
    if known_at is not None and known_at < run.known_at:
        return False
    from xinyong.checks.snapshot import covered

    return covered(_versions(store, at), _versions(store, run.as_of))


def _replay(
    store: Store,
    subject_id: str,
    at: datetime,
    known_at: datetime | None,
    packs: list[Pack],
    *,
    explain: bool = False,
    timeline: bool = False,
) -> Any:
    """The evaluation of the given packs for this subject alone."""
    from xinyong.engine import evaluate

    return evaluate(
        store,
        packs,
        as_of=at,
        known_at=known_at,
        subjects=[subject_id],
        explain=explain,
        timeline=timeline,
    )


def _naive(value: datetime) -> datetime:
    """Naive UTC (INTERFACES.md), also for an aware datetime."""
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _compiled(
    store: Store,
    subject_id: str,
    at: datetime,
    known_at: datetime | None,
    packs: list[Pack],
    mode: str,
    outputs: tuple[str, ...],
) -> dict[str, list[dict[str, Any]]] | None:
    """The replay through the packs' compiled plans (engine/compiled.py); None when
    a pack's evaluation cannot be compiled with parameters (then: ``_replay``)."""
    from xinyong.engine import compiled

    try:
        return compiled.replay(
            store,
            packs,
            mode=mode,
            as_of=_naive(at),
            known_at=_naive(known_at) if known_at is not None else now_utc(),
            subjects=[subject_id],
            outputs=outputs,
        )
    except compiled.NotCompilable:
        return None


def _rows(table: Any, subject_id: str) -> list[dict[str, Any]]:
    if table is None:
        return []
    found: list[dict[str, Any]] = (
        table.filter(table.subject_id == subject_id).to_pyarrow().to_pylist()
    )
    return found


def check(
    store: Store,
    subject_id: str,
    service: str,
    *,
    at: datetime | None = None,
    known_at: datetime | None = None,
) -> CheckAnswer:
    """May `subject_id` use `service` at `at` (default now)?

    The decision is the one at `at`; each reason's since/until is the period of the
    consequence as known at `known_at` (default now), also when it ended, or was
    found to end, after `at`."""
    subject_id = _normalize_subject(subject_id)
    _check_service(service)
    at = at or now_utc()
    if _fast_path(store, at, known_at):
        return ConsequenceIndex.load(store, subject_id=subject_id).answer(subject_id, service, at)
    # Only the systems that attach a consequence to this service can change the answer.
    packs = [
        p for p in installed_packs(store, at) if any(c.service == service for c in p.consequences)
    ]
    found = _compiled(store, subject_id, at, known_at, packs, "timeline", ("consequences",))
    if found is None:
        evaluation = _replay(store, subject_id, at, known_at, packs, timeline=True)
        found = {"consequences": _rows(evaluation.consequences, subject_id)}
    columns = [c.strip() for c in COLUMNS.split(",")]
    index = ConsequenceIndex(None)
    index.add_rows(tuple(r[c] for c in columns) for r in found["consequences"])
    return index.answer(subject_id, service, at).model_copy(update={"answered_from": "replay"})


def score_of(
    store: Store,
    subject_id: str,
    system: str,
    *,
    at: datetime | None = None,
    known_at: datetime | None = None,
) -> ScoreAnswer:
    """The subject's score and grade in `system`; both None when it computes none."""
    subject_id = _normalize_subject(subject_id)
    when = at or now_utc()
    pack = _pack_for(store, system, when)
    if _fast_path(store, when, known_at):
        row = store.sql.execute(
            "SELECT score, grade FROM score_timeline WHERE system = ? AND subject_id = ? "
            "AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)",
            [system, subject_id, when, when],
        ).fetchone()
    else:
        replayed = _compiled(store, subject_id, when, known_at, [pack], "point", ("scores",))
        if replayed is None:
            replayed = {
                "scores": _rows(
                    _replay(store, subject_id, when, known_at, [pack]).scores, subject_id
                )
            }
        found = [r for r in replayed["scores"] if r["system"] == system]
        row = (found[0]["score"], found[0]["grade"]) if found else None
    score, grade = row if row is not None else (None, None)
    return ScoreAnswer(subject_id=subject_id, system=system, score=score, grade=grade)


class SystemExplanation(BaseModel):
    system: str
    version: str
    title: str
    score: float | None = None
    grade: str | None = None
    contributions: list[dict[str, Any]] = Field(default_factory=list)
    reasons: list[dict[str, Any]] = Field(default_factory=list)
    list_entries: list[dict[str, Any]] = Field(default_factory=list)
    consequences: list[dict[str, Any]] = Field(default_factory=list)
    report: list[dict[str, Any]] = Field(default_factory=list)


class Explanation(BaseModel):
    subject_id: str
    subject_kind: str
    age: int | None
    flags: list[str]
    at: str
    known_at: str | None
    systems: list[SystemExplanation]


def _by_system(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by system (they are few)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["system"], []).append(row)
    return grouped


def _explained(
    store: Store, subject_id: str, at: datetime, known_at: datetime | None, packs: list[Pack]
) -> dict[str, list[dict[str, Any]]]:
    """The point replay with lineage: scores, list entries, contributions, reasons and
    the records each report shows (with their system)."""
    names = ("list_entries", "scores", "contributions", "reasons", "report")
    found = _compiled(store, subject_id, at, known_at, packs, "point", names)
    if found is not None:
        return found
    from xinyong.engine import visible_records

    evaluation = _replay(store, subject_id, at, known_at, packs, explain=True)
    out = {name: _rows(getattr(evaluation, name, None), subject_id) for name in names[:-1]}
    out["report"] = []
    for pack in packs:
        if pack.report:
            visible = visible_records(
                store, pack, as_of=at, known_at=known_at, subjects=[subject_id]
            )
            out["report"] += [
                r | {"system": pack.system}
                for r in _rows(visible.select("subject_id", *REPORT_COLUMNS), subject_id)
            ]
    return out


def _periods(
    store: Store, subject_id: str, at: datetime, known_at: datetime | None, packs: list[Pack]
) -> list[dict[str, Any]]:
    """The subject's consequences with their periods as known (as a check gives them)."""
    if _fast_path(store, at, known_at):
        cur = store.sql.execute("SELECT * FROM consequences WHERE subject_id = ?", [subject_id])
        columns = [d[0] for d in cur.description]
        return [dict(zip(columns, r, strict=True)) for r in cur.fetchall()]
    found = _compiled(store, subject_id, at, known_at, packs, "timeline", ("consequences",))
    if found is not None:
        return found["consequences"]
    evaluation = _replay(store, subject_id, at, known_at, packs, timeline=True)
    return _rows(evaluation.consequences, subject_id)


def _iso_times(row: dict[str, Any]) -> dict[str, Any]:
    return {k: to_local_iso(v) if isinstance(v, datetime) else v for k, v in row.items()}


def _newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Contributions newest first, then by rule and record: the same answer every time
    (the statement's row order is not)."""
    by_rule = sorted(rows, key=lambda r: (r["rule_id"], r["record_id"]))
    return sorted(by_rule, key=lambda r: r["occurred_at"], reverse=True)  # stable


def explain(
    store: Store,
    subject_id: str,
    *,
    system: str | None = None,
    at: datetime | None = None,
    known_at: datetime | None = None,
) -> Explanation:
    """Which records, rules, points and legal bases stand behind each result.

    Built only when asked: it replays the evaluation for this subject with
    lineage (through the compiled plans: engine/compiled.py), which the fast path
    never does.
    """
    parsed = parse_subject_id(subject_id)
    subject_id = parsed.value
    at = at or now_utc()
    packs = installed_packs(store, at)
    if system is not None:
        packs = [_pack_for(store, system, at)]
    found = _explained(store, subject_id, at, known_at, packs)
    tables = {
        name: _by_system(found[name])
        for name in ("list_entries", "scores", "contributions", "reasons", "report")
    }
    # Consequences with their periods as known (a grade's since is when the grade was
    # reached, not the instant asked), as a check gives them: from the timelines.
    tables["consequences"] = _by_system(_periods(store, subject_id, at, known_at, packs))
    systems = []
    for pack in packs:
        lists = {spec.id: spec for spec in pack.lists}
        entries = []
        for row in tables["list_entries"].get(pack.system, []):
            spec = lists.get(row["list_id"])
            active = row["start_at"] <= at and (row["end_at"] is None or at < row["end_at"])
            entries.append(
                _iso_times(row)
                | {
                    "active": active,
                    "legal_basis": spec.legal_basis if spec else "",
                    "remedy": spec.remedy if spec else "",
                }
            )
        consequences = [
            _iso_times(row)
            for row in tables["consequences"].get(pack.system, [])
            if row["since"] <= at and (row["until"] is None or at < row["until"])
        ]
        score_rows = tables["scores"].get(pack.system, [])
        report = []
        if pack.report:
            records = [
                _iso_times({c: r[c] for c in REPORT_COLUMNS})
                for r in sorted(
                    tables["report"].get(pack.system, []),
                    key=lambda r: (r["occurred_at"], r["record_id"]),
                )
            ]
            for section in pack.report:
                report.append(
                    {
                        "section": section.id,
                        "title": section.title,
                        "legal_basis": section.legal_basis,
                        "records": [r for r in records if r["type"] in section.types],
                    }
                )
        systems.append(
            SystemExplanation(
                system=pack.system,
                version=pack.meta.version,
                title=pack.meta.title,
                score=score_rows[0]["score"] if score_rows else None,
                grade=score_rows[0]["grade"] if score_rows else None,
                contributions=[
                    _iso_times(r)
                    for r in _newest_first(tables["contributions"].get(pack.system, []))
                ],
                reasons=[_iso_times(r) for r in tables["reasons"].get(pack.system, [])],
                list_entries=entries,
                consequences=consequences,
                report=report,
            )
        )
    return Explanation(
        subject_id=subject_id,
        subject_kind=parsed.kind,
        age=age_on(parsed.birth_date, at),
        flags=list(parsed.flags),
        at=to_local_iso(at) or "",
        known_at=to_local_iso(known_at),
        systems=systems,
    )
