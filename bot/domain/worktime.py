"""Deadlines in natural or working time, on a calendar of working days and working hours.

The rules, all applied in the local time of the `tz` given:

- Natural time adds the duration to the start: "2h natural" from 20:00 is 22:00, and
  "3d natural" is 72 hours later.
- Working minutes and hours count only minutes inside working periods (by default 08:30–12:00
  and 13:30–17:30) on working days. A report outside working time starts counting at the next
  working moment. A deadline that falls exactly at the end of a period stays there: 4 working
  hours from 13:30 is 17:30 the same day, not 08:30 the next morning.
- N working days are N times the working time of one full day, counted the same way. So from
  10:00 on Tuesday, 1 working day is 10:00 on Wednesday; from 20:00 on Friday (outside working
  time) counting starts on Monday morning and 1 working day ends at the close of Monday (17:30);
  and 3 working days from 15:00 on Friday are 15:00 on Wednesday.

Working days are Monday to Friday, minus public holidays, plus adjusted working days
(调休: weekend days worked in exchange for a longer holiday), read from a TOML file
(`bot/data/holidays.toml` by default).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.categories import TimeLimit

Period = tuple[time, time]

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "data" / "holidays.toml"
DEFAULT_PERIODS: tuple[Period, ...] = ((time(8, 30), time(12, 0)), (time(13, 30), time(17, 30)))
SEARCH_DAYS = 3660  # give up looking for working time after about ten years
_PERIOD = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")


class CalendarError(ValueError):
    """The holidays file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class WorkCalendar:
    """Working days (Mon–Fri, minus holidays, plus adjusted workdays) and working hours."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    periods: tuple[Period, ...] = DEFAULT_PERIODS

    def __post_init__(self) -> None:
        both = sorted(self.holidays & self.workdays)
        if both:
            raise ValueError(f"{both[0].isoformat()} is both a holiday and a working day")
        if not self.periods:
            raise ValueError("at least one working period is needed")
        previous_end: time | None = None
        for begin, end in self.periods:
            label = f"{begin:%H:%M}-{end:%H:%M}"
            if begin >= end:
                raise ValueError(f"working period {label} must end after it starts")
            if previous_end is not None and begin < previous_end:
                raise ValueError(f"working period {label} overlaps or comes before the one "
                                 "above it (list periods in order)")
            previous_end = end

    @classmethod
    def load(cls, path: str | Path) -> WorkCalendar:
        """Read a holidays file; raise CalendarError if anything in it is wrong."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CalendarError(f"{path}: cannot read the file: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CalendarError(f"{path}: the file is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise CalendarError(f"{path}: not valid TOML: {exc}") from None
        unknown = sorted(set(data) - {"holidays", "workdays", "hours"})
        if unknown:
            raise CalendarError(f"{path}: unknown field {unknown[0]!r} "
                                "(allowed: holidays, workdays, [hours])")
        holidays = _dates(path, "holidays", data.get("holidays", []))
        workdays = _dates(path, "workdays", data.get("workdays", []))
        periods = _periods(path, data.get("hours", {}))
        try:
            return cls(frozenset(holidays), frozenset(workdays), periods)
        except ValueError as exc:
            raise CalendarError(f"{path}: {exc}") from None

    @classmethod
    def default(cls) -> WorkCalendar:
        """Load the calendar shipped with gridbot (bot/data/holidays.toml)."""
        return cls.load(DEFAULT_PATH)

    @property
    def day_length(self) -> timedelta:
        """The working time in one working day (7.5 hours by default)."""
        return sum((_span(begin, end) for begin, end in self.periods), timedelta())

    def is_working_day(self, day: date) -> bool:
        """Tell whether this date is worked (a weekday not on holiday, or an adjusted workday)."""
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def deadline(self, start: datetime, limit: TimeLimit, tz: ZoneInfo) -> datetime:
        """Return when a time limit counted from `start` runs out (aware in, aware UTC out)."""
        _check_aware(start, "start")
        if not limit.working:
            return start.astimezone(UTC) + timedelta(**{limit.unit: limit.amount})
        if limit.unit == "days":
            needed = limit.amount * self.day_length
        else:
            needed = timedelta(**{limit.unit: limit.amount})
        local_start = _local(start, tz)
        for begin, end in self._periods_from(local_start):
            begin = max(begin, local_start)
            if needed <= end - begin:
                return _aware(begin + needed, tz)
            needed -= end - begin
        raise AssertionError("unreachable: _periods_from raises when it runs out")

    def working_time_between(self, start: datetime, end: datetime, tz: ZoneInfo) -> timedelta:
        """Return the working time from `start` to `end` (zero when end is not after start)."""
        _check_aware(start, "start")
        _check_aware(end, "end")
        local_start, local_end = _local(start, tz), _local(end, tz)
        total = timedelta()
        if local_end <= local_start:
            return total
        for begin, finish in self._periods_from(local_start):
            if begin >= local_end:
                break
            total += min(finish, local_end) - max(begin, local_start)
        return total

    def elapsed_fraction(
        self, start: datetime, deadline: datetime, now: datetime, limit: TimeLimit, tz: ZoneInfo
    ) -> float:
        """Return the share of start→deadline used by `now` (0.8 warn, 1.0 due; may pass 1)."""
        _check_aware(now, "now")
        if limit.working:
            used = self.working_time_between(start, now, tz)
            allowed = self.working_time_between(start, deadline, tz)
        else:
            _check_aware(start, "start")
            _check_aware(deadline, "deadline")
            used, allowed = now - start, deadline - start
        if allowed <= timedelta():
            return 1.0 if now >= deadline else 0.0
        return max(0.0, used / allowed)

    def _periods_from(self, moment: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Yield the local working periods that end after `moment`, in order."""
        day = moment.date()
        for _ in range(SEARCH_DAYS):
            if self.is_working_day(day):
                for begin, end in self.periods:
                    period = (datetime.combine(day, begin), datetime.combine(day, end))
                    if period[1] > moment:
                        yield period
            day += timedelta(days=1)
        raise ValueError(f"no working time within {SEARCH_DAYS} days of {moment:%Y-%m-%d}: "
                         "check the holidays file")


def _span(begin: time, end: time) -> timedelta:
    return datetime.combine(date.min, end) - datetime.combine(date.min, begin)


def _check_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}")


def _local(moment: datetime, tz: ZoneInfo) -> datetime:
    """The wall-clock time in `tz`, without tzinfo, for calendar arithmetic."""
    return moment.astimezone(tz).replace(tzinfo=None)


def _aware(local: datetime, tz: ZoneInfo) -> datetime:
    return local.replace(tzinfo=tz).astimezone(UTC)


def _dates(path: Path, key: str, value: Any) -> list[date]:
    if not isinstance(value, list):
        raise CalendarError(f"{path}: {key} must be a list of dates like [2026-10-01, 2026-10-02]")
    days: list[date] = []
    for number, item in enumerate(value, start=1):
        day = _as_date(item)
        if day is None:
            raise CalendarError(f"{path}: {key} item {number} ({item!r}) is not a date "
                                "like 2026-10-01")
        days.append(day)
    return days


def _as_date(item: object) -> date | None:
    if isinstance(item, datetime):
        return None
    if isinstance(item, date):
        return item
    if isinstance(item, str):
        try:
            return date.fromisoformat(item.strip())
        except ValueError:
            return None
    return None


def _periods(path: Path, hours: Any) -> tuple[Period, ...]:
    where = f"{path}: [hours]"
    if not isinstance(hours, dict):
        raise CalendarError(f"{where} must be a table with periods = [\"08:30-12:00\", ...]")
    unknown = sorted(set(hours) - {"periods"})
    if unknown:
        raise CalendarError(f"{where}: unknown field {unknown[0]!r} (allowed: periods)")
    raw = hours.get("periods")
    if raw is None:
        return DEFAULT_PERIODS
    if not isinstance(raw, list):
        raise CalendarError(f"{where}: periods must be a list like [\"08:30-12:00\", "
                            "\"13:30-17:30\"]")
    periods: list[Period] = []
    for item in raw:
        period = _as_period(item)
        if period is None:
            raise CalendarError(f"{where}: period {item!r} is not like \"08:30-12:00\"")
        periods.append(period)
    return tuple(periods)


def _as_period(item: object) -> Period | None:
    match = _PERIOD.fullmatch(item.strip()) if isinstance(item, str) else None
    if match is None:
        return None
    hour1, minute1, hour2, minute2 = (int(part) for part in match.groups())
    try:
        return time(hour1, minute1), time(hour2, minute2)
    except ValueError:
        return None
