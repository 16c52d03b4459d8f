"""Grid staff carry a case round the closed loop on their phones, within their scope."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import pytest

from bot.bootstrap import Gridbot
from bot.domain.clock import FakeClock
from store import cases as case_store
from store import staff as staff_store
from tests.chat import ChatDriver
from tests.helpers import CASE_NUMBER, GRID_1_POINT, report_by_menu

COMMUNITY_1 = "33010600100100"
STREET = "33010600100000"
GRID_1 = "33010600100101"
GRID_2 = "33010600100102"
_codes = itertools.count(1)


async def join_as(bot: Gridbot, name: str, role: str, scope: str | None,
                  channel: str = "sim-telegram") -> ChatDriver:
    """A new staff member who redeems an invitation in the chat."""
    code = f"TEST{next(_codes):04d}"
    async with bot.db.transaction() as conn:
        await staff_store.add_invite(conn, code, role, scope, bot.clock.now(),
                                     bot.clock.now() + timedelta(days=7))
    chat = ChatDriver(bot, channel, f"web:{name}")
    await chat.text(f"/join {code}")
    assert "欢迎加入" in chat.said, chat.said
    return chat


async def dispatch_to_sanitation(chief: ChatDriver) -> None:
    """The chief opens the new assignment and dispatches it to the sanitation office."""
    await chief.inbox()
    await chief.press("派遣")
    await chief.press("环卫所")


async def escalate(chief: ChatDriver, reason: str) -> None:
    """The chief opens the new assignment and escalates it to the community."""
    await chief.inbox()
    await chief.press("上报上级")
    await chief.text(reason)


@pytest.fixture
def chief(gridbot: Gridbot) -> ChatDriver:
    """The demo grid chief of grid 1 (王丽华), as the web simulator plays her."""
    return ChatDriver(gridbot, "sim-telegram", "web:chief-0101")


async def state_of(bot: Gridbot, number: str) -> str:
    stored = await case_store.get_by_number(bot.db.conn, number)
    assert stored is not None
    return stored.case.state.value


async def trail(bot: Gridbot, number: str) -> list[str]:
    stored = await case_store.get_by_number(bot.db.conn, number)
    assert stored is not None and stored.case.id is not None
    return [e.event for e in await case_store.events(bot.db.conn, stored.case.id)]


async def test_general_procedure_round_the_loop_with_the_resident_told(
        gridbot: Gridbot, resident: ChatDriver, chief: ChatDriver) -> None:
    number = await report_by_menu(resident)
    await chief.inbox()
    assert number in chief.said and "签收" in str(chief.last[-1].buttons)
    await chief.press("签收")
    assert await state_of(gridbot, number) == "in_progress"
    await resident.inbox()
    assert "已签收" in resident.said
    await chief.press("已处置")
    assert "处置后的照片" in chief.said
    await chief.photo("dd" * 32)
    await chief.text("路灯已更换")
    assert await state_of(gridbot, number) == "resolved"
    await chief.press("核查通过")
    assert await state_of(gridbot, number) == "closed"
    await resident.inbox()
    assert "已办结" in resident.said and "问题解决了吗" in resident.said
    closing = resident.last[-1].payload
    assert closing.get("photos"), "the closing message shows the after-photo on Telegram"
    await resident.press("已解决")
    await resident.press("★★★★★")
    assert "5分" in resident.said
    assert await state_of(gridbot, number) == "evaluated"
    assert await trail(gridbot, number) == [
        "submit", "register", "sign", "report_done", "check_pass", "rate"]
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.closed_by_level is not None
    assert stored.case.closed_by_level.value == "grid"  # the micro loop
    rows = await gridbot.db.fetchall("SELECT count(*) FROM media WHERE case_id = ?",
                                     [stored.case.id])
    assert rows[0][0] == 3  # two photos from the resident, the after-photo from the chief


async def test_coordination_goes_to_a_department_and_the_chief_checks(
        gridbot: Gridbot, resident: ChatDriver, chief: ChatDriver) -> None:
    sanitation = await join_as(gridbot, "hw", "department", "sanitation")
    number = await report_by_menu(resident)
    await dispatch_to_sanitation(chief)
    assert await state_of(gridbot, number) == "dispatched"
    await sanitation.inbox()
    assert number in sanitation.said
    await sanitation.press("签收")
    await sanitation.press("已处置")
    await sanitation.text("已清运")
    assert await state_of(gridbot, number) == "resolved"
    await chief.inbox()
    assert "请现场核查" in chief.said
    await chief.press("核查通过")
    assert await state_of(gridbot, number) == "closed"
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.department == "sanitation"


async def test_rework_after_a_failed_check_is_counted(
        gridbot: Gridbot, resident: ChatDriver, chief: ChatDriver) -> None:
    sanitation = await join_as(gridbot, "hw", "department", "sanitation")
    number = await report_by_menu(resident)
    await dispatch_to_sanitation(chief)
    await sanitation.inbox()
    await sanitation.press("签收")
    await sanitation.press("已处置")
    await sanitation.text("done")
    await chief.inbox()
    await chief.press("核查不通过")
    await chief.text("还有垃圾没清完")
    assert await state_of(gridbot, number) == "in_progress"
    await sanitation.inbox()
    assert "返工" in sanitation.said and "还有垃圾没清完" in sanitation.said
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.rework_count == 1


async def test_urgent_case_reaches_community_and_street_at_once(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    community = await join_as(gridbot, "sq", "community_staff", COMMUNITY_1)
    street = await join_as(gridbot, "jd", "dispatcher", STREET)
    await resident.text("/report")
    await resident.press("突发事件")
    await resident.text("楼下水管爆了，水漫到路上")
    await resident.location(*GRID_1_POINT)
    await resident.press("没有照片")
    await resident.press("确认提交")
    number = CASE_NUMBER.search(resident.said)
    assert number
    for staff in (community, street):
        await staff.inbox()
        assert "【紧急】" in staff.said and number.group(0) in staff.said
    stored = await case_store.get_by_number(gridbot.db.conn, number.group(0))
    assert stored is not None and stored.case.procedure.value == "urgent"
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    await chief.inbox()
    await chief.press("签收")
    await chief.press("已处置")
    await chief.text("已关阀，抢修完成")
    await chief.press("核查通过")
    assert await state_of(gridbot, number.group(0)) == "closed"


async def test_community_staff_cannot_act_in_another_community(
        gridbot: Gridbot, resident: ChatDriver, chief: ChatDriver) -> None:
    other = await join_as(gridbot, "sq2", "community_staff", "33010600100200")
    number = await report_by_menu(resident)
    await escalate(chief, "需要社区处理")
    await other.text(f"ACCEPT {number}")
    assert "没有找到" in other.said
    assert await state_of(gridbot, number) == "registered"


async def test_approval_goes_community_director_street_then_back_to_the_chief(
        gridbot: Gridbot, resident: ChatDriver, chief: ChatDriver) -> None:
    staff = await join_as(gridbot, "sq", "community_staff", COMMUNITY_1)
    director = await join_as(gridbot, "zr", "community_director", COMMUNITY_1)
    street = await join_as(gridbot, "jd", "dispatcher", STREET)
    number = await report_by_menu(resident)
    await chief.inbox()
    await chief.press("提请审批")
    await chief.text("需要更换整条线路，费用较大")
    for approver in (staff, director, street):
        await approver.inbox()
        assert number in approver.said, approver.said
        await approver.press("同意")
    await chief.inbox()
    assert "审批通过" in chief.said
    await chief.press("签收")
    await chief.press("已处置")
    await chief.text("线路已更换")
    await chief.press("核查通过")
    assert await state_of(gridbot, number) == "closed"
    events = await trail(gridbot, number)
    assert events.count("approve") == 3 and "request_approval" in events


async def test_escalation_to_the_street_then_a_department_returns_it_and_it_goes_down(
        gridbot: Gridbot, resident: ChatDriver, chief: ChatDriver) -> None:
    community = await join_as(gridbot, "sq", "community_staff", COMMUNITY_1)
    street = await join_as(gridbot, "jd", "dispatcher", STREET)
    police = await join_as(gridbot, "pcs", "department", "police")
    number = await report_by_menu(resident)
    await chief.inbox()
    await chief.press("上报上级")
    await chief.text("需要多部门协调")
    await community.inbox()
    assert number in community.said
    await community.press("上报上级")
    await community.text("社区无法协调")
    await street.inbox()
    await street.press("派遣")
    await street.press("派出所")
    await police.inbox()
    await police.press("退回")
    await police.text("不属于公安职责")
    assert await state_of(gridbot, number) == "registered"
    await street.inbox()
    assert "被退回" in street.said
    await street.press("派遣")
    await street.press("翠苑一区第1网格")
    await chief.inbox()
    assert number in chief.said
    await chief.press("签收")
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.return_count == 1
    assert stored.case.level.value == "grid"


async def test_not_fixed_reopens_the_case_at_the_level_that_closed_it(
        gridbot: Gridbot, resident: ChatDriver, chief: ChatDriver) -> None:
    number = await report_by_menu(resident)
    await chief.inbox()
    await chief.press("已处置")
    await chief.text("已修好")
    await chief.press("核查通过")
    await resident.inbox()
    await resident.press("没有解决")
    assert "重新办理" in resident.said
    assert await state_of(gridbot, number) == "in_progress"
    await chief.inbox()
    assert "问题未解决" in chief.said


async def test_a_duplicate_merged_tells_its_people_and_they_follow_the_other(
        gridbot: Gridbot, resident: ChatDriver, sms_resident: ChatDriver,
        chief: ChatDriver) -> None:
    first = await report_by_menu(resident)
    second = await report_by_menu(sms_resident, description="这里的路灯一直不亮",
                                  point=(30.2790, 120.1178))  # > 100 m away
    await chief.text(f"/case {second}")
    await chief.press("合并")
    await chief.text(first)
    assert await state_of(gridbot, second) == "merged"
    await sms_resident.inbox()
    assert first in sms_resident.said  # told where their report went
    stored = await case_store.get_by_number(gridbot.db.conn, first)
    assert stored is not None and stored.case.id is not None
    assert await case_store.is_follower(gridbot.db.conn, stored.case.id,
                                        sms_resident_person := await _person(gridbot,
                                                                             sms_resident))
    assert sms_resident_person


async def _person(bot: Gridbot, chat: ChatDriver) -> int:
    rows = await bot.db.fetchall("SELECT person_id FROM contacts WHERE channel = ? AND"
                                 " address = ?", [chat.channel, chat.address])
    return int(rows[0][0])


async def test_a_chief_cannot_act_outside_the_grid(gridbot: Gridbot, resident: ChatDriver) -> None:
    number = await report_by_menu(resident)
    other = ChatDriver(gridbot, "sim-telegram", "web:chief-0102")
    await other.text(f"/case {number}")
    assert "没有找到" in other.said
    await other.text("/tasks")  # gives the chief a menu to forge against
    await other.option("1:0")
    forged = ChatDriver(gridbot, "sim-telegram", "web:chief-0102")
    await forged.text(f"ACCEPT {number}")
    assert "没有找到" in forged.said
    assert await state_of(gridbot, number) == "registered"


async def test_a_department_acts_only_on_what_was_dispatched_to_it(
        gridbot: Gridbot, resident: ChatDriver, chief: ChatDriver) -> None:
    await join_as(gridbot, "hw", "department", "sanitation")
    police = await join_as(gridbot, "pcs", "department", "police")
    number = await report_by_menu(resident)
    await dispatch_to_sanitation(chief)
    await police.text(f"ACCEPT {number}")
    assert "没有找到" in police.said
    assert await state_of(gridbot, number) == "dispatched"


async def test_residents_cannot_use_staff_actions(gridbot: Gridbot, resident: ChatDriver,
                                                  sms_resident: ChatDriver) -> None:
    number = await report_by_menu(resident)
    await sms_resident.text(f"ACCEPT {number}")
    assert "只对网格员和工作人员开放" in sms_resident.said
    await sms_resident.text("/tasks")
    assert "只对网格员和工作人员开放" in sms_resident.said
    assert await state_of(gridbot, number) == "registered"


async def test_two_people_accepting_at_once_exactly_one_wins(
        gridbot: Gridbot, resident: ChatDriver, chief: ChatDriver) -> None:
    first = await join_as(gridbot, "sq1", "community_staff", COMMUNITY_1)
    second = await join_as(gridbot, "sq2", "community_staff", COMMUNITY_1)
    number = await report_by_menu(resident)
    await escalate(chief, "需要社区处理")
    await first.inbox()
    await second.inbox()
    await asyncio.gather(first.press("签收"), second.press("签收"))
    outcomes = sorted(["刚被他人处理过" in c.said for c in (first, second)])
    assert outcomes == [False, True]
    assert (await trail(gridbot, number)).count("sign") == 1


async def test_chief_sees_a_sms_residents_number_masked_and_the_community_in_full(
        gridbot: Gridbot, sms_resident: ChatDriver, chief: ChatDriver) -> None:
    phone = ChatDriver(gridbot, "sim-sms", "+8613912345678")
    number = await report_by_menu(phone)
    async with gridbot.db.transaction() as conn:  # as the SMS channel records it
        await conn.execute("UPDATE contacts SET channel = 'sms' WHERE address = ?",
                           ["+8613912345678"])
    await chief.text(f"/case {number}")
    assert "139****5678" in chief.said and "13912345678" not in chief.said
    community = await join_as(gridbot, "sq", "community_staff", COMMUNITY_1)
    await community.text(f"/case {number}")
    assert "+8613912345678" in community.said
    phone.channel = "sms"  # the SMS channel's own address from now on
    await phone.text("/sharephone on")
    assert "完整电话号码" in phone.said
    await chief.text(f"/case {number}")
    assert "+8613912345678" in chief.said  # the resident agreed


async def test_sms_staff_accept_with_a_typed_command(gridbot: Gridbot,
                                                    resident: ChatDriver) -> None:
    number = await report_by_menu(resident)
    sms_chief = await join_as(gridbot, "chief-sms", "grid_chief", GRID_1, channel="sim-sms")
    await sms_chief.text(f"签收 {number.replace('-', '')}")
    assert await state_of(gridbot, number) == "in_progress"
    assert "回复 1" in sms_chief.said  # the next actions, numbered


async def test_tasks_lists_overdue_first(gridbot: Gridbot, clock: FakeClock,
                                         resident: ChatDriver, chief: ChatDriver) -> None:
    old = await report_by_menu(resident)
    clock.advance(timedelta(days=4))
    other = ChatDriver(gridbot, "sim-sms", "web:other")
    new = await report_by_menu(other, description="垃圾桶坏了", point=(30.2790, 120.1178))
    await chief.text("/tasks")
    assert chief.said.index(old) < chief.said.index(new)
    assert "【超期】" in chief.said


async def test_patrol_marks_the_case_found_on_patrol(gridbot: Gridbot,
                                                     chief: ChatDriver) -> None:
    await chief.text("/patrol")
    await chief.press("市容环卫")
    await chief.text("巡查发现垃圾堆放")
    await chief.location(*GRID_1_POINT)
    await chief.press("没有照片")
    await chief.press("确认提交")
    number = CASE_NUMBER.search(chief.said)
    assert number
    stored = await case_store.get_by_number(gridbot.db.conn, number.group(0))
    assert stored is not None and stored.case.found_on_patrol


async def test_visit_opinion_and_contact_card(gridbot: Gridbot, chief: ChatDriver,
                                              resident: ChatDriver) -> None:
    await chief.text("/visit")
    await chief.text("3幢")
    await chief.text("2单元301")
    await chief.text("楼道灯坏了")
    await chief.press("无需跟进")
    assert "走访日志已记录" in chief.said
    await chief.text("/opinion 居民希望增设电动车充电桩")
    assert "已上报" in chief.said
    await chief.text("/contact duties 巡查走访、垃圾分类督导")
    assert "垃圾分类督导" in chief.said
    rows = await gridbot.db.fetchall("SELECT building, household, raised FROM visits")
    # 翠苑一区3幢 2-301 is a demo household: the visit is logged against it
    assert [tuple(r) for r in rows] == [("翠苑一区3幢", "2-301", "楼道灯坏了")]
    await resident.text("/visit")
    assert "只对网格员和工作人员开放" in resident.said


async def test_an_invitation_works_once_and_expires(gridbot: Gridbot, clock: FakeClock) -> None:
    async with gridbot.db.transaction() as conn:
        await staff_store.add_invite(conn, "ONCE1234", "grid_chief", GRID_2, clock.now(),
                                     clock.now() + timedelta(days=1))
        await staff_store.add_invite(conn, "LATE1234", "grid_chief", GRID_2, clock.now(),
                                     clock.now() + timedelta(hours=1))
    first = ChatDriver(gridbot, "sim-telegram", "web:a")
    await first.text("/start ONCE1234")
    assert "欢迎加入" in first.said and "网格长" in first.said
    second = ChatDriver(gridbot, "sim-sms", "web:b")
    await second.text("JOIN ONCE1234")
    assert "已被使用" in second.said
    clock.advance(timedelta(hours=2))
    await second.text("/join LATE1234")
    assert "已过期" in second.said
    await second.text("/join NOPE")
    assert "不存在" in second.said
    rows = await gridbot.db.fetchall("SELECT code_hash FROM invites")
    assert all("ONCE1234" not in r[0] for r in rows)  # stored hashed


async def test_the_reporter_adds_a_comment_and_a_photo_and_the_chief_is_told(
        gridbot: Gridbot, resident: ChatDriver, chief: ChatDriver) -> None:
    number = await report_by_menu(resident)
    await chief.inbox()
    await resident.text(f"/case {number}")
    await resident.press("补充")
    await resident.text("晚上九点以后完全不亮")
    assert "已补充" in resident.said
    await chief.inbox()
    assert "晚上九点以后完全不亮" in chief.said
    await resident.text(f"/case {number}")
    await resident.press("补充")
    await resident.photo("ee" * 32)
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.id is not None
    rows = await gridbot.db.fetchall("SELECT count(*) FROM media WHERE case_id = ?",
                                     [stored.case.id])
    assert rows[0][0] == 3
    assert (await trail(gridbot, number)).count("comment") == 2


async def test_stats_command_shows_the_month_for_the_chiefs_grid(
        gridbot: Gridbot, resident: ChatDriver, chief: ChatDriver) -> None:
    await report_by_menu(resident)
    await chief.text("/stats")
    assert "2026-11" in chief.said and "翠苑一区第1网格" in chief.said
    await resident.text("/stats")
    assert "只对网格员和工作人员开放" in resident.said


async def test_long_case_lists_stay_within_two_sms_segments(gridbot: Gridbot) -> None:
    from bot.domain.sms_segments import segments

    sms = ChatDriver(gridbot, "sim-sms", "web:many")
    points = [(30.2801, 120.11661), (30.2790, 120.1178), (30.27962, 120.11974),
              (30.27725, 120.11668), (30.278, 120.11986)]
    for point in points:
        await report_by_menu(sms, point=point)
    await sms.text("/mycases")
    assert "共5件" in sms.said
    assert segments(sms.said) <= 2, sms.said
    sms_chief = await join_as(gridbot, "many-chief", "grid_chief", GRID_1, channel="sim-sms")
    await sms_chief.text("/tasks")
    assert segments(sms_chief.said) <= 2, sms_chief.said


async def test_help_lists_the_commands_of_the_persons_roles(
        gridbot: Gridbot, resident: ChatDriver, chief: ChatDriver) -> None:
    from handlers.chief import staff_menu

    await resident.text("/help")
    assert "/report" in resident.said and "/tasks" not in resident.said
    await chief.text("/help")
    for command in staff_menu(["grid_chief"]):  # the chief's Telegram command menu
        assert f"/{command}" in chief.said, (command, chief.said)
    assert "/report" in chief.said and "/mycases" in chief.said  # and a resident's too
    await chief.text("/lang en")
    await chief.text("/help")
    assert "Staff commands" in chief.said and "/patrol" in chief.said
    sms_chief = await join_as(gridbot, "sms-chief", "grid_chief", GRID_2, channel="sim-sms")
    await sms_chief.text("帮助")
    assert "/tasks" in sms_chief.said and "签收" in sms_chief.said


async def test_the_closing_message_shows_only_the_photo_of_the_result(
        gridbot: Gridbot, resident: ChatDriver, chief: ChatDriver) -> None:
    from store import media as media_store

    number = await report_by_menu(resident)  # with two photos of the problem
    await chief.inbox()
    await chief.press("签收")
    await chief.press("已处置")
    await chief.text("完成")  # no after-photo
    await chief.press("核查通过")
    await resident.inbox()
    closing = next(s for s in resident.last if "已办结" in s.text)
    assert not closing.payload.get("photos"), "the resident's own photo is not the result"

    second = await report_by_menu(resident, description="路灯又不亮了")
    await chief.inbox()
    await chief.press("签收")
    await chief.press("已处置")
    await chief.photo("ee" * 32)
    await chief.text("换了灯泡")
    await chief.press("核查通过")
    await resident.inbox()
    closing = next(s for s in resident.last if "已办结" in s.text)
    stored = await case_store.get_by_number(gridbot.db.conn, second)
    assert stored is not None and stored.case.id is not None and number != second
    media = await media_store.for_case(gridbot.db.conn, stored.case.id)
    assert [m.role for m in media] == ["before", "before", "after"]
    assert closing.payload["photos"] == [media[-1].id]
