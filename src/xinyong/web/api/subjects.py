"""About one subject: score, explanation, report (JSON, HTML, PDF), inquiries and
who looked at them."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from xinyong.access import operations as ops
from xinyong.web.deps import Caller, State, instant
from xinyong.web.deps import known_at as known_instant
from xinyong.web.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/subjects", tags=["subjects"], responses=PROBLEM_RESPONSES)


class ScoreOut(BaseModel):
    """`xinyong score --json`."""

    subject_id: str
    system: str
    score: float | int | None
    grade: str | None


class InquiryIn(BaseModel):
    purpose: str
    system: str = "financial"


@router.get("/{subject_id}/score", response_model=ScoreOut, summary="A subject's score")
def score(
    subject_id: str,
    system: str,
    state: State,
    who: Caller,
    at: str | None = None,
    known_at: str | None = None,
    case: str | None = None,
) -> Any:
    at_t, known_t = instant(at, "at"), known_instant(known_at)
    with state.reading() as reg:
        answer = ops.score(reg, who, subject_id, system, at=at_t, known_at=known_t, case=case)
    return answer.public()


@router.get(
    "/{subject_id}/explanation",
    summary="Records, rules, points and legal bases behind a subject's results",
    response_model=dict[str, Any],
)
def explanation(
    subject_id: str,
    state: State,
    who: Caller,
    system: str | None = None,
    at: str | None = None,
    known_at: str | None = None,
    case: str | None = None,
) -> Any:
    at_t, known_t = instant(at, "at"), known_instant(known_at)
    with state.reading() as reg:
        result = ops.explain(
            reg, who, subject_id, system=system, at=at_t, known_at=known_t, case=case
        )
    return JSONResponse(result.model_dump(mode="json"))


@router.get(
    "/{subject_id}/report",
    summary="The subject report over every system (json, html or pdf)",
    responses={
        200: {
            "description": "The report",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/html": {"schema": {"type": "string"}},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
    response_class=Response,
)
def report(
    subject_id: str,
    state: State,
    who: Caller,
    format: Literal["json", "html", "pdf"] = "json",
    at: str | None = None,
    case: str | None = None,
) -> Response:
    from xinyong.reports.subject_report import render_html

    at_t = instant(at, "at")
    # a subject's own report is recorded (inquiry.made, purpose self): a write
    with state.writing() as reg:
        built = ops.subject_report(reg, who, subject_id, at=at_t, case=case)
    if format == "json":
        return JSONResponse(built.model_dump(mode="json"))
    html = render_html(built)
    if format == "html":
        return HTMLResponse(html)
    from weasyprint import HTML

    pdf = HTML(string=html).write_pdf()
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="report-{built.subject_id}.pdf"'},
    )


@router.post(
    "/{subject_id}/inquiries",
    summary="A lender reads a subject's report (consent and an allowed purpose needed)",
    response_model=dict[str, Any],
)
def inquire(subject_id: str, body: InquiryIn, state: State, who: Caller) -> Any:
    with state.writing() as reg:
        answer = ops.inquire(reg, who, subject_id, body.purpose, system=body.system)
    return JSONResponse(answer)


@router.get(
    "/{subject_id}/audit",
    summary="Who read, checked or decided what about a subject, and why",
    response_model=list[dict[str, Any]],
)
def audit(subject_id: str, state: State, who: Caller, case: str | None = None) -> Any:
    entries = ops.audit_show(state.reg, who, subject_id, case=case)
    return JSONResponse([e.model_dump() for e in entries])
