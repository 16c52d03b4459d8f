"""A department with its own Open311 system receives the cases dispatched to it and closes
them from its side: end to end against a fake GeoReport server on localhost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.bootstrap import Gridbot
from bot.domain.clock import FakeClock
from bot.domain.departments import Open311Link, load_departments
from bot.domain.workflow import Actor, Event, EventKind, Level, Role, State
from bot.services import casework
from bot.services.notify import render_personal
from store import cases as case_store
from store import open311 as open311_store
from store import outbox as outbox_store
from tests.chat import ChatDriver
from tests.fake_open311 import FakeOpen311
from tests.helpers import GRID_1, received, report_by_menu, scheduler

KEY = "their-key-for-gridbot"


@pytest.fixture
async def department(gridbot: Gridbot) -> AsyncIterator[FakeOpen311]:
    """The utilities department works in its own Open311 system (the fake)."""
    fake = FakeOpen311(KEY)
    await fake.start()
    link = Open311Link(fake.endpoint, KEY, "999",
                       service_codes={"utilities": "301", "roads-pothole": "302"})
    gridbot.reference.departments[:] = [replace(d, open311=link) if d.code == "utilities"
                                        else d for d in gridbot.reference.departments]
    try:
        yield fake
    finally:
        await fake.stop()


async def dispatch_to_utilities(bot: Gridbot, number: str) -> None:
    """The grid chief dispatches the case to the utilities department, as from his menu."""
    async with bot.db.transaction() as conn:
        stored = await case_store.get_by_number(conn, number)
        assert stored is not None and stored.case.assignee_id is not None
        chief = Actor(stored.case.assignee_id, Role.GRID_CHIEF, GRID_1)
        _, notices = await casework.apply_event(
            conn, bot.reference, stored,
            Event(EventKind.DISPATCH, level=Level.DEPARTMENT, department="utilities"), chief,
            bot.clock.now())


async def state_of(bot: Gridbot, number: str) -> State:
    stored = await case_store.get_by_number(bot.db.conn, number)
    assert stored is not None
    return stored.case.state


async def test_a_dispatched_case_is_done_in_the_departments_system_and_the_resident_told(
        gridbot: Gridbot, resident: ChatDriver, department: FakeOpen311) -> None:
    number = await report_by_menu(resident)
    await received(resident)
    await dispatch_to_utilities(gridbot, number)
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.id is not None
    [queued] = await open311_store.outbound_of(gridbot.db.conn, stored.case.id)
    assert queued.status == "queued"  # a row before any attempt

    await scheduler(gridbot).tick()
    [sent] = department.received
    assert sent["service_code"] == "301" and sent["attribute[gridbot_case]"] == number
    assert "路灯不亮了" in sent["description"] and sent["lat"].startswith("30.28")
    [row] = await open311_store.outbound_of(gridbot.db.conn, stored.case.id)
    assert row.status == "sent" and row.external_id == "EXT-1"

    department.report("EXT-1", "IN_PROGRESS", gridbot.clock.now(), "已派维修班组")
    await scheduler(gridbot).tick()
    assert await state_of(gridbot, number) == State.IN_PROGRESS
    department.report("EXT-1", "FIXED", gridbot.clock.now(), "路灯已更换")
    await scheduler(gridbot).tick()
    assert await state_of(gridbot, number) == State.RESOLVED
    await scheduler(gridbot).tick()  # the same updates again: applied once only
    events = await case_store.events(gridbot.db.conn, stored.case.id)
    assert [e.event for e in events].count("report_done") == 1
    assert events[-1].actor_role == "department" and events[-1].note == "路灯已更换"

    # The grid chief, told it is done, checks on site and closes; the resident is told.
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    assert any("请现场核查" in m and number in m for m in await received(chief))
    async with gridbot.db.transaction() as conn:
        fresh = await case_store.get_by_number(conn, number)
        assert fresh is not None and fresh.case.dispatched_by_id is not None
        actor = Actor(fresh.case.dispatched_by_id, Role.GRID_CHIEF, GRID_1)
        _, notices = await casework.apply_event(conn, gridbot.reference, fresh,
                                                Event(EventKind.CHECK_PASS), actor,
                                                gridbot.clock.now())
        rows = await render_personal(conn, gridbot.renderer, "zh_CN", notices,
                                     gridbot.clock.now())
        await outbox_store.enqueue(conn, rows, gridbot.clock.now())
    told = await received(resident)
    assert any(number in m and "已办结" in m for m in told), told


async def test_a_department_that_returns_the_case_gives_it_back_with_the_reason(
        gridbot: Gridbot, resident: ChatDriver, department: FakeOpen311) -> None:
    number = await report_by_menu(resident)
    await dispatch_to_utilities(gridbot, number)
    await scheduler(gridbot).tick()
    department.report("EXT-1", "NOT_COUNCILS_RESPONSIBILITY", gridbot.clock.now(),
                      "属于供电公司")
    await scheduler(gridbot).tick()
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.state == State.REGISTERED
    assert stored.case.level == Level.GRID and stored.case.return_count == 1
    events = await case_store.events(gridbot.db.conn, stored.case.id or 0)
    assert events[-1].event == "return" and events[-1].note == "属于供电公司"


async def test_a_department_system_that_is_down_is_retried_later(
        gridbot: Gridbot, clock: FakeClock, resident: ChatDriver,
        department: FakeOpen311) -> None:
    number = await report_by_menu(resident)
    await dispatch_to_utilities(gridbot, number)
    department.fail_next(2)
    await scheduler(gridbot).tick()
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.id is not None
    [row] = await open311_store.outbound_of(gridbot.db.conn, stored.case.id)
    assert row.status == "queued" and row.attempts == 1 and department.received == []
    await scheduler(gridbot).tick()  # not due yet: no second attempt at once
    assert department.failures == 1
    clock.advance(timedelta(seconds=31))
    await scheduler(gridbot).tick()  # the second attempt fails too
    clock.advance(timedelta(seconds=61))
    await scheduler(gridbot).tick()
    [row] = await open311_store.outbound_of(gridbot.db.conn, stored.case.id)
    assert row.status == "sent" and row.attempts == 3 and len(department.received) == 1


async def test_a_hanging_department_system_holds_the_tick_only_until_the_deadline(
        gridbot: Gridbot, resident: ChatDriver, department: FakeOpen311) -> None:
    number = await report_by_menu(resident)
    await dispatch_to_utilities(gridbot, number)
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.id is not None
    department.hanging = True
    scheduler(gridbot).departments.deadline = 0.3
    # The tick ends (escalations and warnings are not held); the test fails if it hangs.
    await asyncio.wait_for(scheduler(gridbot).tick(), 10)
    [row] = await open311_store.outbound_of(gridbot.db.conn, stored.case.id)
    assert row.status == "queued"  # left for the next tick, not stuck 'sending'
    department.hanging = False
    await scheduler(gridbot).tick()
    [row] = await open311_store.outbound_of(gridbot.db.conn, stored.case.id)
    assert row.status == "sent" and len(department.received) == 1


async def test_updates_that_are_not_objects_are_skipped_and_the_rest_applied(
        gridbot: Gridbot, resident: ChatDriver, department: FakeOpen311,
        caplog: pytest.LogCaptureFixture) -> None:
    number = await report_by_menu(resident)
    await dispatch_to_utilities(gridbot, number)
    await scheduler(gridbot).tick()
    department.extra_updates = ["U9", None, 7]
    department.report("EXT-1", "IN_PROGRESS", gridbot.clock.now(), "已派维修班组")
    with caplog.at_level(logging.WARNING):
        await scheduler(gridbot).tick()
    assert await state_of(gridbot, number) == State.IN_PROGRESS
    assert [r.getMessage() for r in caplog.records if "not objects" in r.getMessage()] == [
        "utilities: skipped 3 updates that are not objects"]


def test_departments_toml_may_name_an_open311_system(tmp_path: Path) -> None:
    path = tmp_path / "departments.toml"
    path.write_text('[[department]]\ncode = "water"\nname_zh = "水务"\nname_en = "Water"\n'
                    'categories = ["utilities"]\n[department.open311]\n'
                    'endpoint = "https://311.example.org/open311/v2/"\napi_key = "env:K"\n'
                    'default_service_code = "1"\nservice_codes = { "utilities" = "7" }\n',
                    encoding="utf-8")
    [water] = load_departments(path)
    assert water.open311 is not None
    assert water.open311.endpoint == "https://311.example.org/open311/v2"
    assert water.open311.service_code_for("utilities", "utilities-manhole") == "7"
    assert water.open311.service_code_for("roads", "roads-pothole") == "1"
    path.write_text(path.read_text(encoding="utf-8").replace("https://", "ftp://"),
                    encoding="utf-8")
    with pytest.raises(ValueError, match="endpoint"):
        load_departments(path)
