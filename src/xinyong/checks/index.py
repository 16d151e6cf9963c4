"""The consequence index: checks answered from memory.

Built from the materialized `consequences` table of the latest evaluation run.
A check is a dict lookup plus a scan of the (few) intervals a subject has for a
service: no query, no pydantic, no allocation on the allow path. The reasons are
kept as plain tuples and turned into a `CheckAnswer` only when asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from xinyong.checks.answers import CheckAnswer, Reason
from xinyong.timeutil import to_local_iso

if TYPE_CHECKING:
    from xinyong.ledger.store import Store

# When several consequences apply to one service, the decision is the first of
# these that any of them carries: a restriction outranks a benefit.
DECISION_ORDER = ("deny", "priority", "discount", "deposit_free")
_RANK = {effect: i for i, effect in enumerate(DECISION_ORDER)}

_EPOCH = datetime(1970, 1, 1)
_FOREVER = 2**62


def _micros(dt: datetime | None) -> int:
    if dt is None:
        return _FOREVER
    return int((dt - _EPOCH).total_seconds() * 1_000_000)


# (since_us, until_us, effect_rank, system, basis_kind, basis_id, rule_id,
#  legal_basis, since, until, remedy, via_relation, via_subject)
Entry = tuple[
    int,
    int,
    int,
    str,
    str,
    str,
    str,
    str,
    datetime,
    datetime | None,
    str | None,
    str | None,
    str | None,
]

COLUMNS = (
    "subject_id, service, effect, system, basis_kind, basis_id, rule_id, legal_basis, "
    "since, until, remedy, via_relation, via_subject"
)


@dataclass(frozen=True)
class RunInfo:
    run_id: int
    as_of: datetime
    known_at: datetime
    evaluated_at: datetime
    last_batch: int | None
    timeline: bool | None = None


def latest_run(store: Store) -> RunInfo | None:
    row = store.sql.execute(
        "SELECT run_id, as_of, known_at, evaluated_at, last_batch, timeline FROM eval_runs "
        "ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else RunInfo(*row)


def run_is_current(store: Store, run: RunInfo) -> bool:
    """Whether nothing was imported or installed after the run was materialized."""
    row = store.sql.execute(
        "SELECT (SELECT max(batch_id) FROM batches), (SELECT max(installed_at) FROM packs)"
    ).fetchone()
    assert row is not None
    last_batch, last_install = row
    if last_batch is not None and (run.last_batch is None or last_batch > run.last_batch):
        return False
    return last_install is None or last_install <= run.evaluated_at


class ConsequenceIndex:
    """subject_id -> service -> intervals of active consequences."""

    def __init__(self, run: RunInfo | None) -> None:
        self.run = run
        self._by_subject: dict[str, dict[str, list[Entry]]] = {}

    @classmethod
    def load(cls, store: Store, *, subject_id: str | None = None) -> ConsequenceIndex:
        """Load the whole index (a server, a benchmark) or one subject's part (the CLI)."""
        index = cls(latest_run(store))
        if subject_id is None:
            cursor = store.sql.execute(f"SELECT {COLUMNS} FROM consequences")
        else:
            cursor = store.sql.execute(
                f"SELECT {COLUMNS} FROM consequences WHERE subject_id = ?", [subject_id]
            )
        while batch := cursor.fetchmany(100_000):
            index.add_rows(batch)
        return index

    def add_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Add consequence rows (columns as in the `consequences` table, in COLUMNS order)."""
        by_subject = self._by_subject
        for subject, service, effect, *rest in rows:
            since, until = rest[5], rest[6]
            entry: Entry = (_micros(since), _micros(until), _RANK[effect], *rest)  # type: ignore[assignment]
            by_subject.setdefault(subject, {}).setdefault(service, []).append(entry)

    def __len__(self) -> int:
        return len(self._by_subject)

    def decide(self, subject_id: str, service: str, at_us: int) -> str:
        """The decision alone: the hot path (at as microseconds since 1970, naive UTC)."""
        services = self._by_subject.get(subject_id)
        if services is None:
            return "allow"
        entries = services.get(service)
        if not entries:
            return "allow"
        best = 99
        for e in entries:
            if e[0] <= at_us < e[1] and e[2] < best:
                best = e[2]
        return "allow" if best == 99 else DECISION_ORDER[best]

    def answer(self, subject_id: str, service: str, at: datetime) -> CheckAnswer:
        """The full answer with every reason, deny reasons first."""
        at_us = _micros(at)
        entries = self._by_subject.get(subject_id, {}).get(service, [])
        active = sorted(
            (e for e in entries if e[0] <= at_us < e[1]), key=lambda e: (e[2], e[3], e[6])
        )
        reasons = [
            Reason(
                system=e[3],
                list=e[5] if e[4] == "list" else None,
                grade=e[5] if e[4] == "grade" else None,
                rule=e[6],
                effect=DECISION_ORDER[e[2]],
                legal_basis=e[7],
                since=to_local_iso(e[8]) or "",
                until=to_local_iso(e[9]),
                remedy=e[10],
                via={"relation": e[11], "subject_id": e[12] or ""} if e[11] else None,
            )
            for e in active
        ]
        decision = DECISION_ORDER[active[0][2]] if active else "allow"
        return CheckAnswer(
            subject_id=subject_id,
            service=service,
            at=to_local_iso(at) or "",
            decision=decision,
            reasons=reasons,
        )


def micros(dt: datetime) -> int:
    """An instant in the index's time unit."""
    return _micros(dt)
