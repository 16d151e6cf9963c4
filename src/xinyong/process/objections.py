"""Objections and their corrections, as ledger records (SPC Fa Shi [2017] No. 7,
Arts. 9, 11-12; State Council Order No. 631, Art. 25; GDPR Art. 22 for comparison).

Every step of a dispute is a record of the catalog's due-process types, so that a
replay at any instant and any ``known_at`` shows the dispute as it stood then:

  objection.filed                       from the subject's portal (``portal:xinyong``)
  objection.decided                     from the registry's adjudicator (first level)
  objection.reconsideration_requested   from the portal, within the pack's window
  objection.reconsidered                from the adjudicator (the next level)

The deadlines are the pack's ``process:`` data, counted by ``calendar.due_date``
(Civil Procedure Law Art. 85; a year chinese-calendar does not cover is refused).
``review_due`` counts from the filing's local date, ``correction_due`` from the
decision's, the reconsideration window from the decision's (its service), and the
reconsideration decision from the request's.

An upheld objection writes its correction in the same batch, as a ``record.revoked``
from the adjudicator whose ``occurred_at`` is where the correction takes effect in
valid time (recorded now, so a replay known before the decision still sees the
record as it was):

  should_not_be_listed, not_mine   the disputed record's own occurred_at: the entry is
                                   void from its start (it never restricted)
  should_have_been_deleted         the filing instant: the registry cannot know when the
                                   deletion trigger happened unless told, and the
                                   subject told it then (choice: the earliest instant
                                   the registry knew the entry should have ended)
  inaccurate                       the disputed record's occurred_at, and the decision
                                   names the corrected record (already in the ledger,
                                   same subject and type) that replaces it
  other                            no correction: a person reviewed the automated
                                   decision (GDPR Art. 22); any change comes as records

Choices: reconsideration is the subject's remedy against a rejection (an upheld
objection is not reconsidered here); a reconsideration upheld corrects as above.
The system an objection belongs to is an installed pack that accepts the ground and
sees the record: one that lists the record's type, and among those the one whose
first source kind is the record's (the court's own list for a court's decision),
else the first by name.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from xinyong.calendar import UncoveredYear, due_date
from xinyong.catalog.vocabulary import REVOKED, attribute_column
from xinyong.lazy import lazy
from xinyong.ledger.store import Store
from xinyong.packs import Pack, installed_packs
from xinyong.packs.schema import Period
from xinyong.timeutil import local_date, now_utc, to_local_iso

if TYPE_CHECKING:
    from xinyong.ledger import intake
else:
    # Intake (Arrow, numpy) only when an objection is filed or decided: `check` and
    # `explain` read objections through `disputes` (0.35 s of an `explain` process).
    intake = lazy("xinyong.ledger.intake")

PORTAL_SOURCE = "portal:xinyong"
ADJUDICATOR_SOURCE = "adjudicator:xinyong"
FILED = "objection.filed"
DECIDED = "objection.decided"
RECONSIDERATION = "objection.reconsideration_requested"
RECONSIDERED = "objection.reconsidered"
TYPES = (FILED, DECIDED, RECONSIDERATION, RECONSIDERED)
GROUNDS = ("should_not_be_listed", "inaccurate", "should_have_been_deleted", "not_mine", "other")
MAX_STATEMENT = 4000


class DueProcessError(ValueError):
    """Bad input to a due-process operation: what is wrong and where; nothing written.

    The message starts with the argument at fault (``--record: …``, ``OBJECTION_ID:
    …``). ``http_status`` is how the HTTP API answers it: 400 a malformed value (an
    empty text, an instant in the future), and the subclasses below."""

    http_status = 400


class Unprocessable(DueProcessError):
    """Well-formed, but the registry's facts refuse it: a record that does not exist or
    is another subject's, a ground no pack accepts, repair before its minimum period
    or without performance, a reconsideration out of time (HTTP 422)."""

    http_status = 422


class CaseConflict(DueProcessError):
    """The case's state forbids the step: a decision on a decided objection or repair,
    a second pending objection or repair on one record (HTTP 409)."""

    http_status = 409


class UnknownCase(DueProcessError):
    """No objection or repair application with that id (HTTP 404)."""

    http_status = 404


@dataclass
class Target:
    record_id: str
    subject_id: str
    type: str
    source: str
    source_kind: str
    occurred_at: datetime


@dataclass
class Objection:
    """One objection as it stands at an instant (folded from its records)."""

    objection_id: str
    subject_id: str
    record_id: str
    system: str
    ground: str
    filed_at: datetime
    review_due: date
    status: str = "open"  # open, upheld, rejected, reconsideration
    level: int = 1
    decided_at: datetime | None = None
    correction_due: date | None = None
    reconsideration_due: date | None = None
    reason: str | None = None
    last_at: datetime = datetime.min
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return self.status in ("open", "reconsideration")

    def overdue(self, at: datetime) -> bool:
        """Still undecided after its (review or reconsideration) due date."""
        due = self.reconsideration_due if self.status == "reconsideration" else self.review_due
        return self.pending and due is not None and local_date(at) > due

    def public(self, at: datetime) -> dict[str, Any]:
        due = self.reconsideration_due if self.status == "reconsideration" else self.review_due
        return {
            "objection_id": self.objection_id,
            "subject_id": self.subject_id,
            "record_id": self.record_id,
            "system": self.system,
            "ground": self.ground,
            "filed_at": to_local_iso(self.filed_at),
            "review_due": self.review_due.isoformat(),
            "status": self.status,
            "level": self.level,
            "decided_at": to_local_iso(self.decided_at),
            "correction_due": self.correction_due.isoformat() if self.correction_due else None,
            "due": due.isoformat() if due else None,
            "overdue": self.overdue(at),
            "human_review": self.ground == "other",
        }


def due(start: datetime, period: Period) -> date:
    """The last day of ``period`` from the local date of ``start``."""
    try:
        return due_date(local_date(start), period.days, period.unit)
    except UncoveredYear as exc:
        raise DueProcessError(str(exc)) from None


def text_arg(name: str, value: str, limit: int = MAX_STATEMENT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DueProcessError(f"{name}: must not be empty")
    if len(value) > limit:
        raise DueProcessError(f"{name}: at most {limit} characters, got {len(value)}")
    return value


def target(store: Store, subject_id: str, record_id: str) -> Target:
    """The record an objection, statement or repair names: it must exist and be the
    subject's own."""
    row = store.sql.execute(
        "SELECT record_id, subject_id, type, source, source_kind, occurred_at FROM records "
        "WHERE record_id = ?",
        [record_id],
    ).fetchone()
    if row is None:
        raise Unprocessable(f"--record: no record {record_id!r} in the registry")
    found = Target(*row)
    if found.subject_id != subject_id:
        raise Unprocessable(
            f"--record: record {record_id!r} is not about {subject_id}; a subject may act"
            " only on its own records"
        )
    return found


def not_before(record: Target, at: datetime) -> None:
    """A step about a record cannot precede the record itself (valid time)."""
    if at < record.occurred_at:
        raise Unprocessable(
            f"--at: {to_local_iso(at)} is before record {record.record_id} occurred"
            f" ({to_local_iso(record.occurred_at)})"
        )


def system_for(packs: list[Pack], record: Target, ground: str) -> Pack:
    """The pack whose objection process covers this record and ground."""
    seeing = [
        p
        for p in sorted(packs, key=lambda p: p.system)
        if p.process is not None
        and record.type in p.scope.record_types
        and record.source_kind in p.scope.source_kinds
    ]
    if not seeing:
        raise Unprocessable(
            f"--record: record {record.record_id!r} ({record.type}) is outside every"
            " installed system's objection process"
        )
    accepting = [p for p in seeing if p.process is not None and ground in p.process.grounds]
    if not accepting:
        offered = sorted({g for p in seeing if p.process for g in p.process.grounds})
        raise Unprocessable(
            f"--ground: {ground!r} is not a ground that "
            f"{', '.join(p.system for p in seeing)} accepts for {record.type}; "
            f"grounds: {', '.join(offered)}"
        )
    listing = [p for p in accepting if any(s.entry_type == record.type for s in p.lists)]
    candidates = listing or accepting
    # Several systems may list one record (the court's listing also appears in the
    # credit report): the objection goes to the system whose first source kind is
    # the record's (the court's own list for a court's decision).
    own = [p for p in candidates if p.scope.source_kinds[:1] == [record.source_kind]]
    return (own or candidates)[0]


def packs_by_system(store: Store, at: datetime | None) -> dict[str, Pack]:
    return {p.system: p for p in installed_packs(store, at)}


def ensure_sources(store: Store) -> None:
    intake.register_source(store, PORTAL_SOURCE, "portal")
    intake.register_source(store, ADJUDICATOR_SOURCE, "adjudicator")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def envelope(
    record_id: str, subject_id: str, rtype: str, at: datetime, source: str, attrs: dict[str, Any]
) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "subject_id": subject_id,
        "type": rtype,
        "occurred_at": at.isoformat() + "Z",
        "source": source,
        "attributes": attrs,
    }


def write(store: Store, records: list[dict[str, Any]]) -> int | None:
    """Append the records in one batch (all or nothing); the batch id."""
    ensure_sources(store)
    result = intake.submit(store, records, strict=True, recorded_at=now_utc())
    if result.rejected or result.refused:
        reasons = "; ".join(f"{r.field}: {r.reason}" for r in result.rejects)
        raise DueProcessError(f"the registry refused the records: {reasons}")
    return result.batch_id


def _rows(
    store: Store, types: tuple[str, ...], subject: str | None, at: datetime, known_at: datetime
) -> list[dict[str, Any]]:
    cols = {n: attribute_column(n) for n in ("target_record_id", "ground", "objection_id")}
    cols |= {n: attribute_column(n) for n in ("outcome", "reason", "statement")}
    select = ", ".join(f"{c} AS {n}" for n, c in cols.items())
    marks = ", ".join("?" for _ in types)
    sql = (
        f"SELECT record_id, subject_id, type, occurred_at, recorded_at, {select} FROM records "
        f"WHERE type IN ({marks}) AND occurred_at <= ? AND recorded_at <= ?"
    )
    params: list[Any] = [*types, at, known_at]
    if subject is not None:
        sql += " AND subject_id = ?"
        params.append(subject)
    cursor = store.sql.execute(sql + " ORDER BY occurred_at, recorded_at, record_id", params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def objections(
    store: Store,
    *,
    subject: str | None = None,
    at: datetime | None = None,
    known_at: datetime | None = None,
) -> list[Objection]:
    """Every objection as it stood at ``at`` (valid time), as known at ``known_at``."""
    now = now_utc()
    at = at or now
    known_at = known_at or now
    rows = _rows(store, TYPES, subject, at, known_at)
    packs = packs_by_system(store, None)
    found: dict[str, Objection] = {}
    for r in rows:
        if r["type"] == FILED:
            record = target_or_none(store, r["target_record_id"])
            system = _system_name(packs, record, r["ground"])
            pack = packs.get(system)
            review = (
                due(r["occurred_at"], pack.process.review)
                if pack is not None and pack.process is not None
                else local_date(r["occurred_at"])
            )
            found[r["record_id"]] = Objection(
                objection_id=r["record_id"],
                subject_id=r["subject_id"],
                record_id=r["target_record_id"],
                system=system,
                ground=r["ground"],
                filed_at=r["occurred_at"],
                review_due=review,
                last_at=r["occurred_at"],
            )
            continue
        obj = found.get(r["objection_id"])
        if obj is None:
            continue
        pack = packs.get(obj.system)
        process = pack.process if pack is not None else None
        obj.last_at = r["occurred_at"]
        obj.history.append(
            {"type": r["type"], "at": to_local_iso(r["occurred_at"]), "record_id": r["record_id"]}
        )
        if r["type"] in (DECIDED, RECONSIDERED):
            obj.status = r["outcome"]
            obj.decided_at = r["occurred_at"]
            obj.reason = r["reason"]
            obj.correction_due = (
                due(r["occurred_at"], process.correction)
                if r["outcome"] == "upheld" and process is not None
                else None
            )
        elif r["type"] == RECONSIDERATION:
            obj.status = "reconsideration"
            obj.level = 2
            obj.reconsideration_due = (
                due(r["occurred_at"], process.reconsideration_decision)
                if process is not None and process.reconsideration_decision is not None
                else None
            )
    return list(found.values())


def target_or_none(store: Store, record_id: str) -> Target | None:
    row = store.sql.execute(
        "SELECT record_id, subject_id, type, source, source_kind, occurred_at FROM records "
        "WHERE record_id = ?",
        [record_id],
    ).fetchone()
    return None if row is None else Target(*row)


def _system_name(packs: dict[str, Pack], record: Target | None, ground: str) -> str:
    if record is None:
        return ""
    try:
        return system_for(list(packs.values()), record, ground).system
    except DueProcessError:
        return ""


def find(store: Store, objection_id: str) -> Objection:
    for obj in objections(store):
        if obj.objection_id == objection_id:
            return obj
    raise UnknownCase(f"OBJECTION_ID: no objection {objection_id!r} in the registry")


def correction(obj: Objection, record: Target) -> datetime:
    """Where an upheld objection's correction takes effect in valid time (module doc)."""
    if obj.ground in ("should_not_be_listed", "not_mine", "inaccurate"):
        return record.occurred_at
    return obj.filed_at


def statistics(store: Store, at: datetime) -> dict[str, int]:
    """Counts of objections at ``at`` (no personal data): filed, open (incl. at the
    next level), overdue, upheld, rejected."""
    try:
        found = objections(store, at=at)
    except DueProcessError:  # a deadline in a year the calendar does not cover
        return {"filed": -1, "open": -1, "overdue": -1, "upheld": -1, "rejected": -1}
    return {
        "filed": len(found),
        "open": sum(1 for o in found if o.pending),
        "overdue": sum(1 for o in found if o.overdue(at)),
        "upheld": sum(1 for o in found if o.status == "upheld"),
        "rejected": sum(1 for o in found if o.status == "rejected"),
    }


def demo_objections(store: Store, at: datetime, *, count: int = 30) -> int:
    """Objections for the synthetic city (``xinyong demo``): against listings of the
    last 120 days, filed 3 days after the decision; a third rejected after 7 days, a
    third upheld (void from the start), a third still open (overdue once 15 days
    passed). Chosen by record id, so the same city gives the same objections."""
    from datetime import timedelta

    rows = store.sql.execute(
        "SELECT record_id, subject_id, occurred_at FROM records WHERE type = ? "
        "AND occurred_at BETWEEN ? AND ? ORDER BY md5(record_id) LIMIT ?",
        ["court.listing_decision", at - timedelta(days=120), at - timedelta(days=12), count],
    ).fetchall()
    records: list[dict[str, Any]] = []
    for i, (rid, subject, occurred) in enumerate(rows):
        oid, filed = f"demo-objection-{i}", occurred + timedelta(days=3)
        ground = "should_not_be_listed"
        records.append(
            envelope(oid, subject, FILED, filed, PORTAL_SOURCE,
                     {"target_record_id": rid, "ground": ground, "statement": "not mine"})
        )  # fmt: skip
        if i % 3 == 2:
            continue
        outcome = "rejected" if i % 3 == 0 else "upheld"
        decided = filed + timedelta(days=7)
        records.append(
            envelope(f"demo-decision-{i}", subject, DECIDED, decided, ADJUDICATOR_SOURCE,
                     {"objection_id": oid, "outcome": outcome, "reason": "demo"})
        )  # fmt: skip
        if outcome == "upheld":
            records.append(
                envelope(f"demo-correction-{i}", subject, REVOKED, occurred, ADJUDICATOR_SOURCE,
                         {"target_record_id": rid, "reason": f"objection {oid} upheld"})
            )  # fmt: skip
    if not records:
        return 0
    ensure_sources(store)
    result = intake.submit(store, records, strict=True, recorded_at=at)
    if result.rejected:
        raise DueProcessError(f"demo objections refused: {result.rejects[0].reason}")
    return len(rows)
