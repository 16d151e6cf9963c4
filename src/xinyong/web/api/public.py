"""The public lists (SPC Art. 6): only each list's public fields, ids masked."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from xinyong.access import operations as ops
from xinyong.web.deps import Caller, State, instant
from xinyong.web.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/public", tags=["public"], responses=PROBLEM_RESPONSES)


@router.get(
    "/search",
    summary="Search the public lists by name, masked id or case number",
    response_model=dict[str, list[dict[str, Any]]],
)
def search(
    state: State,
    who: Caller,
    q: str = Query(min_length=1, max_length=200, description="A name, masked id or case no."),
    at: str | None = None,
) -> Any:
    # public_search opens the registry for writing (a DuckDB file is opened one way per
    # process at a time)
    with state.writing() as reg:
        results = ops.public_search(reg, who, q, at=instant(at, "at"))
    return JSONResponse({"results": results})
