"""An append-only, hash-chained audit log: a file beside a DuckDB registry, a table
in a PostgreSQL registry.

Each entry holds ``prev``, the hash of the entry before it (64 zeros for the
first), and ``hash`` = SHA-256 of its own canonical JSON without ``hash``.
Changing, removing or reordering an entry breaks the chain there, which ``verify``
names. Appends are serialized and each is durable before the operation it records
returns an answer; ``seq`` counts 1, 2, 3 … without gaps. One class, ``AuditChain``,
two storages, chosen by where the registry lives (``of_registry``):

- A DuckDB registry: a JSON Lines file (``<registry>.audit.jsonl``). The registry
  file has one writer at a time, and checks and reports may be answered from a
  published snapshot without opening it (readers never wait for writers). Every one
  of those reads must still be audited, so the log cannot need the registry's writer
  lock: any process appends under its own short lock (``flock`` on ``.lock``), one
  line per entry, written with one ``write`` and ``fsync``-ed. Appending is O(1) (the
  last line is read from the file's end), and the file diffs, greps and archives as
  text. A process killed mid-write leaves at most a torn last line without its
  newline: no entry that was acknowledged is lost, the torn line was never
  acknowledged, and the next append (under the lock) cuts it off before writing.
- A PostgreSQL registry: the table ``audit_log`` (``ledger/pgschema.py``), one row per
  entry holding its canonical fields (``detail`` as canonical JSON text). Workers on
  every host of the registry append to the one chain: each append is a transaction
  that takes an advisory lock (``pgschema.AUDIT_LOCK``, held until commit), reads the
  last entry and inserts the next, so appends are serialized across hosts and ``seq``
  stays gapless (a rolled-back append leaves no row and no number). The commit is the
  durability point (the server's WAL flush). ``verify``'s ``first_bad`` is the
  entry's position in ``seq`` order, as it is the line number in the file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xinyong.ledger.location import pg_url
from xinyong.timeutil import now_utc, to_local_iso

GENESIS = "0" * 64

_dump = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode


def audit_path(registry: str | Path) -> Path:
    """The audit log file of a DuckDB registry: beside it, named after it. (For a
    PostgreSQL registry: where its log lay before it moved into the database, under
    `ledger.location.local_base`.)"""
    from xinyong.ledger.location import local_base

    p = local_base(registry)
    return p.with_name(p.name + ".audit.jsonl")


class AuditEntry(BaseModel):
    """One audited event. ``outcome`` is 'allowed', 'refused' or 'done'."""

    model_config = ConfigDict(extra="forbid")

    seq: int
    at: str
    principal: str
    role: str
    action: str
    subject: str | None = None
    purpose: str | None = None
    outcome: str
    detail: dict[str, Any] = Field(default_factory=dict)
    prev: str
    hash: str = ""

    def body_digest(self) -> str:
        body = self.model_dump(exclude={"hash"})
        text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ChainReport(BaseModel):
    """``first_bad`` is the 1-based position (the file's line number) of the first entry
    that breaks the chain."""

    ok: bool
    entries: int
    first_bad: int | None = None
    reason: str | None = None


class Chained(NamedTuple):
    """An entry made by ``chain``: its fields and its canonical JSON line."""

    fields: dict[str, Any]
    line: str


def chain(events: list[dict[str, Any]], stamp: str, seq: int, prev: str) -> list[Chained]:
    """Entries for `events` (dicts of ``AuditChain.append``'s keyword arguments) after
    the entry (`seq`, `prev`), stamped `stamp` (an event's own ``at``, an instant or
    its ISO text, comes first)."""
    out = []
    for event in events:
        seq += 1
        at = event.get("at")
        fields = {
            "action": event["action"],
            "at": stamp if at is None else at if isinstance(at, str) else to_local_iso(at),
            "detail": event.get("detail") or {},
            "outcome": event["outcome"],
            "prev": prev,
            "principal": event["principal"],
            "purpose": event.get("purpose"),
            "role": event["role"],
            "seq": seq,
            "subject": event.get("subject"),
        }
        # The canonical body (AuditEntry.body_digest: sorted keys) in two halves around
        # where "hash" sorts (after "detail", before "outcome"), so that the line is
        # built without encoding it twice.
        head = _dump({k: fields[k] for k in ("action", "at", "detail")})
        tail = _dump({k: v for k, v in fields.items() if k not in ("action", "at", "detail")})
        prev = hashlib.sha256(f"{head[:-1]},{tail[1:]}".encode()).hexdigest()
        fields["hash"] = prev
        out.append(Chained(fields, f'{head[:-1]},"hash":"{prev}",{tail[1:]}'))
    return out


#: Given the last entry (seq, hash), the entries to append after it.
Maker = Callable[[int, str], list[Chained]]


class _Storage(Protocol):
    def extend(self, make: Maker) -> None:
        """Under the chain's lock: read the last entry, append what `make` makes of it,
        and make it durable."""

    def read(self, subject: str | None = None) -> Iterator[AuditEntry | str]:
        """Every entry in order (of one subject, when given); a string says why the
        entry at that place is not an audit entry."""


class AuditChain:
    """The audit log of one registry. Safe for many processes (and, on PostgreSQL,
    hosts) at once. ``AuditChain(path)`` is a log file; ``AuditChain(url)`` the chain
    in the PostgreSQL registry at `url`; ``of_registry`` picks for a registry."""

    def __init__(self, where: str | Path) -> None:
        url = pg_url(where)
        self.where = str(where) if url is None else url
        self._storage: _Storage = FileLog(Path(where)) if url is None else PgLog(url)

    @classmethod
    def of_registry(cls, registry: str | Path) -> AuditChain:
        url = pg_url(registry)
        if url is None:
            return cls(audit_path(registry))
        from xinyong.ledger.shared_state import refuse_local_file

        refuse_local_file(url, audit_path(registry), "the audit chain")
        return cls(url)

    @property
    def path(self) -> Path:
        """The log file (a DuckDB registry's chain)."""
        if not isinstance(self._storage, FileLog):
            raise TypeError(f"the audit chain of {self.where} is a table, not a file")
        return self._storage.path

    def append(
        self,
        *,
        principal: str,
        role: str,
        action: str,
        outcome: str,
        subject: str | None = None,
        purpose: str | None = None,
        detail: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        """Write one entry and make it durable before returning it."""
        event = {
            "principal": principal,
            "role": role,
            "action": action,
            "outcome": outcome,
            "subject": subject,
            "purpose": purpose,
            "detail": detail,
        }
        made: list[Chained] = []

        def make(seq: int, prev: str) -> list[Chained]:
            made[:] = chain([event], to_local_iso(at or now_utc()) or "", seq, prev)
            return made

        self._storage.extend(make)
        return AuditEntry.model_validate(made[0].fields)

    def append_many(self, events: list[dict[str, Any]], *, at: datetime | None = None) -> int:
        """Write several entries (each a dict of ``append``'s keyword arguments) with one
        durable write under one lock: a bulk check audits every subject it answered
        without paying a disk flush per subject. Returns how many were written."""
        if not events:
            return 0
        stamp = to_local_iso(at or now_utc()) or ""
        self._storage.extend(lambda seq, prev: chain(events, stamp, seq, prev))
        return len(events)

    def entries(self) -> Iterator[AuditEntry]:
        """Every complete entry, in order (a torn last line is skipped)."""
        for n, entry in enumerate(self._storage.read(), start=1):
            if isinstance(entry, str):
                raise ValueError(f"audit chain {self.where}: entry {n} {entry}")
            yield entry

    def verify(self) -> ChainReport:
        """Walk the chain; name the first entry that was changed, removed or reordered."""
        prev, count = GENESIS, 0
        for place, entry in enumerate(self._storage.read(), start=1):
            if isinstance(entry, str):
                return ChainReport(ok=False, entries=count, first_bad=place, reason=entry)
            if entry.seq != place:
                return ChainReport(
                    ok=False,
                    entries=count,
                    first_bad=place,
                    reason=f"sequence {entry.seq} at entry {place} (removed or reordered)",
                )
            if entry.prev != prev:
                return ChainReport(
                    ok=False,
                    entries=count,
                    first_bad=place,
                    reason="does not follow the entry before it (removed or reordered)",
                )
            if entry.body_digest() != entry.hash:
                return ChainReport(
                    ok=False, entries=count, first_bad=place, reason="content changed"
                )
            prev, count = entry.hash, count + 1
        return ChainReport(ok=True, entries=count)

    def about(self, subject: str) -> list[AuditEntry]:
        return [e for e in self._storage.read(subject) if isinstance(e, AuditEntry)]


def _entry(raw: bytes | dict[str, Any]) -> AuditEntry | str:
    try:
        if isinstance(raw, bytes):
            return AuditEntry.model_validate_json(raw)
        return AuditEntry.model_validate(raw)
    except ValidationError:
        return "not an audit entry"


class FileLog:
    """The chain as a JSON Lines file (a DuckDB registry's)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def extend(self, make: Maker) -> None:
        with self._locked():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                lines = [c.line for c in make(*self._tail(fd))]
                if not lines:
                    return
                os.write(fd, ("\n".join(lines) + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)

    @staticmethod
    def _tail(fd: int) -> tuple[int, str]:
        """(seq, hash) of the last complete entry; cuts off a torn last line."""
        size = os.fstat(fd).st_size
        chunk = min(size, 65536)
        while size > 0:
            data = os.pread(fd, chunk, size - chunk)
            if not data.endswith(b"\n"):
                # Torn tail: a writer died mid-line. Drop it; it was never acknowledged.
                cut = data.rfind(b"\n")
                if cut < 0 and chunk < size:
                    chunk = min(size, chunk * 2)
                    continue
                size = size - chunk + cut + 1 if cut >= 0 else 0
                os.ftruncate(fd, size)
                chunk = min(size, 65536)
                continue
            body = data[:-1]
            nl = body.rfind(b"\n")
            if nl < 0 and chunk < size:
                chunk = min(size, chunk * 2)
                continue
            last = json.loads(body[nl + 1 :])
            return int(last["seq"]), str(last["hash"])
        return 0, GENESIS

    def read(self, subject: str | None = None) -> Iterator[AuditEntry | str]:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    return  # a torn, never acknowledged last line
                entry = _entry(raw)
                if subject is None or (isinstance(entry, AuditEntry) and entry.subject == subject):
                    yield entry


class PgLog:
    """The chain as the table ``audit_log`` of a PostgreSQL registry."""

    WHAT = "the audit chain"

    def __init__(self, url: str) -> None:
        from xinyong.ledger.shared_state import table

        self.url = url
        self.table = table("audit_log")

    def extend(self, make: Maker) -> None:
        from xinyong.ledger.shared_state import transaction

        with transaction(self.url, self.WHAT) as conn:
            self.extend_in(conn, make)

    def extend_in(self, conn: Any, make: Maker) -> None:
        """``extend`` inside the caller's transaction (the lock is held until it ends)."""
        import sqlalchemy as sa

        t = self.table
        lock_chain(conn)
        last = conn.execute(sa.select(t.c.seq, t.c.hash).order_by(t.c.seq.desc()).limit(1))
        row = last.first()
        made = make(*(row if row is not None else (0, GENESIS)))
        if made:
            conn.execute(
                sa.insert(t), [{**c.fields, "detail": _dump(c.fields["detail"])} for c in made]
            )

    def read(self, subject: str | None = None) -> Iterator[AuditEntry | str]:
        import sqlalchemy as sa

        from xinyong.ledger.shared_state import transaction

        t = self.table
        query = sa.select(t).order_by(t.c.seq).execution_options(yield_per=5000)
        if subject is not None:
            query = query.where(t.c.subject == subject)
        with transaction(self.url, self.WHAT) as conn:
            for row in conn.execute(query).mappings():
                try:
                    detail = json.loads(row["detail"])
                except ValueError:
                    yield "not an audit entry (its detail is not JSON)"
                    continue
                yield _entry({**row, "detail": detail})


def lock_chain(conn: Any) -> None:
    """Take the PostgreSQL chain's append lock for the rest of `conn`'s transaction."""
    import sqlalchemy as sa

    from xinyong.ledger.pgschema import AUDIT_LOCK

    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(AUDIT_LOCK)))
