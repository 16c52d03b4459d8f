"""The scheduler, driven by the fake clock: deadlines, digests, reminders, restarts."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from bot.bootstrap import Gridbot
from bot.domain.clock import FakeClock, iso
from bot.domain.workflow import Actor, Event, EventKind, Level, Role, State
from bot.runtime.scheduler import Scheduler, latest_occurrence
from bot.services import casework
from bot.services.broadcast import quiet_until
from bot.services.districts import Place
from bot.settings import Settings, SettingsError
from store import cases as case_store
from store import people as people_store
from store import planner
from store.db import fetch
from tests.chat import ChatDriver
from tests.helpers import COMMUNITY_1, GRID_1, STREET, add_staff, received, scheduler

TZ = ZoneInfo("Asia/Shanghai")


def local(text: str) -> datetime:
    """A Shanghai wall-clock time as an aware UTC moment."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ).astimezone(UTC)


async def file_case(gridbot: Gridbot, category: str = "sanitation") -> str:
    """A resident's case in grid 1 (the chief of grid 1 is in charge); its number."""
    now = gridbot.clock.now()
    async with gridbot.db.transaction() as conn:
        reporter = await people_store.add_person(conn, "老李", now)
        await people_store.add_contact(conn, reporter, "sim-telegram", "web:reporter", now)
        draft = casework.Draft(category=category, subcategory=None, description="垃圾堆了三天",
                               place=Place(GRID_1), photo_ids=(), channel="sim-telegram")
        filed = await casework.file_case(conn, gridbot.reference, reporter, draft, now)
    return filed.case.number


async def case(gridbot: Gridbot, number: str) -> case_store.StoredCase:
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None
    return stored


async def trail(gridbot: Gridbot, number: str) -> list[str]:
    stored = await case(gridbot, number)
    assert stored.case.id is not None
    return [e.event for e in await case_store.events(gridbot.db.conn, stored.case.id)]


# --- deadlines -----------------------------------------------------------------------------

async def test_the_warning_comes_at_80_percent_of_working_time(
        gridbot: Gridbot, clock: FakeClock) -> None:
    number = await file_case(gridbot)  # Monday 10:00, 4 working hours: due 15:30
    assert (await case(gridbot, number)).case.deadline == local("2026-11-23 15:30")
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    await received(chief)
    await scheduler(gridbot).tick()  # computes the moment: 3.2 working hours in, 14:42
    await received(chief)  # (the morning digest and the weekly notice, caught up)
    clock.current = local("2026-11-23 14:41")
    await scheduler(gridbot).tick()
    assert await received(chief) == []
    clock.current = local("2026-11-23 14:42")
    await scheduler(gridbot).tick()
    [warning] = [t for t in await received(chief) if "【提醒】" in t]
    assert number in warning
    await scheduler(gridbot).tick()
    assert await received(chief) == []
    assert (await trail(gridbot, number)).count("warn") == 1


async def test_a_weekend_does_not_bring_the_warning_forward(
        gridbot: Gridbot, clock: FakeClock) -> None:
    clock.current = local("2026-11-27 16:00")  # Friday; 1.5 h today, 2.5 h on Monday
    number = await file_case(gridbot)
    assert (await case(gridbot, number)).case.deadline == local("2026-11-30 11:00")
    await scheduler(gridbot).tick()
    clock.current = local("2026-11-29 22:00")  # Sunday night: 80 % of the natural span
    await scheduler(gridbot).tick()
    assert (await trail(gridbot, number)).count("warn") == 0
    clock.current = local("2026-11-30 10:12")  # 1.5 h + 1.7 h of working time
    await scheduler(gridbot).tick()
    assert (await trail(gridbot, number)).count("warn") == 1


async def test_a_breach_escalates_with_a_supervision_notice_and_a_new_deadline(
        gridbot: Gridbot, clock: FakeClock) -> None:
    await add_staff(gridbot, "社区主任", "community_director", COMMUNITY_1, "web:director")
    director = ChatDriver(gridbot, "sim-telegram", "web:director")
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    number = await file_case(gridbot)
    await received(chief)
    clock.current = local("2026-11-23 15:31")
    await scheduler(gridbot).tick()
    stored = await case(gridbot, number)
    assert stored.case.level == Level.COMMUNITY and stored.case.state == State.REGISTERED
    assert stored.case.deadline == local("2026-11-24 10:31")  # 4 working hours from now
    [supervision] = await received(director)
    assert "【督办】" in supervision and number in supervision
    assert any("已超期" in text for text in await received(chief))
    assert (await trail(gridbot, number))[-1] == "escalate"
    await scheduler(gridbot).tick()
    assert await received(director) == []
    assert (await trail(gridbot, number)).count("escalate") == 1


async def test_at_the_street_a_breach_goes_to_the_supervisors_once(
        gridbot: Gridbot, clock: FakeClock) -> None:
    await add_staff(gridbot, "督导员", "supervisor", STREET, "web:supervisor")
    supervisor = ChatDriver(gridbot, "sim-telegram", "web:supervisor")
    number = await file_case(gridbot)
    for moment in ("2026-11-23 15:31", "2026-11-24 11:32", "2026-11-24 17:00"):
        clock.current = local(moment)
        await scheduler(gridbot).tick()
    stored = await case(gridbot, number)
    assert stored.case.level == Level.STREET
    clock.current = local("2026-11-25 17:00")  # past the street's deadline too
    await scheduler(gridbot).tick()
    await scheduler(gridbot).tick()
    supervision = [t for t in await received(supervisor) if "【督办】" in t]
    assert len(supervision) == 1
    assert (await case(gridbot, number)).case.level == Level.STREET


async def test_a_restarted_scheduler_does_not_repeat_what_was_done(
        gridbot: Gridbot, clock: FakeClock) -> None:
    number = await file_case(gridbot)
    clock.current = local("2026-11-23 14:50")
    await scheduler(gridbot).tick()
    again = Scheduler(gridbot.db, gridbot.reference, gridbot.renderer, clock, gridbot.settings)
    await again.tick()
    assert (await trail(gridbot, number)).count("warn") == 1


async def test_a_suspended_case_is_not_chased(gridbot: Gridbot, clock: FakeClock) -> None:
    number = await file_case(gridbot)
    stored = await case(gridbot, number)
    admin = Actor(person_id=None, role=Role.ADMIN, scope=None)
    async with gridbot.db.transaction() as conn:
        await casework.apply_event(conn, gridbot.reference, stored,
                                   Event(EventKind.SUSPEND, note="等待施工队"), admin,
                                   clock.now())
    clock.current = local("2026-11-24 17:00")
    await scheduler(gridbot).tick()
    assert "warn" not in await trail(gridbot, number)
    assert "escalate" not in await trail(gridbot, number)



async def break_case(gridbot: Gridbot, number: str) -> None:
    """Spoil a case's stored workflow, as a bad migration or a hand edit might."""
    async with gridbot.db.transaction() as conn:
        await conn.execute("UPDATE cases SET workflow = '{}' WHERE number = ?", (number,))


async def timers(gridbot: Gridbot, number: str) -> tuple[str | None, str | None]:
    rows = await gridbot.db.fetchall("SELECT warn_at, breach_at FROM cases WHERE number = ?",
                                     (number,))
    return rows[0][0], rows[0][1]


async def test_a_broken_case_does_not_hold_up_the_other_warnings(
        gridbot: Gridbot, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    broken, sound = await file_case(gridbot), await file_case(gridbot)
    await scheduler(gridbot).tick()
    await break_case(gridbot, broken)
    clock.current = local("2026-11-23 14:50")
    await scheduler(gridbot).tick()
    assert (await trail(gridbot, sound)).count("warn") == 1
    assert f"trying again at {iso(clock.now() + timedelta(hours=1))}" in caplog.text
    assert (await timers(gridbot, broken))[0] == iso(clock.now() + timedelta(hours=1))
    caplog.clear()
    await scheduler(gridbot).tick()
    assert "could not be worked out" not in caplog.text  # not again every tick


async def test_a_broken_case_does_not_hold_up_the_other_escalations(
        gridbot: Gridbot, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    broken, sound = await file_case(gridbot), await file_case(gridbot)
    await break_case(gridbot, broken)
    clock.current = local("2026-11-23 15:31")
    await scheduler(gridbot).tick()
    assert (await trail(gridbot, sound))[-1] == "escalate"
    assert "its deadline could not be acted on" in caplog.text
    assert (await timers(gridbot, broken))[1] == iso(clock.now() + timedelta(hours=1))
    events = await gridbot.db.fetchall(
        "SELECT event FROM case_events JOIN cases ON cases.id = case_id WHERE number = ?",
        (broken,))
    assert "escalate" not in [e[0] for e in events]
    caplog.clear()
    clock.current += timedelta(hours=1)
    await scheduler(gridbot).tick()
    assert "its deadline could not be acted on" in caplog.text  # looked at again


async def test_an_escalation_that_fails_half_way_keeps_nothing_of_it(
        gridbot: Gridbot, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = await file_case(gridbot), await file_case(gridbot)
    sweeper = scheduler(gridbot)
    render = sweeper.deadlines._render
    failures = [RuntimeError("renderer broke after the escalation was written")]

    async def render_failing_once(*args: Any) -> Any:
        if failures:
            raise failures.pop()
        return await render(*args)

    monkeypatch.setattr(sweeper.deadlines, "_render", render_failing_once)
    clock.current = local("2026-11-23 15:31")
    await sweeper.tick()
    assert (await trail(gridbot, first)).count("escalate") == 0  # rolled back to its start
    assert (await case(gridbot, first)).case.level == Level.GRID
    assert (await trail(gridbot, second))[-1] == "escalate"
    clock.current += timedelta(hours=1)
    await sweeper.tick()
    assert (await trail(gridbot, first)).count("escalate") == 1
# --- digests, rating reminders, the weekly meeting ----------------------------------------

async def test_the_morning_digest_lists_open_cases_overdue_first_once_a_day(
        gridbot: Gridbot, clock: FakeClock) -> None:
    clock.current = local("2026-11-23 09:00")
    later = await file_case(gridbot, "roads")  # 1 working day or more
    clock.current = local("2026-11-23 11:00")
    overdue = await file_case(gridbot)  # due 16:30
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    await received(chief)
    clock.current = local("2026-11-24 08:30")
    await scheduler(gridbot).run_jobs(clock.now())
    digests = [t for t in await received(chief) if "早上好" in t]
    assert len(digests) == 1
    assert digests[0].index(overdue) < digests[0].index(later)
    assert "已超期 1 件" in digests[0] and f"⚠️超期 {overdue}" in digests[0]
    restarted = Scheduler(gridbot.db, gridbot.reference, gridbot.renderer, clock,
                          gridbot.settings)
    await restarted.tick()
    assert not [t for t in await received(chief) if "早上好" in t]


async def test_a_late_start_catches_up_one_digest_not_many(
        gridbot: Gridbot, clock: FakeClock) -> None:
    await file_case(gridbot, "roads")
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    await received(chief)
    clock.current = local("2026-11-27 09:40")  # down since Monday
    await scheduler(gridbot).tick()
    assert len([t for t in await received(chief) if "早上好" in t]) == 1


async def test_the_evening_digest_lists_what_is_due_today(
        gridbot: Gridbot, clock: FakeClock) -> None:
    today = await file_case(gridbot)  # due 15:30 today
    later = await file_case(gridbot, "other")  # U4: days
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    clock.current = local("2026-11-23 17:30")
    await scheduler(gridbot).run_jobs(clock.now())
    [evening] = [t for t in await received(chief) if "今日待结" in t]
    assert today in evening and later not in evening


async def test_an_unrated_case_gets_one_reminder_a_day_after_closing(
        gridbot: Gridbot, clock: FakeClock) -> None:
    number = await file_case(gridbot)
    admin = Actor(person_id=None, role=Role.ADMIN, scope=None)
    for kind in (EventKind.SIGN, EventKind.REPORT_DONE, EventKind.CHECK_PASS):
        async with gridbot.db.transaction() as conn:
            stored = await case_store.get_by_number(conn, number)
            assert stored is not None
            await casework.apply_event(conn, gridbot.reference, stored, Event(kind), admin,
                                       clock.now())
    reporter = ChatDriver(gridbot, "sim-telegram", "web:reporter")
    await received(reporter)
    clock.advance(timedelta(hours=23))
    await scheduler(gridbot).remind_ratings(clock.now())
    assert await received(reporter) == []
    clock.advance(timedelta(hours=2))
    assert await scheduler(gridbot).remind_ratings(clock.now()) == 1
    [reminder] = await received(reporter)
    assert number in reminder and reporter.last[0].buttons[0][0] == "★★★★★"
    clock.advance(timedelta(hours=2))
    assert await scheduler(gridbot).remind_ratings(clock.now()) == 0


async def test_the_weekly_meeting_notice_goes_to_every_chief_on_its_cron(
        gridbot: Gridbot, clock: FakeClock) -> None:
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0204")
    clock.current = local("2026-11-30 09:00")
    await scheduler(gridbot).run_jobs(clock.now())
    [weekly] = [t for t in await received(chief) if "例会" in t]
    assert chief.last[-1].buttons[0][0] == "收到"
    await scheduler(gridbot).run_jobs(clock.now())
    assert await received(chief) == []
    assert weekly


# --- the pieces ----------------------------------------------------------------------------

def test_quiet_hours_span_midnight() -> None:
    quiet = (time(21), time(8))
    assert quiet_until(local("2026-11-23 20:59"), quiet, TZ) is None
    assert quiet_until(local("2026-11-23 21:00"), quiet, TZ) == local("2026-11-24 08:00")
    assert quiet_until(local("2026-11-24 07:59"), quiet, TZ) == local("2026-11-24 08:00")
    assert quiet_until(local("2026-11-24 08:00"), quiet, TZ) is None
    assert quiet_until(local("2026-11-24 03:00"), None, TZ) is None


def test_only_the_latest_missed_occurrence_within_the_grace_counts() -> None:
    trigger = CronTrigger(hour=8, minute=30, timezone=TZ)
    assert latest_occurrence(trigger, local("2026-11-27 09:00")) == local("2026-11-27 08:30")
    assert latest_occurrence(trigger, local("2026-11-27 08:29")) is None  # 24 h ago: too late


@pytest.mark.parametrize("name,value,message", [
    ("GRIDBOT_TICK_SECONDS", "0", "GRIDBOT_TICK_SECONDS"),
    ("GRIDBOT_TICK_SECONDS", "7200", "from 1 to 3600"),
    ("GRIDBOT_DIGEST_MORNING", "8.30", "GRIDBOT_DIGEST_MORNING: must be a local time"),
    ("GRIDBOT_QUIET_HOURS", "21-8", "GRIDBOT_QUIET_HOURS: must be two different local times"),
    ("GRIDBOT_MEETING_CRON", "0 9 * *", "GRIDBOT_MEETING_CRON: must be a crontab line"),
    ("GRIDBOT_MEETING_CRON", "0 25 * * mon", "GRIDBOT_MEETING_CRON"),
    ("GRIDBOT_TELEGRAM_RATE", "fast", "GRIDBOT_TELEGRAM_RATE: must be a positive number"),
])
def test_a_wrong_scheduler_setting_names_itself(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_mapping({name: value})


def test_scheduler_settings_read_times_and_crontab_weekdays() -> None:
    settings = Settings.from_mapping({"GRIDBOT_DIGEST_EVENING": "off",
                                      "GRIDBOT_QUIET_HOURS": "22:30-07:00",
                                      "GRIDBOT_MEETING_CRON": "0 9 * * 1"})
    assert settings.digest_evening is None and settings.digest_morning == time(8, 30)
    assert settings.quiet_hours == (time(22, 30), time(7))
    assert settings.meeting_cron == "0 9 * * 1"  # crontab's 1: Monday


async def test_a_clock_tick_while_a_slow_tick_runs_is_skipped_quietly(
        gridbot: Gridbot, caplog: pytest.LogCaptureFixture) -> None:
    """Under load a tick can outlast its interval: the next clock tick does nothing
    (no second sweep at once, no warning flood) and the one after runs as usual."""
    ticks = scheduler(gridbot)
    async with ticks._lock:  # a tick under way
        await ticks._clock_tick()
        await ticks._clock_tick()
    assert ticks.skipped_ticks == 2
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    ran = []
    original = ticks.tick

    async def counted() -> dict[str, int]:
        ran.append(1)
        return await original()

    ticks.tick = counted  # type: ignore[method-assign]
    await ticks._clock_tick()
    assert ran == [1] and ticks.skipped_ticks == 2


async def test_the_rating_reminder_sweep_reads_only_the_windows_closings(
        gridbot: Gridbot) -> None:
    """Each tick asks for the cases closed in its window: through the partial index of
    closings, not every closed case there ever was (SQLite is never analysed here)."""
    from store import schedule as schedule_store
    from store.db import is_postgres

    if not is_postgres(gridbot.db.conn):  # PostgreSQL's planner measures the table itself
        plan = " ".join(str(r[3]) for r in await gridbot.db.fetchall(
            "EXPLAIN QUERY PLAN " + schedule_store.CLOSED_UNRATED, ["a", "b"]))
        assert "cases_closed_unrated" in plan and "SCAN cases" not in plan, plan
    assert await schedule_store.closed_unrated(
        gridbot.db.conn, local("2026-11-01 00:00"), local("2026-11-02 00:00")) == []


async def test_sqlites_planner_statistics_are_taken_again_as_the_cases_double(
        gridbot: Gridbot, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without statistics SQLite's planner guesses, and at a million cases it guesses
    slow plans: the tick analyzes once the cases reach ANALYZE_FROM, and again only when
    they have doubled since (PostgreSQL analyzes by itself: nothing to do there)."""
    monkeypatch.setattr(planner, "ANALYZE_FROM", 3)
    analyzed: list[int] = []
    take = planner.analyze

    async def analyze(conn: Any) -> None:
        analyzed.append(len(await fetch(conn, "SELECT id FROM cases")))
        await take(conn)

    monkeypatch.setattr(planner, "analyze", analyze)

    async def cases_analyzed() -> int:
        rows = await fetch(gridbot.db.conn, "SELECT stat FROM sqlite_stat1 WHERE idx ="
                           " 'cases_state_changed'")
        return int(str(rows[0][0]).split()[0]) if rows else 0

    for _ in range(7):
        await file_case(gridbot)
        await scheduler(gridbot).tick()
        await scheduler(gridbot).tick()  # nothing grew: no second analysis
    if gridbot.db.postgres:
        assert analyzed == []
        return
    assert analyzed == [3, 6]
    assert await cases_analyzed() == 6
