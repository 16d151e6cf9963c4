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

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from xinyong.access.administration import (
    add_principal,
    audit_show,
    audit_verify,
    bind_licence,
    compact,
    compile_plans,
    evaluate,
    evaluate_run,
    import_records,
    install_pack,
    licence_status,
    list_principals,
    new_key,
    purge,
    register_source,
    revoke_principal,
)
from xinyong.access.gate import (
    Registry,
    allow,
    audit_event,
    authenticate,
    domain_refusals,
    normalize_subject,
)
from xinyong.access.permissions import Refused
from xinyong.access.principals import Principal
from xinyong.access.reads import (
    MAX_BULK_CHECKS,
    NotFound,
    check_many,
    lint_pack,
    list_packs,
    list_runs,
    list_sources,
    pack_text,
    result_counts,
    show_pack,
)
from xinyong.lazy import lazy
from xinyong.timeutil import now_utc, to_local_iso

if TYPE_CHECKING:
    from xinyong.ledger.store import Store
    from xinyong.process import disputes, inquiries, licensing
    from xinyong.process import purge as retention_purge
else:
    # Loaded on first use: a check answered from the snapshot needs none of them.
    disputes = lazy("xinyong.process.disputes")
    inquiries = lazy("xinyong.process.inquiries")
    licensing = lazy("xinyong.process.licensing")
    retention_purge = lazy("xinyong.process.purge")

__all__ = [
    "MAX_BULK_CHECKS",
    "NotFound",
    "check_many",
    "lint_pack",
    "list_packs",
    "list_runs",
    "list_sources",
    "pack_text",
    "result_counts",
    "show_pack",
    "Refused",
    "Registry",
    "add_principal",
    "audit_show",
    "audit_verify",
    "authenticate",
    "bind_licence",
    "check",
    "compact",
    "evaluate",
    "evaluate_run",
    "explain",
    "import_records",
    "inquire",
    "compile_plans",
    "install_pack",
    "licence_status",
    "list_principals",
    "new_key",
    "public_search",
    "purge",
    "register_source",
    "revoke_principal",
    "score",
    "statistics",
    "subject_report",
]


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
    from xinyong.checks import snapshot

    subject = normalize_subject(subject)
    allow(reg, who, "check", subject=subject, service=service)
    when = at or now_utc()
    # The published snapshot answers when it covers the question (never with purged
    # histories or licence-gated systems: checks/snapshot.py); else the registry.
    answer = snapshot.answer_check(reg.db, subject, service, when, known_at)
    if answer is None:
        from xinyong.checks import check as ask

        with (
            reg.store(read_only=True, needs_packs=True) as store,
            domain_refusals(reg, who, "check", subject),
        ):
            retention_purge.guard(store, subject, when, known_at)
            _licence_gate_for_service(store, service, when, known_at)
            answer = ask(store, subject, service, at=when, known_at=known_at)
            answer = disputes.mark_check(store, answer, when, known_at)
    audit_event(
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
    from xinyong.checks import snapshot

    subject = normalize_subject(subject)
    allow(reg, who, "score", subject=subject, case=case)
    answer = snapshot.answer_score(reg.db, subject, system, at or now_utc(), known_at)
    if answer is None:
        from xinyong.checks import score_of

        with (
            reg.store(read_only=True, needs_packs=True) as store,
            domain_refusals(reg, who, "score", subject),
        ):
            retention_purge.guard(store, subject, at or now_utc(), known_at)
            licensing.require(store, system, at=at, known_at=known_at)
            answer = score_of(store, subject, system, at=at, known_at=known_at)
    audit_event(
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

    subject = normalize_subject(subject)
    allow(reg, who, "explain", subject=subject, case=case)
    when = at or now_utc()
    with (
        reg.store(read_only=True, needs_packs=True) as store,
        domain_refusals(reg, who, "explain", subject),
    ):
        retention_purge.guard(store, subject, when, known_at)
        if system is not None:
            licensing.require(store, system, at=when, known_at=known_at)
        explanation = build(store, subject, system=system, at=when, known_at=known_at)
        disputes.mark_explanation(store, explanation, when, known_at)
        withheld = _withhold_unlicensed(store, explanation, when, known_at)
    audit_event(
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

    subject = normalize_subject(subject)
    allow(reg, who, "report", subject=subject, case=case)
    with reg.store() as store, domain_refusals(reg, who, "report", subject):
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
        disputes.mark_explanation(store, explanation, when, None)
        withheld = _withhold_unlicensed(store, explanation, when, None)
        report = build_report(
            store,
            explanation,
            withheld=withheld,
            access_log=[e for e in reg.audit.about(subject) if e.outcome != "refused"],
            charged=charged if own else None,
        )
    audit_event(
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

    subject = normalize_subject(subject)
    allow(reg, who, "inquire", subject=subject, purpose=purpose)
    now = now_utc()
    with reg.store() as store, domain_refusals(reg, who, "inquire", subject, purpose):
        pack = next((p for p in installed_packs(store, now) if p.system == system), None)
        if pack is None:
            raise inquiries.InquiryRefused("inquire:system", f"no system {system!r} is installed")
        inquiries.admit(store, pack, subject, purpose, now)
        licensing.require(store, system, at=now)
        assert who.source is not None  # authorize: a lender principal has its source
        record_id = inquiries.record(store, subject, who.source, purpose)
        explanation = build(store, subject, system=system, at=now_utc())
    audit_event(
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


def public_search(
    reg: Registry, who: Principal, text: str, *, at: datetime | None = None
) -> list[dict[str, Any]]:
    from xinyong.reports.public_lists import search

    allow(reg, who, "public.search")
    with reg.store(read_only=True) as store:
        results = search(store, text, at=at)
    audit_event(reg, who, "public.search", "allowed", query=text, results=len(results))
    return results


def statistics(reg: Registry, who: Principal, start: date, end: date) -> dict[str, Any]:
    """Aggregate statistics (no personal data): list sizes, grades, refusals, endings."""
    from xinyong.reports.statistics import summarize

    allow(reg, who, "statistics")
    with reg.store(read_only=True) as store:
        summary = summarize(store, start, end)
    audit_event(reg, who, "statistics", "allowed", start=start.isoformat(), end=end.isoformat())
    return summary.as_dict()
