"""Staff read a grid by its name and its code in every reply that names it (issue 12 item
12): the case card, the dispatch-down choice, joining, patrol reports, notice counts.
Residents keep the name alone."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from bot.bootstrap import Gridbot
from store import staff as staff_store
from tests.chat import ChatDriver
from tests.helpers import CASE_NUMBER, GRID_1_POINT, report_by_menu

COMMUNITY_1 = "33010600100100"
GRID_1 = "翠苑一区第1网格 33010600100101"
GRID_2 = "翠苑一区第2网格 33010600100102"
_codes = itertools.count(1)


async def joined(bot: Gridbot, name: str, role: str, scope: str) -> ChatDriver:
    """A staff member who redeemed an invitation in the chat."""
    code = f"GRID{next(_codes):04d}"
    async with bot.db.transaction() as conn:
        await staff_store.add_invite(conn, code, role, scope, bot.clock.now(),
                                     bot.clock.now() + timedelta(days=7))
    chat = ChatDriver(bot, "sim-telegram", f"web:{name}")
    await chat.text(f"/join {code}")
    return chat


@pytest.fixture
def chief(gridbot: Gridbot) -> ChatDriver:
    """The demo grid chief of grid 1, as the web simulator plays her."""
    return ChatDriver(gridbot, "sim-telegram", "web:chief-0101")


async def test_the_chiefs_case_card_names_the_grid_with_its_code_the_resident_sees_the_name(
        gridbot: Gridbot, resident: ChatDriver, chief: ChatDriver) -> None:
    number = await report_by_menu(resident)
    assert "翠苑一区第1网格" in resident.said and "33010600100101" not in resident.said
    await chief.text(f"/case {number}")
    assert f"区域：{GRID_1}" in chief.said
    await resident.text(f"/case {number}")
    assert "33010600100101" not in resident.said


async def test_a_grid_offered_to_dispatch_down_to_shows_its_code(
        gridbot: Gridbot, resident: ChatDriver, chief: ChatDriver) -> None:
    community = await joined(gridbot, "sq", "community_staff", COMMUNITY_1)
    await report_by_menu(resident)
    await chief.inbox()
    await chief.press("上报上级")
    await chief.text("需要社区协调")
    await community.inbox()
    await community.press("派遣")
    labels = [label for label, _ in community.last[-1].buttons]
    assert GRID_1 in labels


async def test_joining_as_a_grid_chief_names_the_grid_with_its_code(
        gridbot: Gridbot) -> None:
    chief = await joined(gridbot, "new-chief", "grid_chief", "33010600100102")
    assert GRID_2 in chief.said


async def test_a_patrol_report_names_the_grid_with_its_code(chief: ChatDriver) -> None:
    await chief.text("/patrol")
    await chief.press("市容环卫")
    await chief.text("巡查发现垃圾堆放")
    await chief.location(*GRID_1_POINT)
    assert f"({GRID_1})" in chief.said
    await chief.press("没有照片")
    await chief.press("确认提交")
    assert CASE_NUMBER.search(chief.said)
    assert f"责任网格：{GRID_1}" in chief.said


async def test_english_staff_read_the_code_too(gridbot: Gridbot, resident: ChatDriver,
                                               chief: ChatDriver) -> None:
    number = await report_by_menu(resident)
    await chief.text("/lang")
    await chief.press("English")
    await chief.text(f"/case {number}")
    assert "33010600100101" in chief.said and "Grid 1" in chief.said
