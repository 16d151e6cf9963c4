"""Records: one, or a bulk NDJSON stream, through the intake (``import_records``):
idempotent on record_id (a resent record is a duplicate, a no-op), each reject
with its field and reason."""

from __future__ import annotations

import json
import queue
import shutil
import tempfile
import threading
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
#: A bulk submission commits (and reports) every this many rows.
BULK_BATCH_ROWS = 100_000

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
            "description": 'One line per committed batch ({"batch": {batch_id, rows, '
            "accepted, duplicates, rejected}}) as it commits, one per rejected record "
            '({"reject": {record_id, row, field, reason}}), then the import result '
            "({accepted, duplicates, rejected, rejects_file})",
            "content": {NDJSON: {"schema": {"type": "string"}}},
        }
    },
)
async def submit_bulk(request: Request, state: State, who: Caller) -> StreamingResponse:
    """The import runs in its own thread, committing every BULK_BATCH_ROWS rows as a
    batch; each committed batch is streamed as it commits, then the rejects and the
    result. A refusal or unreadable body comes before anything is streamed, as a
    problem; a failure after the first batch ends the stream with an `error` line
    (the batches before it stay committed; resending is idempotent)."""
    from starlette.concurrency import run_in_threadpool

    raw = await _body(request)
    folder = Path(tempfile.mkdtemp(prefix="xinyong-http-"))
    events: queue.Queue[tuple[str, Any]] = queue.Queue()

    def work() -> None:
        try:
            path = folder / "records.jsonl"
            path.write_bytes(raw)
            with state.writing() as reg:
                result = ops.import_records(
                    reg,
                    who,
                    path,
                    rejects_path=folder / "rejects.jsonl",
                    progress=False,
                    batch_rows=BULK_BATCH_ROWS,
                    on_batch=lambda batch: events.put(("batch", batch)),
                )
            events.put(("done", result))
        except Exception as exc:
            events.put(("error", exc))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    threading.Thread(target=work, name="xinyong-bulk-records", daemon=True).start()
    first = await run_in_threadpool(events.get)
    if first[0] == "error":
        raise first[1]

    def line(payload: dict[str, Any]) -> bytes:
        return json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8") + b"\n"

    def lines() -> Iterator[bytes]:
        kind, value = first
        while True:
            if kind == "batch":
                yield line({"batch": {k: v for k, v in value.items() if k != "rejects_file"}})
            elif kind == "done":
                for rej in value.rejects:
                    yield line({"reject": shapes.reject(rej)})
                yield line({**shapes.import_result(value), "rejects_file": None})
                return
            else:
                yield line({"error": {"title": type(value).__name__, "detail": str(value)}})
                return
            kind, value = events.get()

    return StreamingResponse(lines(), media_type=NDJSON)
