"""The JSON API, one router per area. ``ROUTERS`` is what the app mounts: a new
area (e.g. the due-process endpoints of ``access.due_process``) is one module
with a ``router`` and one line here."""

from __future__ import annotations

from fastapi import APIRouter

from xinyong.web.api import admin, checks, packs, public, records, subjects

ROUTERS: list[APIRouter] = [
    records.router,
    checks.router,
    subjects.router,
    packs.router,
    admin.router,
    public.router,
]
