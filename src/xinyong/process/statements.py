"""Statements a subject adds to a record (State Council Order No. 631, Art. 16: the
subject may add a statement to negative information). A statement is a
``subject.statement_added`` record from the portal; it is shown wherever the record
is shown (check reasons resting on it, explain, the subject report)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from xinyong.catalog.vocabulary import attribute_column
from xinyong.ledger.store import Store
from xinyong.timeutil import now_utc, to_local_iso

STATEMENT = "subject.statement_added"


def statements(
    store: Store, subjects: list[str], at: datetime | None = None, known_at: datetime | None = None
) -> dict[str, list[dict[str, Any]]]:
    """record_id -> the statements added to it (oldest first), at ``at`` as known at
    ``known_at``."""
    if not subjects:
        return {}
    now = now_utc()
    target, text = attribute_column("target_record_id"), attribute_column("statement")
    marks = ", ".join("?" for _ in subjects)
    rows = store.sql.execute(
        f"SELECT record_id, {target}, {text}, occurred_at FROM records WHERE type = ? "
        f"AND subject_id IN ({marks}) AND occurred_at <= ? AND recorded_at <= ? "
        "ORDER BY occurred_at, record_id",
        [STATEMENT, *subjects, at or now, known_at or now],
    ).fetchall()
    out: dict[str, list[dict[str, Any]]] = {}
    for rid, tgt, body, when in rows:
        out.setdefault(tgt, []).append(
            {"statement_id": rid, "text": body, "added_at": to_local_iso(when)}
        )
    return out
