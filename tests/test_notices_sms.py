"""A notice end to end on SMS: sent through the fake Twilio, acknowledged by replying 1."""

from __future__ import annotations

from store import notices as notice_store
from store import people as people_store
from tests.sms_harness import NEIGHBOUR, RESIDENT, SmsHarness

GRID_1 = "33010600100101"
STREET = "33010600100000"


async def test_sms_residents_get_a_notice_within_two_segments_and_acknowledge_with_1(
        sms: SmsHarness) -> None:  # noqa: F811
    for number in (RESIDENT, NEIGHBOUR):
        await sms.text("帮助", sender=number)  # known to gridbot by a first message
        contact = await people_store.find_contact(sms.bot.db.conn, "sms", number)
        assert contact is not None
        async with sms.bot.db.transaction() as conn:
            await people_store.set_grid(conn, contact.person_id, GRID_1)
    async with sms.bot.db.transaction() as conn:
        notice_id = await notice_store.create(
            conn, sender_id=None, issuer=STREET, scope=GRID_1, audience="residents",
            body="本周六上午8点至12点翠苑一区3至8幢停水检修，请提前储水。", photo_id=None,
            send_at=sms.now(), now=sms.now())
    assert sms.bot.scheduler is not None
    assert await sms.bot.scheduler.send_pending(sms.now()) == 2
    await sms.drain()
    text = sms.replies(RESIDENT)
    assert "停水检修" in text and "回复 1：收到" in text
    assert "停水检修" in sms.replies(NEIGHBOUR)

    assert "已确认收到" in await sms.text("1")
    counts = await notice_store.ack_counts(sms.bot.db.conn, notice_id)
    assert counts == [(GRID_1, 2, 1)]
    assert "已确认收到" in await sms.text("收到", sender=NEIGHBOUR)
    assert await notice_store.ack_counts(sms.bot.db.conn, notice_id) == [(GRID_1, 2, 2)]
