"""The JSON API, one router per area. ``ROUTERS`` is what the app mounts: a new
area is one module with a ``router`` and one line here."""

from __future__ import annotations

from fastapi import APIRouter

from xinyong.web.api import admin, checks, due_process, packs, public, records, subjects

ROUTERS: list[APIRouter] = [
    records.router,
    checks.router,
    subjects.router,
    due_process.router,
    packs.router,
    admin.router,
    public.router,
]
