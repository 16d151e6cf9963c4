"""The ASGI entry point a worker process imports (`xinyong serve` sets the env)."""

from __future__ import annotations

import os

from xinyong.web.app import create_app

app = create_app(
    os.environ.get("XINYONG_SERVE_DB", "xinyong.duckdb"),
    secure_cookies=not os.environ.get("XINYONG_INSECURE_COOKIES"),
    hold_readers=os.environ.get("XINYONG_SERVE_WORKERS", "1") == "1",
)
