"""The FastAPI application: health and readiness, the JSON API (``web.api``),
the pages (``web.pages``), the OpenAPI document and its docs with Swagger UI
served from the package ``fastapi-offline`` (Swagger UI 5, which reads the OpenAPI 3.1
FastAPI writes; ``swagger-ui-bundle``'s 4.x cannot), with its licences: no CDN."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from xinyong.web import problems
from xinyong.web.state import ServerState

STATIC = Path(__file__).parent / "static"


def create_app(
    db: str | Path,
    *,
    session_secret: str | None = None,
    secure_cookies: bool = True,
    hold_readers: bool = True,
) -> FastAPI:
    """The app serving the registry at ``db``. ``session_secret`` signs the pages'
    session cookies (all workers of one server must share it; a random one by
    default)."""
    import fastapi_offline

    from xinyong import __version__
    from xinyong.web.api import ROUTERS

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.xinyong.release_readers()  # close the held reader stores

    app = FastAPI(
        lifespan=lifespan,
        title="xinyong",
        version=__version__,
        description="A rule-of-law social-credit registry. Every endpoint authenticates "
        "with a principal's API key and passes the same permission matrix and audit "
        "chain as the command line. Errors are RFC 9457 problem details.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.xinyong = ServerState(Path(db), hold_readers=hold_readers)
    problems.install(app)
    for router in ROUTERS:
        app.include_router(router)

    app.mount(
        "/docs-assets",
        StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"),
        name="docs-assets",
    )

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="xinyong API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/healthz", tags=["health"], summary="The process answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The registry is a valid registry with packs (else 503)",
        responses=problems.PROBLEM_RESPONSES,
    )
    def readyz(request: Request) -> Any:
        state: ServerState = app.state.xinyong
        # Fail closed: a missing file, anything that is not a registry of this schema
        # version, or a registry without packs is not ready (every answer would be allow).
        with state.lock.reading(), state.reg.store(read_only=True, needs_packs=True) as store:
            version = store.schema_version()
        return JSONResponse({"status": "ready", "db": str(state.db), "schema_version": version})

    from xinyong.web import pages

    secret = session_secret or os.environ.get("XINYONG_SESSION_SECRET") or secrets.token_hex(32)
    pages.install(app, secret=secret, secure=secure_cookies)
    return app
