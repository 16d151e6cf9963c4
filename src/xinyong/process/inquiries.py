"""Inquiries into the financial report (State Council Order No. 631, Arts. 17, 18, 20).

A lender reads a subject's report only with the subject's current consent to
the system (the latest ``subject.consent_granted`` / ``subject.consent_withdrawn``
naming it, not revoked, is a grant) and for one of the purposes the pack's
``access`` block names (Art. 18: written consent and a stated purpose; Art. 20:
no use beyond it). Every read, the subject's own included, becomes an
``inquiry.made`` record that the registry itself writes (source
``registry:xinyong`` of kind ``registry``), so it shows in the query-records
section and counts in every score that uses inquiries. A subject's own reports
(purpose ``self``) are free twice a calendar year (Asia/Shanghai); each one after
that is charged (Art. 17).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from xinyong.catalog.vocabulary import attribute_column
from xinyong.ledger.intake import register_source, submit
from xinyong.ledger.store import Store
from xinyong.packs import Pack
from xinyong.timeutil import local_date, now_utc

INQUIRY = "inquiry.made"
SELF = "self"
REGISTRY_SOURCE = "registry:xinyong"
REGISTRY_KIND = "registry"
FREE_SELF_REPORTS_PER_YEAR = 2
CONSENT_TYPES = ("subject.consent_granted", "subject.consent_withdrawn")


class InquiryRefused(PermissionError):
    """An inquiry without consent or for a purpose the pack does not allow."""

    def __init__(self, permission: str, message: str) -> None:
        super().__init__(message)
        self.permission = permission


def has_consent(store: Store, subject_id: str, system: str, at: datetime) -> bool:
    """Whether the subject's latest consent record for ``system`` at ``at`` is a grant."""
    system_col = attribute_column("system")
    target = attribute_column("target_record_id")
    row = store.sql.execute(
        f"SELECT type FROM records r WHERE subject_id = ? AND type IN (?, ?) "
        f"AND {system_col} = ? AND occurred_at <= ? AND recorded_at <= ? "
        "AND record_id NOT IN (SELECT "
        f"{target} FROM records WHERE type = 'record.revoked' AND {target} IS NOT NULL "
        "AND occurred_at <= ?) "
        "ORDER BY occurred_at DESC, recorded_at DESC LIMIT 1",
        [subject_id, *CONSENT_TYPES, system, at, now_utc(), at],
    ).fetchone()
    return row is not None and row[0] == CONSENT_TYPES[0]


def admit(store: Store, pack: Pack, subject_id: str, purpose: str, at: datetime) -> None:
    """Raise ``InquiryRefused`` unless a lender may read ``pack``'s report now."""
    access = pack.access
    if access is None:
        raise InquiryRefused(
            "inquire:system", f"system {pack.system} has no report that lenders may inquire into"
        )
    allowed = [p for p in access.purposes if p != SELF]
    if purpose not in allowed:
        raise InquiryRefused(
            f"inquire:purpose:{purpose}",
            f"purpose {purpose!r} is not one {pack.system} allows for an inquiry "
            f"({', '.join(allowed)}): {access.legal_basis}",
        )
    if access.consent_required and not has_consent(store, subject_id, pack.system, at):
        raise InquiryRefused(
            "inquire:consent",
            f"{subject_id} has no current consent to {pack.system} (subject.consent_granted "
            f"not withdrawn): {access.legal_basis}",
        )


def self_reports_in_year(store: Store, subject_id: str, at: datetime) -> int:
    """How many own reports (purpose self) the subject had in the Shanghai year of ``at``."""
    year = local_date(at).year
    rows = store.sql.execute(
        f"SELECT occurred_at FROM records WHERE subject_id = ? AND type = ? "
        f"AND {attribute_column('purpose')} = ?",
        [subject_id, INQUIRY, SELF],
    ).fetchall()
    return sum(1 for (t,) in rows if local_date(t).year == year)


def record(store: Store, subject_id: str, requester: str, purpose: str) -> str:
    """Write the ``inquiry.made`` record of a read happening now; returns its id."""
    register_source(store, REGISTRY_SOURCE, REGISTRY_KIND)
    now = now_utc()
    record_id = f"inquiry-{uuid.uuid4().hex}"
    result = submit(
        store,
        [
            {
                "record_id": record_id,
                "subject_id": subject_id,
                "type": INQUIRY,
                "occurred_at": now.isoformat() + "Z",
                "source": REGISTRY_SOURCE,
                "attributes": {"requester": requester, "purpose": purpose},
            }
        ],
        strict=True,
        recorded_at=now,
    )
    if result.rejected:
        reasons = "; ".join(f"{r.field}: {r.reason}" for r in result.rejects)
        raise ValueError(f"the inquiry record was refused by intake: {reasons}")
    return record_id
