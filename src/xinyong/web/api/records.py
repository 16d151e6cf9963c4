"""Records: one, or a bulk NDJSON stream, through the intake (``import_records``):
idempotent on record_id (a resent record is a duplicate, a no-op), each reject
with its field and reason."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from xinyong.access import operations as ops
from xinyong.access import shapes
from xinyong.ledger.intake import max_import_bytes
from xinyong.web.deps import BadParameter, Caller, State
from xinyong.web.problems import PROBLEM_RESPONSES, problem

router = APIRouter(prefix="/v1/records", tags=["records"], responses=PROBLEM_RESPONSES)

NDJSON = "application/x-ndjson"

_IMPORT_RESULT = {
    "type": "object",
    "properties": {
        "accepted": {"type": "integer"},
        "duplicates": {"type": "integer"},
        "rejected": {"type": "integer"},
        "rejects_file": {"type": ["string", "null"]},
        "rejects": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["accepted", "duplicates", "rejected"],
}
_RECORD = {
    "type": "object",
    "description": "A record envelope as in CATALOG.md",
    "properties": {
        "record_id": {"type": "string"},
        "subject_id": {"type": "string"},
        "type": {"type": "string"},
        "occurred_at": {"type": "string"},
        "source": {"type": "string"},
        "attributes": {"type": "object"},
    },
    "required": ["record_id", "subject_id", "type", "occurred_at", "source", "attributes"],
}


def _import(state: State, who: Any, folder: Path, body: bytes, suffix: str) -> Any:
    path = folder / f"records{suffix}"
    path.write_bytes(body)
    with state.writing() as reg:
        return ops.import_records(
            reg, who, path, rejects_path=folder / "rejects.jsonl", progress=False
        )


async def _body(request: Request) -> bytes:
    limit = max_import_bytes()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadParameter(f"body: over the import limit of {limit} bytes; split it")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "",
    summary="Submit one record",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _RECORD}}}
    },
    responses={
        200: {
            "description": "A duplicate (already held)",
            "content": {"application/json": {"schema": _IMPORT_RESULT}},
        },
        201: {
            "description": "Accepted",
            "content": {"application/json": {"schema": _IMPORT_RESULT}},
        },
    },
)
async def submit_one(request: Request, state: State, who: Caller) -> JSONResponse:
    from starlette.concurrency import run_in_threadpool

    raw = await _body(request)
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadParameter("body: not JSON; send one record as a JSON object") from None
    if not isinstance(record, dict):
        raise BadParameter("body: send one record as a JSON object")
    line = json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"
    with tempfile.TemporaryDirectory(prefix="xinyong-http-") as tmp:
        result = await run_in_threadpool(_import, state, who, Path(tmp), line, ".jsonl")
    payload = shapes.import_result(result)
    payload["rejects_file"] = None  # a temporary file of the server; the reasons follow
    if result.rejected:
        errors = [
            {"field": r.field, "reason": r.reason, "record_id": r.record_id} for r in result.rejects
        ]
        return problem(
            request,
            422,
            "Record rejected",
            "; ".join(f"{e['field']}: {e['reason']}" for e in errors),
            errors=errors,
        )
    return JSONResponse(payload, status_code=201 if result.accepted else 200)


@router.post(
    "/bulk",
    summary="Submit records as NDJSON (JSON Lines); the answer streams as NDJSON",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {NDJSON: {"schema": {"type": "string"}}},
        }
    },
    response_class=StreamingResponse,
    responses={
        200: {
            "description": 'One line per rejected record ({"reject": {record_id, row, '
            "field, reason}}), then the import result ({accepted, duplicates, rejected, "
            "rejects_file})",
            "content": {NDJSON: {"schema": {"type": "string"}}},
        }
    },
)
async def submit_bulk(request: Request, state: State, who: Caller) -> StreamingResponse:
    from starlette.concurrency import run_in_threadpool

    raw = await _body(request)
    with tempfile.TemporaryDirectory(prefix="xinyong-http-") as tmp:
        result = await run_in_threadpool(_import, state, who, Path(tmp), raw, ".jsonl")
    payload = shapes.import_result(result)
    payload["rejects_file"] = None

    def lines() -> Iterator[bytes]:
        for rej in result.rejects:
            yield json.dumps({"reject": shapes.reject(rej)}, ensure_ascii=False).encode() + b"\n"
        yield json.dumps(payload, ensure_ascii=False).encode() + b"\n"

    return StreamingResponse(lines(), media_type=NDJSON)
