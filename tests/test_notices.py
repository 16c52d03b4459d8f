"""Notices from the street office: /notice, `gridbot notice`, "收到", reminders, /home, /mute."""

from __future__ import annotations

from datetime import timedelta

from bot.bootstrap import Gridbot
from bot.domain.clock import FakeClock
from store import notices as notice_store
from store import people as people_store
from tests.chat import ChatDriver
from tests.helpers import (
    COMMUNITY_1,
    GRID_1,
    STREET,
    add_staff,
    received,
    scheduler,
)

GRID_2 = "33010600100102"
GRID_5 = "33010600100201"


async def add_resident(bot: Gridbot, channel: str, address: str, grid: str) -> ChatDriver:
    """A resident known in a grid (as after a first report there)."""
    driver = ChatDriver(bot, channel, address)
    await driver.text("/help")
    async with bot.db.transaction() as conn:
        contact = await people_store.find_contact(conn, channel, address)
        assert contact is not None
        await people_store.set_grid(conn, contact.person_id, grid)
    return driver


async def compose(staff: ChatDriver, scope_label: str, audience: str, text: str,
                  photo: bool = False) -> str:
    """Walk /notice up to the preview (with a photo, if asked); return the preview's text."""
    await staff.text("/notice")
    await staff.press(scope_label)
    await staff.press(audience)
    await staff.text(text)
    if photo:
        await staff.photo()
    else:
        await staff.press("没有照片")
    await staff.press("立即发送")
    return staff.said


async def test_a_notice_reaches_residents_on_each_channel_and_counts_acknowledgements(
        gridbot: Gridbot) -> None:
    await add_staff(gridbot, "街道调度员", "dispatcher", STREET, "web:dispatcher")
    staff = ChatDriver(gridbot, "sim-telegram", "web:dispatcher")
    tg = await add_resident(gridbot, "sim-telegram", "web:r1", GRID_1)
    sms = await add_resident(gridbot, "sim-sms", "web:r2", GRID_1)
    other = await add_resident(gridbot, "sim-telegram", "web:r3", GRID_2)
    elsewhere = await add_resident(gridbot, "sim-telegram", "web:r4", GRID_5)

    preview = await compose(staff, "翠苑一区社区", "居民", "周六上午停水检修，请提前储水。")
    assert "人数：3 人" in preview
    assert "模拟器（Telegram）：2 人" in preview and "模拟器（短信）：1 人" in preview
    assert await received(tg) == []  # nothing goes before the confirmation

    await staff.press("发送")
    assert "已确认" in staff.said
    assert await scheduler(gridbot).send_pending(gridbot.clock.now()) == 3
    assert await scheduler(gridbot).send_pending(gridbot.clock.now()) == 0  # once only

    [notice] = await received(tg)
    assert "停水检修" in notice and tg.last[0].buttons[0][0] == "收到"
    [sms_text] = await received(sms)
    assert "回复 1：收到" in sms_text and sms.last[0].buttons == []
    assert len(await received(other)) == 1
    assert await received(elsewhere) == []

    await tg.press("收到")
    assert "已确认收到" in tg.said
    await sms.text("1")
    assert "已确认收到" in sms.said

    await staff.text("/notice")
    await staff.press("我发的通知")
    assert "已确认收到：2 / 3" in staff.said
    assert "翠苑一区第1网格 33010600100101：2 / 2" in staff.said
    assert "翠苑一区第2网格 33010600100102：0 / 1" in staff.said

    await staff.press("提醒未确认的人")
    assert await scheduler(gridbot).send_pending(gridbot.clock.now()) == 1
    assert len(await received(other)) == 1
    assert await received(tg) == []  # acknowledged already: no reminder


async def test_a_grid_chief_cannot_send_notices_and_staff_only_within_their_area(
        gridbot: Gridbot) -> None:
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    await chief.text("/notice")
    assert "只有街道和社区工作人员" in chief.said
    await add_staff(gridbot, "社区干事", "community_staff", COMMUNITY_1, "web:cs")
    staff = ChatDriver(gridbot, "sim-telegram", "web:cs")
    await staff.text("/notice")
    await staff.text(GRID_5)  # a grid of the other community, typed
    assert "不在您的工作范围内" in staff.said


async def test_a_notice_with_a_time_waits_for_it(gridbot: Gridbot, clock: FakeClock) -> None:
    await add_staff(gridbot, "街道调度员", "dispatcher", STREET, "web:dispatcher")
    staff = ChatDriver(gridbot, "sim-telegram", "web:dispatcher")
    resident = await add_resident(gridbot, "sim-telegram", "web:r1", GRID_1)
    await staff.text("/notice")
    await staff.press("翠苑街道")
    await staff.press("居民")
    await staff.text("明天上午消防演练")
    await staff.press("没有照片")
    await staff.text("14:00")  # today 14:00 local; now is 10:00
    assert "发送时间：11-23 14:00" in staff.said
    await staff.press("发送")
    assert "将于 11-23 14:00 发送" in staff.said
    await scheduler(gridbot).tick()
    assert await received(resident) == []
    clock.advance(timedelta(hours=4))
    await scheduler(gridbot).tick()
    assert len(await received(resident)) == 1


async def test_bulk_queued_in_quiet_hours_waits_until_they_end(
        gridbot: Gridbot, clock: FakeClock) -> None:
    resident = await add_resident(gridbot, "sim-telegram", "web:r1", GRID_1)
    clock.advance(timedelta(hours=12))  # 22:00 in Shanghai
    async with gridbot.db.transaction() as conn:
        await notice_store.create(conn, sender_id=None, issuer=STREET, scope=STREET,
                                  audience="residents", body="今晚停电", photo_id=None,
                                  send_at=clock.now(), now=clock.now())
    await scheduler(gridbot).send_pending(clock.now())
    rows = await gridbot.db.fetchall("SELECT next_attempt_at, priority FROM outbox"
                                     " WHERE address = ? ORDER BY id DESC LIMIT 1",
                                     (resident.address,))
    assert rows[0][0] == "2026-11-24T00:00:00+00:00"  # 08:00 local the next morning
    assert rows[0][1] == 10


async def test_home_registers_the_building_and_building_notices_reach_it(
        gridbot: Gridbot) -> None:
    resident = ChatDriver(gridbot, "sim-telegram", "web:newcomer")
    await resident.text("/home")
    assert "请输入您住的楼栋" in resident.said
    await resident.text("翠苑一区3幢")
    assert "已登记您的住址：翠苑一区3幢" in resident.said
    neighbour = await add_resident(gridbot, "sim-telegram", "web:r9", GRID_1)
    await add_staff(gridbot, "街道调度员", "dispatcher", STREET, "web:dispatcher")
    staff = ChatDriver(gridbot, "sim-telegram", "web:dispatcher")
    await staff.text("/notice")
    await staff.text("翠苑一区3幢")
    await staff.press("居民")
    await staff.text("3幢电梯今天下午维修")
    await staff.press("没有照片")
    await staff.press("立即发送")
    assert "人数：1 人" in staff.said
    await staff.press("发送")
    await scheduler(gridbot).send_pending(gridbot.clock.now())
    assert len(await received(resident)) == 1
    assert await received(neighbour) == []


async def test_a_home_chosen_is_not_moved_by_a_report_elsewhere(gridbot: Gridbot) -> None:
    resident = ChatDriver(gridbot, "sim-telegram", "web:newcomer")
    await resident.text("/home 翠苑一区3幢")
    async with gridbot.db.transaction() as conn:
        contact = await people_store.find_contact(conn, "sim-telegram", "web:newcomer")
        assert contact is not None
        await people_store.set_grid(conn, contact.person_id, GRID_5)
        assert (await notice_store.home_of(conn, contact.person_id))[0] == GRID_1


async def test_mute_stops_notices_but_not_case_updates(gridbot: Gridbot) -> None:
    from bot.domain.messages import Reply
    from bot.services.notify import PersonalMessage, render_personal

    resident = await add_resident(gridbot, "sim-telegram", "web:r1", GRID_1)
    await resident.text("/mute")
    assert "不再给您发通知" in resident.said
    async with gridbot.db.transaction() as conn:
        await notice_store.create(conn, sender_id=None, issuer=STREET, scope=STREET,
                                  audience="residents", body="通知", photo_id=None,
                                  send_at=gridbot.clock.now(), now=gridbot.clock.now())
    assert await scheduler(gridbot).send_pending(gridbot.clock.now()) == 0
    contact = await people_store.find_contact(gridbot.db.conn, "sim-telegram", "web:r1")
    assert contact is not None
    rows = await render_personal(gridbot.db.conn, gridbot.renderer, "zh_CN",
                                [PersonalMessage(contact.person_id, Reply("feedback_thanks",
                                                                 {"rating": 5}))],
                                gridbot.clock.now())
    assert len(rows) == 1  # a case update still reaches a muted resident
    await resident.text("/unmute")
    assert "已恢复" in resident.said


async def test_a_stopped_contact_is_not_in_the_audience(gridbot: Gridbot) -> None:
    await add_resident(gridbot, "sim-sms", "web:r1", GRID_1)
    async with gridbot.db.transaction() as conn:
        await people_store.set_opted_out(conn, "sim-sms", "web:r1", True)
    from bot.services.notices import preview, resolve_scope

    scope = resolve_scope(gridbot.reference.district, GRID_1)
    assert scope is not None
    assert (await preview(gridbot.db.conn, scope, "residents")).total == 0


async def test_acknowledging_a_notice_not_sent_to_you_changes_nothing(
        gridbot: Gridbot) -> None:
    stranger = ChatDriver(gridbot, "sim-telegram", "web:stranger")
    await stranger.option("ack:999")
    assert "过期" in stranger.said
    rows = await gridbot.db.fetchall("SELECT count(*) FROM notice_recipients"
                                     " WHERE acked_at IS NOT NULL")
    assert rows[0][0] == 0


async def test_a_notice_goes_once_to_the_channel_the_person_last_wrote_from(
        gridbot: Gridbot, clock: FakeClock) -> None:
    resident = await add_resident(gridbot, "sim-telegram", "web:both", GRID_1)
    contact = await people_store.find_contact(gridbot.db.conn, "sim-telegram", "web:both")
    assert contact is not None
    async with gridbot.db.transaction() as conn:
        await people_store.add_contact(conn, contact.person_id, "sim-sms", "web:both-sms",
                                       gridbot.clock.now())
    sms = ChatDriver(gridbot, "sim-sms", "web:both-sms")
    clock.advance(timedelta(minutes=5))
    await sms.text("/help")  # the SMS contact is now the one last written from
    async with gridbot.db.transaction() as conn:
        await notice_store.create(conn, sender_id=None, issuer=STREET, scope=GRID_1,
                                  audience="residents", body="通知", photo_id=None,
                                  send_at=gridbot.clock.now(), now=gridbot.clock.now())
    assert await scheduler(gridbot).send_pending(gridbot.clock.now()) == 1
    assert len(await received(sms)) == 1
    assert await received(resident) == []


async def test_a_notice_is_written_in_each_recipients_language_on_their_channel(
        gridbot: Gridbot) -> None:
    chinese = await add_resident(gridbot, "sim-telegram", "web:zh", GRID_1)
    english = await add_resident(gridbot, "sim-telegram", "web:en", GRID_1)
    english_sms = await add_resident(gridbot, "sim-sms", "web:en-sms", GRID_2)
    async with gridbot.db.transaction() as conn:
        for driver in (english, english_sms):
            contact = await people_store.find_contact(conn, driver.channel, driver.address)
            assert contact is not None
            await people_store.set_locale(conn, contact.person_id, "en")
        notice_id = await notice_store.create(
            conn, sender_id=None, issuer=STREET, scope=COMMUNITY_1, audience="residents",
            body="停水 <b>&", photo_id=None, send_at=gridbot.clock.now(),
            now=gridbot.clock.now())
    assert await scheduler(gridbot).send_pending(gridbot.clock.now()) == 3

    [zh] = await received(chinese)
    [en] = await received(english)
    [en_sms] = await received(english_sms)
    assert "通知" in zh and chinese.last[0].buttons == [["收到", f"ack:{notice_id}"]]
    assert "Notice" in en and english.last[0].buttons == [["Received", f"ack:{notice_id}"]]
    assert zh.splitlines()[1] == en.splitlines()[1] == "停水 <b>&"  # the title has its line
    assert en_sms.endswith("1: Received") and english_sms.last[0].buttons == []
    rows = await gridbot.db.fetchall("SELECT grid_code, count(*) FROM notice_recipients"
                                     " WHERE notice_id = ? GROUP BY grid_code", (notice_id,))
    assert sorted(tuple(r) for r in rows) == [(GRID_1, 2), (GRID_2, 1)]
    assert (await gridbot.db.fetchall("SELECT count(*) FROM bulk_staged"))[0][0] == 0


async def test_a_notice_whose_area_is_gone_goes_to_no_one_and_holds_up_no_other(
        gridbot: Gridbot) -> None:
    resident = await add_resident(gridbot, "sim-telegram", "web:still-here", GRID_1)
    now = gridbot.clock.now()
    async with gridbot.db.transaction() as conn:
        lost = await notice_store.create(
            conn, sender_id=None, issuer=STREET, scope="building:999999", audience="residents",
            body="旧楼通知", photo_id=None, send_at=now, now=now)
        await notice_store.create(conn, sender_id=None, issuer=STREET, scope=GRID_1,
                                  audience="residents", body="停水", photo_id=None,
                                  send_at=now, now=now)
    assert await scheduler(gridbot).send_pending(now) == 1
    assert ["停水" in text for text in await received(resident)] == [True]
    stored = await notice_store.get(gridbot.db.conn, lost)
    assert stored is not None and stored.status == "sent" and stored.recipients == 0
    recorded = await gridbot.db.fetchall(
        "SELECT count(*) FROM notice_recipients WHERE notice_id = ?", (lost,))
    assert recorded[0][0] == 0


async def test_the_preview_of_a_notice_with_a_photo_says_who_gets_the_text_only(
        gridbot: Gridbot) -> None:
    await add_staff(gridbot, "街道调度员", "dispatcher", STREET, "web:dispatcher")
    staff = ChatDriver(gridbot, "sim-telegram", "web:dispatcher")
    await add_resident(gridbot, "sim-telegram", "web:r1", GRID_1)
    await add_resident(gridbot, "sim-sms", "web:r2", GRID_1)
    plain = await compose(staff, "翠苑一区社区", "居民", "周六停水")
    assert "只收到文字" not in plain
    await staff.press("取消")
    with_photo = await compose(staff, "翠苑一区社区", "居民", "停水范围见图", photo=True)
    assert "其中 1 人用短信，只收到文字，看不到照片" in with_photo


async def test_a_notice_to_several_grids_and_a_building_reaches_exactly_their_people(
        gridbot: Gridbot) -> None:
    # the console's map and tree tick several areas and buildings: one scope "A,B,…"
    in_grid_1 = await add_resident(gridbot, "sim-telegram", "web:g1", GRID_1)
    in_grid_5 = await add_resident(gridbot, "sim-sms", "web:g5", GRID_5)
    in_building = await add_resident(gridbot, "sim-telegram", "web:b", GRID_2)
    next_door = await add_resident(gridbot, "sim-telegram", "web:next-door", GRID_2)
    district = gridbot.reference.district
    building = next(b for b in district.buildings.values() if b.grid_code == GRID_2)
    now = gridbot.clock.now()
    async with gridbot.db.transaction() as conn:
        person = await people_store.find_contact(conn, "sim-telegram", "web:b")
        assert person is not None
        await notice_store.set_home(conn, person.person_id, GRID_2, building.id, now)
        await notice_store.create(
            conn, sender_id=None, issuer=STREET, audience="residents", body="楼道清理",
            scope=f"{GRID_1},{GRID_5},building:{building.id}", photo_id=None, send_at=now,
            now=now)
    assert await scheduler(gridbot).send_pending(now) == 3  # messages
    for reached in (in_grid_1, in_grid_5, in_building):
        assert ["楼道清理" in text for text in await received(reached)] == [True]
    assert await received(next_door) == []


async def test_notice_in_the_bot_takes_several_grids_typed_as_the_console_sends_them(
        gridbot: Gridbot) -> None:
    await add_staff(gridbot, "街道调度员", "dispatcher", STREET, "web:dispatcher")
    staff = ChatDriver(gridbot, "sim-telegram", "web:dispatcher")
    await add_resident(gridbot, "sim-telegram", "web:g1", GRID_1)
    await add_resident(gridbot, "sim-telegram", "web:g5", GRID_5)
    await add_resident(gridbot, "sim-telegram", "web:g2", GRID_2)
    await staff.text("/notice")
    await staff.text(f"{GRID_1},{GRID_5}")
    await staff.press("居民")
    await staff.text("明天停电")
    await staff.press("没有照片")
    await staff.press("立即发送")
    assert "人数：2 人" in staff.said
