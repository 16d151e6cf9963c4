"""What one server process holds: the registry, a cache of authenticated keys,
and the lock that keeps the registry's one writer apart from its readers.

DuckDB lets one process open a file either read-only (many connections) or
read-write, not both at once; the HTTP API serves reads and writes from the
same process, so readers share a lock that a writer takes alone. Across
processes (``--workers``) the store's own busy-retry does the same."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from xinyong.access import operations as ops
from xinyong.access.principals import Principal


class ReadWriteLock:
    """Many readers or one writer (writers are not starved: a waiting writer blocks
    new readers)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass
class _FileGate:
    """What one process shares for one registry file, whatever number of apps serve it:
    the readers-writer lock and the readers' held stores (DuckDB's rule is per process)."""

    lock: ReadWriteLock = field(default_factory=ReadWriteLock)
    local: threading.local = field(default_factory=threading.local)
    readers: list[ops.Registry] = field(default_factory=list)
    readers_lock: threading.Lock = field(default_factory=threading.Lock)


_GATES: dict[Path, _FileGate] = {}
_GATES_LOCK = threading.Lock()


def _gate(db: Path) -> _FileGate:
    with _GATES_LOCK:
        return _GATES.setdefault(db.resolve(), _FileGate())


@dataclass
class ServerState:
    db: Path
    #: hold one read-only store per reader thread (one worker process); with several
    #: worker processes each read opens the file, so that a writer in one process is
    #: not locked out by the readers another holds
    hold_readers: bool = True
    reg: ops.Registry = field(init=False)
    #: sha256(key) -> principal, for keys the principal book accepted; dropped
    #: whenever the book changes (a revocation takes effect on the next request)
    _keys: dict[str, Principal] = field(default_factory=dict)
    _book_stamp: Hashable = None
    _keys_lock: threading.Lock = field(default_factory=threading.Lock)
    _file: _FileGate = field(init=False)

    def __post_init__(self) -> None:
        self.db = Path(self.db)
        self.reg = ops.Registry(self.db)
        self._file = _gate(self.db)

    @property
    def lock(self) -> ReadWriteLock:
        return self._file.lock

    @contextmanager
    def reading(self) -> Iterator[ops.Registry]:
        """A registry for a read: this thread's, holding its read-only store open
        across requests (opening the file costs more than a check's queries)."""
        with self.lock.reading():
            if not self.hold_readers:
                yield self.reg
                return
            reg = getattr(self._file.local, "reg", None)
            if reg is None:
                reg = ops.Registry(self.db)
                self._file.local.reg = reg
                with self._file.readers_lock:
                    self._file.readers.append(reg)
            reg.hold(read_only=True)
            yield reg

    @contextmanager
    def writing(self) -> Iterator[ops.Registry]:
        """The registry for a write: every reader's held store is closed first (one
        process opens the file one way at a time); readers reopen after."""
        with self.lock.writing():
            self._release()
            yield self.reg

    def release_readers(self) -> None:
        """Close every held reader store (at shutdown, or before another process writes)."""
        with self.lock.writing():
            self._release()

    def _release(self) -> None:
        with self._file.readers_lock:
            for reg in self._file.readers:
                reg.release()

    def _stamp(self) -> Hashable:
        """The principal book's stamp (its file's, or on PostgreSQL its revision, which
        every host's edits advance: a key revoked through one host's worker is refused
        by all of them on their next request)."""
        return self.reg.principals.stamp()

    def authenticate(self, key: str) -> Principal:
        """The principal behind an API key: ``gate.authenticate`` (scrypt, audited on
        refusal) on first sight, then from the cache until the book changes."""
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        stamp = self._stamp()
        with self._keys_lock:
            if stamp != self._book_stamp:
                self._keys.clear()
                self._book_stamp = stamp
            cached = self._keys.get(digest)
        if cached is not None:
            return cached
        principal = ops.authenticate(self.reg, None, key)
        with self._keys_lock:
            if self._stamp() == stamp:
                self._keys[digest] = principal
        return principal

    def principal_named(self, name: str, key_id: str) -> Principal | None:
        """A page session's principal, while it and the key it logged in with are live."""
        principal = self.reg.principals.load().get(name)
        if principal is None or principal.revoked_at:
            return None
        if not any(k.key_id == key_id and k.revoked_at is None for k in principal.keys):
            return None
        return principal
