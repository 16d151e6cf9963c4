"""Instants in the registry: stored as naive UTC, shown in Asia/Shanghai.

CATALOG.md: an ISO 8601 date means 00:00 Asia/Shanghai; a date-time without an
offset is read as Asia/Shanghai local time too (the registry's jurisdiction).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")  # no DST since 1991


def parse_instant(value: str | date | datetime) -> datetime:
    """Parse an ISO 8601 date or date-time into a naive UTC datetime.

    Raises ValueError with the offending text.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            if len(text) == 10:
                d = date.fromisoformat(text)
                dt = datetime(d.year, d.month, d.day)
            else:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not an ISO 8601 date or date-time: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=SHANGHAI)
    return dt.astimezone(UTC).replace(tzinfo=None)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def to_local_iso(dt: datetime | None) -> str | None:
    """A stored naive-UTC instant as ISO 8601 in Asia/Shanghai, e.g. 2026-05-03T00:00:00+08:00."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC).astimezone(SHANGHAI).isoformat()


def local_date(dt: datetime) -> date:
    """The Asia/Shanghai calendar date of a naive-UTC instant."""
    return (dt + timedelta(hours=8)).date()


def age_on(birth: date | None, dt: datetime) -> int | None:
    """Full years of age on the Shanghai date of dt."""
    if birth is None:
        return None
    d = local_date(dt)
    return d.year - birth.year - ((d.month, d.day) < (birth.month, birth.day))
