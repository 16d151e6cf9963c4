"""Rule packs: list, show, lint, install a new version (with its effective date)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from xinyong.access import operations as ops
from xinyong.access import shapes
from xinyong.web.deps import BadParameter, Caller, State
from xinyong.web.problems import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/packs", tags=["packs"], responses=PROBLEM_RESPONSES)

_YAML_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/yaml": {"schema": {"type": "string"}}},
    }
}
_PACK_LIMIT = 4 << 20


async def _yaml(request: Request) -> str:
    raw = await request.body()
    if len(raw) > _PACK_LIMIT:
        raise BadParameter(f"body: a pack over {_PACK_LIMIT} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadParameter("body: not UTF-8 text; send the pack's YAML") from None


@router.get("", summary="Installed pack versions", response_model=list[dict[str, Any]])
def list_packs(state: State, who: Caller) -> Any:
    with state.reading() as reg:
        return JSONResponse(shapes.pack_rows(ops.list_packs(reg, who)))


@router.get("/{system}", summary="An installed pack (JSON)", response_model=dict[str, Any])
def show_pack(system: str, state: State, who: Caller, version: str | None = None) -> Any:
    with state.reading() as reg:
        pack = ops.show_pack(reg, who, system, version)
    return JSONResponse(pack.model_dump(mode="json"))


@router.get(
    "/{system}/yaml",
    summary="An installed pack (its YAML)",
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/yaml": {"schema": {"type": "string"}}}}},
)
def pack_yaml(system: str, state: State, who: Caller, version: str | None = None) -> Any:
    with state.reading() as reg:
        text = ops.pack_text(reg, who, system, version)
    return PlainTextResponse(text, media_type="application/yaml")


@router.post(
    "/lint",
    summary="Lint a pack (exit-1 findings are errors)",
    openapi_extra=_YAML_BODY,
    response_model=dict[str, Any],
)
async def lint_pack(request: Request, state: State, who: Caller) -> Any:
    text = await _yaml(request)
    pack, findings = ops.lint_pack(state.reg, who, Path("body.yaml"), text=text)
    return JSONResponse(shapes.lint_result("body.yaml", pack, findings))


@router.post(
    "",
    summary="Install a new pack version (it must lint without errors)",
    openapi_extra=_YAML_BODY,
    response_model=dict[str, Any],
    status_code=201,
)
async def install_pack(request: Request, state: State, who: Caller) -> Any:
    from starlette.concurrency import run_in_threadpool

    text = await _yaml(request)

    def install() -> tuple[Any, bool]:
        with tempfile.TemporaryDirectory(prefix="xinyong-pack-") as tmp:
            path = Path(tmp) / "pack.yaml"
            path.write_text(text, encoding="utf-8")
            with state.writing() as reg:
                before = len(ops.list_packs(reg, who))
                pack = ops.install_pack(reg, who, path)
                after = len(ops.list_packs(reg, who))
        return pack, after > before

    pack, new = await run_in_threadpool(install)
    return JSONResponse(shapes.installed_pack(pack, new), status_code=201 if new else 200)
