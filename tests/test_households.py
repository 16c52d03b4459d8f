"""The household archive: import with errors by line, visits against a household, the
due-visit rule on the fake clock, who may read a household (and the reads logged),
linking a case, deletion by the street, /mydata, and the month's statistics."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.bootstrap import Gridbot
from bot.domain.clock import FakeClock
from bot.domain.households import TagCatalog, due_visits, parse_households_csv
from bot.services import casework
from bot.services import households as household_service
from bot.services import stats as stats_service
from bot.services.phones import to_e164
from store import households as household_store
from tests.chat import ChatDriver
from tests.helpers import add_staff, gridbot, report_by_menu, scheduler

TAGS = TagCatalog.load()
BUILDINGS = {("33010600100101", "翠苑一区3幢"): 3, ("33010600100102", "翠苑一区7幢"): 7,
             ("33010600100204", "3号楼"): 38, ("33010600100201", "3号楼"): 23}
STREET = "33010600100000"
T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


def parse(text: str) -> list[object]:
    return list(parse_households_csv(text, BUILDINGS, TAGS, to_e164))


# --- the import file ------------------------------------------------------------------

@pytest.mark.parametrize("text,error", [
    ("", "line 1: the file is empty"),
    ("building,room,head\n", "line 1: unknown column 'head'"),
    ("building,unit,head_name\n", "line 1: missing column 'room'"),
    ("building,room,head_name\n翠苑一区3幢,101,\n", "line 2: head_name is empty"),
    ("building,room,head_name\n\n\n翠苑一区9幢,101,王\n", "line 4: no building '翠苑一区9幢'"),
    ("building,room,head_name\n3号楼,101,王\n", "line 2: building '3号楼' is in several grids"),
    ("building,room,head_name,phone\n翠苑一区3幢,101,王,12345\n",
     "line 2: '12345' is not a phone number"),
    ("building,room,head_name,people\n翠苑一区3幢,101,王,0\n", "line 2: people must be"),
    ("building,room,head_name,tags\n翠苑一区3幢,101,王,独居老人;土豪\n",
     "line 2: unknown tag '土豪'"),
    ("building,unit,room,head_name\n翠苑一区3幢,1,101,王\n翠苑一区3幢,1,101,李\n",
     "line 3: the same household as line 2"),
    ('building,room,head_name\n翠苑一区3幢,101,"王\n芳"\n翠苑一区3幢,101\n',
     "line 4: expected 3 fields, got 2"),  # a quoted field over two lines: line 2 and 3
])
def test_a_broken_households_file_names_the_line_and_the_problem(text: str,
                                                                  error: str) -> None:
    with pytest.raises(ValueError, match="^" + error.replace("(", r"\(").replace(")", r"\)")
                       .replace("'", "'")):
        parse(text)


def test_tags_are_read_by_name_in_either_language_or_by_code() -> None:
    rows = parse("building,grid_code,unit,room,head_name,phone,people,tags\n"
                 "3号楼,33010600100204,2,301,王芳,139 0000 0101,3,低保、Disability|rented\n")
    assert len(rows) == 1
    row = rows[0]
    assert row.building_id == 38 and row.unit == "2" and row.room == "301"  # type: ignore
    assert row.phone == "+8613900000101" and row.people == 3  # type: ignore
    assert row.tags == ("subsistence", "disability", "rented")  # type: ignore


def test_gridbot_import_households_refuses_a_broken_file_whole_and_updates_on_reimport(
        tmp_path: Path) -> None:
    assert gridbot(tmp_path, "migrate").returncode == 0
    good = tmp_path / "h.csv"
    good.write_text("building,unit,room,head_name,phone,people,tags\n"
                    "翠苑一区1幢,1,101,钱大爷,13900001111,1,独居老人\n"
                    "翠苑一区1幢,1,102,孙阿姨,,2,\n", encoding="utf-8")
    done = gridbot(tmp_path, "import-households", str(good))
    assert done.returncode == 0, done.stderr
    assert "imported 2 households" in done.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("building,unit,room,head_name,people\n"
                   "翠苑一区1幢,1,101,钱大爷,2\n"
                   "翠苑一区1幢,1,103,李四,many\n", encoding="utf-8")
    refused = gridbot(tmp_path, "import-households", str(bad))
    assert refused.returncode == 1
    assert "nothing imported" in refused.stderr and "line 3: people must be" in refused.stderr
    again = tmp_path / "again.csv"
    again.write_text("building,unit,room,head_name,people,tags\n"
                     "翠苑一区1幢,1,101,钱大爷,2,独居老人\n", encoding="utf-8")
    assert gridbot(tmp_path, "import-households", str(again)).returncode == 0
    with sqlite3.connect(tmp_path / "g.db") as db:
        rows = db.execute("SELECT room, people FROM households h JOIN buildings b"
                          " ON b.id = h.building_id WHERE b.name = '翠苑一区1幢'"
                          " ORDER BY room").fetchall()
    assert rows == [("101", 2), ("102", 2)]  # updated in place, line 2 of bad.csv not applied


# --- the due-visit rule ---------------------------------------------------------------

def test_the_most_demanding_tag_sets_the_rule_and_a_visit_restarts_it() -> None:
    households = [(1, ("subsistence", "disability"), T0, T0 - timedelta(days=90)),  # 14 d
                  (2, ("rented",), T0, T0 - timedelta(days=90)),  # 30 d
                  (3, (), None, T0),  # no rule
                  (4, ("elderly_alone",), None, T0)]  # never visited: due at once
    assert [d.household_id for d in due_visits(TAGS, households, T0)] == [4]
    due = due_visits(TAGS, households, T0 + timedelta(days=14))
    assert [d.household_id for d in due] == [4, 1]
    assert due[0].overdue_days(T0 + timedelta(days=14)) == 14


async def test_a_chief_sees_households_due_a_visit_logs_one_and_it_comes_back_in_a_week(
        gridbot: Gridbot, clock: FakeClock) -> None:
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0102")  # 陈建国, grid 0102
    await chief.text("/tasks")
    due = next(s.text for s in chief.last if "应走访" in s.text)
    # the demo's two elderly people living alone in grid 0102, both never visited
    assert "冯** 独居老人" in due and "马** 独居老人" in due and "冯秀兰" not in due
    await chief.text("/visit")
    await chief.press("翠苑一区7幢")
    await chief.press("1-102")
    assert "居民反映了什么" in chief.said
    await chief.text("腿脚不便，希望有人帮忙买菜")
    await chief.text("联系志愿者每周送菜")
    assert "走访日志已记录（1-102）" in chief.said and "下次走访" in chief.said
    await chief.text("/tasks")
    due = next(s.text for s in chief.last if "应走访" in s.text)
    assert "冯**" not in due and "马**" in due
    clock.current += timedelta(days=6)
    await chief.text("/tasks")
    assert "冯**" not in next(s.text for s in chief.last if "应走访" in s.text)
    clock.current += timedelta(days=1)
    await chief.text("/tasks")
    assert "冯**" in next(s.text for s in chief.last if "应走访" in s.text)
    visits = await gridbot.db.fetchall("SELECT household, raised, follow_up, household_id"
                                       " FROM visits")
    assert [tuple(v)[:3] for v in visits] == [("1-102", "腿脚不便，希望有人帮忙买菜",
                                               "联系志愿者每周送菜")]
    assert visits[0][3] is not None


async def test_the_morning_list_carries_the_households_due_a_visit(
        gridbot: Gridbot, clock: FakeClock) -> None:
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0102")
    clock.current = datetime(2026, 11, 24, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai
    await scheduler(gridbot).run_jobs(clock.now())
    await chief.inbox()
    assert "今日应走访 3 户" in chief.said  # two elderly living alone, one rented flat
    assert "冯** 独居老人" in chief.said and "马** 独居老人" in chief.said


async def test_a_visit_to_a_household_not_registered_yet_is_logged_as_typed(
        gridbot: Gridbot) -> None:
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0102")
    await chief.text("/visit")
    await chief.press("翠苑一区6幢")
    await chief.press("尚未登记")
    await chief.text("3单元502")
    await chief.text("新搬来的租户")
    await chief.press("无需跟进")
    assert "走访日志已记录" in chief.said
    rows = await gridbot.db.fetchall("SELECT building, household, household_id FROM visits")
    assert [tuple(r) for r in rows] == [("翠苑一区6幢", "3单元502", None)]


# --- privacy --------------------------------------------------------------------------

async def person_of(bot: Gridbot, chat: ChatDriver) -> int:
    rows = await bot.db.fetchall("SELECT person_id FROM contacts WHERE address = ?",
                                 [chat.address])
    return int(rows[0][0])


async def household_id(bot: Gridbot, room: str) -> int:
    rows = await bot.db.fetchall("SELECT id FROM households WHERE room = ?", [room])
    return int(rows[0][0])


async def test_a_chief_of_another_grid_cannot_read_the_household(gridbot: Gridbot) -> None:
    target = await household_id(gridbot, "101")  # 翠苑一区3幢 1-101, grid 0101
    other = ChatDriver(gridbot, "sim-telegram", "web:chief-0102")
    await other.text("/household")
    await other.text("翠苑一区3幢")
    assert "没有找到“翠苑一区3幢”" in other.said and "周" not in other.said
    await other.option(f"hhv:{target}")  # a forged button: no menu of theirs holds it
    assert "过期" in other.said and "周" not in other.said
    await other.option(f"hhd:{target}:yes")
    assert "过期" in other.said
    actors = await casework.staff_actors(gridbot.db.conn, await person_of(gridbot, other))
    assert await household_service.readable(gridbot.db.conn, gridbot.reference, target,
                                            actors) is None
    assert not await household_service.delete(gridbot.db.conn, gridbot.reference, target,
                                              actors, gridbot.clock.now())
    assert await household_store.get(gridbot.db.conn, target) is not None
    reads = await household_store.reads(gridbot.db.conn, target)
    assert reads == []  # nothing was shown, nothing logged

    own = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    await own.text("/household")
    await own.text("翠苑一区3幢")
    await own.press("1-101")
    assert "户主：周桂芳" in own.said and "139****0101" in own.said  # masked for a chief
    assert "独居老人" in own.said
    assert "删除此户" not in str(own.last[-1].buttons)  # the street deletes, not the chief
    reads = await household_store.reads(gridbot.db.conn, target)
    assert [r.what for r in reads] == ["list", "card"] and reads[0].role == "grid_chief"


async def test_residents_and_departments_never_see_households(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    await resident.text("/household")
    assert "只对本网格网格长和社区、街道工作人员开放" in resident.said
    await add_staff(gridbot, "环卫", "department", "sanitation", "web:dept")
    department = ChatDriver(gridbot, "sim-telegram", "web:dept")
    await department.text("/household")
    assert "只对本网格网格长和社区、街道工作人员开放" in department.said
    actors = await casework.staff_actors(gridbot.db.conn, await person_of(gridbot, department))
    assert await household_service.readable(gridbot.db.conn, gridbot.reference,
                                            await household_id(gridbot, "101"), actors) is None


async def test_the_street_deletes_a_household_leaving_an_audit_line_without_personal_data(
        gridbot: Gridbot) -> None:
    await add_staff(gridbot, "赵调度", "dispatcher", STREET, "web:dispatcher")
    street = ChatDriver(gridbot, "sim-telegram", "web:dispatcher")
    target = await household_id(gridbot, "101")
    await street.text("/household")
    await street.text("翠苑一区3幢")
    await street.press("1-101")
    assert "+8613900000101" in street.said  # the street sees the phone in full
    await street.press("删除此户")
    assert "不可恢复" in street.said
    await street.press("删除此户")
    assert "住户档案已删除" in street.said
    assert await household_store.get(gridbot.db.conn, target) is None
    audit = await household_store.audit(gridbot.db.conn)
    assert [(r[0], r[1], r[2], r[4]) for r in audit] == [
        (target, "33010600100101", "delete", "dispatcher")]
    assert not any(word in str(tuple(audit[0])) for word in ("周", "0101 ", "elderly"))


async def test_a_chief_links_a_case_to_a_household(gridbot: Gridbot,
                                                   resident: ChatDriver) -> None:
    number = await report_by_menu(resident)  # in grid 0101
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    await chief.text(f"/link {number}")
    await chief.text("翠苑一区3幢")
    await chief.press("2-301")
    assert f"事件 {number} 已关联住户 2-301" in chief.said
    await chief.text("/household")
    await chief.text("翠苑一区3幢")
    await chief.press("2-301")
    assert number in chief.said
    second = await report_by_menu(resident, description="楼道堆满杂物")
    await chief.text(f"/case {second}")
    await chief.press("关联住户")  # the same, as a button on the case card
    await chief.text("翠苑一区3幢")
    await chief.press("1-102")
    assert f"事件 {second} 已关联住户 1-102" in chief.said
    other = ChatDriver(gridbot, "sim-telegram", "web:chief-0102")
    await other.text(f"/link {number}")
    assert "没有找到" in other.said or "not found" in other.said


async def test_mydata_shows_a_resident_their_record_and_household(gridbot: Gridbot) -> None:
    caller = ChatDriver(gridbot, "sim-sms", "web:zhou")
    await caller.text("/mydata")
    assert "您的信息" in caller.said and "住户" not in caller.said
    async with gridbot.db.transaction() as conn:  # her number, as an SMS contact holds it
        person = (await gridbot.db.fetchall(
            "SELECT person_id FROM contacts WHERE address = 'web:zhou'"))[0][0]
        await conn.execute("INSERT INTO contacts (person_id, channel, address, created_at)"
                           " VALUES (?, 'sms', '+8613900000101', ?)",
                           [person, gridbot.clock.now().isoformat()])
    await caller.text("/mydata")
    assert "翠苑一区3幢1-101" in caller.said and "独居老人" in caller.said
    stranger = ChatDriver(gridbot, "sim-telegram", "web:stranger")
    await stranger.text("/lang en")
    await stranger.text("/mydata")
    assert "What we store about you" in stranger.said
    assert "No household record matches your number" in stranger.said


# --- statistics -----------------------------------------------------------------------

async def test_the_months_statistics_count_visits(gridbot: Gridbot, clock: FakeClock) -> None:
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0102")
    for door in ("1-102", "1-301"):
        await chief.text("/visit")
        await chief.press("翠苑一区7幢" if door == "1-102" else "翠苑一区8幢")
        await chief.press(door)
        await chief.text("身体还好")
        await chief.text("下周复查血压" if door == "1-301" else "无")
    start, end = stats_service.month_of(clock.now(), gridbot.reference.tz)
    found = await stats_service.month_report(gridbot.db.conn, start, end)
    assert found.report.visits.as_dict() == {"visits": 2, "households_visited": 2,
                                             "unregistered": 0, "follow_ups": 2}
    assert found.as_json()["visits"]["by_grid"]["33010600100102"]["visits"] == 2
    elsewhere = await stats_service.month_report(gridbot.db.conn, start, end,
                                                 "33010600100200")
    assert elsewhere.report.visits.visits == 0
    assert household_service.grids_of(gridbot.reference.district, []) == []


async def test_mydata_ignores_a_phone_typed_on_a_contact_card(gridbot: Gridbot) -> None:
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0102")
    await chief.text("/contact phone 13900000101")  # someone else's number, typed
    await chief.text("/mydata")
    assert "周桂芳" not in chief.said and "没有与您的号码对应的住户档案" in chief.said


async def test_a_chief_on_sms_in_english_logs_a_visit_by_numbers(gridbot: Gridbot) -> None:
    async with gridbot.db.transaction() as conn:  # 王丽华 (grid 0101) texting from her phone
        chief_id = (await gridbot.db.fetchall(
            "SELECT person_id FROM contacts WHERE address = 'web:chief-0101'"))[0][0]
        await conn.execute("INSERT INTO contacts (person_id, channel, address, created_at)"
                           " VALUES (?, 'sim-sms', 'web:wang-sms', ?)",
                           [chief_id, gridbot.clock.now().isoformat()])
    chief = ChatDriver(gridbot, "sim-sms", "web:wang-sms")
    await chief.text("/lang en")
    await chief.text("/visit")
    assert "Visit log" in chief.said and "3: Cuiyuan Area 1 Building 3" in chief.said
    await chief.press("Building 3")
    assert "1-101 周** Elderly living alone" in chief.said
    await chief.press("1-101")
    assert "what did the household raise" in chief.said
    await chief.text("Needs help with shopping")
    await chief.press("No follow-up")
    assert "The visit is logged (1-101)" in chief.said and "Next visit due by" in chief.said


async def test_a_visit_from_the_card_is_logged_against_the_household(gridbot: Gridbot) -> None:
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    await chief.text("/household")
    await chief.text("翠苑一区5幢")
    await chief.press("1-201")
    assert "低保、残疾" in chief.said
    await chief.press("记录走访")
    await chief.text("申请了临时救助")
    await chief.text("下周跟进救助审批")
    target = await household_id(gridbot, "201")
    assert [r.what for r in await household_store.reads(gridbot.db.conn, target)] == [
        "list", "card", "visit"]
    assert await household_store.visit_count(gridbot.db.conn, target) == 1
    await chief.text("/household")
    await chief.text("翠苑一区5幢")
    await chief.press("1-201")
    assert "走访：1 次" in chief.said and "下次" in chief.said
