"""Due process as a principal performs it: objections, reconsideration, statements,
credit repair and notices (issue 9). Like ``operations``: authorize (``gate.allow``),
perform (the domain logic is in ``xinyong.process``), audit.

Bad input raises ``DueProcessError`` (a ValueError: the CLI exits 1, the HTTP API
answers 4xx) before anything is written; a missing permission raises ``Refused``.
Every decision that changes what is derived (an upheld objection, a granted repair)
recomputes the subject's materialized results at once
(``process.recompute.recompute_subjects``) and queues a notice to the subject.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from xinyong.access.gate import Registry, allow, audit_event, normalize_subject
from xinyong.access.permissions import Refused
from xinyong.access.principals import Principal
from xinyong.checks.index import latest_run, run_is_current
from xinyong.ledger.store import Store
from xinyong.packs import installed_packs
from xinyong.process import notices
from xinyong.process import objections as obj
from xinyong.process import repair as rep
from xinyong.process.objections import CaseConflict, DueProcessError, UnknownCase, Unprocessable
from xinyong.process.recompute import recompute_subjects
from xinyong.process.statements import STATEMENT
from xinyong.timeutil import local_date, now_utc, to_local_iso

__all__ = [
    "CaseConflict",
    "DueProcessError",
    "Refused",
    "add_statement",
    "apply_repair",
    "decide_objection",
    "decide_repair",
    "file_objection",
    "list_objections",
    "list_repairs",
    "reconsider_objection",
    "send_notices",
    "subject_records",
    "Unprocessable",
    "UnknownCase",
]


def _when(at: datetime | None) -> datetime:
    now = now_utc()
    when = at or now
    if when > now:
        raise DueProcessError(
            f"--at: {to_local_iso(when)} is in the future; a step is recorded when it happens"
        )
    return when


def _subject(text: str) -> str:
    try:
        return normalize_subject(text)
    except ValueError as exc:
        raise DueProcessError(f"SUBJECT: {exc}") from None


def _current(store: Store) -> bool:
    run = latest_run(store)
    return run is not None and run_is_current(store, run)


def _notify_decision(
    store: Store, o: obj.Objection, outcome: str, reason: str, at: datetime, record_id: str
) -> None:
    notices.queue(
        store,
        f"decision:{record_id}",
        o.subject_id,
        "objection_decision",
        o.record_id,
        at,
        f"Decision on your objection {o.objection_id}: {outcome}",
        f"Your objection {o.objection_id} to record {o.record_id} ({o.system}, ground"
        f" {o.ground}) was {outcome} on {to_local_iso(at)}: {reason}",
    )


# ---------------------------------------------------------------------------
# objections


def file_objection(
    reg: Registry,
    who: Principal,
    subject: str,
    record_id: str,
    ground: str,
    statement: str,
    *,
    at: datetime | None = None,
) -> dict[str, Any]:
    subject = _subject(subject)
    allow(reg, who, "objections.file", subject=subject)
    when = _when(at)
    if ground not in obj.GROUNDS:
        raise DueProcessError(
            f"--ground: {ground!r} is not a ground; one of {', '.join(obj.GROUNDS)}"
        )
    obj.text_arg("--statement", statement)
    with reg.store(needs_packs=True) as store:
        record = obj.target(store, subject, record_id)
        obj.not_before(record, when)
        if record.type.startswith(("objection.", "repair.", "subject.statement")):
            raise Unprocessable(
                f"--record: {record_id!r} is a due-process record, not a fact to contest"
            )
        pack = obj.system_for(installed_packs(store, when), record, ground)
        assert pack.process is not None
        review_due = obj.due(when, pack.process.review)
        for o in obj.objections(store, subject=subject):
            if o.record_id == record_id and o.pending:
                raise CaseConflict(
                    f"--record: objection {o.objection_id} against {record_id} is still pending"
                )
        objection_id = obj.new_id("objection")
        source = who.source if who.role == "source" and who.source else obj.PORTAL_SOURCE
        obj.write(
            store,
            [
                obj.envelope(
                    objection_id,
                    subject,
                    obj.FILED,
                    when,
                    source,
                    {"target_record_id": record_id, "ground": ground, "statement": statement},
                )
            ],
        )
    audit_event(
        reg,
        who,
        "objections.file",
        "allowed",
        subject=subject,
        objection_id=objection_id,
        record_id=record_id,
        ground=ground,
    )
    return {
        "objection_id": objection_id,
        "subject_id": subject,
        "record_id": record_id,
        "system": pack.system,
        "ground": ground,
        "filed_at": to_local_iso(when),
        "review_due": review_due.isoformat(),
        "status": "open",
    }


def _decide(
    reg: Registry,
    who: Principal,
    objection_id: str,
    uphold: bool,
    reason: str,
    at: datetime | None,
    corrected_record: str | None,
) -> dict[str, Any]:
    allow(reg, who, "objections.decide")  # the role first: no lookup for others
    obj.text_arg("--reason", reason)
    when = _when(at)
    with reg.store(needs_packs=True) as store:
        o = obj.find(store, objection_id)
        if not o.pending:
            raise CaseConflict(
                f"OBJECTION_ID: objection {objection_id} was already decided ({o.status}"
                f" on {to_local_iso(o.decided_at)}); request reconsideration instead"
            )
        if when < o.last_at:
            raise Unprocessable(
                f"--at: a decision cannot precede the step it decides ({to_local_iso(o.last_at)})"
            )
        record = obj.target_or_none(store, o.record_id)
        assert record is not None
        pack = obj.packs_by_system(store, None).get(o.system)
        if pack is None or pack.process is None:
            raise Unprocessable(
                f"OBJECTION_ID: system {o.system!r} has no objection process installed"
            )
        if corrected_record is not None and not (uphold and o.ground == "inaccurate"):
            raise Unprocessable(
                "--corrected-record: only an upheld objection on ground inaccurate names"
                " a corrected record"
            )
        if uphold and o.ground == "inaccurate":
            if corrected_record is None:
                raise Unprocessable(
                    "--corrected-record: upholding an objection on ground inaccurate needs the"
                    " corrected record that replaces the disputed one"
                )
            fixed = obj.target(store, o.subject_id, corrected_record)
            if fixed.type != record.type or fixed.record_id == record.record_id:
                raise Unprocessable(
                    f"--corrected-record: {corrected_record!r} must be another {record.type}"
                    f" record of {o.subject_id}"
                )
        level2 = o.status == "reconsideration"
        rtype = obj.RECONSIDERED if level2 else obj.DECIDED
        outcome = "upheld" if uphold else "rejected"
        decision_id = obj.new_id("decision")
        records = [
            obj.envelope(
                decision_id,
                o.subject_id,
                rtype,
                when,
                obj.ADJUDICATOR_SOURCE,
                {"objection_id": objection_id, "outcome": outcome, "reason": reason},
            )
        ]
        corrected = uphold and o.ground != "other"
        if corrected:
            effect = obj.correction(o, record)
            basis = pack.process.correction.legal_basis
            records.append(
                obj.envelope(
                    obj.new_id("correction"),
                    o.subject_id,
                    obj.REVOKED,
                    effect,
                    obj.ADJUDICATOR_SOURCE,
                    {
                        "target_record_id": o.record_id,
                        "reason": f"objection {objection_id} upheld ({o.ground}): {reason}"
                        + (f"; replaced by {corrected_record}" if corrected_record else "")
                        + f" [{basis}]",
                    },
                )
            )
        was_current = _current(store)
        batch = obj.write(store, records)
        if corrected:
            recompute_subjects(store, [o.subject_id], was_current=was_current, batch_id=batch)
        _notify_decision(store, o, outcome, reason, when, decision_id)
        correction_due = obj.due(when, pack.process.correction) if uphold else None
    audit_event(
        reg,
        who,
        "objections.decide",
        "allowed",
        subject=o.subject_id,
        objection_id=objection_id,
        decision=outcome,
        level=2 if level2 else 1,
    )
    return {
        "objection_id": objection_id,
        "status": outcome,
        "decided_at": to_local_iso(when),
        "correction_due": correction_due.isoformat() if correction_due else None,
        "level": 2 if level2 else 1,
    }


def decide_objection(
    reg: Registry,
    who: Principal,
    objection_id: str,
    *,
    uphold: bool,
    reason: str,
    at: datetime | None = None,
    corrected_record: str | None = None,
) -> dict[str, Any]:
    return _decide(reg, who, objection_id, uphold, reason, at, corrected_record)


def reconsider_objection(
    reg: Registry, who: Principal, objection_id: str, statement: str, *, at: datetime | None = None
) -> dict[str, Any]:
    obj.text_arg("--statement", statement)
    when = _when(at)
    with reg.store(needs_packs=True) as store:
        o = obj.find(store, objection_id)
        allow(reg, who, "objections.file", subject=o.subject_id)
        pack = obj.packs_by_system(store, None).get(o.system)
        process = pack.process if pack is not None else None
        if process is None or process.reconsideration_window is None:
            raise Unprocessable(f"OBJECTION_ID: system {o.system!r} provides no reconsideration")
        if o.status != "rejected" or o.level != 1 or o.decided_at is None:
            raise CaseConflict(
                f"OBJECTION_ID: objection {objection_id} is {o.status}; only a rejected"
                " first-level decision can be reconsidered"
            )
        window = process.reconsideration_window
        last = obj.due(o.decided_at, window)
        if local_date(when) > last or when < o.decided_at:
            raise Unprocessable(
                f"--at: the reconsideration window closed on {last} (within"
                f" {window.days} {window.unit.replace('_', ' ')} of the decision;"
                f" {window.legal_basis})"
            )
        assert process.reconsideration_decision is not None
        decision_due = obj.due(when, process.reconsideration_decision)
        request_id = obj.new_id("reconsideration")
        obj.write(
            store,
            [
                obj.envelope(
                    request_id,
                    o.subject_id,
                    obj.RECONSIDERATION,
                    when,
                    obj.PORTAL_SOURCE,
                    {"objection_id": objection_id, "statement": statement},
                )
            ],
        )
    audit_event(
        reg,
        who,
        "objections.reconsider",
        "allowed",
        subject=o.subject_id,
        objection_id=objection_id,
    )
    return {
        "objection_id": objection_id,
        "request_id": request_id,
        "status": "reconsideration",
        "requested_at": to_local_iso(when),
        "review_due": decision_due.isoformat(),
        "listing_in_force": process.listing_in_force,
    }


def list_objections(
    reg: Registry,
    who: Principal,
    *,
    subject: str | None = None,
    overdue: bool = False,
    at: datetime | None = None,
) -> list[dict[str, Any]]:
    if subject is not None:
        subject = _subject(subject)
    allow(reg, who, "objections.read", subject=subject)
    when = at or now_utc()
    with reg.store(read_only=True) as store:
        found = [o.public(when) for o in obj.objections(store, subject=subject, at=when)]
    if overdue:
        found = [o for o in found if o["overdue"]]
    audit_event(reg, who, "objections.read", "allowed", subject=subject, results=len(found))
    return found


#: Types that are steps of due process or corrections, not facts a subject contests.
_STEPS = ("objection.", "repair.", "subject.", "record.revoked")


def subject_records(
    reg: Registry, who: Principal, subject: str, *, at: datetime | None = None
) -> list[dict[str, Any]]:
    """The records a subject may contest (the portal's list): each with ``disputed``
    and the ``objection_id`` while an objection is pending, and its statements.
    The same marks as ``explain`` (``process.disputes``), without evaluating."""
    from xinyong.access.gate import domain_refusals
    from xinyong.process import disputes
    from xinyong.process import purge as retention_purge

    subject = _subject(subject)
    allow(reg, who, "objections.read", subject=subject)
    when = at or now_utc()
    with (
        reg.store(read_only=True) as store,
        domain_refusals(reg, who, "objections.read", subject),
    ):
        retention_purge.guard(store, subject, when, None)
        rows = store.sql.execute(
            "SELECT record_id, type, occurred_at, source FROM records "
            "WHERE subject_id = ? AND occurred_at <= ? ORDER BY occurred_at, record_id",
            [subject, when],
        ).fetchall()
        pending = {o.record_id: o for o, _ in disputes._pending(store, [subject], when, None)}
        said = disputes.statements(store, [subject], when, None)
    found = []
    for rid, rtype, occurred, source in rows:
        if rtype.startswith(_STEPS):
            continue
        o = pending.get(rid)
        found.append(
            {
                "record_id": rid,
                "type": rtype,
                "occurred_at": to_local_iso(occurred),
                "source": source,
                "disputed": o is not None,
                "objection_id": o.objection_id if o is not None else None,
                "statements": said.get(rid, []),
            }
        )
    audit_event(reg, who, "objections.read", "allowed", subject=subject, records=len(found))
    return found


# ---------------------------------------------------------------------------
# statements


def add_statement(
    reg: Registry,
    who: Principal,
    subject: str,
    record_id: str,
    text: str,
    *,
    at: datetime | None = None,
) -> dict[str, Any]:
    subject = _subject(subject)
    allow(reg, who, "statements.add", subject=subject)
    obj.text_arg("--text", text)
    when = _when(at)
    with reg.store(needs_packs=True) as store:
        obj.not_before(obj.target(store, subject, record_id), when)
        statement_id = obj.new_id("statement")
        obj.write(
            store,
            [
                obj.envelope(
                    statement_id,
                    subject,
                    STATEMENT,
                    when,
                    obj.PORTAL_SOURCE,
                    {"target_record_id": record_id, "statement": text},
                )
            ],
        )
    audit_event(reg, who, "statements.add", "allowed", subject=subject, record_id=record_id)
    return {
        "statement_id": statement_id,
        "subject_id": subject,
        "record_id": record_id,
        "added_at": to_local_iso(when),
    }


# ---------------------------------------------------------------------------
# credit repair


def apply_repair(
    reg: Registry,
    who: Principal,
    subject: str,
    record_id: str,
    commitment: str,
    *,
    at: datetime | None = None,
) -> dict[str, Any]:
    subject = _subject(subject)
    allow(reg, who, "repair.apply", subject=subject)
    when = _when(at)
    with reg.store(needs_packs=True) as store:
        record = obj.target(store, subject, record_id)
        packs = installed_packs(store, when)
        pack = rep.repair_pack(packs, record)
        for r in rep.repairs(store, packs, subject=subject):
            if r.record_id == record_id and r.status in ("applied", "granted"):
                raise CaseConflict(
                    f"--record: repair {r.repair_id} of {record_id} is already {r.status}"
                )
        start, key = rep.check_conditions(store, pack, record, commitment, when)
        repair_id = obj.new_id("repair")
        assert pack.process is not None and pack.process.repair is not None
        spec = pack.process.repair
        obj.write(
            store,
            [
                obj.envelope(
                    obj.new_id("commitment"),
                    subject,
                    rep.COMMITMENT,
                    when,
                    obj.PORTAL_SOURCE,
                    {
                        spec.key if spec.key in ("decision_no", "case_no") else "decision_no": key,
                        "text": commitment,
                    },
                ),
                obj.envelope(
                    repair_id,
                    subject,
                    rep.APPLIED,
                    when,
                    obj.PORTAL_SOURCE,
                    {"target_record_id": record_id},
                ),
            ],
        )
        decision_due = obj.due(when, spec.decision)
    audit_event(
        reg,
        who,
        "repair.apply",
        "allowed",
        subject=subject,
        repair_id=repair_id,
        record_id=record_id,
    )
    return {
        "repair_id": repair_id,
        "eligible_from": start.isoformat(),
        "status": "applied",
        "subject_id": subject,
        "record_id": record_id,
        "decision_due": decision_due.isoformat(),
    }


def decide_repair(
    reg: Registry,
    who: Principal,
    repair_id: str,
    *,
    grant: bool,
    reason: str,
    at: datetime | None = None,
) -> dict[str, Any]:
    allow(reg, who, "repair.decide")  # the role first: no lookup for others
    obj.text_arg("--reason", reason)
    when = _when(at)
    with reg.store(needs_packs=True) as store:
        packs = installed_packs(store, None)
        found = {r.repair_id: r for r in rep.repairs(store, packs)}
        if repair_id not in found:
            raise UnknownCase(f"REPAIR_ID: no repair application {repair_id!r} in the registry")
        r = found[repair_id]
        if r.status != "applied":
            raise CaseConflict(f"REPAIR_ID: repair {repair_id} was already decided ({r.status})")
        if when < r.applied_at:
            raise Unprocessable("--at: a decision cannot precede the application")
        outcome = "granted" if grant else "refused"
        decision_id = obj.new_id("repair-decision")
        records = [
            obj.envelope(
                decision_id,
                r.subject_id,
                rep.DECIDED,
                when,
                obj.ADJUDICATOR_SOURCE,
                {"repair_id": repair_id, "outcome": outcome, "reason": reason},
            )
        ]
        if grant:
            records.append(
                obj.envelope(
                    obj.new_id("repair-end"),
                    r.subject_id,
                    obj.REVOKED,
                    when,
                    obj.ADJUDICATOR_SOURCE,
                    {
                        "target_record_id": r.record_id,
                        "reason": f"credit repair {repair_id} granted: publication and sharing end"
                        " (NDRC Order No. 36)",
                    },
                )
            )
        was_current = _current(store)
        batch = obj.write(store, records)
        if grant:
            recompute_subjects(store, [r.subject_id], was_current=was_current, batch_id=batch)
        notices.queue(
            store,
            f"repair:{decision_id}",
            r.subject_id,
            "repair_decision",
            r.record_id,
            when,
            f"Decision on your credit repair {repair_id}: {outcome}",
            f"Your application {repair_id} for credit repair of {r.record_id} was {outcome}"
            f" on {to_local_iso(when)}: {reason}",
        )
    audit_event(
        reg,
        who,
        "repair.decide",
        "allowed",
        subject=r.subject_id,
        repair_id=repair_id,
        decision=outcome,
    )
    return {"repair_id": repair_id, "status": outcome, "decided_at": to_local_iso(when)}


def list_repairs(
    reg: Registry, who: Principal, *, subject: str | None = None, at: datetime | None = None
) -> list[dict[str, Any]]:
    if subject is not None:
        subject = _subject(subject)
    allow(reg, who, "repair.read", subject=subject)
    with reg.store(read_only=True) as store:
        found = [
            r.public()
            for r in rep.repairs(store, installed_packs(store, None), subject=subject, at=at)
        ]
    audit_event(reg, who, "repair.read", "allowed", subject=subject, results=len(found))
    return found


# ---------------------------------------------------------------------------
# notices


def send_notices(
    reg: Registry, who: Principal, smtp: str, *, domain: str = notices.DEFAULT_DOMAIN
) -> dict[str, int]:
    allow(reg, who, "notices.send")
    try:
        notices.parse_smtp(smtp)
    except ValueError as exc:
        raise DueProcessError(str(exc)) from None
    with reg.store() as store:
        queued = notices.collect(store)
        result = notices.deliver(store, smtp, domain=domain)
    audit_event(
        reg,
        who,
        "notices.send",
        "allowed",
        queued=queued,
        sent=result["sent"],
        left=result["pending"],
    )
    return {"queued": queued, **result}
