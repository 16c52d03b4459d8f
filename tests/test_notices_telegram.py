"""/notice end to end on Telegram: staff compose it over the webhook, residents press 收到.

The Bot API is the fake one (every call checked against the spec); the updates go through
the real webhook, the engine, the scheduler that sends the notice and the outbox worker.
"""

from __future__ import annotations

from bot.runtime.outbox import Limits
from store import people as people_store
from tests.fake_telegram import FakeTelegram, Updates
from tests.telegram_harness import Harness

STAFF = 710_001
RESIDENTS = (710_101, 710_102, 710_103)
GRIDS = ("33010600100101", "33010600100101", "33010600100102")


async def setup_people(tg: Harness) -> None:  # noqa: F811
    now = tg.clock.now()
    async with tg.bot.db.transaction() as conn:
        staff = await people_store.add_person(conn, "街道调度员", now)
        await people_store.add_contact(conn, staff, "telegram", str(STAFF), now)
        await people_store.grant_role(conn, staff, "dispatcher", "33010600100000", now)
        for chat, grid in zip(RESIDENTS, GRIDS, strict=True):
            person = await people_store.add_person(conn, f"居民{chat}", now, grid_code=grid)
            await people_store.add_contact(conn, person, "telegram", str(chat), now)


async def test_a_notice_composed_on_telegram_reaches_residents_who_acknowledge_it(
        tg: Harness, updates: Updates, fake: FakeTelegram) -> None:  # noqa: F811
    await setup_people(tg)
    said = await tg.send(updates.text(STAFF, "/notice"))
    said = await tg.send(updates.callback(STAFF, said[-1].button("翠苑一区社区")))
    said = await tg.send(updates.callback(STAFF, said[-1].button("居民")))
    await tg.send(updates.text(STAFF, "周六上午停水检修，请提前储水。"))
    said = await tg.send(updates.text(STAFF, "跳过"))  # not a photo: asked again
    said = await tg.send(updates.callback(STAFF, said[-1].button("没有照片")))
    preview = await tg.send(updates.callback(STAFF, said[-1].button("立即发送")))
    assert "人数：3 人" in preview[-1].params["text"]
    assert "Telegram：3 人" in preview[-1].params["text"]
    confirmed = await tg.send(updates.callback(STAFF, preview[-1].button("发送")))

    # The confirmation woke the running scheduler; this waits for it (or does its work).
    assert tg.bot.scheduler is not None
    await tg.bot.scheduler.send_pending(tg.clock.now())
    sent = confirmed + await tg.deliver()
    notices = {int(c.params["chat_id"]): c for c in sent
               if int(c.params["chat_id"]) in RESIDENTS}
    assert set(notices) == set(RESIDENTS)
    assert all("停水检修" in c.params["text"] for c in notices.values())
    ack = notices[RESIDENTS[0]].button("收到")
    assert ack.startswith("ack:")
    thanked = await tg.send(updates.callback(RESIDENTS[0], ack))
    assert "已确认收到" in thanked[-1].params["text"]
    await tg.send(updates.callback(RESIDENTS[2], notices[RESIDENTS[2]].button("收到")))
    await tg.send(updates.callback(RESIDENTS[2], notices[RESIDENTS[2]].button("收到")))

    status = await tg.send(updates.text(STAFF, "/notice"))
    status = await tg.send(updates.callback(STAFF, status[-1].button("我发的通知")))
    text = status[-1].params["text"]
    assert "已确认收到：2 / 3" in text
    assert "翠苑一区第1网格 33010600100101：1 / 2" in text
    assert "翠苑一区第2网格 33010600100102：1 / 1" in text


def test_telegram_keeps_to_one_message_a_second_per_chat_and_20_a_minute_per_group() -> None:
    limits = Limits(per_second=30, per_address_per_second=1, per_group_per_minute=20,
                    group_prefix="-")
    assert limits.gap("700001") == 1.0 and limits.gap("-100200300") == 3.0
