"""Who may do what: the one permission matrix every interface asks.

``PERMISSIONS`` is the matrix as data (action -> the roles that hold it); the
scope rules below it bind a principal to its own source, services or subject.
``authorize`` is the only decision point: the CLI, the HTTP API and every
operation of ``xinyong.access.operations`` call it, never a copy of it.

Roles (issue 10): ``source`` submits records of its kinds; ``service`` asks
checks for its services and, as a lender, makes inquiries; ``subject`` reads
its own data; ``operator`` (a credit office) runs sources, packs and
evaluation; ``adjudicator`` decides objections and repair; ``auditor`` reads
the audit log and statistics, and personal data only for a named case;
``regulator`` grants licences, installs packs and reads statistics;
``public`` searches the public lists.
"""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal[
    "source", "service", "subject", "operator", "adjudicator", "auditor", "regulator", "public"
]
Action = Literal[
    "import",
    "check",
    "score",
    "explain",
    "report",
    "inquire",
    "objections",
    "objections.file",
    "objections.decide",
    "objections.read",
    "statements.add",
    "repair",
    "repair.apply",
    "repair.decide",
    "repair.read",
    "notices.send",
    "packs.read",
    "packs.install",
    "evaluate",
    "statistics",
    "audit.read",
    "audit.verify",
    "public.search",
    "sources.manage",
    "principals.manage",
    "licences.manage",
    "purge",
]
ROLES: tuple[Role, ...] = get_args(Role)
ACTIONS: tuple[Action, ...] = get_args(Action)

_EVERYONE: frozenset[Role] = frozenset(ROLES)

# The matrix. Packs and the public lists are public documents; everything that
# reads personal data names the few roles whose duty needs it.
PERMISSIONS: dict[Action, frozenset[Role]] = {
    "import": frozenset({"source", "operator"}),
    "check": frozenset({"service", "operator"}),
    "score": frozenset({"subject", "operator"}),
    "explain": frozenset({"subject", "operator", "adjudicator", "auditor"}),
    "report": frozenset({"subject", "operator", "adjudicator", "auditor"}),
    "inquire": frozenset({"service"}),
    "objections": frozenset({"subject", "source", "adjudicator"}),
    "repair": frozenset({"subject", "adjudicator"}),
    # Due process (issue 9): a subject files, asks reconsideration, adds statements and
    # applies for repair on its own records (a source may file the paper form it took);
    # adjudicators decide; operators may do everything.
    "objections.file": frozenset({"subject", "source", "operator"}),
    "objections.decide": frozenset({"adjudicator", "operator"}),
    "objections.read": frozenset({"subject", "adjudicator", "operator"}),
    "statements.add": frozenset({"subject", "operator"}),
    "repair.apply": frozenset({"subject", "operator"}),
    "repair.decide": frozenset({"adjudicator", "operator"}),
    "repair.read": frozenset({"subject", "adjudicator", "operator"}),
    "notices.send": frozenset({"operator"}),
    "packs.read": _EVERYONE,
    "packs.install": frozenset({"operator", "regulator"}),
    "evaluate": frozenset({"operator"}),
    "statistics": frozenset({"operator", "auditor", "regulator"}),
    "audit.read": frozenset({"subject", "auditor"}),
    "audit.verify": frozenset({"operator", "auditor", "regulator"}),
    "public.search": _EVERYONE,
    "sources.manage": frozenset({"operator"}),
    "principals.manage": frozenset({"operator"}),
    "licences.manage": frozenset({"regulator"}),
    "purge": frozenset({"operator"}),
}

# Actions that read one subject's personal data: an auditor needs a named case.
PERSONAL: frozenset[Action] = frozenset({"explain", "report", "audit.read", "score", "check"})


class Refused(PermissionError):
    """An operation the principal may not perform; ``permission`` names what it lacks."""

    def __init__(self, permission: str, message: str) -> None:
        super().__init__(message)
        self.permission = permission


def authorize(
    *,
    name: str,
    role: str,
    action: str,
    subject: str | None = None,
    own_subject: str | None = None,
    own_source: str | None = None,
    own_services: tuple[str, ...] = (),
    source: str | None = None,
    service: str | None = None,
    case: str | None = None,
) -> None:
    """Return when ``name`` (of ``role``, bound to its own subject/source/services)
    may perform ``action`` on ``subject``; raise ``Refused`` otherwise."""
    if action not in PERMISSIONS:
        raise Refused(action, f"unknown action {action!r}")
    roles: frozenset[str] = frozenset(PERMISSIONS[action])  # type: ignore[index]
    if role not in roles:
        holders = ", ".join(sorted(roles))
        raise Refused(action, f"{name} ({role}) lacks permission {action!r}; held by: {holders}")
    if (
        role == "subject"
        and action not in ("public.search", "packs.read")
        and (subject is None or subject != own_subject)
    ):
        raise Refused(
            f"{action}:other-subject",
            f"{name} (subject) may {action} only its own data, not {subject or 'all subjects'}",
        )
    if role == "source" and action == "import" and source is not None and source != own_source:
        raise Refused(
            f"{action}:other-source",
            f"{name} (source {own_source}) may not submit records of source {source}",
        )
    if role == "service" and action == "check" and service not in own_services:
        raise Refused(
            f"{action}:{service}",
            f"{name} (service) lacks permission to check {service!r}; "
            f"its services: {', '.join(own_services) or 'none'}",
        )
    if role == "service" and action == "inquire" and own_source is None:
        raise Refused(
            f"{action}:no-source",
            f"{name} (service) is not bound to a lender source and may not make inquiries",
        )
    if role == "auditor" and action in PERSONAL and subject is not None and not case:
        raise Refused(
            f"{action}:case",
            f"{name} (auditor) reads personal data only for a named case (give --case)",
        )
