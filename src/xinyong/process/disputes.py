"""Marks on what a pending objection contests, and the subject's statements, on
every answer that shows a record: check reasons, ``explain`` and the subject report
(Fa Shi [2017] No. 7, Art. 11; State Council Order No. 631, Arts. 16, 25: a disputed
item is marked; GDPR Art. 22: an automated decision under a person's review says so).

A list reason rests on the subject's records of the list's entry type; a grade
reason on the subject's records the system sees. The marks do not change a
decision where the pack keeps a listing in force while it is contested (every
shipped pack: ``process.listing_in_force``); where it does not, the contested list
reasons are suspended until the objection is decided.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from xinyong.ledger.store import Store
from xinyong.packs import installed_packs
from xinyong.process.objections import FILED, Objection, objections, target_or_none
from xinyong.process.statements import statements


def _pending(
    store: Store, subjects: list[str], at: datetime, known_at: datetime | None
) -> list[tuple[Objection, str]]:
    """(pending objection, type of the record it contests)."""
    wanted = list(dict.fromkeys(subjects))
    marks = ", ".join("?" for _ in wanted)
    row = store.sql.execute(  # the common case, no objection at all, costs one count
        f"SELECT count(*) FROM records WHERE type = ? AND subject_id IN ({marks})",
        [FILED, *wanted],
    ).fetchone()
    if not row or not row[0]:
        return []
    out = []
    for subject in dict.fromkeys(subjects):
        for o in objections(store, subject=subject, at=at, known_at=known_at):
            if o.pending:
                record = target_or_none(store, o.record_id)
                if record is not None:
                    out.append((o, record.type))
    return out


def mark_check(store: Store, answer: Any, at: datetime, known_at: datetime | None) -> Any:
    """The check answer with ``disputed``/``objection_id``/``human_review`` on each
    reason resting on a contested record."""
    if not answer.reasons:
        return answer
    subjects = [answer.subject_id] + [r.via["subject_id"] for r in answer.reasons if r.via]
    pending = _pending(store, subjects, at, known_at)
    if not pending:
        return answer
    packs = {p.system: p for p in installed_packs(store, at)}
    for reason in answer.reasons:
        pack = packs.get(reason.system)
        if pack is None:
            continue
        owner = reason.via["subject_id"] if reason.via else answer.subject_id
        if reason.list is not None:
            types = {s.entry_type for s in pack.lists if s.id == reason.list}
        else:
            types = set(pack.scope.record_types)
        for o, rtype in pending:
            if o.subject_id == owner and rtype in types and o.system == pack.system:
                reason.disputed = True
                reason.objection_id = o.objection_id
                if o.ground == "other" and reason.grade is not None:
                    reason.human_review = True
                break
    return _suspend(answer, packs)


def _suspend(answer: Any, packs: dict[str, Any]) -> Any:
    """A pack whose process does not keep a contested listing in force: its list
    reasons resting on a pending objection are suspended, and the decision is the
    strongest effect among the reasons left."""
    from xinyong.checks.index import DECISION_ORDER

    def suspended(reason: Any) -> bool:
        pack = packs.get(reason.system)
        process = pack.process if pack is not None else None
        return bool(
            reason.disputed
            and reason.list is not None
            and process is not None
            and not process.listing_in_force
        )

    kept = [r for r in answer.reasons if not suspended(r)]
    if len(kept) == len(answer.reasons):
        return answer
    effects = [r.effect for r in kept]
    decision = next((e for e in DECISION_ORDER if e in effects), "allow")
    return answer.model_copy(update={"reasons": kept, "decision": decision})


def mark_explanation(
    store: Store, explanation: Any, at: datetime, known_at: datetime | None
) -> Any:
    """The explanation with marks and statements on every row naming a record
    (list entries, score contributions, report records), and human review on a
    system's grade."""
    subject = explanation.subject_id
    pending = {o.record_id: o for o, _ in _pending(store, [subject], at, known_at)}
    said = statements(store, [subject], at, known_at)
    if not pending and not said:
        return explanation

    def mark(row: dict[str, Any], key: str) -> None:
        rid = row.get(key)
        o = pending.get(rid) if rid else None
        if o is not None:
            row["disputed"] = True
            row["objection_id"] = o.objection_id
        if rid in said:
            row["statements"] = said[rid]

    for sys in explanation.systems:
        for row in sys.list_entries:
            mark(row, "entry_record_id")
        for row in sys.contributions:
            mark(row, "record_id")
        for section in sys.report:
            for row in section["records"]:
                mark(row, "record_id")
        for o in pending.values():
            if o.system == sys.system and o.ground == "other":
                for c in sys.consequences:
                    if c.get("basis_kind") == "grade":
                        c["human_review"] = True
                        c["objection_id"] = o.objection_id
    return explanation
