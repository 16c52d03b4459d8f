"""Bad input of every kind gets a clear answer, loses nothing, and the dialogue goes on."""

from __future__ import annotations

import pytest

from bot.bootstrap import Gridbot
from handlers.base import Context
from store import cases as case_store
from tests.chat import ChatDriver
from tests.helpers import CASE_NUMBER, GRID_1_POINT


async def at_description(chat: ChatDriver) -> None:
    await chat.text("/report")
    await chat.press("市容环卫")
    assert "请用文字描述" in chat.said


async def finish_report(chat: ChatDriver) -> str:
    """From the description step onwards, complete the report; return the case number."""
    await chat.location(*GRID_1_POINT)
    await chat.press("没有照片")
    await chat.press("确认提交")
    match = CASE_NUMBER.search(chat.said)
    assert match, chat.said
    return match.group(0)


async def failed_inbox(gridbot: Gridbot) -> int:
    rows = await gridbot.db.fetchall("SELECT count(*) FROM inbox WHERE status = 'failed'")
    return int(rows[0][0])


async def test_empty_text_is_answered_and_the_step_stays(gridbot: Gridbot,
                                                          resident: ChatDriver) -> None:
    await resident.text("   ")
    assert "空消息" in resident.said
    await at_description(resident)
    await resident.text("  ")
    assert "描述不能为空" in resident.said
    await resident.text("垃圾没人清")
    assert "问题在哪里" in resident.said
    assert await failed_inbox(gridbot) == 0


async def test_five_thousand_characters_are_kept_to_the_limit_and_the_person_told(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    await at_description(resident)
    await resident.text("脏" * 5000)
    assert "已保留前1000字" in resident.said
    number = await finish_report(resident)
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.details.description == "脏" * 1000


@pytest.mark.parametrize("text", [
    "垃圾堆成山了 🗑️🤢🔥",                          # emoji
    "這裡的垃圾沒有人清理，臭氣熏天。ゴミ",          # CJK, traditional and Japanese
    "مرحبا القمامة هنا \u202eabc\u202c",            # right-to-left text and bidi marks
    "'; DROP TABLE cases; -- \" OR 1=1",             # SQL metacharacters
    "{{ 7*7 }} {% for x in range(3) %}x{% endfor %} <b>hi</b> <script>alert(1)</script>",
])
async def test_unusual_text_is_stored_exactly_and_echoed_as_data(
        gridbot: Gridbot, resident: ChatDriver, text: str) -> None:
    await at_description(resident)
    await resident.text(text)
    await resident.location(*GRID_1_POINT)
    await resident.press("没有照片")
    assert text.strip() in resident.said  # shown back verbatim in the summary
    assert "49" not in resident.said  # the template syntax was not evaluated
    await resident.press("确认提交")
    match = CASE_NUMBER.search(resident.said)
    assert match
    stored = await case_store.get_by_number(gridbot.db.conn, match.group(0))
    assert stored is not None and stored.details.description == text.strip()
    rows = await gridbot.db.fetchall("SELECT count(*) FROM cases")
    assert rows[0][0] == 1


@pytest.mark.parametrize("lat,lon", [(91.0, 120.0), (30.0, 181.0), (-90.5, 0.0),
                                     (float("nan"), 120.0), (30.0, float("inf"))])
async def test_coordinates_out_of_range_are_refused_clearly(
        resident: ChatDriver, lat: float, lon: float) -> None:
    await at_description(resident)
    await resident.text("路边垃圾")
    await resident.location(lat, lon)
    assert "坐标无效" in resident.said
    await resident.location(*GRID_1_POINT)
    assert "翠苑一区第1网格" in resident.said


async def test_unknown_command_is_named_and_the_question_asked_again(
        resident: ChatDriver) -> None:
    await at_description(resident)
    await resident.text("/frobnicate now")
    assert "/frobnicate" in resident.said
    assert "请用文字描述" in resident.said
    await resident.text("垃圾")
    assert "问题在哪里" in resident.said


async def test_photo_where_text_was_expected_is_kept_and_text_asked_for(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    await at_description(resident)
    await resident.photo("cc" * 32)
    assert "已收到照片" in resident.said
    assert "请用文字描述" in resident.said
    await resident.text("垃圾桶坏了")
    number = await finish_report(resident)
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.id is not None
    rows = await gridbot.db.fetchall("SELECT sha256 FROM media WHERE case_id = ?",
                                     [stored.case.id])
    assert [r[0] for r in rows] == ["cc" * 32]


async def test_location_at_the_category_step_becomes_the_place(resident: ChatDriver) -> None:
    await resident.text("/report")
    await resident.location(*GRID_1_POINT)
    assert "已记下位置" in resident.said
    await resident.press("市容环卫")
    await resident.text("垃圾")
    assert "照片" in resident.said  # the place is known: no question about it


async def test_choice_from_an_old_menu_is_refused_and_the_current_menu_shown(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    await resident.text("/report")
    old_menu = next(s for s in resident.last if s.buttons)
    old_button = old_menu.button("市容环卫")
    await resident.press("市政设施")
    await resident.option(old_button)
    assert "菜单已经过期" in resident.said
    assert "请用文字描述" in resident.said  # still at the description step
    await resident.option("999:0")  # a forged button
    assert "菜单已经过期" in resident.said
    await resident.option("garbage")
    assert "菜单已经过期" in resident.said
    assert await failed_inbox(gridbot) == 0


async def test_numbers_beyond_the_menu_are_taken_as_text(resident: ChatDriver) -> None:
    await resident.text("/report")
    await resident.text("99")
    assert "请选择问题类别" in resident.said  # no category guessed from "99"


async def test_the_same_provider_message_is_processed_once(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    from bot.domain.messages import parse_text

    inbound = parse_text("sim-telegram", "web:resident", "/help")
    assert await gridbot.engine.handle(inbound, provider_id="dup-1") is not None
    assert await gridbot.engine.handle(inbound, provider_id="dup-1") is None
    rows = await gridbot.db.fetchall("SELECT count(*) FROM outbox")
    assert rows[0][0] == 1


async def test_a_crash_in_a_flow_is_recorded_and_answered_with_an_apology(
        gridbot: Gridbot, resident: ChatDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.runtime.engine

    async def broken(ctx: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(bot.runtime.engine, "route", broken)
    await resident.text("你好")
    assert "抱歉" in resident.said
    rows = await gridbot.db.fetchall("SELECT status, error FROM inbox")
    assert [tuple(r) for r in rows] == [("failed", "RuntimeError: boom")]
    monkeypatch.undo()
    await resident.text("/help")
    assert "/report" in resident.said


async def test_one_failing_message_does_not_hold_back_the_others_committed_with_it(
        gridbot: Gridbot, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import bot.runtime.engine
    from handlers.router import route

    async def fails_for_one(ctx: Context) -> None:
        if ctx.msg.address == "web:p3":
            raise RuntimeError("boom")
        await route(ctx)

    monkeypatch.setattr(bot.runtime.engine, "route", fails_for_one)
    chats = [ChatDriver(gridbot, "sim-sms", f"web:p{i}") for i in range(8)]
    await asyncio.gather(*(c.text("/help") for c in chats))
    for i, chat in enumerate(chats):
        expected = "抱歉" if i == 3 else "/report"
        assert expected in chat.said, (i, chat.said)
    rows = await gridbot.db.fetchall("SELECT status, count(*) FROM inbox GROUP BY status")
    assert dict((r[0], r[1]) for r in rows) == {"processed": 7, "failed": 1}


async def test_a_payload_stored_before_a_crash_is_processed_at_start(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    from bot.domain.messages import parse_text

    inbound = parse_text("sim-telegram", "web:resident", "/help")
    inbox_id = await gridbot.engine.receive("sim-telegram", "update-1", "web:resident",
                                            inbound.to_payload())
    assert inbox_id is not None
    assert await gridbot.engine.recover() == 1
    assert await gridbot.engine.recover() == 0
    rows = await gridbot.db.fetchall("SELECT status FROM inbox WHERE id = ?", [inbox_id])
    assert rows[0][0] == "processed"
    await resident.text("/mycases")  # reads what was queued since
    bodies = await gridbot.db.fetchall("SELECT body FROM outbox WHERE inbox_id = ?", [inbox_id])
    assert "/report" in bodies[0][0]
