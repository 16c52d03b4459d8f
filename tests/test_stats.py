"""The monthly indicators for a hand-made month, against figures worked out by hand."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from wcwidth import wcswidth

from bot.bootstrap import Gridbot
from bot.domain.stats import (
    CaseFacts,
    EventFacts,
    appraisal_table,
    compute,
    format_table,
    indicator_table,
    percent,
    shown_rates,
)
from bot.domain.workflow import EventKind
from bot.services import actions
from bot.services import stats as stats_service
from store import people as people_store
from store import stats as store_stats
from store.db import fetch
from tests.chat import ChatDriver
from tests.console_harness import file_case
from tests.helpers import GRID_1, STREET, gridbot, report_by_menu, undocumented

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 1, tzinfo=TZ)
END = datetime(2026, 12, 1, tzinfo=TZ)
GRID_2 = "33010600100102"


def at(day: int, hour: int = 9, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


CASES = [
    # A: due, closed on time inside the grid, 3 hours
    CaseFacts(1, "G1", 1, "U2", at(2), at(2, 13), at(2, 12), "grid"),
    # B: due, closed late by the community, 72 hours
    CaseFacts(2, "G1", 1, "U3", at(3), at(5), at(6), "community"),
    # C: due, still open
    CaseFacts(3, "G2", 2, "U3", at(20), at(25), None, None),
    # D: registered last month, due next month: in no rate's denominator
    CaseFacts(4, "G2", 2, "U3", at(28, month=10), at(3, month=12), None, None),
]
EVENTS = [
    EventFacts(1, "register", None, at(2)), EventFacts(1, "sign", 1, at(2, 9, 30)),
    EventFacts(1, "report_done", 1, at(2, 11)), EventFacts(1, "check_pass", 1, at(2, 12)),
    EventFacts(1, "rate", 10, at(3), rating=5),
    EventFacts(2, "register", None, at(3)), EventFacts(2, "sign", 1, at(3, 11)),
    EventFacts(2, "report_done", 1, at(4)), EventFacts(2, "check_fail", 3, at(4, 15)),
    EventFacts(2, "report_done", 1, at(5)), EventFacts(2, "check_pass", 3, at(6)),
    EventFacts(2, "rate", 11, at(7), rating=2),
    EventFacts(3, "register", None, at(20)), EventFacts(3, "sign", 2, at(20, 9, 10)),
    EventFacts(4, "register", None, at(28, month=10)),
]


def test_indicators_of_a_hand_made_month() -> None:
    report = compute(CASES, EVENTS, START, END, chiefs=[1, 2])
    assert report.total.rates() == {
        "closing_rate": round(2 / 3, 4),            # A, B closed of A, B, C due
        "on_time_closing_rate": round(1 / 3, 4),    # only A by its deadline
        "on_time_signing_rate": round(2 / 3, 4),    # A in 30 min, C in 10; B took 2 h
        "rework_rate": round(1 / 3, 4),             # 1 failed check, 3 reports of done
        "self_handling_rate": round(1 / 3, 4),      # A closed in the grid, of 3 registered
        "satisfaction": 0.5,                        # ratings 5 and 2
        "average_handling_hours": 37.5,             # (3 + 72) / 2
    }
    assert (report.total.due, report.total.closed) == (3, 2)
    assert report.by_grid["G1"].due == 2 and report.by_grid["G2"].due == 1
    assert report.by_person[1].closed_on_time == 1
    assert report.handled_by_chief == {1: 2, 2: 0}


def test_a_month_with_nothing_due_has_no_rates_rather_than_zeros() -> None:
    report = compute([], [], START, END)
    assert set(report.total.rates().values()) == {None}


def test_the_tables_have_a_row_per_grid_person_and_chief() -> None:
    report = compute(CASES, EVENTS, START, END, chiefs=[1, 2])
    rows = indicator_table(report, {1: "王丽华", 2: "陈建国"})
    assert [row[0] for row in rows] == ["group", "total", "grid G1", "grid G2",
                                        "person 1 王丽华", "person 2 陈建国"]
    assert appraisal_table(report, {1: ("王丽华", "G1"), 2: ("陈建国", "G2")}) == [
        ["chief", "grid", "handled", "target", "met"],
        ["王丽华", "G1", "2", "10", "no"], ["陈建国", "G2", "0", "10", "no"]]


def test_rates_print_as_percent_as_in_the_chat() -> None:
    report = compute(CASES, EVENTS, START, END, chiefs=[1, 2])
    total = indicator_table(report, {})[1]
    assert total == ["total", "3", "2", "66.7%", "33.3%", "66.7%", "33.3%", "33.3%", "50.0%",
                     "37.5"]
    assert shown_rates(report.total)["closing_rate"] == "66.7%" == percent(2 / 3)
    assert percent(None) == "-" and percent(1.0) == "100.0%"


def _starts(line: str, cell: str) -> int:
    """The display column where a cell starts in a printed line."""
    return wcswidth(line[:line.index(cell)])


def test_columns_stay_straight_with_chinese_names() -> None:
    rows = [["chief", "grid", "handled"], ["王丽华", "G1", "2"],
            ["Alice", "G2", "10"], ["欧阳建国", "G3", "0"], ["138****1001", "G4", "1"]]
    lines = format_table(rows).splitlines()
    assert len({_starts(line, "G") for line in lines[1:]}) == 1, "\n".join(lines)
    assert {wcswidth(line) for line in lines[1:]} == {wcswidth(lines[0])}
    assert lines[2].endswith(" 10") and lines[1].endswith("  2")  # numbers to the right


async def test_a_chief_without_a_name_is_shown_by_the_masked_phone(gridbot: Gridbot) -> None:
    now = gridbot.clock.now()
    async with gridbot.db.transaction() as conn:
        contact = await people_store.get_or_create_contact(conn, "sms", "+8613900007777", now)
        await people_store.grant_role(conn, contact.person_id, "grid_chief", "33010600100104",
                                      now)
    start, end = stats_service.month_of(now, gridbot.reference.tz)
    found = await stats_service.month_report(gridbot.db.conn, start, end)
    names = [row[0] for row in found.appraisal_table()]
    assert "139****7777" in names and "" not in names
    assert "+8613900007777" not in json.dumps(found.as_json())


async def test_the_chat_and_the_cli_table_show_the_same_rates(gridbot: Gridbot,
                                                              resident: ChatDriver) -> None:
    await report_by_menu(resident)  # registered in grid 1, not yet signed for
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    await chief.text("/stats")
    start, end = stats_service.month_of(gridbot.clock.now(), gridbot.reference.tz)
    found = await stats_service.month_report(gridbot.db.conn, start, end, "33010600100101")
    total = dict(zip(found.indicator_table()[0], found.indicator_table()[1], strict=True))
    assert total["on_time_signing_rate"] == "0.0%" and total["self_handling_rate"] == "0.0%"
    assert "签收及时率 0.0%" in chief.said and "网格自办率 0.0%" in chief.said


def test_gridbot_stats_prints_both_tables_and_writes_a_csv_per_table(tmp_path: Path) -> None:
    script = "/report\n1\n垃圾桶满了\n/loc 30.2801 120.11661\n1\n1\n"
    assert gridbot(tmp_path, "chat", "--channel", "sms", stdin=script).returncode == 0
    month = datetime.now(TZ).strftime("%Y-%m")
    result = gridbot(tmp_path, "stats", "--month", month, "--csv-dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "closing_rate" in result.stdout and "王丽华" in result.stdout
    lines = result.stdout.split("\n\n")[0].splitlines()  # the indicators, the first table
    rows = [line for line in lines if line.startswith(("total", "grid ", "person "))]
    assert any("王丽华" in row for row in rows)
    assert len({wcswidth(row) for row in rows}) == 1, result.stdout  # columns line up
    assert "%" in rows[0] and "0." not in rows[0].replace("0.0%", "")  # rates in %
    indicators = tmp_path / "out" / f"indicators-{month}.csv"
    appraisal = tmp_path / "out" / f"appraisal-{month}.csv"
    assert f"written to {indicators}" in result.stdout
    # A byte-order mark first, so that Excel takes the file as UTF-8 and shows the Chinese.
    assert indicators.read_bytes().startswith(b"\xef\xbb\xbfgroup,due,closed,closing_rate")
    assert appraisal.read_bytes().startswith("\ufeffchief,grid,handled".encode())
    assert "王丽华,33010600100101,0,10,no" in appraisal.read_text(encoding="utf-8-sig")
    assert "appraisal" not in indicators.read_text(encoding="utf-8-sig")
    single = gridbot(tmp_path, "stats", "--month", month, "--csv", str(tmp_path / "s.csv"))
    assert single.returncode == 0, single.stderr
    assert (tmp_path / "s.csv").read_text(encoding="utf-8-sig").startswith("group,due")
    assert (tmp_path / "s-appraisal.csv").read_text(encoding="utf-8-sig").startswith("chief,")
    bad = gridbot(tmp_path, "stats", "--month", "2026-13")
    assert bad.returncode == 2 and "--month" in bad.stderr


def test_gridbot_stats_json_has_counts_rates_and_the_appraisal(tmp_path: Path) -> None:
    script = "/report\n1\n垃圾桶满了\n/loc 30.2801 120.11661\n1\n1\n"
    assert gridbot(tmp_path, "chat", "--channel", "sms", stdin=script).returncode == 0
    month = datetime.now(TZ).strftime("%Y-%m")
    result = gridbot(tmp_path, "stats", "--month", month, "--scope", "33010600100101",
                      "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert (found["month"], found["scope"]) == (month, "33010600100101")
    total = found["indicators"][0]
    assert total["group"] == "total" and total["registered"] == 1 and total["assigned"] == 1
    assert total["self_handling_rate"] == 0.0  # a share, not "0.0%"
    assert total["closing_rate"] == (0.0 if total["due"] else None)  # due: by its deadline
    grid = found["indicators"][1]
    assert (grid["group"], grid["code"]) == ("grid", "33010600100101")
    person = found["indicators"][2]
    assert person["group"] == "person" and person["name"] == "王丽华"
    assert undocumented([*found, *total, *grid, *person, *found["appraisal"][0]]) == []
    assert found["appraisal"] == [{"person_id": person["person_id"], "name": "王丽华",
                                   "grid": "33010600100101", "handled": 0, "target": 10,
                                   "met": False}]


def test_gridbot_invite_prints_a_code_that_joins_once(tmp_path: Path) -> None:

    env = {**os.environ, "GRIDBOT_DATABASE": str(tmp_path / "g.db")}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "invite", "--role", "grid_chief", "--scope",
         "33010600100102", "--expires", "2d"], text=True, capture_output=True, cwd=tmp_path,
        env=env)
    assert result.returncode == 0, result.stderr
    code = re.search(r"invitation code: (\w+)", result.stdout)
    assert code and f"start={code.group(1)}" in result.stdout
    joined = subprocess.run([sys.executable, "-m", "bot", "chat", "--as", "新网格员"],
                            input=f"/join {code.group(1)}\n", text=True, capture_output=True,
                            cwd=tmp_path, env=env)
    assert "欢迎加入" in joined.stdout
    listed = subprocess.run([sys.executable, "-m", "bot", "staff", "list"], text=True,
                            capture_output=True, cwd=tmp_path, env=env)
    role_id = next(line.split()[0] for line in listed.stdout.splitlines()
                   if "33010600100102" in line and "grid_chief" in line
                   and line.split()[-1] != "陈建国")
    revoked = subprocess.run([sys.executable, "-m", "bot", "staff", "revoke", role_id],
                             text=True, capture_output=True, cwd=tmp_path, env=env)
    assert revoked.returncode == 0
    unknown_scope = subprocess.run(
        [sys.executable, "-m", "bot", "invite", "--role", "grid_chief", "--scope", "nowhere"],
        text=True, capture_output=True, cwd=tmp_path, env=env)
    assert unknown_scope.returncode == 2 and "unknown scope" in unknown_scope.stderr


async def _act(bot: Gridbot, person: int, number: str, kind: EventKind,
               note: str = "") -> None:
    async with bot.db.transaction() as conn:
        await actions.act(conn, bot.reference, person, number, kind,
                          actions.Given(note=note), bot.clock.now())


async def _kept_and_fresh(bot: Gridbot, start: datetime, end: datetime,
                          scope: str | None) -> tuple[dict[str, object], dict[str, object]]:
    """The month as the console reads it (kept in the database when finished) and as
    `gridbot stats` computes it, afresh."""
    kept = await stats_service.kept_month_report(bot.db, start, end, scope, bot.clock.now())
    fresh = await stats_service.month_report(bot.db.conn, start, end, scope)
    return kept.as_json(), fresh.as_json()


async def _computed_at(bot: Gridbot, scope: str) -> str:
    rows = await fetch(bot.db.conn, "SELECT computed_at FROM stats_months WHERE scope = ?",
                       (scope,))
    return str(rows[0][0])


async def test_a_finished_month_is_kept_and_moves_only_when_one_of_its_cases_does(
        gridbot: Gridbot) -> None:
    clock = gridbot.clock
    first = await file_case(gridbot, GRID_1, "垃圾桶满了")
    second = await file_case(gridbot, GRID_2, "井盖松动", reporter="web:r2")
    chief_1, chief_2 = await _chief(gridbot, GRID_1), await _chief(gridbot, GRID_2)
    clock.advance(timedelta(minutes=20))  # type: ignore[attr-defined]
    await _act(gridbot, chief_1, first, EventKind.SIGN)
    await _act(gridbot, chief_2, second, EventKind.SIGN)
    await _act(gridbot, chief_2, second, EventKind.REPORT_DONE, "已加固")
    start, end = stats_service.month_of(clock.now(), gridbot.reference.tz)  # November
    clock.advance(end - clock.now() + timedelta(days=2))  # type: ignore[attr-defined]

    for scope in (None, STREET, GRID_2):
        kept, fresh = await _kept_and_fresh(gridbot, start, end, scope)
        assert kept == fresh
    computed = await _computed_at(gridbot, STREET)

    # A comment in December on a November case: November's figures stand, read back.
    clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    await _act(gridbot, chief_1, first, EventKind.COMMENT, "明天处理")
    kept, fresh = await _kept_and_fresh(gridbot, start, end, STREET)
    assert kept == fresh and await _computed_at(gridbot, STREET) == computed

    # The November case closed in the grid in December: November's self-handling rate
    # moves (a case registered in the month and closed inside the grid, whenever).
    clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    before = fresh["indicators"][0]["self_handled"]  # type: ignore[index]
    await _act(gridbot, chief_2, second, EventKind.CHECK_PASS)
    for scope in (None, STREET, GRID_2):
        kept, fresh = await _kept_and_fresh(gridbot, start, end, scope)
        assert kept == fresh
    assert fresh["indicators"][0]["self_handled"] == before + 1  # type: ignore[index]
    assert await _computed_at(gridbot, STREET) != computed

    # A grid chief appointed afterwards appears in the appraisal at once.
    async with gridbot.db.transaction() as conn:
        contact = await people_store.get_or_create_contact(conn, "sms", "+8613900008888",
                                                           clock.now())
        await people_store.grant_role(conn, contact.person_id, "grid_chief", GRID_2,
                                      clock.now())
    kept, fresh = await _kept_and_fresh(gridbot, start, end, STREET)
    assert kept == fresh and "139****8888" in json.dumps(kept)


async def test_a_signing_just_after_the_month_counts_for_its_assignment(
        gridbot: Gridbot) -> None:
    clock = gridbot.clock
    start, end = stats_service.month_of(clock.now(), gridbot.reference.tz)
    clock.advance(end - clock.now() - timedelta(minutes=10))  # type: ignore[attr-defined]
    late = await file_case(gridbot, GRID_1, "月底最后一件")
    kept, fresh = await _kept_and_fresh(gridbot, start, end, GRID_1)
    clock.advance(timedelta(minutes=30))  # type: ignore[attr-defined]
    kept, fresh = await _kept_and_fresh(gridbot, start, end, GRID_1)  # kept: unsigned
    await _act(gridbot, await _chief(gridbot, GRID_1), late, EventKind.SIGN)
    kept, fresh = await _kept_and_fresh(gridbot, start, end, GRID_1)
    assert kept == fresh
    total = fresh["indicators"][0]  # type: ignore[index]
    assert (total["assigned"], total["signed_on_time"]) == (1, 1)


async def _chief(bot: Gridbot, grid: str) -> int:
    rows = await fetch(bot.db.conn, "SELECT person_id FROM roles WHERE role = 'grid_chief'"
                       " AND scope = ? AND revoked_at IS NULL", (grid,))
    return int(rows[0][0])


async def test_the_month_being_counted_is_read_again_only_where_cases_changed(
        gridbot: Gridbot, monkeypatch: pytest.MonkeyPatch) -> None:
    """The console keeps this month's facts and, after a change, reads only the cases
    that changed in the last minute; the figures are those `gridbot stats` computes
    afresh, for every scope, after each change; it reads the month whole again every
    quarter of an hour, or when many cases changed."""
    clock = gridbot.clock
    ticks = [0.0]
    memory = stats_service.MonthFacts(clock=lambda: ticks[0])
    start, end = stats_service.month_of(clock.now(), gridbot.reference.tz)
    read: list[list[int] | None] = []
    whole_facts = store_stats.facts

    async def facts(conn: Any, start: datetime, end: datetime, scope: str | None = None,
                    among: Any = None) -> Any:
        read.append(None if among is None else sorted(among))
        return await whole_facts(conn, start, end, scope, among)

    monkeypatch.setattr(store_stats, "facts", facts)

    async def same_as_fresh() -> None:
        for scope in (None, STREET, GRID_1, GRID_2):
            kept = await stats_service.kept_month_report(
                gridbot.db, start, end, scope, clock.now(), memory=memory)
            fresh = await stats_service.month_report(gridbot.db.conn, start, end, scope)
            assert kept.as_json() == fresh.as_json(), scope

    async def case_id(number: str) -> int:
        rows = await fetch(gridbot.db.conn, "SELECT id FROM cases WHERE number = ?",
                           (number,))
        return int(rows[0][0])

    first = await file_case(gridbot, GRID_1, "垃圾桶满了")
    await same_as_fresh()
    assert read == [None] * 8  # each scope read whole, and afresh
    chief_1, chief_2 = await _chief(gridbot, GRID_1), await _chief(gridbot, GRID_2)

    def again() -> list[list[int]]:  # what the memory read again, per scope
        return [r for r in read if r is not None]

    read.clear()
    second = await file_case(gridbot, GRID_2, "井盖松动", reporter="web:r2")
    await same_as_fresh()
    assert again() == [[await case_id(second)]] * 4
    read.clear()
    await same_as_fresh()  # within the minute, what changed in it is read again
    assert again() == [[await case_id(second)]] * 4

    clock.advance(timedelta(minutes=20))  # type: ignore[attr-defined]
    for person, number, kind in ((chief_1, first, EventKind.SIGN),
                                 (chief_2, second, EventKind.SIGN),
                                 (chief_2, second, EventKind.REPORT_DONE),
                                 (chief_2, second, EventKind.CHECK_PASS),
                                 (chief_1, first, EventKind.COMMENT)):
        ticks[0] += stats_service.MonthFacts.LOOK_BACK_SECONDS  # the last look is old
        read.clear()
        await _act(gridbot, person, number, kind, "已处理")
        await same_as_fresh()
        assert again() == [[await case_id(number)]] * 4, kind
    ticks[0] += stats_service.MonthFacts.LOOK_BACK_SECONDS
    read.clear()
    await same_as_fresh()
    assert read == [None] * 4  # nothing changed: only the fresh reads read

    ticks[0] += stats_service.MonthFacts.FULL_READ_SECONDS
    read.clear()
    await same_as_fresh()
    assert read[0] is None  # a quarter of an hour on: read whole
    monkeypatch.setattr(stats_service.MonthFacts, "MAX_CHANGED", 1)
    await file_case(gridbot, GRID_1, "路灯不亮", reporter="web:r3")
    await file_case(gridbot, GRID_2, "噪音扰民", reporter="web:r4")
    read.clear()
    await same_as_fresh()
    assert read[0] is None  # two changed, more than MAX_CHANGED: read whole
