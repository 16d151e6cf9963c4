"""Server-rendered pages for every role, in Chinese and English, working offline
(one stylesheet, no scripts, nothing from a CDN).

A visitor logs in with a principal's API key; the key is checked by the gate
(``ServerState.authenticate``) and the signed session cookie (httponly,
SameSite=Strict, Secure unless ``--insecure-cookies``) keeps only the principal's
name, the key's id and a CSRF token: a revoked key or principal ends the session
on its next request. Every form that changes or asks something carries the CSRF
token. Pages call the same ``access.operations`` as the API and the CLI; the
public list search is open to visitors without a key, who act as the role
``public`` (SPC Art. 6 makes the list public) and are audited as
``web-visitor``."""

from __future__ import annotations

import difflib
import secrets
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.middleware.sessions import SessionMiddleware

from xinyong.access import operations as ops
from xinyong.access.permissions import PERMISSIONS, Refused
from xinyong.access.principals import Principal
from xinyong.ledger.store import RegistryError
from xinyong.web import i18n
from xinyong.web.state import ServerState

router = APIRouter(include_in_schema=False)

VISITOR = Principal(name="web-visitor", role="public")

_env = Environment(
    loader=PackageLoader("xinyong.web", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.xinyong
    return state


def _lang(request: Request) -> str:
    lang = i18n.choose(
        request.query_params.get("lang"),
        request.session.get("lang"),
        request.headers.get("accept-language"),
    )
    if request.query_params.get("lang") in i18n.LANGUAGES:
        request.session["lang"] = lang
    return lang


def _csrf(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return str(token)


def _check_csrf(request: Request, token: str) -> None:
    expected = request.session.get("csrf")
    if not expected or not secrets.compare_digest(str(expected), token or ""):
        raise Refused("csrf", "the form's CSRF token is missing or stale; reload the page")


def _who(request: Request) -> Principal | None:
    name, key_id = request.session.get("name"), request.session.get("key_id")
    if not name or not key_id:
        return None
    principal = _state(request).principal_named(str(name), str(key_id))
    if principal is None:  # revoked since: the session ends
        request.session.pop("name", None)
        request.session.pop("key_id", None)
    return principal


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = _lang(request)
    tr = i18n.translations(lang)
    env = _env.overlay()
    env.install_gettext_translations(tr, newstyle=True)  # type: ignore[attr-defined]
    here = request.url.path
    who = _who(request)
    html = env.get_template(template).render(
        request=request,
        lang=lang,
        html_lang=i18n.html_lang(lang),
        languages=i18n.LANGUAGES,
        here=here,
        who=who,
        pages=_pages_for(who),
        csrf=_csrf(request),
        **context,
    )
    return HTMLResponse(html, status_code=status)


#: The role pages, each with the permissions one of which lets a principal use it
#: (the navigation offers a signed-in principal only the pages it may open).
_PAGE_NEEDS: dict[str, tuple[str, ...]] = {
    "/desk": ("check",),
    "/queue": ("objections.decide", "repair.decide"),
    "/console": ("statistics",),
}


def _pages_for(who: Principal | None) -> frozenset[str]:
    """The role pages the navigation links: all of them for a visitor (each asks to
    sign in), only the usable ones for a signed-in principal."""
    if who is None:
        return frozenset({"/me", *_PAGE_NEEDS})
    usable = {
        page
        for page, needs in _PAGE_NEEDS.items()
        if any(who.role in PERMISSIONS[n] for n in needs)  # type: ignore[index]
    }
    if who.role == "subject" and who.subject_id:
        usable.add("/me")
    return frozenset(usable)


def _failure(request: Request, exc: Exception) -> HTMLResponse:
    from xinyong.web.deps import BadParameter

    if isinstance(exc, Refused):
        return render(request, "error.html.j2", 403, kind="refused", message=str(exc))
    if isinstance(exc, ops.NotFound | LookupError):
        return render(request, "error.html.j2", 404, kind="not_found", message=str(exc))
    if isinstance(exc, FileNotFoundError | RegistryError):
        return render(request, "error.html.j2", 503, kind="unavailable", message=str(exc))
    if isinstance(exc, ValueError | BadParameter):
        return render(request, "error.html.j2", 400, kind="bad_input", message=str(exc))
    raise exc


def _guarded(request: Request, make: Callable[[], Response]) -> Response:
    try:
        return make()
    except (Refused, ValueError, LookupError, FileNotFoundError) as exc:
        return _failure(request, exc)


def _login_first(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


# ---------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    return render(request, "index.html.j2")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    return render(request, "login.html.j2", next=_local_path(next))


def _local_path(target: str) -> str:
    """Only a path on this site (no `//host` or `/\\host` a browser would follow away)."""
    if target.startswith("/") and target[1:2] not in ("/", "\\") and "\n" not in target:
        return target
    return "/"


@router.post("/login")
def login(
    request: Request,
    key: str = Form(...),
    csrf: str = Form(""),
    next: str = Form("/"),
) -> Response:
    def go() -> Response:
        _check_csrf(request, csrf)
        try:
            principal = _state(request).authenticate(key.strip())
        except Refused:
            return render(request, "login.html.j2", 401, next=next, failed=True)
        request.session["name"] = principal.name
        request.session["key_id"] = key.strip().split(".")[1]
        request.session["csrf"] = secrets.token_urlsafe(32)  # a new token for the new session
        target = _local_path(next)
        if target == "/":
            target = _ROLE_HOME.get(principal.role, "/")
        return RedirectResponse(target, status_code=303)

    return _guarded(request, go)


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    def go() -> Response:
        _check_csrf(request, csrf)
        lang = request.session.get("lang")
        request.session.clear()
        if lang:
            request.session["lang"] = lang
        return RedirectResponse("/", status_code=303)

    return _guarded(request, go)


_ROLE_HOME = {
    "subject": "/me",
    "adjudicator": "/queue",
    "service": "/desk",
    "operator": "/console",
    "regulator": "/console",
    "auditor": "/console",
    "public": "/public",
}


@router.get("/public", response_class=HTMLResponse)
def public_search(request: Request, q: str = "") -> Response:
    def go() -> Response:
        results = None
        text = q.strip()[:200]
        if text:
            who = _who(request) or VISITOR
            with _state(request).writing() as reg:
                results = ops.public_search(reg, who, text)
        columns: list[str] = []
        for r in results or []:
            for k in r:
                # masked_id repeats subject_id (masked too): one column is enough
                if k not in columns and k not in ("system", "list", "list_name", "masked_id"):
                    columns.append(k)
        return render(request, "public.html.j2", q=text, results=results, columns=columns)

    return _guarded(request, go)


@router.get("/me", response_class=HTMLResponse)
def portal(request: Request) -> Response:
    who = _who(request)
    if who is None:
        return _login_first(request)
    return _guarded(request, lambda: _portal(request, who))


def _portal(request: Request, who: Principal, status: int = 200, **done: Any) -> Response:
    """The portal: my records (with their dispute marks and statements), my objections
    and repair applications, the forms that contest them, who looked at me."""
    from xinyong.access import due_process as dp

    if who.role != "subject" or not who.subject_id:
        raise Refused("report:other-subject", f"{who.name} ({who.role}) has no portal")
    state = _state(request)
    with state.reading() as reg:
        records = dp.subject_records(reg, who, who.subject_id)
        objections = dp.list_objections(reg, who, subject=who.subject_id)
        repairs = dp.list_repairs(reg, who, subject=who.subject_id)
    # the portal's own reads (rendering this page) are not someone looking at me
    looked = [
        e
        for e in ops.audit_show(state.reg, who, who.subject_id)
        if not (e.principal == who.name and e.action in _PORTAL_READS)
    ]
    return render(
        request,
        "portal.html.j2",
        status,
        subject=who.subject_id,
        looked=looked,
        records=records,
        objections=objections,
        repairs=repairs,
        grounds=_GROUNDS,
        **done,
    )


_PORTAL_READS = ("objections.read", "repair.read", "audit.read")

#: The objection grounds (issue 9) as the forms offer them.
_GROUNDS = ("should_not_be_listed", "inaccurate", "should_have_been_deleted", "not_mine", "other")


def _subject_step(
    request: Request, csrf: str, step: Callable[[Any, Principal], dict[str, Any]], done: str
) -> Response:
    """A due-process step the signed-in subject takes from the portal; the portal
    again with what was done, or with the refusal and nothing written."""
    from xinyong.access import due_process as dp

    who = _who(request)
    if who is None:
        return _login_first(request)

    def go() -> Response:
        _check_csrf(request, csrf)
        if who.role != "subject" or not who.subject_id:
            raise Refused("objections.file", f"{who.name} ({who.role}) has no portal")
        try:
            with _state(request).writing() as reg:
                answer = step(reg, who)
        except dp.DueProcessError as exc:
            return _portal(request, who, exc.http_status, failed=str(exc))
        return _portal(request, who, done=done, answer=answer)

    return _guarded(request, go)


@router.post("/me/objections", response_class=HTMLResponse)
def my_objection(
    request: Request,
    record: str = Form(""),
    ground: str = Form(""),
    statement: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    from xinyong.access import due_process as dp

    return _subject_step(
        request,
        csrf,
        lambda reg, who: dp.file_objection(
            reg, who, who.subject_id or "", record, ground, statement
        ),
        "objection",
    )


@router.post("/me/statements", response_class=HTMLResponse)
def my_statement(
    request: Request, record: str = Form(""), text: str = Form(""), csrf: str = Form("")
) -> Response:
    from xinyong.access import due_process as dp

    return _subject_step(
        request,
        csrf,
        lambda reg, who: dp.add_statement(reg, who, who.subject_id or "", record, text),
        "statement",
    )


@router.post("/me/repairs", response_class=HTMLResponse)
def my_repair(
    request: Request, record: str = Form(""), commitment: str = Form(""), csrf: str = Form("")
) -> Response:
    from xinyong.access import due_process as dp

    return _subject_step(
        request,
        csrf,
        lambda reg, who: dp.apply_repair(reg, who, who.subject_id or "", record, commitment),
        "repair",
    )


# ---------------------------------------------------------------------------
# the adjudicator's queue


def _pending_cases(
    request: Request, who: Principal
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pending objections and repair applications, overdue first, then by due date."""
    from xinyong.access import due_process as dp

    today = date.today().isoformat()
    with _state(request).reading() as reg:
        objections = [
            o for o in dp.list_objections(reg, who) if o["status"] in ("open", "reconsideration")
        ]
        repairs = [r for r in dp.list_repairs(reg, who) if r["status"] == "applied"]
    for r in repairs:
        r["overdue"] = bool(r["decision_due"] and r["decision_due"] < today)
    objections.sort(key=lambda o: (not o["overdue"], o["due"] or "", o["objection_id"]))
    repairs.sort(key=lambda r: (not r["overdue"], r["decision_due"] or "", r["repair_id"]))
    return objections, repairs


@router.get("/queue", response_class=HTMLResponse)
def queue(request: Request) -> Response:
    who = _who(request)
    if who is None:
        return _login_first(request)

    def go() -> Response:
        objections, repairs = _pending_cases(request, who)
        return render(request, "queue.html.j2", objections=objections, repairs=repairs)

    return _guarded(request, go)


def _case(request: Request, who: Principal, kind: str, case_id: str) -> dict[str, Any]:
    from xinyong.access import due_process as dp

    with _state(request).reading() as reg:
        if kind == "objection":
            found = [o for o in dp.list_objections(reg, who) if o["objection_id"] == case_id]
        else:
            found = [r for r in dp.list_repairs(reg, who) if r["repair_id"] == case_id]
    if not found:
        raise ops.NotFound(f"no {kind} {case_id!r} in the registry")
    return found[0]


@router.get("/queue/{kind}/{case_id}", response_class=HTMLResponse)
def queue_case(request: Request, kind: str, case_id: str) -> Response:
    who = _who(request)
    if who is None:
        return _login_first(request)

    def go() -> Response:
        if kind not in ("objection", "repair"):
            raise ops.NotFound(f"no case kind {kind!r}: objection or repair")
        case = _case(request, who, kind, case_id)
        return render(request, "queue_case.html.j2", kind=kind, case=case, case_id=case_id)

    return _guarded(request, go)


@router.post("/queue/{kind}/{case_id}", response_class=HTMLResponse)
def queue_decide(
    request: Request,
    kind: str,
    case_id: str,
    outcome: str = Form(""),
    reason: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    """Decide one case: uphold or reject an objection, grant or refuse a repair."""
    from xinyong.access import due_process as dp

    who = _who(request)
    if who is None:
        return _login_first(request)

    def go() -> Response:
        _check_csrf(request, csrf)
        outcomes = {"objection": ("uphold", "reject"), "repair": ("grant", "refuse")}
        if kind not in outcomes:
            raise ops.NotFound(f"no case kind {kind!r}: objection or repair")
        if outcome not in outcomes[kind]:
            raise ValueError(f"outcome {outcome!r}: {' or '.join(outcomes[kind])}")
        try:
            with _state(request).writing() as reg:
                if kind == "objection":
                    answer = dp.decide_objection(
                        reg, who, case_id, uphold=outcome == "uphold", reason=reason
                    )
                else:
                    answer = dp.decide_repair(
                        reg, who, case_id, grant=outcome == "grant", reason=reason
                    )
        except dp.DueProcessError as exc:
            case = _case(request, who, kind, case_id)
            return render(
                request, "queue_case.html.j2", exc.http_status, kind=kind, case=case,
                case_id=case_id, failed=str(exc),
            )  # fmt: skip
        case = _case(request, who, kind, case_id)
        return render(
            request, "queue_case.html.j2", kind=kind, case=case, case_id=case_id, answer=answer
        )

    return _guarded(request, go)


@router.post("/me/report", response_model=None)
def my_report(request: Request, csrf: str = Form(""), format: str = Form("html")) -> Response:
    """The subject's own report (an own read: recorded, the third in a year charged)."""
    who = _who(request)
    if who is None:
        return _login_first(request)

    def go() -> Response:
        from xinyong.reports.subject_report import render_html

        _check_csrf(request, csrf)
        if format not in ("html", "pdf"):
            raise ValueError(f"format {format!r}: html or pdf")
        state = _state(request)
        with state.writing() as reg:
            built = ops.subject_report(reg, who, who.subject_id or "")
        html = render_html(built)
        if format == "html":
            return HTMLResponse(html)
        from weasyprint import HTML

        return Response(
            HTML(string=html).write_pdf(),
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="report-{built.subject_id}.pdf"'
            },
        )

    return _guarded(request, go)


@router.get("/desk", response_class=HTMLResponse)
def desk_form(request: Request) -> Response:
    who = _who(request)
    if who is None:
        return _login_first(request)
    return render(request, "desk.html.j2", services=_desk_services(who), answer=None)


def _desk_services(who: Principal) -> list[str]:
    from xinyong.catalog import load_catalog

    return list(who.services) if who.role == "service" else sorted(load_catalog().services)


@router.post("/desk", response_class=HTMLResponse)
def desk_check(
    request: Request,
    subject: str = Form(""),
    service: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    who = _who(request)
    if who is None:
        return _login_first(request)

    def go() -> Response:
        _check_csrf(request, csrf)
        state = _state(request)
        with state.reading() as reg:
            answer = ops.check(reg, who, subject.strip(), service)
        return render(
            request,
            "desk.html.j2",
            services=_desk_services(who),
            answer=answer,
            subject=subject.strip(),
            service=service,
        )

    return _guarded(request, go)


@router.get("/console", response_class=HTMLResponse)
def console(request: Request) -> Response:
    who = _who(request)
    if who is None:
        return _login_first(request)

    def go() -> Response:
        from xinyong.access import shapes
        from xinyong.packs.lint import lint

        state = _state(request)
        with state.reading() as reg:
            packs = shapes.pack_rows(ops.list_packs(reg, who))
            for p in packs:
                pack = ops.show_pack(reg, who, p["system"], p["version"])
                findings = lint(pack)
                p["errors"] = sum(1 for f in findings if f.level == "error")
                p["warnings"] = len(findings) - p["errors"]
            sources = _optional(lambda: shapes.source_rows(ops.list_sources(reg, who)))
            runs = _optional(lambda: shapes.run_rows(ops.list_runs(reg, who)))
        return render(request, "console.html.j2", packs=packs, sources=sources, runs=runs)

    return _guarded(request, go)


def _optional(read: Callable[[], Any]) -> Any:
    """A console section the principal may not see is left out (None), not an error."""
    try:
        return read()
    except Refused:
        return None


@router.get("/console/packs/{system}", response_class=HTMLResponse)
def console_pack(
    request: Request, system: str, version: str | None = None, against: str | None = None
) -> Response:
    who = _who(request)
    if who is None:
        return _login_first(request)

    def go() -> Response:
        from xinyong.access import shapes
        from xinyong.packs.lint import lint

        state = _state(request)
        with state.reading() as reg:
            versions = [
                p for p in shapes.pack_rows(ops.list_packs(reg, who)) if p["system"] == system
            ]
            if not versions:
                raise ops.NotFound(f"no pack {system!r} is installed")
            chosen = version or versions[-1]["version"]
            pack = ops.show_pack(reg, who, system, chosen)
            findings = lint(pack)
            diff = None
            if against:
                old = ops.pack_text(reg, who, system, against).splitlines()
                new = ops.pack_text(reg, who, system, chosen).splitlines()
                diff = _diff(old, new, f"{system} {against}", f"{system} {chosen}")
        return render(
            request,
            "console_pack.html.j2",
            system=system,
            version=chosen,
            versions=versions,
            findings=findings,
            against=against,
            diff=diff,
        )

    return _guarded(request, go)


def _diff(old: list[str], new: list[str], a: str, b: str) -> Markup:
    """A unified diff, lines marked for the eye (escaped: pack text is input)."""
    from markupsafe import escape

    out = []
    for line in difflib.unified_diff(old, new, a, b, lineterm=""):
        cls = "add" if line.startswith("+") else "del" if line.startswith("-") else ""
        text = escape(line)
        out.append(f'<span class="{cls}">{text}</span>' if cls else str(text))
    return Markup("\n".join(out))


@router.get("/console/statistics", response_class=HTMLResponse)
def console_statistics(request: Request, start: str = "", end: str = "") -> Response:
    who = _who(request)
    if who is None:
        return _login_first(request)

    def go() -> Response:
        from xinyong.reports.html import charts
        from xinyong.reports.statistics import Summary

        today = date.today()
        d_start = date.fromisoformat(start) if start else date(today.year - 3, 1, 1)
        d_end = date.fromisoformat(end) if end else today
        state = _state(request)
        with state.writing() as reg:  # statistics opens the registry read-write
            summary = Summary(**ops.statistics(reg, who, d_start, d_end))
        return render(
            request,
            "console_statistics.html.j2",
            s=summary,
            charts=charts(summary),
            start=d_start.isoformat(),
            end=d_end.isoformat(),
        )

    return _guarded(request, go)


def install(app: FastAPI, *, secret: str, secure: bool) -> None:
    from pathlib import Path

    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie="xinyong_session",
        same_site="strict",
        https_only=secure,
        max_age=8 * 3600,
    )
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.include_router(router)
