"""Notices to subjects, through an outbox table, delivered by SMTP.

What is notified: a listing before it takes effect (at the start of its grace
period: the decision's instant; Fa Fa [2019] No. 35), negative financial information
before it is furnished (State Council Order No. 631, Art. 15: at the record's
instant, before any report shows it), and every objection decision. ``collect``
queues the first two from the ledger (idempotent: a notice's id is derived from its
record, so collecting twice queues nothing new); a decision queues its own.

``outbox``: notice_id (primary key), subject_id, kind, record_id, due_at, subject,
body, created_at, sent_at (NULL until delivered). The table is created by the first
writer that needs it (older registries gain it without a schema step; readers treat
a missing table as an empty outbox).

Delivery (``deliver``) is at least once and idempotent: each unsent notice is handed
to the SMTP server, then marked sent; a crash between the two sends it again on the
next run with the same ``Message-ID`` (``<notice id@xinyong>``), by which a mail
system drops the duplicate; a notice marked sent is never sent again. The registry
holds no contact data: a notice goes to the subject's portal mailbox,
``<subject_id>@<domain>`` (``--domain``, default ``portal.xinyong.invalid``).
"""

from __future__ import annotations

import smtplib
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from xinyong.catalog.vocabulary import attribute_column
from xinyong.ledger.store import Store
from xinyong.timeutil import now_utc, to_local_iso

DEFAULT_DOMAIN = "portal.xinyong.invalid"
SENDER = "notices@xinyong.invalid"
_DDL = (
    "CREATE TABLE IF NOT EXISTS outbox (notice_id VARCHAR PRIMARY KEY, subject_id VARCHAR NOT"
    " NULL, kind VARCHAR NOT NULL, record_id VARCHAR, due_at TIMESTAMP NOT NULL, subject"
    " VARCHAR NOT NULL, body VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL, sent_at TIMESTAMP)"
)
LISTING = "court.listing_decision"
NEGATIVE_FINANCIAL = ("loan.payment_overdue",)


def ensure_outbox(store: Store) -> None:
    """Made on first use in a DuckDB registry; a PostgreSQL registry has it from its
    migrations (0003: ``ledger/pgschema.py``, the same columns)."""
    if store.backend == "duckdb":
        store.sql.execute(_DDL)


def has_outbox(store: Store) -> bool:
    row = store.sql.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'outbox'"
    ).fetchone()
    return bool(row and row[0])


def queue(
    store: Store,
    notice_id: str,
    subject_id: str,
    kind: str,
    record_id: str | None,
    due_at: datetime,
    subject: str,
    body: str,
) -> bool:
    """Queue one notice; False when it was queued before (idempotent)."""
    ensure_outbox(store)
    before = store.sql.execute(
        "SELECT count(*) FROM outbox WHERE notice_id = ?", [notice_id]
    ).fetchone()
    if before and before[0]:
        return False
    store.sql.execute(
        "INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
        [notice_id, subject_id, kind, record_id, due_at, subject, body, now_utc()],
    )
    return True


def collect(store: Store) -> int:
    """Queue the notices the ledger calls for and that are not queued yet."""
    ensure_outbox(store)
    grace = attribute_column("grace_days")
    case = attribute_column("case_no")
    days, account = attribute_column("days_past_due"), attribute_column("account_id")
    queued = 0
    for rid, subject, at, g, c in store.sql.execute(
        f"SELECT record_id, subject_id, occurred_at, {grace}, {case} FROM records WHERE type = ? "
        "AND record_id NOT IN (SELECT record_id FROM outbox WHERE kind = 'listing')",
        [LISTING],
    ).fetchall():
        queued += queue(
            store,
            f"listing:{rid}",
            subject,
            "listing",
            rid,
            at,
            f"Notice of listing, case {c}",
            f"A court decided on {to_local_iso(at)} to list you as a dishonest judgment debtor"
            f" (case {c}). The listing takes effect after a grace period of {g or 0} days"
            " (Fa Fa [2019] No. 35); perform the obligation before then, or object in writing"
            " (Fa Shi [2017] No. 7, Arts. 11-12).",
        )
    marks = ", ".join("?" for _ in NEGATIVE_FINANCIAL)
    for rid, subject, at, d, a in store.sql.execute(
        f"SELECT record_id, subject_id, occurred_at, {days}, {account} FROM records "
        f"WHERE type IN ({marks}) "
        "AND record_id NOT IN (SELECT record_id FROM outbox WHERE kind = 'negative_financial')",
        list(NEGATIVE_FINANCIAL),
    ).fetchall():
        queued += queue(
            store,
            f"negative_financial:{rid}",
            subject,
            "negative_financial",
            rid,
            at,
            f"Notice before negative information is furnished, account {a}",
            f"A lender reported account {a} overdue by {d} days on {to_local_iso(at)}. This"
            " negative information is furnished to the credit reporting system (State Council"
            " Order No. 631, Art. 15); you may dispute it (Art. 25) or add a statement (Art. 16).",
        )
    return queued


def pending(store: Store, *, subject: str | None = None) -> list[dict[str, Any]]:
    if not has_outbox(store):
        return []
    sql = "SELECT * FROM outbox"
    params: list[Any] = []
    if subject is not None:
        sql += " WHERE subject_id = ?"
        params.append(subject)
    cursor = store.sql.execute(sql + " ORDER BY due_at, notice_id", params)
    names = [d[0] for d in cursor.description]
    return [
        {
            k: to_local_iso(v) if isinstance(v, datetime) else v
            for k, v in zip(names, r, strict=True)
        }
        for r in cursor.fetchall()
    ]


def parse_smtp(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--smtp: expected HOST:PORT, got {text!r}")
    return host, int(port)


def deliver(
    store: Store, smtp: str, *, domain: str = DEFAULT_DOMAIN, timeout: float = 10
) -> dict[str, int]:
    """Send every unsent notice and mark each sent once the server accepted it."""
    host, port = parse_smtp(smtp)
    ensure_outbox(store)
    rows = store.sql.execute(
        "SELECT notice_id, subject_id, subject, body FROM outbox WHERE sent_at IS NULL "
        "ORDER BY due_at, notice_id"
    ).fetchall()
    sent = 0
    if rows:
        with smtplib.SMTP(host, port, timeout=timeout) as client:
            for notice_id, subject_id, title, body in rows:
                msg = EmailMessage()
                msg["From"] = SENDER
                msg["To"] = f"{subject_id}@{domain}"
                msg["Subject"] = title
                msg["Message-ID"] = f"<{notice_id.replace(':', '.')}@xinyong>"
                msg.set_content(body)
                client.send_message(msg)
                store.sql.execute(
                    "UPDATE outbox SET sent_at = ? WHERE notice_id = ?", [now_utc(), notice_id]
                )
                sent += 1
    left = store.sql.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
    return {"sent": sent, "pending": int(left[0]) if left else 0}
