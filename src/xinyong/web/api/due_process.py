"""Due process over HTTP (issues 9 and 11): objections and their decisions,
reconsideration, statements and credit repair. Each endpoint parses, calls
``xinyong.access.due_process`` (which authorizes, performs and audits, as for the
CLI) and answers the CLI's JSON (``--json``). Bad input is a problem detail
naming the field: 400 a malformed value, 404 an unknown objection or repair id,
409 a step the case's state forbids (deciding a decided objection), 422 one the
registry's facts refuse (another subject's record, a ground no pack accepts, repair
before its minimum period); a missing permission is 403."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from xinyong.access import due_process as dp
from xinyong.web.deps import Caller, State, instant
from xinyong.web.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1", tags=["due process"], responses=PROBLEM_RESPONSES)


class ObjectionIn(BaseModel):
    """`xinyong objections file SUBJECT --record R --ground G --statement TEXT [--at T]`."""

    subject_id: str
    record_id: str
    ground: Literal[
        "should_not_be_listed", "inaccurate", "should_have_been_deleted", "not_mine", "other"
    ]
    statement: str = Field(max_length=4000)
    at: str | None = None


class ObjectionOut(BaseModel):
    objection_id: str
    subject_id: str
    record_id: str
    system: str
    ground: str
    filed_at: str
    review_due: str
    status: str


class DecisionIn(BaseModel):
    """`xinyong objections decide ID (--uphold | --reject) --reason TEXT`."""

    decision: Literal["uphold", "reject"]
    reason: str = Field(max_length=4000)
    corrected_record: str | None = None
    at: str | None = None


class DecisionOut(BaseModel):
    objection_id: str
    status: str
    decided_at: str
    correction_due: str | None
    level: int


class ReconsiderIn(BaseModel):
    statement: str = Field(max_length=4000)
    at: str | None = None


class StatementIn(BaseModel):
    """`xinyong statements add SUBJECT --record R --text TEXT`."""

    subject_id: str
    record_id: str
    text: str = Field(max_length=4000)
    at: str | None = None


class RepairIn(BaseModel):
    """`xinyong repair apply SUBJECT --record R --commitment TEXT`."""

    subject_id: str
    record_id: str
    commitment: str = Field(max_length=4000)
    at: str | None = None


class RepairOut(BaseModel):
    repair_id: str
    eligible_from: str
    status: str
    subject_id: str
    record_id: str
    decision_due: str


class RepairDecisionIn(BaseModel):
    decision: Literal["grant", "refuse"]
    reason: str = Field(max_length=4000)
    at: str | None = None


@router.post(
    "/objections",
    status_code=201,
    response_model=ObjectionOut,
    summary="File an objection against a record (SPC Arts. 11-12, PBoC Art. 25)",
)
def file_objection(body: ObjectionIn, state: State, who: Caller) -> Any:
    at = instant(body.at, "at")
    with state.writing() as reg:
        return dp.file_objection(
            reg, who, body.subject_id, body.record_id, body.ground, body.statement, at=at
        )


@router.get(
    "/objections",
    response_model=list[dict[str, Any]],
    summary="Objections with their due dates, overdue ones marked",
)
def list_objections(
    state: State,
    who: Caller,
    subject: str | None = None,
    overdue: bool = False,
    at: str | None = None,
) -> Any:
    at_t = instant(at, "at")
    with state.reading() as reg:
        return dp.list_objections(reg, who, subject=subject, overdue=overdue, at=at_t)


@router.post(
    "/objections/{objection_id}/decision",
    response_model=DecisionOut,
    summary="Decide an objection (at the next level after a reconsideration request)",
)
def decide_objection(objection_id: str, body: DecisionIn, state: State, who: Caller) -> Any:
    at = instant(body.at, "at")
    with state.writing() as reg:
        return dp.decide_objection(
            reg,
            who,
            objection_id,
            uphold=body.decision == "uphold",
            reason=body.reason,
            at=at,
            corrected_record=body.corrected_record,
        )


@router.post(
    "/objections/{objection_id}/reconsideration",
    response_model=dict[str, Any],
    summary="Ask the next level to reconsider a rejected objection, within the window",
)
def reconsider_objection(objection_id: str, body: ReconsiderIn, state: State, who: Caller) -> Any:
    at = instant(body.at, "at")
    with state.writing() as reg:
        return dp.reconsider_objection(reg, who, objection_id, body.statement, at=at)


@router.post(
    "/statements",
    status_code=201,
    response_model=dict[str, Any],
    summary="Add the subject's statement to a record (PBoC Art. 16)",
)
def add_statement(body: StatementIn, state: State, who: Caller) -> Any:
    at = instant(body.at, "at")
    with state.writing() as reg:
        return dp.add_statement(reg, who, body.subject_id, body.record_id, body.text, at=at)


@router.post(
    "/repairs",
    status_code=201,
    response_model=RepairOut,
    summary="Apply for credit repair of a published penalty (NDRC Order No. 36)",
)
def apply_repair(body: RepairIn, state: State, who: Caller) -> Any:
    at = instant(body.at, "at")
    with state.writing() as reg:
        return dp.apply_repair(reg, who, body.subject_id, body.record_id, body.commitment, at=at)


@router.get(
    "/repairs",
    response_model=list[dict[str, Any]],
    summary="Credit repair applications and their status",
)
def list_repairs(
    state: State, who: Caller, subject: str | None = None, at: str | None = None
) -> Any:
    at_t = instant(at, "at")
    with state.reading() as reg:
        return dp.list_repairs(reg, who, subject=subject, at=at_t)


@router.post(
    "/repairs/{repair_id}/decision",
    response_model=dict[str, Any],
    summary="Decide a credit repair application; a grant ends publication and sharing",
)
def decide_repair(repair_id: str, body: RepairDecisionIn, state: State, who: Caller) -> Any:
    at = instant(body.at, "at")
    with state.writing() as reg:
        return dp.decide_repair(
            reg, who, repair_id, grant=body.decision == "grant", reason=body.reason, at=at
        )
