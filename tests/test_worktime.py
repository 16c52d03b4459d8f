"""Deadlines in natural and working time; every expected time below is worked out by hand.

Default working hours: 08:30–12:00 and 13:30–17:30 (7.5 hours a day), Asia/Shanghai.
March 2026: Monday 2 … Friday 6, Saturday 7, Monday 9. The 2026 holidays come from the
shipped bot/data/holidays.toml.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.domain.categories import TimeLimit
from bot.domain.worktime import CalendarError, WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
PLAIN = WorkCalendar()  # Monday to Friday, no holidays


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in 2026, Shanghai time."""
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


@pytest.fixture(scope="module")
def calendar_2026() -> WorkCalendar:
    return WorkCalendar.default()


def deadline(start: datetime, limit: str, calendar: WorkCalendar = PLAIN) -> datetime:
    return calendar.deadline(start, TimeLimit.parse(limit), SH)


# --- working hours -------------------------------------------------------------------------


def test_working_hours_inside_one_period() -> None:
    assert deadline(at(3, 2, 9), "2h working") == at(3, 2, 11)


def test_working_hours_skip_the_lunch_break() -> None:
    # 11:00–12:00 is 1 h, then 13:30–14:30.
    assert deadline(at(3, 2, 11), "2h working") == at(3, 2, 14, 30)


def test_report_during_lunch_starts_counting_at_1330() -> None:
    assert deadline(at(3, 2, 12, 15), "1h working") == at(3, 2, 14, 30)


def test_working_minutes_skip_the_lunch_break() -> None:
    # 11:50–12:00 is 10 min, then 13:30–13:50.
    assert deadline(at(3, 2, 11, 50), "30m working") == at(3, 2, 13, 50)


def test_working_hours_continue_next_morning() -> None:
    # Tuesday 16:30–17:30 is 1 h, then Wednesday 08:30–11:30.
    assert deadline(at(3, 3, 16, 30), "4h working") == at(3, 4, 11, 30)


def test_evening_report_starts_counting_next_morning() -> None:
    # Wednesday 08:30–12:00 is 3.5 h, then 13:30–14:00.
    assert deadline(at(3, 3, 20), "4h working") == at(3, 4, 14)


def test_deadline_at_the_close_of_a_period_stays_there() -> None:
    assert deadline(at(3, 2, 13, 30), "4h working") == at(3, 2, 17, 30)
    assert deadline(at(3, 2, 8, 30), "3h working") == at(3, 2, 11, 30)


def test_working_hours_skip_the_weekend() -> None:
    # Friday 16:00–17:30 is 1.5 h, then Monday 08:30–11:00.
    assert deadline(at(3, 6, 16), "4h working") == at(3, 9, 11)


def test_working_hours_skip_a_public_holiday(calendar_2026: WorkCalendar) -> None:
    # Thursday 30 April 16:00–17:30 is 1.5 h; 1–5 May is Labour Day; Wednesday 6 May 08:30–11:00.
    assert deadline(at(4, 30, 16), "4h working", calendar_2026) == at(5, 6, 11)


def test_working_hours_count_an_adjusted_saturday(calendar_2026: WorkCalendar) -> None:
    # Friday 8 May 16:00–17:30 is 1.5 h; Saturday 9 May is a working day (调休): 08:30–11:00.
    assert deadline(at(5, 8, 16), "4h working", calendar_2026) == at(5, 9, 11)


def test_report_on_an_adjusted_sunday_counts_that_day(calendar_2026: WorkCalendar) -> None:
    assert deadline(at(9, 20, 10), "2h working", calendar_2026) == at(9, 20, 12)


def test_custom_working_periods_are_used() -> None:
    calendar = WorkCalendar(periods=((time(9), time(17)),))
    assert calendar.day_length == timedelta(hours=8)
    assert deadline(at(3, 2, 9), "8h working", calendar) == at(3, 2, 17)
    assert deadline(at(3, 2, 16), "2h working", calendar) == at(3, 3, 10)


# --- working days --------------------------------------------------------------------------


def test_one_working_day_is_the_same_time_next_working_day() -> None:
    assert deadline(at(3, 3, 10), "1d working") == at(3, 4, 10)


def test_working_days_skip_the_weekend() -> None:
    assert deadline(at(3, 6, 15), "3d working") == at(3, 11, 15)


def test_friday_evening_report_is_due_at_the_close_of_monday() -> None:
    assert deadline(at(3, 6, 20), "1d working") == at(3, 9, 17, 30)
    assert deadline(at(3, 7, 10), "1d working") == at(3, 9, 17, 30)


def test_working_days_skip_a_public_holiday(calendar_2026: WorkCalendar) -> None:
    assert deadline(at(4, 30, 10), "1d working", calendar_2026) == at(5, 6, 10)


def test_working_days_count_adjusted_workdays_around_spring_festival(
    calendar_2026: WorkCalendar,
) -> None:
    # Saturday 14 February is worked; 15–23 February is the holiday.
    assert deadline(at(2, 13, 16), "1d working", calendar_2026) == at(2, 14, 16)
    assert deadline(at(2, 14, 10), "2d working", calendar_2026) == at(2, 25, 10)


def test_fifteen_working_days_over_national_day(calendar_2026: WorkCalendar) -> None:
    # From Monday 28 September 10:00: 29, 30 Sep; (1–7 Oct off); 8, 9, 10 (Sat, worked),
    # 12–16, 19–23 October is 15 working days.
    assert deadline(at(9, 28, 10), "15d working", calendar_2026) == at(10, 23, 10)


# --- natural time and time zones -----------------------------------------------------------


def test_natural_hours_ignore_evenings_and_weekends() -> None:
    assert deadline(at(3, 6, 20), "2h natural") == at(3, 6, 22)
    assert deadline(at(3, 6, 23, 50), "30m natural") == at(3, 7, 0, 20)
    assert deadline(at(3, 7, 10), "3d natural") == at(3, 10, 10)


def test_natural_time_ignores_holidays(calendar_2026: WorkCalendar) -> None:
    assert deadline(at(10, 1, 9), "2h natural", calendar_2026) == at(10, 1, 11)


def test_deadline_takes_utc_and_returns_utc() -> None:
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    result = PLAIN.deadline(start, TimeLimit.parse("2h working"), SH)
    assert result == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    assert result.utcoffset() == timedelta(0)
    natural = PLAIN.deadline(at(3, 2, 9), TimeLimit.parse("2h natural"), SH)
    assert natural.utcoffset() == timedelta(0)


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        PLAIN.deadline(datetime(2026, 3, 2, 9), TimeLimit.parse("2h working"), SH)


# --- elapsed fraction ----------------------------------------------------------------------


def test_elapsed_fraction_of_working_time() -> None:
    limit = TimeLimit.parse("4h working")
    start = at(3, 2, 9)
    due = PLAIN.deadline(start, limit, SH)
    assert due == at(3, 2, 14, 30)

    def fraction(now: datetime) -> float:
        return PLAIN.elapsed_fraction(start, due, now, limit, SH)

    assert fraction(start) == 0.0
    assert fraction(at(3, 2, 8)) == 0.0  # before the start
    # 80% of 240 min is 192 min: 09:00–12:00 is 180, then 13:30–13:42.
    assert fraction(at(3, 2, 13, 42)) == pytest.approx(0.8)
    assert fraction(due) == pytest.approx(1.0)
    # The lunch break does not count: 12:45 and 13:30 are both at 180 of 240 min.
    assert fraction(at(3, 2, 12, 45)) == pytest.approx(0.75)
    assert fraction(at(3, 2, 13, 30)) == pytest.approx(0.75)
    # Past the deadline the share goes above 1: 09:00–17:30 is 420 min.
    assert fraction(at(3, 2, 17, 30)) == pytest.approx(1.75)


def test_elapsed_fraction_of_working_days_stands_still_over_the_weekend() -> None:
    limit = TimeLimit.parse("1d working")
    start = at(3, 6, 14)  # Friday
    due = PLAIN.deadline(start, limit, SH)
    assert due == at(3, 9, 14)
    friday_close = PLAIN.elapsed_fraction(start, due, at(3, 6, 17, 30), limit, SH)
    sunday = PLAIN.elapsed_fraction(start, due, at(3, 8, 12), limit, SH)
    assert friday_close == sunday == pytest.approx(210 / 450)


def test_elapsed_fraction_of_natural_time() -> None:
    limit = TimeLimit.parse("2h natural")
    start = at(3, 6, 20)
    due = PLAIN.deadline(start, limit, SH)
    assert PLAIN.elapsed_fraction(start, due, start, limit, SH) == 0.0
    assert PLAIN.elapsed_fraction(start, due, at(3, 6, 21, 36), limit, SH) == pytest.approx(0.8)
    assert PLAIN.elapsed_fraction(start, due, due, limit, SH) == pytest.approx(1.0)


def test_elapsed_fraction_follows_an_extended_deadline() -> None:
    limit = TimeLimit.parse("4h working")
    start = at(3, 2, 9)
    extended = at(3, 3, 9)  # 420 min of working time (09:00–17:30) + 30 min (08:30–09:00)
    now = at(3, 2, 13, 42)  # 192 min used
    assert PLAIN.elapsed_fraction(start, extended, now, limit, SH) == pytest.approx(192 / 450)


def test_working_time_between_counts_only_working_minutes() -> None:
    assert PLAIN.working_time_between(at(3, 6, 16), at(3, 9, 9), SH) == timedelta(hours=2)
    assert PLAIN.working_time_between(at(3, 9, 9), at(3, 6, 16), SH) == timedelta(0)


# --- the calendar --------------------------------------------------------------------------


def test_default_calendar_knows_2026_holidays_and_adjusted_workdays(
    calendar_2026: WorkCalendar,
) -> None:
    assert calendar_2026.is_working_day(date(2026, 3, 2))  # ordinary Monday
    assert not calendar_2026.is_working_day(date(2026, 3, 7))  # ordinary Saturday
    for holiday in [date(2026, 1, 1), date(2026, 2, 17), date(2026, 4, 6), date(2026, 5, 5),
                    date(2026, 6, 19), date(2026, 9, 25), date(2026, 10, 7)]:
        assert not calendar_2026.is_working_day(holiday), holiday
    for workday in [date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9),
                    date(2026, 9, 20), date(2026, 10, 10)]:
        assert calendar_2026.is_working_day(workday), workday
    assert calendar_2026.day_length == timedelta(hours=7, minutes=30)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "holidays.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_calendar_file_with_text_dates_and_custom_hours_loads(tmp_path: Path) -> None:
    path = write(tmp_path, 'holidays = ["2026-03-03"]\nworkdays = [2026-03-07]\n'
                           '[hours]\nperiods = ["09:00-17:00"]\n')
    calendar = WorkCalendar.load(path)
    assert not calendar.is_working_day(date(2026, 3, 3))
    assert calendar.is_working_day(date(2026, 3, 7))
    assert calendar.periods == ((time(9), time(17)),)


def test_calendar_file_without_hours_uses_the_default_periods(tmp_path: Path) -> None:
    calendar = WorkCalendar.load(write(tmp_path, "holidays = []\n"))
    assert calendar.day_length == timedelta(hours=7, minutes=30)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("holidays = [2026-10-01]\nworkdays = [2026-10-01]\n", "2026-10-01 is both"),
        ('holidays = ["2026-13-01"]\n', "holidays item 1 ('2026-13-01') is not a date"),
        ("holidays = [2026-10-01T08:00:00]\n", "is not a date"),
        ("holidays = 2026-10-01\n", "holidays must be a list"),
        ('[hours]\nperiods = ["13:30-12:00"]\n', "must end after it starts"),
        ('[hours]\nperiods = ["13:30-17:30", "08:30-12:00"]\n', "list periods in order"),
        ('[hours]\nperiods = ["8h-12h"]\n', "period '8h-12h' is not like"),
        ('[hours]\nperiods = ["08:30-25:00"]\n', "is not like"),
        ("[hours]\nperiods = []\n", "at least one working period"),
        ("holiday = [2026-10-01]\n", "unknown field 'holiday'"),
        ("holidays = [2026-10-01\n", "not valid TOML"),
    ],
)
def test_broken_calendar_file_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CalendarError) as info:
        WorkCalendar.load(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)
