"""Licensing (PBoC): a commercial scoring system answers only while its operator
holds a current licence.

A regulator binds a system to the organization that runs it
(``xinyong licences bind SYSTEM OPERATOR_ID``); from then on the system's
checks refuse, and its scores are withheld, unless the ledger holds an
``admin.license_granted`` on that operator that is, at the instant asked
about: granted (occurred), not revoked by ``admin.license_revoked`` with the
same ``license_no`` nor by ``record.revoked``, and not expired (``valid_until``
is the last day, Asia/Shanghai, on which it holds). The licence is a fact in
the ledger like any other, so a replay of an earlier day sees the licence
position of that day.

The binding is registry data, not pack data: which firm runs a system is
decided by the regulator, not by the system's own rules. Systems without a
binding are not licence-gated (the state systems: judicial, municipal, PBoC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from xinyong.catalog.identifiers import parse_subject_id
from xinyong.catalog.vocabulary import attribute_column
from xinyong.ledger import generation
from xinyong.ledger.store import Store
from xinyong.timeutil import local_date, now_utc, to_local_iso

GRANTED = "admin.license_granted"
REVOKED_LICENCE = "admin.license_revoked"

_DDL = (
    "CREATE TABLE IF NOT EXISTS licensed_systems (system VARCHAR PRIMARY KEY, "
    "operator_id VARCHAR NOT NULL, bound_at TIMESTAMP NOT NULL, bound_by VARCHAR NOT NULL)"
)


@dataclass(frozen=True)
class LicenceStatus:
    system: str
    required: bool
    current: bool
    operator_id: str | None = None
    license_no: str | None = None
    valid_until: str | None = None
    reason: str = ""

    def public(self) -> dict[str, object]:
        return {
            "system": self.system,
            "required": self.required,
            "current": self.current,
            "operator_id": self.operator_id,
            "license_no": self.license_no,
            "valid_until": self.valid_until,
            "reason": self.reason,
        }


class Unlicensed(PermissionError):
    """A licence-gated system whose operator holds no current licence."""

    def __init__(self, status: LicenceStatus) -> None:
        super().__init__(status.reason)
        self.status = status


def _ensure(store: Store) -> None:
    """Made on first use in a DuckDB registry; a PostgreSQL registry has it from its
    migrations (0003: ``ledger/pgschema.py``, the same columns)."""
    if store.backend == "duckdb":
        store.sql.execute(_DDL)


def has_table(store: Store, name: str) -> bool:
    row = store.sql.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
    ).fetchone()
    return bool(row and row[0])


def bind(store: Store, system: str, operator_id: str, *, by: str) -> str:
    """Bind ``system`` to the organization that runs it; returns the normalized id."""
    parsed = parse_subject_id(operator_id)
    if parsed.kind != "organization":
        raise ValueError(f"operator {operator_id}: a licence holder is an organization")
    _ensure(store)
    generation.advance(store.path)  # a published snapshot stops answering
    store.sql.execute(
        "INSERT OR REPLACE INTO licensed_systems VALUES (?, ?, ?, ?)",
        [system, parsed.value, now_utc(), by],
    )
    return parsed.value


def bindings(store: Store) -> dict[str, str]:
    if not has_table(store, "licensed_systems"):  # reads work on a read-only registry too
        return {}
    rows = store.sql.execute("SELECT system, operator_id FROM licensed_systems").fetchall()
    return {s: o for s, o in rows}


def status(
    store: Store, system: str, *, at: datetime | None = None, known_at: datetime | None = None
) -> LicenceStatus:
    """The licence position of ``system`` at ``at`` as known at ``known_at``."""
    operator = bindings(store).get(system)
    if operator is None:
        return LicenceStatus(system, required=False, current=True, reason="not licence-gated")
    at = at or now_utc()
    known = known_at or now_utc()
    lic, until, target = (
        attribute_column("license_no"),
        attribute_column("valid_until"),
        attribute_column("target_record_id"),
    )
    # Fixed column names (catalog attributes); values travel as parameters.
    rows = store.sql.execute(
        f"SELECT record_id, type, {lic}, {until} FROM records "
        "WHERE subject_id = ? AND type IN (?, ?) AND occurred_at <= ? AND recorded_at <= ? "
        "ORDER BY occurred_at",
        [operator, GRANTED, REVOKED_LICENCE, at, known],
    ).fetchall()
    voided = {
        r[0]
        for r in store.sql.execute(
            f"SELECT {target} FROM records WHERE type = 'record.revoked' "
            "AND occurred_at <= ? AND recorded_at <= ?",
            [at, known],
        ).fetchall()
    }
    revoked = {no for _, t, no, _ in rows if t == REVOKED_LICENCE}
    today = local_date(at)
    grants = [(rid, no, vu) for rid, t, no, vu in rows if t == GRANTED and rid not in voided]
    if not grants:
        return LicenceStatus(
            system,
            True,
            False,
            operator,
            reason=f"system {system}: its operator {operator} holds no licence "
            f"(admin.license_granted) as of {to_local_iso(at)}",
        )
    for _, no, vu in reversed(grants):
        if no in revoked:
            continue
        if vu is not None and date.fromisoformat(str(vu)[:10]) < today:
            continue
        return LicenceStatus(system, True, True, operator, no, str(vu) if vu else None, "current")
    _, no, vu = grants[-1]
    why = "was revoked" if no in revoked else f"expired after {vu}"
    return LicenceStatus(
        system,
        True,
        False,
        operator,
        no,
        str(vu) if vu else None,
        reason=f"system {system}: the licence {no} of its operator {operator} {why}; "
        "it may not answer (State Council Order No. 631: credit reporting needs a licence)",
    )


def require(
    store: Store, system: str, *, at: datetime | None = None, known_at: datetime | None = None
) -> LicenceStatus:
    found = status(store, system, at=at, known_at=known_at)
    if not found.current:
        raise Unlicensed(found)
    return found
