"""A case handed to a grid chief says where to go and shows what it looks like.

The place: the grid (name and code), the nearest known building and the point itself —
on Telegram a venue with the case, on SMS a first text with a map link. The photos: on
Telegram with the case, on SMS as signed links. The staff card counts the photos of the
problem and of the result.
"""

from __future__ import annotations

from bot.bootstrap import Gridbot
from bot.domain.sms_segments import segments
from store import cases as case_store
from store import media as media_store
from store import people as people_store
from tests.chat import ChatDriver
from tests.test_report_flow import CASE_NUMBER

NEAR_BUILDING_3 = (30.27812, 120.12640)  # a few metres from 3号楼, 古翠路 88 号 (grid 0204)
GRID_4 = "33010600100204"


async def report_with_pin_and_photo(resident: ChatDriver) -> str:
    """The resident sends a pin and one photo; return the case number."""
    await resident.text("/report")
    await resident.press("市容环卫")
    await resident.text("垃圾桶满了，一直没人清")
    await resident.location(*NEAR_BUILDING_3)
    await resident.photo("c1" * 32)
    await resident.press("完成")
    await resident.press("确认提交")
    number = CASE_NUMBER.search(resident.said)
    assert number, resident.said
    return number.group(0)


async def photo_ids(bot: Gridbot, number: str) -> list[int]:
    stored = await case_store.get_by_number(bot.db.conn, number)
    assert stored is not None and stored.case.id is not None
    return [m.id for m in await media_store.for_case(bot.db.conn, stored.case.id)]


async def test_the_chiefs_assignment_has_the_place_on_a_map_and_the_photo(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    number = await report_with_pin_and_photo(resident)
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0204")
    [assignment] = [s for s in await chief.inbox() if number in s.text]
    assert "地点：-" not in assignment.text
    assert "3号楼附近, 古翠路 88 号" in assignment.text
    assert f"翠苑二区第4网格 {GRID_4}" in assignment.text
    assert assignment.payload["photos"] == await photo_ids(gridbot, number)
    where = assignment.payload["location"]
    assert (where["lat"], where["lon"]) == NEAR_BUILDING_3
    assert where["title"] == "3号楼附近" and GRID_4 in where["address"]

    await chief.text(f"/case {number}")
    [card] = [s for s in chief.last if s.buttons]
    assert "3号楼附近" in card.text and "照片：1 张" in card.text
    assert len(card.payload["photos"]) == 1 and card.payload["location"]
    await chief.press("签收")
    await chief.press("已处置")
    await chief.photo("c2" * 32)
    await chief.text("已清运")
    [card] = [s for s in chief.last if s.buttons]
    assert "照片：2 张" in card.text and len(card.payload["photos"]) == 2


async def test_an_sms_chief_gets_the_place_with_a_map_link_first_then_the_case(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    async with gridbot.db.transaction() as conn:
        chief = await people_store.holder_of(conn, "grid_chief", GRID_4)
        assert chief is not None
        await people_store.add_contact(conn, chief.id, "sim-sms", "web:chief-0204-sms",
                                       gridbot.clock.now())
    sms_chief = ChatDriver(gridbot, "sim-sms", "web:chief-0204-sms")
    await sms_chief.text("帮助")  # she writes from SMS last: notices go there
    number = await report_with_pin_and_photo(resident)
    place, case = await sms_chief.inbox()
    assert number in place.text and "3号楼附近" in place.text and GRID_4 in place.text
    assert "https://osm.org/go/" in place.text
    assert segments(place.text) <= 2
    assert number in case.text and "回复 1：签收" in case.text
    assert "/media/" in case.text  # the photo, as a signed link
    without_links = "\n".join(line for line in case.text.splitlines() if "/media/" not in line)
    assert segments(without_links) <= 2
    await sms_chief.text(f"查询 {number}")
    assert "https://osm.org/go/" in sms_chief.said and "3号楼附近" in sms_chief.said


async def test_english_staff_read_the_place_in_english(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0204")
    await chief.text("/lang en")
    number = await report_with_pin_and_photo(resident)
    [assignment] = [s for s in await chief.inbox() if number in s.text]
    assert "near Building 3, 88 Gucui Rd" in assignment.text
    assert assignment.payload["location"]["title"] == "near Building 3"
