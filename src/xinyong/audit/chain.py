"""An append-only, hash-chained audit log beside the registry file.

Where it lives, and why not in the DuckDB file: the registry file has one
writer at a time, and checks and reports may be answered from a published
snapshot without opening it (readers never wait for writers). Every one of
those reads must still be audited, so the log cannot need the registry's
writer lock. It is a JSON Lines file (``<registry>.audit.jsonl``) that any
process appends to under its own short lock (``flock`` on ``.lock``), one line
per entry, written with one ``write`` and ``fsync``-ed before the operation it
records returns an answer. Appending is O(1) (the last line is read from the
file's end), and the file diffs, greps and archives as text.

Each entry holds ``prev``, the hash of the entry before it (64 zeros for the
first), and ``hash`` = SHA-256 of its own canonical JSON without ``hash``.
Changing, removing or reordering a line breaks the chain at that line, which
``verify`` names. A process killed mid-write leaves at most a torn last line
without its newline: no entry that was acknowledged is lost, the torn line was
never acknowledged, and the next append (under the lock) cuts it off before
writing, so the chain stays valid.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from xinyong.timeutil import now_utc, to_local_iso

GENESIS = "0" * 64


def audit_path(registry: str | Path) -> Path:
    """The audit log of a registry file: beside it, named after it (a registry on
    PostgreSQL: in its local folder, `ledger.location.local_base`)."""
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
    """``first_bad`` is the 1-based line number of the first entry that breaks the chain."""

    ok: bool
    entries: int
    first_bad: int | None = None
    reason: str | None = None


class AuditChain:
    """The audit log of one registry. Safe for many processes at once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def of_registry(cls, registry: str | Path) -> AuditChain:
        return cls(audit_path(registry))

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
        with self._locked():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                seq, prev = self._tail(fd)
                entry = AuditEntry(
                    seq=seq + 1,
                    at=to_local_iso(at or now_utc()) or "",
                    principal=principal,
                    role=role,
                    action=action,
                    subject=subject,
                    purpose=purpose,
                    outcome=outcome,
                    detail=detail or {},
                    prev=prev,
                )
                entry.hash = entry.body_digest()
                line = json.dumps(
                    entry.model_dump(), sort_keys=True, ensure_ascii=False, separators=(",", ":")
                )
                os.write(fd, (line + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        return entry

    def append_many(self, events: list[dict[str, Any]], *, at: datetime | None = None) -> int:
        """Write several entries (each a dict of ``append``'s keyword arguments) with one
        write and one ``fsync`` under one lock: a bulk check audits every subject it
        answered without paying a disk flush per subject. Returns how many were written."""
        if not events:
            return 0
        stamp = to_local_iso(at or now_utc()) or ""
        with self._locked():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                seq, prev = self._tail(fd)
                lines = []
                dump = json.JSONEncoder(
                    sort_keys=True, ensure_ascii=False, separators=(",", ":")
                ).encode
                for event in events:
                    seq += 1
                    # The canonical body (AuditEntry.body_digest: sorted keys) in two
                    # halves around where "hash" sorts (after "detail", before
                    # "outcome"), so the line is built without encoding it twice.
                    head = dump(
                        {
                            "action": event["action"],
                            "at": stamp,
                            "detail": event.get("detail") or {},
                        }
                    )
                    tail = dump(
                        {
                            "outcome": event["outcome"],
                            "prev": prev,
                            "principal": event["principal"],
                            "purpose": event.get("purpose"),
                            "role": event["role"],
                            "seq": seq,
                            "subject": event.get("subject"),
                        }
                    )
                    prev = hashlib.sha256(f"{head[:-1]},{tail[1:]}".encode()).hexdigest()
                    lines.append(f'{head[:-1]},"hash":"{prev}",{tail[1:]}')
                os.write(fd, ("\n".join(lines) + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        return len(events)

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

    def entries(self) -> Iterator[AuditEntry]:
        """Every complete entry, in order (a torn last line is skipped)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    return
                yield AuditEntry.model_validate_json(raw)

    def verify(self) -> ChainReport:
        """Walk the chain; name the first line that was changed, removed or reordered."""
        prev, count = GENESIS, 0
        if not self.path.exists():
            return ChainReport(ok=True, entries=0)
        with self.path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.endswith(b"\n"):
                    break  # a torn, never acknowledged last line
                try:
                    entry = AuditEntry.model_validate_json(raw)
                except ValueError:
                    return ChainReport(
                        ok=False, entries=count, first_bad=lineno, reason="not an audit entry"
                    )
                if entry.seq != lineno:
                    return ChainReport(
                        ok=False,
                        entries=count,
                        first_bad=lineno,
                        reason=f"sequence {entry.seq} at line {lineno} (removed or reordered)",
                    )
                if entry.prev != prev:
                    return ChainReport(
                        ok=False,
                        entries=count,
                        first_bad=lineno,
                        reason="does not follow the entry before it (removed or reordered)",
                    )
                if entry.body_digest() != entry.hash:
                    return ChainReport(
                        ok=False, entries=count, first_bad=lineno, reason="content changed"
                    )
                prev, count = entry.hash, count + 1
        return ChainReport(ok=True, entries=count)

    def about(self, subject: str) -> list[AuditEntry]:
        return [e for e in self.entries() if e.subject == subject]
