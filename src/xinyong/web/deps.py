"""What endpoints share: the server state, the calling principal (API key), and
time parameters read the way the CLI reads them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from xinyong.access.principals import Principal
from xinyong.cli.common import EARLIEST, LATEST
from xinyong.timeutil import now_utc, parse_instant
from xinyong.web.problems import Unauthenticated
from xinyong.web.state import ServerState

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer xy.…`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key: `xy.…`")


def server(request: Request) -> ServerState:
    state: ServerState = request.app.state.xinyong
    return state


def caller(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    header: Annotated[str | None, Security(_header)] = None,
) -> Principal:
    """The principal whose API key the request carries; 401 without a good one."""
    key = bearer.credentials if bearer is not None else header
    if not key:
        raise Unauthenticated("no API key: send `Authorization: Bearer <key>` or `X-API-Key`")
    from xinyong.access.permissions import Refused

    try:
        return server(request).authenticate(key)
    except Refused as exc:
        raise Unauthenticated(str(exc)) from None


State = Annotated[ServerState, Depends(server)]
Caller = Annotated[Principal, Depends(caller)]


class BadParameter(ValueError):
    """A query or body value that is not what it must be (HTTP 400, naming it)."""


def instant(value: str | None, name: str) -> datetime | None:
    """An instant as the CLI reads --at: ISO 8601, a bare date at 00:00 Asia/Shanghai,
    between 1900 and 2199."""
    if value is None or value == "":
        return None
    try:
        parsed = parse_instant(value)
    except (ValueError, OverflowError) as exc:
        raise BadParameter(
            f"{name}: {exc}; use ISO 8601, e.g. 2026-05-01 or 2026-05-01T09:30:00+08:00"
        ) from None
    if not EARLIEST <= parsed <= LATEST:
        raise BadParameter(f"{name}: {value!r} lies outside 1900-01-01 .. 2199-12-31")
    return parsed


def known_at(value: str | None, name: str = "known_at") -> datetime | None:
    """What the registry knew then: never a future instant."""
    parsed = instant(value, name)
    if parsed is not None and parsed > now_utc():
        raise BadParameter(
            f"{name} lies in the future; the registry cannot know what it has not seen"
        )
    return parsed
