"""The service layer: every operation of the registry, as a principal performs it.

Each function takes the registry, the acting principal and the operation's
arguments, and does three things in order: asks ``permissions.authorize``
(the one decision point), calls the existing domain function (intake, engine,
checks, processes, reports), and writes the audit entry. A refusal (a missing
permission, no consent, a wrong purpose, an unlicensed system, a purged
history) is audited and raised as ``Refused``; nothing else is written then.
The CLI and the HTTP API call these functions and only parse and render.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from xinyong.access.permissions import Refused, authorize
from xinyong.access.principals import Principal, PrincipalBook
from xinyong.audit.chain import AuditChain, AuditEntry, ChainReport
from xinyong.catalog.identifiers import parse_subject_id
from xinyong.ledger.store import Store
from xinyong.process import inquiries, licensing
from xinyong.process import purge as retention_purge
from xinyong.timeutil import now_utc, to_local_iso

__all__ = ["Refused", "Registry"]


@dataclass
class Registry:
    """One registry file with its audit log and principal book beside it."""

    db: Path
    audit: AuditChain = field(init=False)
    principals: PrincipalBook = field(init=False)
    _open: Store | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.db = Path(self.db)
        self.audit = AuditChain.of_registry(self.db)
        self.principals = PrincipalBook.of_registry(self.db)

    @contextmanager
    def store(self) -> Iterator[Store]:
        """The open registry; a long-lived process (the HTTP API) may hold one open."""
        if self._open is not None:
            yield self._open
            return
        if not self.db.exists():
            raise FileNotFoundError(
                f"no registry at {self.db}; create one with `xinyong init --db {self.db}`"
            )
        with Store(self.db) as store:
            yield store

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


def _audit(
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


def _refuse(
    reg: Registry,
    who: Principal,
    action: str,
    permission: str,
    message: str,
    *,
    subject: str | None = None,
    purpose: str | None = None,
) -> Refused:
    _audit(
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


def _allow(
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
        raise _refuse(
            reg, who, action, exc.permission, str(exc), subject=subject, purpose=purpose
        ) from None


@contextmanager
def _domain_refusals(
    reg: Registry, who: Principal, action: str, subject: str | None, purpose: str | None = None
) -> Iterator[None]:
    """Refusals the law makes (consent, purpose, licence, purged history) are audited
    like missing permissions."""
    try:
        yield
    except inquiries.InquiryRefused as exc:
        raise _refuse(
            reg, who, action, exc.permission, str(exc), subject=subject, purpose=purpose
        ) from None
    except licensing.Unlicensed as exc:
        raise _refuse(
            reg,
            who,
            action,
            f"licence:{exc.status.system}",
            str(exc),
            subject=subject,
            purpose=purpose,
        ) from None
    except retention_purge.PurgedHistory as exc:
        raise _refuse(
            reg, who, action, "purged", str(exc), subject=subject, purpose=purpose
        ) from None


def _subject(text: str) -> str:
    return parse_subject_id(text).value


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


# ---------------------------------------------------------------------------
# reads about one subject


def _licence_gate_for_service(
    store: Store, service: str, at: datetime, known_at: datetime | None
) -> None:
    from xinyong.packs import installed_packs

    bound = licensing.bindings(store)
    for pack in installed_packs(store, at):
        if pack.system in bound and any(c.service == service for c in pack.consequences):
            licensing.require(store, pack.system, at=at, known_at=known_at)


def check(
    reg: Registry,
    who: Principal,
    subject: str,
    service: str,
    *,
    at: datetime | None = None,
    known_at: datetime | None = None,
) -> Any:
    """May ``subject`` use ``service`` at ``at``? (``checks.check`` behind the gates)"""
    from xinyong.checks import check as ask

    subject = _subject(subject)
    _allow(reg, who, "check", subject=subject, service=service)
    when = at or now_utc()
    with reg.store() as store, _domain_refusals(reg, who, "check", subject):
        retention_purge.guard(store, subject, when, known_at)
        _licence_gate_for_service(store, service, when, known_at)
        answer = ask(store, subject, service, at=when, known_at=known_at)
    _audit(
        reg,
        who,
        "check",
        "allowed",
        subject=subject,
        service=service,
        decision=answer.decision,
        at=answer.at,
        known_at=to_local_iso(known_at),
    )
    return answer


def score(
    reg: Registry,
    who: Principal,
    subject: str,
    system: str,
    *,
    at: datetime | None = None,
    known_at: datetime | None = None,
    case: str | None = None,
) -> Any:
    from xinyong.checks import score_of

    subject = _subject(subject)
    _allow(reg, who, "score", subject=subject, case=case)
    with reg.store() as store, _domain_refusals(reg, who, "score", subject):
        retention_purge.guard(store, subject, at or now_utc(), known_at)
        licensing.require(store, system, at=at, known_at=known_at)
        answer = score_of(store, subject, system, at=at, known_at=known_at)
    _audit(
        reg,
        who,
        "score",
        "allowed",
        subject=subject,
        system=system,
        case=case,
        at=to_local_iso(at),
        known_at=to_local_iso(known_at),
    )
    return answer


def _withhold_unlicensed(
    store: Store, explanation: Any, at: datetime, known_at: datetime | None
) -> list[dict[str, str]]:
    """Drop the systems whose licence is not current; say which and why."""
    withheld, kept = [], []
    for sys in explanation.systems:
        status = licensing.status(store, sys.system, at=at, known_at=known_at)
        if status.current:
            kept.append(sys)
        else:
            withheld.append({"system": sys.system, "reason": status.reason})
    explanation.systems = kept
    return withheld


def explain(
    reg: Registry,
    who: Principal,
    subject: str,
    *,
    system: str | None = None,
    at: datetime | None = None,
    known_at: datetime | None = None,
    case: str | None = None,
) -> Any:
    from xinyong.checks import explain as build

    subject = _subject(subject)
    _allow(reg, who, "explain", subject=subject, case=case)
    when = at or now_utc()
    with reg.store() as store, _domain_refusals(reg, who, "explain", subject):
        retention_purge.guard(store, subject, when, known_at)
        if system is not None:
            licensing.require(store, system, at=when, known_at=known_at)
        explanation = build(store, subject, system=system, at=when, known_at=known_at)
        withheld = _withhold_unlicensed(store, explanation, when, known_at)
    _audit(
        reg,
        who,
        "explain",
        "allowed",
        subject=subject,
        system=system,
        case=case,
        at=explanation.at,
        withheld=[w["system"] for w in withheld] or None,
    )
    return explanation


def subject_report(
    reg: Registry,
    who: Principal,
    subject: str,
    *,
    at: datetime | None = None,
    case: str | None = None,
) -> Any:
    """The subject report over every system. Read by the subject itself, it is an
    own report (an ``inquiry.made`` with purpose ``self``; the third and later in a
    year are charged)."""
    from xinyong.checks import explain as build
    from xinyong.reports.subject_report import build_report

    subject = _subject(subject)
    _allow(reg, who, "report", subject=subject, case=case)
    with reg.store() as store, _domain_refusals(reg, who, "report", subject):
        retention_purge.guard(store, subject, at or now_utc(), None)
        own = who.role == "subject"
        charged = False
        inquiry_id = None
        if own:
            done = inquiries.self_reports_in_year(store, subject, now_utc())
            charged = done >= inquiries.FREE_SELF_REPORTS_PER_YEAR
            inquiry_id = inquiries.record(store, subject, f"subject:{who.name}", inquiries.SELF)
        # After the inquiry record, so that the report lists this read too.
        when = at or now_utc()
        explanation = build(store, subject, at=when)
        withheld = _withhold_unlicensed(store, explanation, when, None)
        report = build_report(
            store,
            explanation,
            withheld=withheld,
            access_log=[e for e in reg.audit.about(subject) if e.outcome != "refused"],
            charged=charged if own else None,
        )
    _audit(
        reg,
        who,
        "report",
        "allowed",
        subject=subject,
        case=case,
        purpose=inquiries.SELF if own else None,
        at=report.at,
        inquiry_record=inquiry_id,
        charged=charged if own else None,
    )
    return report


def inquire(
    reg: Registry,
    who: Principal,
    subject: str,
    purpose: str,
    *,
    system: str = "financial",
) -> Any:
    """A lender reads the subject's report of ``system`` (PBoC Arts. 18, 20): only with
    the subject's current consent and an allowed purpose; each read is recorded."""
    from xinyong.checks import explain as build
    from xinyong.packs import installed_packs

    subject = _subject(subject)
    _allow(reg, who, "inquire", subject=subject, purpose=purpose)
    now = now_utc()
    with reg.store() as store, _domain_refusals(reg, who, "inquire", subject, purpose):
        pack = next((p for p in installed_packs(store, now) if p.system == system), None)
        if pack is None:
            raise inquiries.InquiryRefused("inquire:system", f"no system {system!r} is installed")
        inquiries.admit(store, pack, subject, purpose, now)
        licensing.require(store, system, at=now)
        assert who.source is not None  # authorize: a lender principal has its source
        record_id = inquiries.record(store, subject, who.source, purpose)
        explanation = build(store, subject, system=system, at=now_utc())
    _audit(
        reg,
        who,
        "inquire",
        "allowed",
        subject=subject,
        purpose=purpose,
        system=system,
        inquiry_record=record_id,
    )
    report = explanation.systems[0].model_dump() if explanation.systems else {}
    return {
        "subject_id": subject,
        "system": system,
        "purpose": purpose,
        "requester": who.source,
        "inquiry_record": record_id,
        "at": explanation.at,
        "sections": report.get("report", []),
    }


# ---------------------------------------------------------------------------
# writes and administration


def _file_sources(path: Path) -> set[str]:
    """The source ids a record file names (for a source principal's own-source rule)."""
    from xinyong.ledger import readers

    fmt = readers.detect_format(path)
    if fmt == "jsonl":
        normalized = readers.read_jsonl(path)
    elif fmt == "csv":
        normalized = readers.read_csv(path)
    else:
        import duckdb

        normalized = readers.read_parquet(path, duckdb.connect())
    return {s for s in normalized.table.column("source").to_pylist() if s is not None}


def import_records(
    reg: Registry,
    who: Principal,
    path: Path,
    *,
    strict: bool = False,
    rejects_path: Path | None = None,
    progress: bool = False,
) -> Any:
    from xinyong.ledger.intake import import_file

    _allow(reg, who, "import")
    if who.role == "source":
        for source in sorted(_file_sources(path)):
            _allow(reg, who, "import", source=source)
    with reg.store() as store:
        result = import_file(
            store, path, strict=strict, rejects_path=rejects_path, progress=progress
        )
    _audit(
        reg,
        who,
        "import",
        "done",
        file=str(path),
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=result.rejected,
        batch_id=result.batch_id,
    )
    return result


def evaluate(
    reg: Registry,
    who: Principal,
    *,
    as_of: datetime | None = None,
    known_at: datetime | None = None,
) -> tuple[int, Any]:
    from xinyong.engine import evaluate as run_evaluation
    from xinyong.engine import materialize

    _allow(reg, who, "evaluate")
    as_of = as_of or now_utc()
    with reg.store() as store:
        evaluation = run_evaluation(store, as_of=as_of, known_at=known_at)
        run_id = materialize(store, evaluation)
    _audit(
        reg,
        who,
        "evaluate",
        "done",
        run_id=run_id,
        as_of=to_local_iso(as_of),
        known_at=to_local_iso(known_at),
    )
    return run_id, as_of


def install_pack(reg: Registry, who: Principal, path: Path) -> Any:
    from xinyong.packs import install_pack as install

    _allow(reg, who, "packs.install")
    with reg.store() as store:
        pack = install(store, path)
    _audit(
        reg,
        who,
        "packs.install",
        "done",
        system=pack.system,
        version=pack.meta.version,
        effective_from=str(pack.meta.effective_from),
        file=str(path),
    )
    return pack


def register_source(reg: Registry, who: Principal, source_id: str, kind: str) -> None:
    from xinyong.ledger.intake import register_source as register

    _allow(reg, who, "sources.manage")
    with reg.store() as store:
        register(store, source_id, kind)
    _audit(reg, who, "sources.manage", "done", source_id=source_id, kind=kind)


def public_search(
    reg: Registry, who: Principal, text: str, *, at: datetime | None = None
) -> list[dict[str, Any]]:
    from xinyong.reports.public_lists import search

    _allow(reg, who, "public.search")
    with reg.store() as store:
        results = search(store, text, at=at)
    _audit(reg, who, "public.search", "allowed", query=text, results=len(results))
    return results


def statistics(reg: Registry, who: Principal, start: date, end: date) -> dict[str, Any]:
    """Aggregate statistics (no personal data): list sizes, grades, refusals, endings."""
    from xinyong.reports.statistics import summarize

    _allow(reg, who, "statistics")
    with reg.store() as store:
        summary = summarize(store, start, end)
    _audit(reg, who, "statistics", "allowed", start=start.isoformat(), end=end.isoformat())
    return summary.as_dict()


def purge(
    reg: Registry, who: Principal, *, dry_run: bool = False, now: datetime | None = None
) -> list[retention_purge.Tombstone]:
    _allow(reg, who, "purge")
    with reg.store() as store:
        stones = retention_purge.purge(store, now, dry_run=dry_run)
    if dry_run:
        _audit(reg, who, "purge", "done", dry_run=True, due=len(stones))
    for stone in stones if not dry_run else []:
        _audit(
            reg,
            who,
            "purge",
            "done",
            subject=stone.subject_id,
            record_id=stone.record_id,
            type=stone.type,
            rule=stone.rule,
            purged_at=to_local_iso(stone.purged_at),
        )
    return stones


def audit_verify(reg: Registry, who: Principal) -> ChainReport:
    _allow(reg, who, "audit.verify")
    report = reg.audit.verify()
    # The verification itself goes into the log only when the chain is sound: appending
    # after a broken entry would bury the evidence under a valid-looking tail.
    if report.ok:
        _audit(reg, who, "audit.verify", "done", entries=report.entries)
    return report


def audit_show(
    reg: Registry, who: Principal, subject: str, *, case: str | None = None
) -> list[AuditEntry]:
    """Who looked at ``subject`` (and what was decided about it)."""
    subject = _subject(subject)
    _allow(reg, who, "audit.read", subject=subject, case=case)
    entries = reg.audit.about(subject)
    _audit(reg, who, "audit.read", "allowed", subject=subject, case=case)
    return entries


def add_principal(
    reg: Registry,
    who: Principal,
    name: str,
    role: str,
    *,
    source: str | None = None,
    services: list[str] | None = None,
    subject_id: str | None = None,
) -> tuple[Principal, str]:
    _allow(reg, who, "principals.manage")
    if subject_id is not None:
        subject_id = _subject(subject_id)
    principal, key = reg.principals.add(
        name, role, source=source, services=services, subject_id=subject_id
    )
    _audit(
        reg,
        who,
        "principals.manage",
        "done",
        op="add",
        name=name,
        role=role,
        key_id=principal.keys[-1].key_id,
    )
    return principal, key


def list_principals(reg: Registry, who: Principal) -> list[Principal]:
    _allow(reg, who, "principals.manage")
    return list(reg.principals.load().values())


def revoke_principal(
    reg: Registry, who: Principal, name: str, key_id: str | None = None
) -> Principal:
    _allow(reg, who, "principals.manage")
    principal = reg.principals.revoke(name, key_id)
    _audit(reg, who, "principals.manage", "done", op="revoke", name=name, key_id=key_id)
    return principal


def new_key(reg: Registry, who: Principal, name: str) -> str:
    _allow(reg, who, "principals.manage")
    key = reg.principals.new_key(name)
    _audit(reg, who, "principals.manage", "done", op="key", name=name, key_id=key.split(".")[1])
    return key


def bind_licence(reg: Registry, who: Principal, system: str, operator_id: str) -> str:
    _allow(reg, who, "licences.manage")
    with reg.store() as store:
        operator = licensing.bind(store, system, operator_id, by=who.name)
    _audit(reg, who, "licences.manage", "done", system=system, operator_id=operator)
    return operator


def licence_status(
    reg: Registry, who: Principal, system: str, at: datetime | None = None
) -> licensing.LicenceStatus:
    _allow(reg, who, "licences.manage")
    with reg.store() as store:
        return licensing.status(store, system, at=at)
