"""Operating the registry: sources, principals and keys, evaluation runs,
statistics, the audit chain, the retention purge, and who the caller is."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from xinyong.access import operations as ops
from xinyong.access import shapes
from xinyong.web.deps import BadParameter, Caller, State, instant
from xinyong.web.deps import known_at as known_instant
from xinyong.web.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1", tags=["administration"], responses=PROBLEM_RESPONSES)


class SourceIn(BaseModel):
    source_id: str = Field(description="e.g. court:371082-rongcheng")
    kind: str = Field(description="court, city, lender, utility, regulator, adjudicator")


class PrincipalIn(BaseModel):
    name: str
    role: str
    source: str | None = None
    services: list[str] | None = None
    subject_id: str | None = None


class RunIn(BaseModel):
    as_of: str | None = Field(default=None, description="Valid time (default now)")
    known_at: str | None = None
    full: bool = Field(default=False, description="Evaluate in full, never incrementally")


@router.get("/me", summary="The calling principal", response_model=dict[str, Any])
def me(who: Caller) -> Any:
    return JSONResponse(who.public())


@router.get("/sources", summary="Registered sources", response_model=list[dict[str, Any]])
def list_sources(state: State, who: Caller) -> Any:
    with state.reading() as reg:
        return JSONResponse(shapes.source_rows(ops.list_sources(reg, who)))


@router.post("/sources", summary="Register a source", status_code=201)
def add_source(body: SourceIn, state: State, who: Caller) -> dict[str, str]:
    with state.writing() as reg:
        ops.register_source(reg, who, body.source_id, body.kind)
    return {"source_id": body.source_id, "kind": body.kind}


@router.get(
    "/principals", summary="Principals (never their keys)", response_model=list[dict[str, Any]]
)
def list_principals(state: State, who: Caller) -> Any:
    return JSONResponse([p.public() for p in ops.list_principals(state.reg, who)])


@router.post(
    "/principals",
    summary="Add a principal; its first key is in the answer, shown this once",
    status_code=201,
    response_model=dict[str, Any],
)
def add_principal(body: PrincipalIn, state: State, who: Caller) -> Any:
    principal, key = ops.add_principal(
        state.reg,
        who,
        body.name,
        body.role,
        source=body.source,
        services=body.services,
        subject_id=body.subject_id,
    )
    return JSONResponse({**principal.public(), "key": key}, status_code=201)


@router.post(
    "/principals/{name}/keys",
    summary="Issue a new key (shown this once)",
    status_code=201,
    response_model=dict[str, str],
)
def new_key(name: str, state: State, who: Caller) -> Any:
    key = ops.new_key(state.reg, who, name)
    return JSONResponse({"name": name, "key_id": key.split(".")[1], "key": key}, status_code=201)


@router.delete(
    "/principals/{name}",
    summary="Revoke a principal (all its keys) or, with key_id, one key",
    response_model=dict[str, Any],
)
def revoke(name: str, state: State, who: Caller, key_id: str | None = None) -> Any:
    return JSONResponse(ops.revoke_principal(state.reg, who, name, key_id).public())


@router.get("/runs", summary="Evaluation runs, newest first", response_model=list[dict[str, Any]])
def list_runs(state: State, who: Caller) -> Any:
    with state.reading() as reg:
        return JSONResponse(shapes.run_rows(ops.list_runs(reg, who)))


@router.post(
    "/runs",
    summary="Evaluate every installed pack and materialize the results",
    status_code=201,
    response_model=dict[str, Any],
)
def evaluate(body: RunIn, state: State, who: Caller) -> Any:
    import time

    from xinyong.timeutil import now_utc, to_local_iso

    as_of = instant(body.as_of, "body.as_of") or now_utc()
    known = known_instant(body.known_at, "body.known_at")
    started = time.perf_counter()
    with state.writing() as reg, reg.holding():
        outcome = ops.evaluate_run(reg, who, as_of=as_of, known_at=known, full=body.full)
        with reg.store() as store:
            counts = ops.result_counts(store, as_of)
    return JSONResponse(
        {
            "run_id": outcome.run_id,
            "as_of": to_local_iso(as_of),
            "known_at": to_local_iso(known) if known else None,
            "seconds": round(time.perf_counter() - started, 3),
            "mode": outcome.mode,
            "why": outcome.why,
            "subjects_recomputed": outcome.subjects_recomputed,
            **counts,
        },
        status_code=201,
    )


@router.get(
    "/statistics",
    summary="Aggregate statistics, no personal data",
    response_model=dict[str, Any],
)
def statistics(start: str, end: str, state: State, who: Caller) -> Any:
    try:
        d_start, d_end = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        raise BadParameter(f"start/end: {exc}; use YYYY-MM-DD") from None
    with state.writing() as reg:  # statistics opens the registry read-write
        return JSONResponse(ops.statistics(reg, who, d_start, d_end))


@router.get(
    "/audit/verify",
    summary="Walk the audit hash chain (ok false names the first bad entry)",
    response_model=dict[str, Any],
)
def audit_verify(state: State, who: Caller) -> Any:
    return JSONResponse(shapes.chain_report(ops.audit_verify(state.reg, who)))


@router.post(
    "/purge",
    summary="Delete records past every pack's retention, leaving tombstones",
    response_model=dict[str, Any],
)
def purge(state: State, who: Caller, dry_run: bool = True) -> Any:
    with state.writing() as reg:
        stones = ops.purge(reg, who, dry_run=dry_run)
    return JSONResponse(shapes.purge_result(stones, dry_run))


@router.post(
    "/compact",
    summary="Rewrite the ledger in subject order (DuckDB registries; same records)",
    response_model=dict[str, Any],
)
def compact(state: State, who: Caller) -> Any:
    with state.writing() as reg, reg.holding():
        done = ops.compact(reg, who)
    return JSONResponse(shapes.compaction(done))
