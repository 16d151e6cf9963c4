"""Errors as RFC 9457 problem details (``application/problem+json``).

One mapping from the domain's exceptions to HTTP: a refusal (a missing
permission, no consent, a wrong purpose, an unlicensed system, a purged
history, already audited by the gate) is 403 naming the permission; a missing
or bad key 401; bad input 400 (422 when the request's shape is wrong, naming the
field); an id the registry does not hold 404; a due-process step its case's state
forbids 409, and one the registry's facts refuse 422, naming the field
(``DueProcessError.http_status``); a registry that is missing, not a
registry, or busy 503. Nothing a client sends ends in a 500, and no traceback
ever leaves the server."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from xinyong.access.permissions import Refused
from xinyong.access.reads import NotFound
from xinyong.checks.questions import UnknownName
from xinyong.ledger.store import RegistryError, RegistryInUse
from xinyong.process.objections import DueProcessError

PROBLEM = "application/problem+json"
log = logging.getLogger("xinyong.web")

#: The problem responses every endpoint may give, for the OpenAPI document.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "permission": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
    "required": ["title", "status"],
}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": title, "content": {PROBLEM: {"schema": PROBLEM_SCHEMA}}}
    for code, title in (
        (400, "Bad input"),
        (401, "Missing or bad API key"),
        (403, "Refused"),
        (404, "Not found"),
        (409, "Conflict with the case's state"),
        (422, "Invalid request"),
        (503, "Registry not available"),
    )
}


class Unauthenticated(Exception):
    """No API key, or one the principal book refuses (HTTP 401)."""


def problem(
    request: Request | None,
    status: int,
    title: str,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if request is not None:
        body["instance"] = request.url.path
    body.update({k: v for k, v in extensions.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def install(app: FastAPI) -> None:
    """Register the exception handlers that turn every failure into a problem."""

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return problem(request, 403, "Refused", str(exc), permission=exc.permission)

    @app.exception_handler(Unauthenticated)
    async def unauthenticated(request: Request, exc: Unauthenticated) -> JSONResponse:
        return problem(
            request,
            401,
            "Unauthenticated",
            str(exc),
            headers={"WWW-Authenticate": 'Bearer realm="xinyong"'},
        )

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return problem(request, 404, "Not found", str(exc))

    @app.exception_handler(UnknownName)
    async def unknown(request: Request, exc: UnknownName) -> JSONResponse:
        return problem(request, 404, "Not found", str(exc))

    @app.exception_handler(RegistryInUse)
    async def busy(request: Request, exc: RegistryInUse) -> JSONResponse:
        return problem(request, 503, "Registry busy", str(exc), headers={"Retry-After": "1"})

    @app.exception_handler(RegistryError)
    async def not_registry(request: Request, exc: RegistryError) -> JSONResponse:
        return problem(request, 503, "Registry not available", str(exc))

    @app.exception_handler(FileNotFoundError)
    async def missing(request: Request, exc: FileNotFoundError) -> JSONResponse:
        return problem(request, 503, "Registry not available", str(exc))

    @app.exception_handler(DueProcessError)
    async def due_process(request: Request, exc: DueProcessError) -> JSONResponse:
        message = str(exc)
        field = due_process_field(message)
        errors = [{"field": field, "reason": message.split(": ", 1)[1]}] if field else None
        status = exc.http_status
        return problem(request, status, _due_titles[status], message, errors=errors)

    @app.exception_handler(ValueError)
    async def bad_input(request: Request, exc: ValueError) -> JSONResponse:
        return problem(request, 400, "Bad input", str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(e["loc"]), "reason": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        return problem(request, 422, "Invalid request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(
            request, exc.status_code, _titles.get(exc.status_code, "Error"), str(exc.detail)
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected failure on %s", request.url.path)
        return problem(
            request, 500, "Internal error", "unexpected failure; the server log has the details"
        )


_due_titles = {
    400: "Bad input",
    404: "Not found",
    409: "Conflict with the case's state",
    422: "Refused by the registry's facts",
}

#: The argument a due-process message names (the CLI's spelling) as the API's field.
_DUE_FIELDS = {
    "SUBJECT": "subject_id",
    "OBJECTION_ID": "objection_id",
    "REPAIR_ID": "repair_id",
    "--record": "record_id",
    "--corrected-record": "corrected_record",
    "--ground": "ground",
    "--statement": "statement",
    "--reason": "reason",
    "--text": "text",
    "--commitment": "commitment",
    "--at": "at",
}


def due_process_field(message: str) -> str | None:
    """The API field a DueProcessError's message starts with, if any."""
    head = message.split(": ", 1)[0]
    return _DUE_FIELDS.get(head)


_titles = {404: "Not found", 405: "Method not allowed", 413: "Too large", 415: "Unsupported"}
