"""Retention purge: records past the retention of every pack that holds them are
deleted, each leaving a tombstone.

A record is *held* by a pack when it lies in the pack's scope (type and source
kind). It is purged when at least one pack holds it and every pack that holds
it has a retention rule for its type whose end (``engine.retention``: years
from occurrence, or from the end of the conduct) has passed. A record no pack
holds, or one a pack keeps without a rule, stays. The reference case is the
PBoC's Art. 16: negative information is deleted 5 years after the conduct ends.

The ledger is append-only except for this one, legally required, deletion.
A tombstone keeps what is needed to say that something is gone, and why:
record_id, type, subject, when it occurred and was recorded, when its
retention ended, the purge date and the rule (``system:rule_id`` and its legal
basis), never the record's attributes. A replay of an instant at which a purged
record still counted (``occurred_at <= T < retention_end``, known by then)
cannot be answered faithfully any more; ``guard`` refuses it and names the
purged records instead of answering wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from xinyong.ledger import generation
from xinyong.ledger.store import Store
from xinyong.packs import installed_packs
from xinyong.process.licensing import has_table
from xinyong.timeutil import now_utc, to_local_iso

_DDL = (
    "CREATE TABLE IF NOT EXISTS tombstones (record_id VARCHAR PRIMARY KEY, "
    "type VARCHAR NOT NULL, subject_id VARCHAR NOT NULL, occurred_at TIMESTAMP NOT NULL, "
    "recorded_at TIMESTAMP NOT NULL, retention_end TIMESTAMP NOT NULL, "
    "purged_at TIMESTAMP NOT NULL, rule VARCHAR NOT NULL, legal_basis VARCHAR NOT NULL)"
)


@dataclass(frozen=True)
class Tombstone:
    record_id: str
    type: str
    subject_id: str
    occurred_at: datetime
    recorded_at: datetime
    retention_end: datetime
    purged_at: datetime
    rule: str
    legal_basis: str

    def public(self) -> dict[str, str | None]:
        return {
            "record_id": self.record_id,
            "type": self.type,
            "subject_id": self.subject_id,
            "occurred_at": to_local_iso(self.occurred_at),
            "retention_end": to_local_iso(self.retention_end),
            "purged_at": to_local_iso(self.purged_at),
            "rule": self.rule,
            "legal_basis": self.legal_basis,
        }


class PurgedHistory(LookupError):
    """A replay that needed records the retention purge has deleted."""

    def __init__(self, tombstones: list[Tombstone], at: datetime) -> None:
        ids = ", ".join(
            f"{t.record_id} ({t.type}, purged {to_local_iso(t.purged_at)})" for t in tombstones[:5]
        )
        more = f" and {len(tombstones) - 5} more" if len(tombstones) > 5 else ""
        super().__init__(
            f"the registry cannot answer as of {to_local_iso(at)}: records that counted then "
            f"were purged at the end of their retention: {ids}{more}"
        )
        self.tombstones = tombstones


def _ensure(store: Store) -> None:
    """Made on first use in a DuckDB registry; a PostgreSQL registry has it from its
    migrations (0003: ``ledger/pgschema.py``, the same columns)."""
    if store.backend == "duckdb":
        store.sql.execute(_DDL)


def due(store: Store, now: datetime | None = None) -> list[Tombstone]:
    """The tombstones a purge at ``now`` would leave (nothing is deleted)."""
    now = now or now_utc()
    # Imported here: `guard` runs before every replayed check, which imports no Ibis.
    from xinyong.engine.retention import rule_by_type, with_retention_end
    from xinyong.engine.scope import in_scope, open_ledger

    led = open_ledger(store, now, now)
    held: dict[str, list[tuple[datetime | None, str, str]]] = {}
    meta: dict[str, tuple[str, str, datetime, datetime]] = {}
    for pack in installed_packs(store, now):
        rules = rule_by_type(pack)
        t = with_retention_end(pack, led, in_scope(pack, led.records))
        rows = (
            t.select(
                "record_id", "type", "subject_id", "occurred_at", "recorded_at", "retention_end"
            )
            .to_pyarrow()
            .to_pylist()
        )
        for r in rows:
            rule = rules.get(r["type"])
            held.setdefault(r["record_id"], []).append(
                (
                    r["retention_end"],
                    f"{pack.system}:{rule.id}" if rule else f"{pack.system}:(kept)",
                    rule.legal_basis if rule else "",
                )
            )
            meta[r["record_id"]] = (r["type"], r["subject_id"], r["occurred_at"], r["recorded_at"])
    out = []
    for record_id, holders in held.items():
        ends = [end for end, _, _ in holders]
        if any(end is None or end > now for end in ends):
            continue
        # The last retention to end is the one that released the record.
        # Every holding pack's rule ran out; the tombstone names them all.
        last_end = max(end for end in ends if end is not None)
        released_by = "; ".join(sorted({rule for _, rule, _ in holders}))
        bases = " | ".join(sorted({basis for _, _, basis in holders if basis}))
        typ, subject, occurred, recorded = meta[record_id]
        out.append(
            Tombstone(
                record_id, typ, subject, occurred, recorded, last_end, now, released_by, bases
            )
        )
    return sorted(out, key=lambda t: (t.subject_id, t.occurred_at, t.record_id))


def purge(store: Store, now: datetime | None = None, *, dry_run: bool = False) -> list[Tombstone]:
    """Delete every record due for purge and leave its tombstone, in one transaction."""
    stones = due(store, now)
    if dry_run or not stones:
        return stones
    _ensure(store)
    import pyarrow as pa

    table = pa.table(
        {
            "record_id": [t.record_id for t in stones],
            "type": [t.type for t in stones],
            "subject_id": [t.subject_id for t in stones],
            "occurred_at": [t.occurred_at for t in stones],
            "recorded_at": [t.recorded_at for t in stones],
            "retention_end": [t.retention_end for t in stones],
            "purged_at": [t.purged_at for t in stones],
            "rule": [t.rule for t in stones],
            "legal_basis": [t.legal_basis for t in stones],
        }
    )
    store.sql.register("_xin_purged", table)
    try:
        store.sql.execute("BEGIN TRANSACTION")
        try:
            store.sql.execute(
                "DELETE FROM records WHERE record_id IN (SELECT record_id FROM _xin_purged)"
            )
            store.sql.execute("INSERT INTO tombstones SELECT * FROM _xin_purged")
            generation.advance(store.path)  # a published snapshot stops answering
            store.sql.execute("COMMIT")
        except BaseException:
            store.sql.execute("ROLLBACK")
            raise
    finally:
        store.sql.unregister("_xin_purged")
    return stones


def tombstones(store: Store, subject_id: str | None = None) -> list[Tombstone]:
    if not has_table(store, "tombstones"):
        return []
    sql = "SELECT * FROM tombstones"
    params: list[object] = []
    if subject_id is not None:
        sql += " WHERE subject_id = ?"
        params.append(subject_id)
    rows = store.sql.execute(sql + " ORDER BY purged_at, record_id", params).fetchall()
    return [Tombstone(*row) for row in rows]


def purged_any(store: Store) -> bool:
    """Whether any record was ever purged (a tombstone exists; on PostgreSQL the table
    always does, from the migrations)."""
    if not has_table(store, "tombstones"):
        return False
    return store.sql.execute("SELECT 1 FROM tombstones LIMIT 1").fetchone() is not None


def guard(store: Store, subject_id: str, at: datetime, known_at: datetime | None = None) -> None:
    """Raise ``PurgedHistory`` when a question about ``subject_id`` at ``at`` (as known
    at ``known_at``) needed a record that has since been purged."""
    if not has_table(store, "tombstones"):  # nothing was ever purged
        return
    known = known_at or now_utc()
    rows = store.sql.execute(
        "SELECT * FROM tombstones WHERE subject_id = ? AND occurred_at <= ? "
        "AND recorded_at <= ? AND retention_end > ? ORDER BY occurred_at",
        [subject_id, at, known, at],
    ).fetchall()
    if rows:
        raise PurgedHistory([Tombstone(*row) for row in rows], at)
