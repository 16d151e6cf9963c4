"""The published snapshot: checks and scores at any instant as index lookups in a
small SQLite file beside the registry, ``<registry>.snapshot``.

``evaluate`` writes it after materializing the timelines (``publish``): the
consequence periods and the score timeline of the run, with a meta table (the
registry's generation token, the pack versions and their effective dates, the
run's ``known_at``, and ``guarded``). It is written to a temporary file and
renamed (``os.replace``), so a reader never sees half a file and never waits
for a writer (the DuckDB file is locked while a writer holds it; the snapshot
is not).

A reader (``answer_check``, ``answer_score``) gets an answer only when all of
these hold, and None otherwise (the caller then asks the registry, which
replays when it must):
- the snapshot's generation equals the registry's marker (``ledger/generation``):
  nothing was imported, purged, licensed or installed since;
- it is not ``guarded``: a registry with tombstones (purged histories) or
  licence-gated systems is answered by the registry path, which applies those
  guards (fail closed: the snapshot knows neither);
- the question's ``known_at`` (if any) is not before the run's knowledge;
- every pack in force at the instant asked is the version the run evaluated;
- the service (or system) is one the snapshot knows.

Stdlib only (sqlite3, json): a ``xinyong check`` process that answers from here
imports neither DuckDB nor Ibis nor pandas. Authorization and the audit entry
stay with the caller (``access.operations``).
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xinyong.checks.answers import CheckAnswer, ScoreAnswer
from xinyong.ledger import generation

if TYPE_CHECKING:
    from xinyong.ledger.store import Store

_EPOCH = datetime(1970, 1, 1)
FORMAT = "xinyong-snapshot-3"

_RULE = "service, effect, system, basis_kind, basis_id, rule_id, legal_basis, remedy"
#: The consequence rows of one subject and service, in ConsequenceIndex's column order.
_LOOKUP = (
    "SELECT c.subject_id, r.service, r.effect, r.system, r.basis_kind, r.basis_id, "
    "r.rule_id, r.legal_basis, c.since, c.until, r.remedy, c.via_relation, c.via_subject "
    # CROSS JOIN: SQLite keeps this order, so it reads the subject's rows by index
    "FROM consequences c CROSS JOIN rules r ON c.rule = r.id "
    "WHERE c.subject_id = ? AND r.service = ?"
)


def path_of(db: str | Path) -> Path:
    return Path(f"{db}.snapshot")


def _us(dt: datetime | None) -> int | None:
    return None if dt is None else (dt - _EPOCH) // timedelta(microseconds=1)


def _dt(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


# --------------------------------------------------------------------------- writing


def withdraw(db: str | Path) -> None:
    """Remove the snapshot (a run that cannot be published leaves none behind)."""
    path_of(db).unlink(missing_ok=True)


def publish(store: Store, services: list[str]) -> Path | None:
    """Write the latest run's timelines as the snapshot of ``store`` (a registry file,
    open for writing, so no other writer runs meanwhile). Returns its path; None
    (and no snapshot) when the run did not materialize timelines or is not current."""
    from xinyong.checks.index import latest_run, run_is_current
    from xinyong.process import licensing
    from xinyong.process import purge as retention_purge

    db = store.path
    if db == ":memory:" or store.backend == "postgresql":
        # On PostgreSQL checks read the materialized tables (indexed by subject_id).
        return None
    run = latest_run(store)
    if run is None or not run.timeline or not run_is_current(store, run):
        withdraw(db)
        return None
    token = generation.current(db) or generation.advance(db)
    guarded = bool(retention_purge.tombstones(store)) or bool(licensing.bindings(store))
    packs = store.sql.execute(
        "SELECT system, version, effective_from FROM packs ORDER BY system, effective_from"
    ).fetchall()
    target = path_of(db)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        con.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            # The rule's columns (long, repeated texts) once per rule; each consequence
            # names its rule by number.
            "CREATE TABLE rules (id INTEGER PRIMARY KEY, service TEXT NOT NULL,"
            " effect TEXT NOT NULL, system TEXT NOT NULL, basis_kind TEXT NOT NULL,"
            " basis_id TEXT NOT NULL, rule_id TEXT NOT NULL, legal_basis TEXT NOT NULL,"
            " remedy TEXT);"
            "CREATE TABLE consequences (subject_id TEXT NOT NULL, rule INTEGER NOT NULL,"
            " since INTEGER NOT NULL, until INTEGER, via_relation TEXT, via_subject TEXT);"
            "CREATE TABLE score_timeline (system TEXT NOT NULL, subject_id TEXT NOT NULL,"
            " valid_from INTEGER NOT NULL, valid_to INTEGER, score REAL, grade TEXT);"
            # Subjects with an objection on record: their checks carry the dispute
            # marks of process/disputes.py, which the registry path adds.
            "CREATE TABLE contested (subject_id TEXT PRIMARY KEY);"
        )
        meta = {
            "format": FORMAT,
            "generation": token or "",
            "run_id": str(run.run_id),
            "known_at": str(_us(run.known_at)),
            "as_of": str(_us(run.as_of)),
            "guarded": "1" if guarded else "0",
            "packs": json.dumps([[s, v, e.isoformat()] for s, v, e in packs]),
            "services": json.dumps(sorted(services)),
        }
        con.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        if not guarded:
            _copy(store, con)
        con.commit()
    finally:
        con.close()
    os.replace(tmp, target)
    return target


def _copy(store: Store, con: sqlite3.Connection) -> None:
    # Instants leave DuckDB as microseconds since 1970 (epoch_us): no Python datetime
    # per row; rows are sorted by subject, so SQLite's pages fill in index order.
    rules = store.sql.execute(f"SELECT DISTINCT {_RULE} FROM consequences").fetchall()
    number = {rule: i for i, rule in enumerate(rules)}
    con.executemany(
        f"INSERT INTO rules VALUES (?, {', '.join('?' * 8)})",
        [(i, *rule) for rule, i in number.items()],
    )
    cur = store.sql.execute(
        f"SELECT {_RULE}, subject_id, epoch_us(since), epoch_us(until), via_relation, "
        "via_subject FROM consequences ORDER BY subject_id"
    )
    while batch := cur.fetchmany(100_000):
        con.executemany(
            "INSERT INTO consequences VALUES (?, ?, ?, ?, ?, ?)",
            [(r[8], number[r[:8]], *r[9:]) for r in batch],
        )
    cur = store.sql.execute(
        "SELECT system, subject_id, epoch_us(valid_from), epoch_us(valid_to), score, grade "
        "FROM score_timeline ORDER BY subject_id, system, valid_from"
    )
    while batch := cur.fetchmany(100_000):
        con.executemany("INSERT INTO score_timeline VALUES (?, ?, ?, ?, ?, ?)", batch)
    from xinyong.process.objections import FILED

    contested = store.sql.execute(
        "SELECT DISTINCT subject_id FROM records WHERE type = ?", [FILED]
    ).fetchall()
    con.executemany("INSERT INTO contested VALUES (?)", contested)
    con.execute("CREATE INDEX consequences_subject ON consequences (subject_id)")
    con.execute("CREATE INDEX score_timeline_subject ON score_timeline (subject_id, system)")


# --------------------------------------------------------------------------- reading


def _local_day(at: datetime) -> date:
    return (at + timedelta(hours=8)).date()  # Asia/Shanghai, as timeutil.local_date


def _versions(packs: list[list[str]], at: datetime) -> dict[str, str]:
    day = _local_day(at).isoformat()
    chosen: dict[str, str] = {}
    for system, version, effective in packs:  # ordered by system, effective date
        if effective <= day:
            chosen[system] = version
    return chosen


def covered(then: dict[str, str], run: dict[str, str]) -> bool:
    """Whether results computed with the ``run``'s pack versions answer for an instant
    whose versions in force are ``then``: every system in force then has the version
    the run evaluated. (A system of the run not yet in force then has no result then:
    its timelines and list entries begin at its effective date.)"""
    return all(run.get(system) == version for system, version in then.items())


class Snapshot:
    """An open, valid snapshot (see ``open_valid``)."""

    def __init__(self, con: sqlite3.Connection, meta: dict[str, str]) -> None:
        self.con = con
        self.meta = meta
        self.known_at = _dt(int(meta["known_at"]))
        self.as_of = _dt(int(meta["as_of"]))
        self.packs: list[list[str]] = json.loads(meta["packs"])
        self.services = set(json.loads(meta["services"]))

    def covers(self, at: datetime, known_at: datetime | None) -> bool:
        if known_at is not None and self.known_at is not None and known_at < self.known_at:
            return False
        assert self.as_of is not None
        return covered(_versions(self.packs, at), _versions(self.packs, self.as_of))

    def close(self) -> None:
        self.con.close()


def _is_duckdb(db: Path) -> bool:
    """Whether the registry path still holds a DuckDB file (its magic at byte 8, as
    ``ledger.store`` checks): a registry replaced by something else is never answered
    from its old snapshot."""
    try:
        with db.open("rb") as f:
            return f.read(12)[8:12] == b"DUCK"
    except OSError:
        return False


def open_valid(db: str | Path) -> Snapshot | None:
    """The snapshot of ``db`` if it may answer (current generation, not guarded)."""
    path = path_of(db)
    if not path.exists() or not _is_duckdb(Path(db)):
        return None
    token = generation.current(db)
    if token is None:
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.Error:
        return None
    if meta.get("format") != FORMAT or meta.get("generation") != token:
        con.close()
        return None
    if meta.get("guarded") != "0" or not json.loads(meta.get("packs", "[]")):
        con.close()
        return None
    return Snapshot(con, meta)


def answer_check(
    db: str | Path, subject_id: str, service: str, at: datetime, known_at: datetime | None
) -> CheckAnswer | None:
    """The check from the snapshot, or None when it cannot answer."""
    from xinyong.checks.index import ConsequenceIndex

    snap = open_valid(db)
    if snap is None:
        return None
    try:
        if service not in snap.services or not snap.covers(at, known_at):
            return None
        rows = snap.con.execute(_LOOKUP, [subject_id, service]).fetchall()
        # A subject (or the organization it answers for) with an objection on record
        # is answered by the registry, which marks the disputed reasons.
        owners = {subject_id} | {r[12] for r in rows if r[12]}
        marks = ", ".join("?" for _ in owners)
        if snap.con.execute(
            f"SELECT 1 FROM contested WHERE subject_id IN ({marks}) LIMIT 1", list(owners)
        ).fetchone():
            return None
        # Re-check after reading: a writer that advanced the marker meanwhile wins.
        if generation.current(db) != snap.meta["generation"]:
            return None
    finally:
        snap.close()
    index = ConsequenceIndex(None)
    index.add_rows((*r[:8], _dt(r[8]), _dt(r[9]), *r[10:]) for r in rows)
    return index.answer(subject_id, service, at).model_copy(update={"answered_from": "snapshot"})


def answer_score(
    db: str | Path, subject_id: str, system: str, at: datetime, known_at: datetime | None
) -> ScoreAnswer | None:
    """The score from the snapshot, or None when it cannot answer."""
    snap = open_valid(db)
    if snap is None:
        return None
    try:
        if system not in _versions(snap.packs, at) or not snap.covers(at, known_at):
            return None
        when = _us(at)
        row: Any = snap.con.execute(
            "SELECT score, grade FROM score_timeline WHERE subject_id = ? AND system = ? "
            "AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)",
            [subject_id, system, when, when],
        ).fetchone()
        if generation.current(db) != snap.meta["generation"]:
            return None
    finally:
        snap.close()
    score, grade = row if row is not None else (None, None)
    return ScoreAnswer(subject_id=subject_id, system=system, score=score, grade=grade)
