"""The working-day calendar and the Asia/Shanghai calendar arithmetic (issue 7,
findings 6 and 7). Expected values come from the State Council's holiday
announcements and PRC Civil Procedure Law, Art. 85 (SOURCES.md §1)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from xinyong.calendar import (
    add_days,
    add_working_days,
    covered_until,
    is_covered,
    is_working_day,
    next_working_day,
    non_working_days,
)
from xinyong.engine.reference import period_end
from xinyong.timeutil import add_local_months, add_local_years, parse_instant


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2024, 3, 29), True),  # Friday
        (date(2024, 3, 31), False),  # Sunday
        (date(2024, 4, 4), False),  # Qingming
        (date(2024, 4, 7), True),  # Sunday worked in lieu of Qingming
        (date(2024, 5, 1), False),  # Labour Day
        (date(2024, 10, 7), False),  # National Day week
        (date(2024, 10, 12), True),  # Saturday worked in lieu
    ],
)
def test_working_days_follow_the_announced_calendar(day: date, working: bool) -> None:
    assert is_working_day(day) is working


def test_a_period_does_not_count_its_first_day_and_ends_on_a_working_day() -> None:
    # Art. 85: 30 days from 2024-03-01 end with day 30, Sunday 2024-03-31, moved to Monday.
    assert add_days(date(2024, 3, 1), 30) == date(2024, 4, 1)
    # Day 60 from 2024-03-01 is Tuesday 2024-04-30, a working day: no move.
    assert add_days(date(2024, 3, 1), 60) == date(2024, 4, 30)
    # A last day in the National Day week moves to the first working day after it.
    assert add_days(date(2024, 9, 30), 2) == date(2024, 10, 8)
    assert add_days(date(2024, 3, 1), 0) == date(2024, 3, 1)
    with pytest.raises(ValueError, match="negative"):
        add_days(date(2024, 3, 1), -1)


def test_working_days_skip_holidays_and_count_in_lieu_weekends() -> None:
    # From Friday 2024-09-27: Sunday 09-29 is worked in lieu (day 1), Monday 09-30
    # (day 2), then the National Day holiday until 10-07: day 3 is 2024-10-08.
    assert add_working_days(date(2024, 9, 27), 3) == date(2024, 10, 8)
    assert add_working_days(date(2024, 3, 29), 1) == date(2024, 4, 1)
    assert add_working_days(date(2024, 3, 29), 0) == date(2024, 3, 29)
    assert next_working_day(date(2024, 5, 1)) == date(2024, 5, 6)


def test_beyond_the_published_years_weekends_and_fixed_holidays_remain() -> None:
    last = covered_until()
    assert last >= 2026
    beyond = last + 1
    assert not is_covered(date(beyond, 3, 2))
    assert is_covered(date(last, 12, 31))
    new_year = date(beyond, 1, 1)
    assert not is_working_day(new_year)
    assert not is_working_day(date(beyond, 5, 1))
    assert not is_working_day(date(beyond, 10, 3))
    monday = next(date(beyond, 3, d) for d in range(1, 8) if date(beyond, 3, d).weekday() == 0)
    assert is_working_day(monday)
    assert not is_working_day(date.fromordinal(monday.toordinal() - 1))  # Sunday


def test_grace_period_starts_the_restriction_after_its_last_day() -> None:
    # The example: a decision of 2024-03-01 with 30 grace days restricts
    # from 2024-04-02 00:00 local, once Monday 2024-04-01 has passed.
    decided = parse_instant("2024-03-01T15:30:00+08:00")
    assert period_end(decided, 30) == parse_instant("2024-04-02")
    assert period_end(decided, 0) == decided


def test_years_and_months_are_counted_on_the_shanghai_calendar() -> None:
    start = parse_instant("2022-03-01")  # 2022-02-28 16:00 UTC
    assert add_local_years(start, 2) == parse_instant("2024-03-01")
    assert add_local_years(parse_instant("2024-02-29"), 1) == parse_instant("2025-02-28")
    assert add_local_months(parse_instant("2024-08-31"), 6) == parse_instant("2025-02-28")
    assert add_local_months(start, 6) == parse_instant("2022-09-01")
    late = datetime(2022, 2, 28, 15, 59)  # 23:59 local on 2022-02-28
    assert add_local_years(late, 2) == datetime(2024, 2, 28, 15, 59)


def test_the_engines_table_of_non_working_days_agrees_with_the_calendar() -> None:
    # The table the relational engine joins (one backward pass) against the day-by-day
    # definition, across the published years and the fallback after them.
    first, last = date(2003, 12, 1), date(covered_until() + 2, 1, 31)
    expected = []
    day = first
    while day <= last:
        if not is_working_day(day):
            expected.append((day, next_working_day(day)))
        day += timedelta(days=1)
    assert non_working_days(first, last) == expected
    # Spring Festival 2024: 10-17 February off, the period ends on Sunday 18th, worked in lieu.
    table = dict(non_working_days(date(2024, 2, 1), date(2024, 2, 29)))
    assert table[date(2024, 2, 10)] == date(2024, 2, 18)
    assert date(2024, 2, 18) not in table
