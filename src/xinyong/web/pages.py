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
from xinyong.access.permissions import Refused
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
    html = env.get_template(template).render(
        request=request,
        lang=lang,
        html_lang=i18n.html_lang(lang),
        languages=i18n.LANGUAGES,
        here=here,
        who=_who(request),
        csrf=_csrf(request),
        **context,
    )
    return HTMLResponse(html, status_code=status)


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

    def go() -> Response:
        if who.role != "subject" or not who.subject_id:
            raise Refused("report:other-subject", f"{who.name} ({who.role}) has no portal")
        looked = ops.audit_show(_state(request).reg, who, who.subject_id)
        return render(request, "portal.html.j2", subject=who.subject_id, looked=looked)

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
