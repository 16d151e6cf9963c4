"""Principals: who calls the registry, in which role, bound to what, with which keys.

A principal is a name, a role (``access.permissions.Role``), the scope that binds
it (a source id, a list of services, a subject id) and API keys. A key is shown
once, when it is made; the registry keeps only its scrypt hash (RFC 7914, from
``hashlib``: no extra dependency) with a per-key salt. Keys and principals are
revoked, never deleted, so the audit log's names stay resolvable.

The book lives beside the registry (``<registry>.principals.json``), written
atomically (temporary file, fsync, rename) under a lock, for the reason the
audit log does: authenticating a reader must not need the registry's writer
lock, and a snapshot reader never opens the DuckDB file.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field

from xinyong.access.permissions import ROLES, Refused, Role
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
    from xinyong.ledger.location import local_base

    p = local_base(registry)
    return p.with_name(p.name + ".principals.json")


def _digest(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, **_SCRYPT).hex()


class PrincipalBook:
    """The principals of one registry."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def of_registry(cls, registry: str | Path) -> PrincipalBook:
        return cls(principals_path(registry))

    def load(self) -> dict[str, Principal]:
        if not self.path.exists():
            return {}
        raw = json.loads(self.path.read_text(encoding="utf-8"))
        return {p["name"]: Principal.model_validate(p) for p in raw["principals"]}

    @contextmanager
    def _editing(self) -> Iterator[dict[str, Principal]]:
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
        with self._editing() as book:
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
        with self._editing() as book:
            principal = self._get(book, name)
            if principal.revoked_at:
                raise ValueError(f"principal {name!r} is revoked")
            return self._new_key(principal)

    def revoke(self, name: str, key_id: str | None = None) -> Principal:
        """Revoke one key, or (without key_id) the principal and all its keys."""
        stamp = to_local_iso(now_utc())
        with self._editing() as book:
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
