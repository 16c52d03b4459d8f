"""A resident reports a problem through the engine, on a real database file."""

from __future__ import annotations

import asyncio

from bot.bootstrap import Gridbot
from store import cases as case_store
from store import media as media_store
from tests.chat import ChatDriver
from tests.helpers import CASE_NUMBER, GRID_1_POINT, report_by_menu

OUTSIDE = (30.3500, 120.2000)


async def test_report_by_menu_ends_with_a_case_number_and_audit_trail(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    number = await report_by_menu(resident)

    assert "已立案" in resident.said
    assert "王丽华" in resident.said  # the grid chief of grid 1 handles it
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None
    case = stored.case
    assert case.state.value == "registered"
    assert case.category == "utilities"
    assert case.grid_code == "33010600100101"
    assert case.community_code == "33010600100100"
    assert case.deadline is not None and case.deadline > case.created_at
    assert stored.details.description == "路灯不亮了，晚上很黑"
    assert case.id is not None
    trail = await case_store.events(gridbot.db.conn, case.id)
    assert [(e.event, e.to_state) for e in trail] == [
        ("submit", "submitted"), ("register", "registered")]
    photos = await media_store.for_case(gridbot.db.conn, case.id)
    assert [p.sha256 for p in photos] == ["aa" * 32, "bb" * 32]


async def test_new_case_is_sent_to_the_grid_chief(gridbot: Gridbot,
                                                   resident: ChatDriver) -> None:
    number = await report_by_menu(resident)
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    await chief.text("/help")  # any message; the assignment was queued before it
    from store import outbox as outbox_store
    rows = await outbox_store.for_address(gridbot.db.conn, "sim-telegram", "web:chief-0101")
    assert any(number in r.body and "路灯不亮了" in r.body for r in rows)


async def test_case_numbers_count_up_within_a_day(resident: ChatDriver,
                                                   sms_resident: ChatDriver) -> None:
    first = await report_by_menu(resident)
    second = await report_by_menu(sms_resident, point=(30.27725, 120.12589))
    assert first == "261123-001"
    assert second == "261123-002"


async def test_one_message_report_suggests_category_and_asks_which_building(
        gridbot: Gridbot, sms_resident: ChatDriver) -> None:
    said = await sms_resident.text("3号楼门口垃圾堆了三天")
    text = "\n".join(s.text for s in said)
    assert "市容环卫" in text
    assert "回复 1" in text  # SMS shows numbered choices
    await sms_resident.text("1")  # the suggested category
    # Three buildings are called 3号楼 or 3幢: which one, with "none of these".
    for building in ("3号楼, 古翠路 88 号", "翠苑一区3幢", "翠苑二区3号楼", "都不是"):
        assert building in sms_resident.said, sms_resident.said
    await sms_resident.press("古翠路 88 号")
    assert "照片" in sms_resident.said  # description and place known: photos next
    await sms_resident.text("1")  # no photos
    assert "请确认" in sms_resident.said
    assert "3号楼门口垃圾堆了三天" in sms_resident.said
    await sms_resident.text("1")  # submit
    number = CASE_NUMBER.search(sms_resident.said)
    assert number
    stored = await case_store.get_by_number(gridbot.db.conn, number.group(0))
    assert stored is not None
    assert stored.case.grid_code == "33010600100204"
    assert stored.details.building_id is not None


async def test_a_point_outside_every_grid_goes_to_the_street(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    number = await report_by_menu(resident, point=OUTSIDE)
    assert "街道指挥中心" in resident.said
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None
    assert stored.case.grid_code is None
    assert stored.case.street_code == "33010600100000"
    assert stored.case.level.value == "street"
    assert stored.details.location_note == "outside_grids"


async def test_unknown_typed_address_can_be_filed_as_typed(resident: ChatDriver) -> None:
    await resident.text("/report")
    await resident.press("道路交通")
    await resident.text("路面有个大坑")
    await resident.text("火星基地七号")
    assert "没有找到" in resident.said
    await resident.press("按原样提交")
    assert "街道指挥中心" in resident.said
    await resident.press("没有照片")
    assert "火星基地七号" in resident.said


async def test_grid_code_is_accepted_as_a_location(resident: ChatDriver) -> None:
    await resident.text("/report")
    await resident.press("噪声污染")
    await resident.text("楼上半夜装修")
    await resident.text("33010600100203")
    assert "翠苑二区第3网格" in resident.said


async def test_nearby_open_case_of_same_category_is_offered_to_follow(
        gridbot: Gridbot, resident: ChatDriver, sms_resident: ChatDriver) -> None:
    number = await report_by_menu(resident)
    await sms_resident.text("/report")
    await sms_resident.text("2")  # 市政设施 is the second category
    await sms_resident.text("这里路灯也坏了")
    await sms_resident.location(GRID_1_POINT[0] + 0.0003, GRID_1_POINT[1])  # ~33 m away
    await sms_resident.text("1")  # no photos
    await sms_resident.text("1")  # submit
    assert number in sms_resident.said
    assert "关注" in sms_resident.said
    await sms_resident.text("1")  # follow the existing case
    assert f"已关注事件 {number}" in sms_resident.said
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.id is not None
    assert await case_store.follower_count(gridbot.db.conn, stored.case.id) == 1
    await sms_resident.text("/mycases")
    assert number in sms_resident.said


async def test_your_own_nearby_case_is_not_offered_to_follow(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    number = await report_by_menu(resident)
    again = await report_by_menu(resident)  # the same person, place and category
    assert CASE_NUMBER.fullmatch(again) and again != number
    assert not any("关注" in said.text for said in resident.last)
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.id is not None
    assert await case_store.follower_count(gridbot.db.conn, stored.case.id) == 0


async def test_a_far_case_is_not_offered_as_duplicate(resident: ChatDriver,
                                                      sms_resident: ChatDriver) -> None:
    await report_by_menu(resident)
    second = await report_by_menu(sms_resident, point=(30.27725, 120.12589))
    assert CASE_NUMBER.fullmatch(second)


async def test_edit_from_the_summary_changes_one_answer(resident: ChatDriver) -> None:
    await resident.text("/report")
    await resident.press("市容环卫")
    await resident.text("垃圾满了")
    await resident.location(*GRID_1_POINT)
    await resident.press("没有照片")
    await resident.press("修改")
    await resident.press("描述")
    await resident.text("垃圾桶满了溢出来")
    assert "请确认" in resident.said
    assert "垃圾桶满了溢出来" in resident.said


async def test_cancel_anywhere_files_nothing(gridbot: Gridbot, resident: ChatDriver) -> None:
    await resident.text("/report")
    await resident.press("市容环卫")
    await resident.text("/cancel")
    assert "已取消" in resident.said
    await resident.text("/cancel")
    assert "没有进行中" in resident.said
    rows = await gridbot.db.fetchall("SELECT count(*) FROM cases")
    assert rows[0][0] == 0


async def test_case_detail_shows_timeline_only_to_reporter(
        resident: ChatDriver, sms_resident: ChatDriver) -> None:
    number = await report_by_menu(resident)
    await resident.text(f"/case {number.replace('-', '')}")
    assert "立案" in resident.said and "路灯不亮了" in resident.said
    await sms_resident.text(f"/case {number}")
    assert "没有找到" in sms_resident.said
    assert "路灯不亮了" not in sms_resident.said


async def test_mycases_lists_own_cases_with_buttons(resident: ChatDriver) -> None:
    await resident.text("/mycases")
    assert "还没有" in resident.said
    number = await report_by_menu(resident)
    await resident.text("/mycases")
    assert number in resident.said
    await resident.press(number)
    assert f"事件 {number}" in resident.said


async def test_english_after_lang(resident: ChatDriver) -> None:
    await resident.text("/lang")
    await resident.press("English")
    assert "English" in resident.said
    await resident.text("/report")
    assert "Choose the category" in resident.said
    await resident.press("Public facilities")
    assert "Describe the problem" in resident.said


async def test_welcome_shows_the_chief_card_once_the_grid_is_known(
        resident: ChatDriver) -> None:
    await resident.text("/start")
    assert "王丽华" not in resident.said and "您所在网格" not in resident.said
    await report_by_menu(resident)
    await resident.text("/start")
    assert "王丽华" in resident.said and "13800001001" in resident.said


GRID_POINTS = [(30.2801, 120.11661), (30.27962, 120.11974), (30.27725, 120.11668)]


async def sms_report(chat: ChatDriver, category: int, point: tuple[float, float]) -> str:
    """A report by numbered replies only; return the case number."""
    await chat.text("/report")
    await chat.text(str(category))
    await chat.text(f"问题描述 {chat.address}")
    await chat.location(*point)
    await chat.text("1")  # no photos
    await chat.text("1")  # submit
    match = CASE_NUMBER.search(chat.said)
    assert match and "已立案" in chat.said, chat.said
    return match.group(0)


async def test_messages_of_many_people_in_parallel_each_get_their_own_case(
        gridbot: Gridbot) -> None:
    chats = [ChatDriver(gridbot, "sim-sms", f"web:p{i}") for i in range(30)]
    # No two share a category and a grid, so none is offered as another's duplicate.
    numbers = await asyncio.gather(*(
        sms_report(c, i % 11 + 1, GRID_POINTS[i // 11]) for i, c in enumerate(chats)))
    assert len(set(numbers)) == 30
    rows = await gridbot.db.fetchall("SELECT count(*), count(DISTINCT reporter_id) FROM cases")
    assert tuple(rows[0]) == (30, 30)


async def test_case_with_something_that_is_no_case_number_says_so(
        resident: ChatDriver, sms_resident: ChatDriver) -> None:
    await resident.text("/case 999")
    assert "没有编号为 999 的事件" in resident.said and "261122-001" in resident.said
    assert "后面写上" not in resident.said  # a number was written: no "write a number"
    await resident.text("/case")
    assert "后面写上事件编号" in resident.said
    await resident.text("/lang en")
    await resident.text("/case 999")
    assert "There is no case 999" in resident.said and "YYMMDD-NNN" in resident.said
    await sms_resident.text("查询 999")
    assert "没有事件999" in sms_resident.said


async def test_an_ambiguous_typed_building_is_asked_about_and_none_of_these_asks_again(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    await resident.text("/report")
    await resident.press("市容环卫")
    await resident.text("垃圾没人清运")
    await resident.text("3号楼")
    assert "“3号楼”有几处" in resident.said
    assert [label for label, _ in resident.last[-1].buttons] == [
        "翠苑一区3幢, 学院路 107 号 (翠苑一区第1网格)",
        "翠苑二区3号楼, 文三路 105 号 (翠苑二区第1网格)",
        "3号楼, 古翠路 88 号 (翠苑二区第4网格)", "都不是"]
    await resident.press("都不是")
    assert "位置" in resident.said and resident.last[-1].payload.get("request_location")
    await resident.text("翠苑二区3号楼")  # the full name is not ambiguous
    assert "地点：翠苑二区3号楼" in resident.said


async def test_an_english_building_name_is_found(gridbot: Gridbot, resident: ChatDriver) -> None:
    await resident.text("/lang en")
    await resident.text("/report")
    await resident.press("Sanitation")
    await resident.text("Rubbish has not been collected")
    await resident.text("building 7")
    assert "Several places match “building 7”" in resident.said
    await resident.press("Cuiyuan Area 2 Building 7")
    assert "Cuiyuan Area 2 Building 7" in resident.said
    await resident.press("No photos")
    await resident.press("Submit")
    number = CASE_NUMBER.search(resident.said)
    assert number, resident.said
    stored = await case_store.get_by_number(gridbot.db.conn, number.group(0))
    assert stored is not None and stored.case.grid_code == "33010600100202"
