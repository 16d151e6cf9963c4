"""Credit repair of published administrative penalties (Measures for Credit Repair,
NDRC Order No. 36; SOURCES.md §5), as ledger records.

A subject applies (``subject.commitment_made`` + ``repair.applied`` from the portal,
one batch) once three conditions hold, each named when unmet: the minimum
publication period of the penalty's severity has passed (the pack's
``process.repair.minimum_months``, counted on the Asia/Shanghai calendar from the
decision), the penalty is performed (a record of ``performed_by`` with the same
``key``), and a public credit commitment is given. The adjudicator decides
(``repair.decided``); a grant also writes a ``record.revoked`` of the penalty at the
grant's instant, which ends publication (the list entry) and sharing (the report
section) together, from then on and never before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from xinyong.catalog.vocabulary import attribute_column
from xinyong.ledger.store import Store
from xinyong.packs import Pack
from xinyong.process.objections import DueProcessError, Target, Unprocessable, due
from xinyong.timeutil import add_local_months, local_date, now_utc, to_local_iso

APPLIED = "repair.applied"
DECIDED = "repair.decided"
COMMITMENT = "subject.commitment_made"


@dataclass
class Repair:
    repair_id: str
    subject_id: str
    record_id: str
    system: str
    applied_at: datetime
    eligible_from: date
    decision_due: date | None
    status: str = "applied"  # applied, granted, refused
    decided_at: datetime | None = None
    reason: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "repair_id": self.repair_id,
            "subject_id": self.subject_id,
            "record_id": self.record_id,
            "system": self.system,
            "applied_at": to_local_iso(self.applied_at),
            "eligible_from": self.eligible_from.isoformat(),
            "decision_due": self.decision_due.isoformat() if self.decision_due else None,
            "status": self.status,
            "decided_at": to_local_iso(self.decided_at),
        }


def repair_pack(packs: list[Pack], record: Target) -> Pack:
    for p in sorted(packs, key=lambda p: p.system):
        if (
            p.process is not None
            and p.process.repair is not None
            and any(s.entry_type == record.type for s in p.lists)
        ):
            return p
    raise Unprocessable(
        f"--record: record {record.record_id!r} ({record.type}) is not published"
        " information that credit repair applies to"
    )


def _attr(store: Store, record_id: str, name: str) -> Any:
    row = store.sql.execute(
        f"SELECT {attribute_column(name)} FROM records WHERE record_id = ?", [record_id]
    ).fetchone()
    return row[0] if row else None


def eligible_from(store: Store, pack: Pack, record: Target) -> date:
    spec = pack.process.repair if pack.process else None
    assert spec is not None
    value = _attr(store, record.record_id, spec.attribute)
    if value not in spec.minimum_months:
        raise Unprocessable(
            f"--record: {spec.attribute} {value!r} of record {record.record_id} has no"
            " minimum period in the pack"
        )
    return local_date(add_local_months(record.occurred_at, spec.minimum_months[value]))


def check_conditions(
    store: Store, pack: Pack, record: Target, commitment: str, at: datetime
) -> tuple[date, str]:
    """(eligible_from, key value); raise DueProcessError naming the first unmet condition."""
    spec = pack.process.repair if pack.process else None
    assert spec is not None
    if not isinstance(commitment, str) or not commitment.strip():
        raise DueProcessError(
            "--commitment: credit repair needs a public credit commitment (NDRC Order No. 36)"
        )
    start = eligible_from(store, pack, record)
    if local_date(at) < start:
        raise Unprocessable(
            f"--record: the minimum publication period has not passed: eligible from {start}"
            f" ({spec.legal_basis.strip()})"
        )
    key = _attr(store, record.record_id, spec.key)
    marks = ", ".join("?" for _ in spec.performed_by)
    row = store.sql.execute(
        f"SELECT count(*) FROM records WHERE subject_id = ? AND type IN ({marks}) "
        f"AND {attribute_column(spec.key)} = ? AND occurred_at <= ?",
        [record.subject_id, *spec.performed_by, key, at],
    ).fetchone()
    if not row or not row[0]:
        raise Unprocessable(
            f"--record: the penalty {key} is not performed: no {' or '.join(spec.performed_by)}"
            f" record of {spec.key} {key} (NDRC Order No. 36 requires the obligations performed)"
        )
    return start, str(key)


def repairs(
    store: Store,
    packs: list[Pack],
    *,
    subject: str | None = None,
    at: datetime | None = None,
    known_at: datetime | None = None,
) -> list[Repair]:
    now = now_utc()
    target = attribute_column("target_record_id")
    rid, outcome, reason = (attribute_column(n) for n in ("repair_id", "outcome", "reason"))
    sql = (
        f"SELECT record_id, subject_id, type, occurred_at, {target}, {rid}, {outcome}, {reason} "
        "FROM records WHERE type IN (?, ?) AND occurred_at <= ? AND recorded_at <= ?"
    )
    params: list[Any] = [APPLIED, DECIDED, at or now, known_at or now]
    if subject is not None:
        sql += " AND subject_id = ?"
        params.append(subject)
    rows = store.sql.execute(sql + " ORDER BY occurred_at, record_id", params).fetchall()
    found: dict[str, Repair] = {}
    for record_id, subject_id, rtype, when, tgt, repair_id, out, why in rows:
        if rtype == APPLIED:
            row = store.sql.execute(
                "SELECT record_id, subject_id, type, source, source_kind, occurred_at FROM records"
                " WHERE record_id = ?",
                [tgt],
            ).fetchone()
            if row is None:
                continue
            record = Target(*row)
            try:
                pack = repair_pack(packs, record)
                start = eligible_from(store, pack, record)
            except DueProcessError:
                continue
            spec = pack.process.repair if pack.process else None
            found[record_id] = Repair(
                repair_id=record_id,
                subject_id=subject_id,
                record_id=tgt,
                system=pack.system,
                applied_at=when,
                eligible_from=start,
                decision_due=due(when, spec.decision) if spec else None,
            )
        elif repair_id in found:
            rep = found[repair_id]
            rep.status, rep.decided_at, rep.reason = out, when, why
    return list(found.values())
