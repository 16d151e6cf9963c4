"""The gate every operation passes: the registry (its file, audit log and
principal book), authentication, the one authorization call and the audit entry.

``allow`` asks ``permissions.authorize`` and, on a refusal, writes the audit
entry before raising ``Refused``; ``domain_refusals`` does the same for the
refusals the law makes (no consent, a wrong purpose, an unlicensed system, a
purged history). ``audit_event`` records what was done.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xinyong.access.permissions import Refused, authorize
from xinyong.access.principals import Principal, PrincipalBook
from xinyong.audit.chain import AuditChain, AuditEntry
from xinyong.catalog.identifiers import parse_subject_id
from xinyong.lazy import lazy
from xinyong.ledger.location import registry_exists

if TYPE_CHECKING:
    from xinyong.ledger.store import Store
    from xinyong.process import inquiries, licensing
    from xinyong.process import purge as retention_purge
else:
    # Loaded on first use: a check answered from the snapshot needs none of them.
    inquiries = lazy("xinyong.process.inquiries")
    licensing = lazy("xinyong.process.licensing")
    retention_purge = lazy("xinyong.process.purge")


@dataclass
class Registry:
    """One registry with its audit log and principal book (files beside a DuckDB file,
    tables of a PostgreSQL registry: ``AuditChain``/``PrincipalBook.of_registry``)."""

    db: Path
    audit: AuditChain = field(init=False)
    principals: PrincipalBook = field(init=False)
    _open: Store | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.db = Path(self.db)
        self.audit = AuditChain.of_registry(self.db)
        self.principals = PrincipalBook.of_registry(self.db)

    @contextmanager
    def store(self, *, read_only: bool = False, needs_packs: bool = False) -> Iterator[Store]:
        """The open registry; a long-lived process (the HTTP API) may hold one open.

        Readers open it read-only (shared with other readers, no schema setup); the
        store itself refuses anything that is not a registry of this schema version.
        needs_packs refuses a registry with no rule packs, whose every answer would
        be `allow` (fail closed)."""
        from xinyong.ledger.store import RegistryError, Store

        if self._open is not None:
            store = self._open
        else:
            if not registry_exists(self.db):
                raise FileNotFoundError(
                    f"no registry at {self.db}; create one with `xinyong init --db {self.db}`"
                )
            store = Store(self.db, read_only=read_only)
        try:
            if needs_packs and not store.has_packs():
                raise RegistryError(
                    f"registry {self.db} has no rule packs installed, so it can answer nothing;"
                    f" install them with `xinyong init --db {self.db}` or `xinyong packs install`"
                )
            yield store
        finally:
            if store is not self._open:
                store.close()

    def hold(self, *, read_only: bool = False) -> None:
        """Keep a store open until ``release`` (a server's reader thread holds one
        read-only store, so that a read does not open the file anew)."""
        if self._open is None:
            from xinyong.ledger.store import Store

            if not registry_exists(self.db):
                raise FileNotFoundError(
                    f"no registry at {self.db}; create one with `xinyong init --db {self.db}`"
                )
            self._open = Store(self.db, read_only=read_only)

    def release(self) -> None:
        if self._open is not None:
            store, self._open = self._open, None
            store.close()

    @contextmanager
    def holding(self) -> Iterator[Registry]:
        """Keep the store open across several operations."""
        with self.store() as store:
            self._open = store
            try:
                yield self
            finally:
                self._open = None


# ---------------------------------------------------------------------------
# authorization and audit


def audit_event(
    reg: Registry,
    who: Principal,
    action: str,
    outcome: str,
    *,
    subject: str | None = None,
    purpose: str | None = None,
    **detail: Any,
) -> AuditEntry:
    return reg.audit.append(
        principal=who.name,
        role=who.role,
        action=action,
        outcome=outcome,
        subject=subject,
        purpose=purpose,
        detail={k: v for k, v in detail.items() if v is not None},
    )


def refuse(
    reg: Registry,
    who: Principal,
    action: str,
    permission: str,
    message: str,
    *,
    subject: str | None = None,
    purpose: str | None = None,
) -> Refused:
    audit_event(
        reg,
        who,
        action,
        "refused",
        subject=subject,
        purpose=purpose,
        permission=permission,
        reason=message,
    )
    return Refused(permission, message)


def allow(
    reg: Registry,
    who: Principal,
    action: str,
    *,
    subject: str | None = None,
    service: str | None = None,
    source: str | None = None,
    case: str | None = None,
    purpose: str | None = None,
) -> None:
    try:
        authorize(
            name=who.name,
            role=who.role,
            action=action,
            subject=subject,
            own_subject=who.subject_id,
            own_source=who.source,
            own_services=tuple(who.services),
            source=source,
            service=service,
            case=case,
        )
    except Refused as exc:
        raise refuse(
            reg, who, action, exc.permission, str(exc), subject=subject, purpose=purpose
        ) from None


@contextmanager
def domain_refusals(
    reg: Registry, who: Principal, action: str, subject: str | None, purpose: str | None = None
) -> Iterator[None]:
    """Refusals the law makes (consent, purpose, licence, purged history) are audited
    like missing permissions."""
    try:
        yield
    except inquiries.InquiryRefused as exc:
        raise refuse(
            reg, who, action, exc.permission, str(exc), subject=subject, purpose=purpose
        ) from None
    except licensing.Unlicensed as exc:
        raise refuse(
            reg,
            who,
            action,
            f"licence:{exc.status.system}",
            str(exc),
            subject=subject,
            purpose=purpose,
        ) from None
    except retention_purge.PurgedHistory as exc:
        raise refuse(
            reg, who, action, "purged", str(exc), subject=subject, purpose=purpose
        ) from None


@lru_cache(maxsize=1 << 17)
def normalize_subject(text: str) -> str:
    """The identifier's canonical form; a refusal (InvalidIdentifier) is raised anew each
    time (lru_cache keeps only answers). An accepted identifier stays valid (its birth
    date only recedes), so a server checking the same people again skips stdnum."""
    return parse_subject_id(text, flags=False).value


def authenticate(reg: Registry, name: str | None, key: str) -> Principal:
    """The principal behind ``name`` (or, without it, the key's id) and ``key``; a bad
    key is refused and audited."""
    try:
        return reg.principals.authenticate(name, key)
    except Refused as exc:
        reg.audit.append(
            principal=name or "(by key)",
            role="unknown",
            action="authenticate",
            outcome="refused",
            detail={"permission": exc.permission, "reason": str(exc)},
        )
        raise
