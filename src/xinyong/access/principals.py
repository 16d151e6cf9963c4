"""Principals: who calls the registry, in which role, bound to what, with which keys.

A principal is a name, a role (``access.permissions.Role``), the scope that binds
it (a source id, a list of services, a subject id) and API keys. A key is shown
once, when it is made; the registry keeps only its scrypt hash (RFC 7914, from
``hashlib``: no extra dependency) with a per-key salt. Keys and principals are
revoked, never deleted, so the audit log's names stay resolvable.

One class, ``PrincipalBook``, two storages, chosen by where the registry lives
(``of_registry``):

- A DuckDB registry: a file beside it (``<registry>.principals.json``), written
  atomically (temporary file, fsync, rename) under a lock, for the reason the audit
  log is a file: authenticating a reader must not need the registry's writer lock,
  and a snapshot reader never opens the DuckDB file.
- A PostgreSQL registry: the tables ``principals`` and ``api_keys`` (``ledger/
  pgschema.py``), so that a key made through any worker on any host authenticates
  on all of them. An edit is one transaction that first bumps the one row of
  ``principal_book`` (which locks it: editors queue, as on the file's lock, and its
  ``revision`` tells a server's key cache that the book changed); rows are inserted
  or updated, never deleted.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

from xinyong.access.permissions import ROLES, Refused, Role
from xinyong.ledger.location import pg_url
from xinyong.timeutil import now_utc, to_local_iso

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.:\-]{0,63}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}

LOCAL_OPERATOR = "local-operator"


class ApiKey(BaseModel):
    key_id: str
    salt: str
    digest: str
    created_at: str
    revoked_at: str | None = None


class Principal(BaseModel):
    name: str
    role: Role
    source: str | None = None
    services: list[str] = Field(default_factory=list)
    subject_id: str | None = None
    created_at: str = ""
    revoked_at: str | None = None
    keys: list[ApiKey] = Field(default_factory=list)

    def public(self) -> dict[str, object]:
        """What `principals list` shows: never a digest or salt."""
        return {
            "name": self.name,
            "role": self.role,
            "source": self.source,
            "services": self.services,
            "subject_id": self.subject_id,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "keys": [
                {"key_id": k.key_id, "created_at": k.created_at, "revoked_at": k.revoked_at}
                for k in self.keys
            ],
        }


def local_operator() -> Principal:
    """Whoever runs the CLI on the registry's own machine, without --as."""
    return Principal(name=LOCAL_OPERATOR, role="operator")


def principals_path(registry: str | Path) -> Path:
    """The principal book file of a DuckDB registry (for a PostgreSQL registry: where
    its book lay before it moved into the database)."""
    from xinyong.ledger.location import local_base

    p = local_base(registry)
    return p.with_name(p.name + ".principals.json")


def _digest(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, **_SCRYPT).hex()


class _Storage(Protocol):
    def load(self) -> dict[str, Principal]: ...

    def editing(self) -> AbstractContextManager[dict[str, Principal]]:
        """The book under the editors' lock; what the caller changes in it is written
        when the block ends without an error."""
        ...

    def stamp(self) -> Hashable:
        """Changes whenever the book does (a server's key cache compares it)."""
        ...


class PrincipalBook:
    """The principals of one registry. ``PrincipalBook(path)`` is a book file;
    ``PrincipalBook(url)`` the book in the PostgreSQL registry at `url`;
    ``of_registry`` picks for a registry."""

    def __init__(self, where: str | Path) -> None:
        url = pg_url(where)
        self.where = str(where) if url is None else url
        self._storage: _Storage = _FileBook(Path(where)) if url is None else _PgBook(url)

    @classmethod
    def of_registry(cls, registry: str | Path) -> PrincipalBook:
        url = pg_url(registry)
        if url is None:
            return cls(principals_path(registry))
        from xinyong.ledger.shared_state import refuse_local_file

        refuse_local_file(url, principals_path(registry), "the principal book")
        return cls(url)

    @property
    def path(self) -> Path:
        """The book file (a DuckDB registry's book)."""
        if not isinstance(self._storage, _FileBook):
            raise TypeError(f"the principal book of {self.where} is a table, not a file")
        return self._storage.path

    def load(self) -> dict[str, Principal]:
        return self._storage.load()

    def stamp(self) -> Hashable:
        """Changes whenever the book does."""
        return self._storage.stamp()

    def editing(self) -> AbstractContextManager[dict[str, Principal]]:
        """The book under the editors' lock, written back when the block ends without
        an error (principals and keys are added or revoked, never removed)."""
        return self._storage.editing()

    def add(
        self,
        name: str,
        role: str,
        *,
        source: str | None = None,
        services: list[str] | None = None,
        subject_id: str | None = None,
    ) -> tuple[Principal, str]:
        """A new principal and its first key (the key text is returned once)."""
        if not _NAME.match(name) or name == LOCAL_OPERATOR:
            raise ValueError(
                f"principal name {name!r}: use 1-64 of a-z 0-9 _ . : - (and not {LOCAL_OPERATOR})"
            )
        if role not in ROLES:
            raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")
        if role == "subject" and not subject_id:
            raise ValueError("a subject principal needs --subject (its identity number or code)")
        if role == "source" and not source:
            raise ValueError("a source principal needs --source (a registered source id)")
        if role == "service" and not services:
            raise ValueError("a service principal needs --service (one or more services)")
        with self.editing() as book:
            if name in book:
                raise ValueError(f"principal {name!r} exists")
            principal = Principal(
                name=name,
                role=role,  # type: ignore[arg-type]
                source=source,
                services=list(services or []),
                subject_id=subject_id,
                created_at=to_local_iso(now_utc()) or "",
            )
            key = self._new_key(principal)
            book[name] = principal
        return principal, key

    @staticmethod
    def _new_key(principal: Principal) -> str:
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        principal.keys.append(
            ApiKey(
                key_id=key_id,
                salt=salt.hex(),
                digest=_digest(secret, salt),
                created_at=to_local_iso(now_utc()) or "",
            )
        )
        return f"xy.{key_id}.{secret}"

    def new_key(self, name: str) -> str:
        with self.editing() as book:
            principal = self._get(book, name)
            if principal.revoked_at:
                raise ValueError(f"principal {name!r} is revoked")
            return self._new_key(principal)

    def revoke(self, name: str, key_id: str | None = None) -> Principal:
        """Revoke one key, or (without key_id) the principal and all its keys."""
        stamp = to_local_iso(now_utc())
        with self.editing() as book:
            principal = self._get(book, name)
            hit = False
            for key in principal.keys:
                if (key_id is None or key.key_id == key_id) and key.revoked_at is None:
                    key.revoked_at = stamp
                    hit = True
            if key_id is not None and not hit:
                raise ValueError(f"principal {name!r} has no live key {key_id!r}")
            if key_id is None:
                principal.revoked_at = principal.revoked_at or stamp
            return principal

    @staticmethod
    def _get(book: dict[str, Principal], name: str) -> Principal:
        if name not in book:
            raise ValueError(f"no principal {name!r}")
        return book[name]

    def authenticate(self, name: str | None, key: str) -> Principal:
        """The principal when ``key`` is one of its live keys; ``Refused`` otherwise.
        Without ``name`` the key's id finds the principal (an HTTP bearer key).

        The message never says which part was wrong (name, key id or secret)."""
        bad = Refused("authenticate", f"bad key for principal {name or '(by key)'!r}")
        parts = key.split(".")
        book = self.load()
        if name is None and len(parts) == 3:
            name = next(
                (p.name for p in book.values() if any(k.key_id == parts[1] for k in p.keys)),
                None,
            )
        principal = book.get(name) if name is not None else None
        if principal is None or principal.revoked_at or len(parts) != 3 or parts[0] != "xy":
            raise bad
        for stored in principal.keys:
            if (
                stored.key_id == parts[1]
                and stored.revoked_at is None
                and hmac.compare_digest(
                    _digest(parts[2], bytes.fromhex(stored.salt)), stored.digest
                )
            ):
                return principal
        raise bad


class _FileBook:
    """The book as a JSON file (a DuckDB registry's)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Principal]:
        if not self.path.exists():
            return {}
        raw = json.loads(self.path.read_text(encoding="utf-8"))
        return {p["name"]: Principal.model_validate(p) for p in raw["principals"]}

    def stamp(self) -> Hashable:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    @contextmanager
    def editing(self) -> Iterator[dict[str, Principal]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            book = self.load()
            yield book
            tmp = self.path.with_name(self.path.name + ".tmp")
            text = json.dumps(
                {"principals": [p.model_dump() for p in book.values()]},
                ensure_ascii=False,
                indent=1,
            )
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class _PgBook:
    """The book as the tables ``principals`` and ``api_keys`` of a PostgreSQL registry."""

    WHAT = "the principal book"

    def __init__(self, url: str) -> None:
        from xinyong.ledger.shared_state import table

        self.url = url
        self.principals = table("principals")
        self.keys = table("api_keys")
        self.book = table("principal_book")

    def _read(self, conn: Any) -> dict[str, Principal]:
        import sqlalchemy as sa

        p, k = self.principals, self.keys
        keys: dict[str, list[ApiKey]] = {}
        for row in conn.execute(sa.select(k).order_by(k.c.principal, k.c.ordinal)).mappings():
            keys.setdefault(row["principal"], []).append(
                ApiKey.model_validate({f: row[f] for f in ApiKey.model_fields})
            )
        book = {}
        for row in conn.execute(sa.select(p).order_by(p.c.name)).mappings():
            fields = {f: row[f] for f in Principal.model_fields if f in row}
            fields["services"] = json.loads(row["services"])
            fields["keys"] = keys.get(row["name"], [])
            book[row["name"]] = Principal.model_validate(fields)
        return book

    def load(self) -> dict[str, Principal]:
        from xinyong.ledger.shared_state import transaction

        with transaction(self.url, self.WHAT) as conn:
            return self._read(conn)

    def stamp(self) -> Hashable:
        import sqlalchemy as sa

        from xinyong.ledger.shared_state import transaction

        with transaction(self.url, self.WHAT) as conn:
            revision: Hashable = conn.execute(sa.select(self.book.c.revision)).scalar()
            return revision

    @contextmanager
    def editing(self) -> Iterator[dict[str, Principal]]:
        import sqlalchemy as sa
        from sqlalchemy.dialects.postgresql import insert

        from xinyong.ledger.shared_state import transaction

        with transaction(self.url, self.WHAT) as conn:
            bump = insert(self.book).values(id=1, revision=1)
            conn.execute(
                bump.on_conflict_do_update(
                    index_elements=["id"], set_={"revision": self.book.c.revision + 1}
                )
            )
            before = self._read(conn)
            book = {name: p.model_copy(deep=True) for name, p in before.items()}
            yield book
            for name, principal in book.items():
                row = principal.model_dump(exclude={"keys"})
                row["services"] = json.dumps(principal.services, ensure_ascii=False)
                old = before.get(name)
                if old is None:
                    conn.execute(sa.insert(self.principals).values(**row))
                elif old.model_dump(exclude={"keys"}) != principal.model_dump(exclude={"keys"}):
                    conn.execute(
                        sa.update(self.principals)
                        .where(self.principals.c.name == name)
                        .values(**{k: v for k, v in row.items() if k != "name"})
                    )
                had = {key.key_id: key for key in (old.keys if old else [])}
                for ordinal, key in enumerate(principal.keys):
                    if key.key_id not in had:
                        conn.execute(
                            sa.insert(self.keys).values(
                                principal=name, ordinal=ordinal, **key.model_dump()
                            )
                        )
                    elif had[key.key_id] != key:
                        conn.execute(
                            sa.update(self.keys)
                            .where(self.keys.c.key_id == key.key_id)
                            .values(revoked_at=key.revoked_at)
                        )
