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


def local_midnight(d: date) -> datetime:
    """00:00 Asia/Shanghai on local date ``d``, as a naive-UTC instant."""
    return datetime(d.year, d.month, d.day) - timedelta(hours=8)


def add_local_years(dt: datetime, years: int) -> datetime:
    """``years`` calendar years after a naive-UTC instant, counted on the Asia/Shanghai
    calendar (29 February becomes 28 February in a common year, as SQL intervals do).

    Counting on the UTC calendar would end a 2-year term from 2022-03-01 00:00
    local (2022-02-28 16:00 UTC) on 2024-02-29 instead of 2024-03-01.
    """
    local = dt + timedelta(hours=8)
    year = local.year + years
    day = local.day
    if local.month == 2 and day == 29 and not _leap(year):
        day = 28
    return local.replace(year=year, day=day) - timedelta(hours=8)


def add_local_months(dt: datetime, months: int) -> datetime:
    """``months`` calendar months later on the Asia/Shanghai calendar; a day past the
    end of the target month becomes its last day (as SQL intervals do)."""
    local = dt + timedelta(hours=8)
    index = local.month - 1 + months
    year, month = local.year + index // 12, index % 12 + 1
    last = [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    return local.replace(year=year, month=month, day=min(local.day, last)) - timedelta(hours=8)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def age_on(birth: date | None, dt: datetime) -> int | None:
    """Full years of age on the Shanghai date of dt."""
    if birth is None:
        return None
    d = local_date(dt)
    return d.year - birth.year - ((d.month, d.day) < (birth.month, birth.day))
