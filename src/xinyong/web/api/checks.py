"""Checks: may a subject use a service? One, or up to 100 k in one request."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from xinyong.access import operations as ops
from xinyong.checks.answers import Reason
from xinyong.web.deps import Caller, State, instant
from xinyong.web.deps import known_at as known_instant
from xinyong.web.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1", tags=["checks"], responses=PROBLEM_RESPONSES)


class CheckOut(BaseModel):
    """`xinyong check --json`."""

    subject_id: str
    service: str
    at: str
    decision: str
    reasons: list[Reason]  # the CLI's reason model, one definition


class BulkChecksIn(BaseModel):
    service: str = Field(description="A service from the catalog, e.g. flight")
    subjects: list[str] = Field(
        max_length=ops.MAX_BULK_CHECKS, description="Identity numbers or unified codes"
    )
    at: str | None = Field(default=None, description="ISO 8601 (default now)")
    known_at: str | None = None


class BulkChecksOut(BaseModel):
    service: str
    count: int
    decisions: dict[str, int]
    answers: list[CheckOut]


@router.get(
    "/checks/{subject_id}/{service}",
    response_model=CheckOut,
    response_model_exclude_unset=True,
    summary="Check one subject for one service",
)
def check(
    subject_id: str,
    service: str,
    state: State,
    who: Caller,
    at: str | None = None,
    known_at: str | None = None,
) -> Any:
    at_t, known_t = instant(at, "at"), known_instant(known_at)
    with state.reading() as reg:
        answer = ops.check(reg, who, subject_id, service, at=at_t, known_at=known_t)
    return answer.public()


@router.post(
    "/checks/bulk",
    response_model=BulkChecksOut,
    response_model_exclude_unset=True,
    summary="Check many subjects for one service (up to 100 000)",
)
def check_bulk(body: BulkChecksIn, state: State, who: Caller) -> Any:
    at_t, known_t = instant(body.at, "body.at"), known_instant(body.known_at, "body.known_at")
    with state.reading() as reg:
        answers = ops.check_many(reg, who, body.subjects, body.service, at=at_t, known_at=known_t)
    decisions: dict[str, int] = {}
    for a in answers:
        decisions[a.decision] = decisions.get(a.decision, 0) + 1
    # A Response skips re-validating 100 k answers against the model (they are built
    # by the same models); the model still documents the shape.
    return JSONResponse(
        {
            "service": body.service,
            "count": len(answers),
            "decisions": decisions,
            "answers": [a.public() for a in answers],
        }
    )
