"""The Chinese working-day calendar, and periods counted as the Civil Procedure Law counts them.

PRC Civil Procedure Law, Art. 85 (2021 text; SOURCES.md §1): periods are counted
in hours, days, months and years; the day on which a period starts is not
counted; when the last day of a period is a statutory holiday, the period ends
on the first day after the holiday. The State Council announces each year's
holidays and the weekends worked in lieu; the PyPI package ``chinese-calendar``
carries those announcements (2004 to its last covered year, see
``covered_until``).

A "holiday" here is any day that is not a working day: a statutory holiday, or
a weekend not worked in lieu. The law speaks of statutory holidays, and a
period whose last day is an ordinary Sunday also ends on the next working day
(the courts' practice, and the example of issue 7: day 30 of a grace period
falls on Sunday 2024-03-31, so the period ends on Monday 2024-04-01).

Past the last covered year (and before 2004) this module does not fail: it
falls back to weekends plus the statutory holidays on fixed solar dates (New
Year's Day 1 January, Labour Day 1 May, National Day 1-3 October). Why not
fail closed: an evaluation must stay total (a registry that cannot evaluate a
listing decided in December answers no check at all), and the error of the
fallback is bounded and one-sided in time: it misses the lunar holidays
(Spring Festival, Qingming, Dragon Boat, Mid-Autumn) and the announced swaps
of the one year not yet published. ``is_covered`` tells a caller whether a day
is inside the published data, so that a report can mark a deadline computed
with the fallback; updating ``chinese-calendar`` removes the fallback for that
year. Deadlines owed to a subject in due process are the exception:
``due_date`` refuses (``UncoveredYear``) a period that reaches a year outside the
published data, rather than tell a subject a guessed deadline. Every function
takes and returns Asia/Shanghai local dates.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

import chinese_calendar

_FIXED_HOLIDAYS = ((1, 1), (5, 1), (10, 1), (10, 2), (10, 3))


@cache
def covered_until() -> int:
    """The last year whose holidays and in-lieu working days the library holds."""
    return max(d.year for d in chinese_calendar.holidays)


@cache
def covered_from() -> int:
    return min(d.year for d in chinese_calendar.holidays)


def is_covered(day: date) -> bool:
    """Whether ``day`` lies in a year whose announced calendar is known."""
    return covered_from() <= day.year <= covered_until()


def is_working_day(day: date) -> bool:
    """Whether ``day`` is a working day in mainland China (see the module docstring
    for years outside the published data)."""
    if is_covered(day):
        return bool(chinese_calendar.is_workday(day))
    return day.weekday() < 5 and (day.month, day.day) not in _FIXED_HOLIDAYS


def next_working_day(day: date) -> date:
    """``day`` itself when it is a working day, else the first working day after it."""
    while not is_working_day(day):
        day += timedelta(days=1)
    return day


def add_days(start: date, n: int) -> date:
    """The last day of a period of ``n`` days that starts on ``start`` (Art. 85).

    The start day is not counted, so the period's last day is ``start + n``;
    when that day is not a working day the period ends on the next working day.
    A period of 0 days ends on its start day.
    """
    if n < 0:
        raise ValueError(f"a period cannot be negative: {n} days")
    if n == 0:
        return start
    return next_working_day(start + timedelta(days=n))


def add_working_days(start: date, n: int) -> date:
    """The last day of a period of ``n`` working days that starts on ``start``
    ("within 3 working days": the start day is not counted, then ``n`` working
    days). A period of 0 working days ends on its start day."""
    if n < 0:
        raise ValueError(f"a period cannot be negative: {n} working days")
    day = start
    for _ in range(n):
        day = next_working_day(day + timedelta(days=1))
    return day


def non_working_days(first: date, last: date) -> list[tuple[date, date]]:
    """(day, next working day) for every non-working day in [first, last]: the table
    the relational engine joins to end a period on a working day.

    The same days as ``is_working_day`` and ``next_working_day`` give, computed in
    one backward pass over the announcements (a century of days in a fraction of
    a second: every evaluation that counts a grace period builds this table)."""
    lo, hi = covered_from(), covered_until()
    in_lieu, holidays = chinese_calendar.workdays, chinese_calendar.holidays

    def working(day: date) -> bool:
        if lo <= day.year <= hi:
            return day in in_lieu or (day.weekday() <= 4 and day not in holidays)
        return day.weekday() < 5 and (day.month, day.day) not in _FIXED_HOLIDAYS

    following = next_working_day(last + timedelta(days=1))
    out = []
    day = last
    while day >= first:
        if working(day):
            following = day
        else:
            out.append((day, following))
        day -= timedelta(days=1)
    out.reverse()
    return out


# ---------------------------------------------------------------------------
# Deadlines of due process (objections, corrections, reconsideration, repair)


class UncoveredYear(ValueError):
    """A deadline in working days that would need a year whose holidays are not known."""


def due_date(start: date, n: int, unit: str) -> date:
    """The last day of a due-process period of ``n`` ``unit`` ('days' or
    'working_days') starting on ``start`` (Civil Procedure Law Art. 85).

    Unlike the engine's periods (which must stay total, see the module docstring),
    a deadline owed to a subject is refused rather than guessed: a period that
    reaches a year outside ``chinese-calendar``'s published data raises
    ``UncoveredYear`` (a holiday missing from the fallback would move the day, and
    a wrong deadline would tell a subject they are out of time when they are not).
    """
    if unit == "days":
        end = add_days(start, n)
    elif unit == "working_days":
        end = add_working_days(start, n)
    else:
        raise ValueError(f"unknown period unit {unit!r}; one of days, working_days")
    for day in (start, end):
        if not is_covered(day):
            raise UncoveredYear(
                f"cannot count a period of {n} {unit.replace('_', ' ')} from {start}: the"
                f" holidays of {day.year} are not published in chinese-calendar (covers"
                f" {covered_from()}-{covered_until()}); update chinese-calendar"
            )
    return end
