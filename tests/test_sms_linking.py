"""One person, several channels: a Telegram user who shares their number is the SMS person.

The Telegram parser calls `bot.reference.phones.link_shared_phone` for a shared contact that is the
sender's own; these tests drive the engine directly on both channels.
"""

from __future__ import annotations

from datetime import timedelta

from bot.bootstrap import Gridbot
from bot.domain.clock import FakeClock
from bot.domain.messages import Reply
from bot.services.notify import PersonalMessage, render_personal
from bot.services.phones import link_shared_phone
from store import people as people_store
from tests.chat import ChatDriver
from tests.helpers import CASE_NUMBER

PHONE = "+8613912345678"
TELEGRAM_CHAT = "424242"


async def sms_report(chat: ChatDriver, text: str = "古翠路88号3号楼门口垃圾堆了三天") -> str:
    await chat.text(text)
    await chat.text("1")
    await chat.text("1")
    await chat.text("1")
    match = CASE_NUMBER.search(chat.said)
    assert match, chat.said
    return match.group(0)


async def person_of(gridbot: Gridbot, channel: str, address: str) -> int:
    contact = await people_store.find_contact(gridbot.db.conn, channel, address)
    assert contact is not None
    return contact.person_id


async def notice_channel(gridbot: Gridbot, person_id: int) -> str:
    """The channel a case update for this person goes out on now."""
    async with gridbot.db.transaction() as conn:
        rows = await render_personal(conn, gridbot.renderer, "zh_CN", [PersonalMessage(
            person_id, Reply("case_in_progress", {"number": "261123-001",
                                                  "category": "sanitation"}))],
            gridbot.clock.now())
    return rows[0].channel


async def test_a_shared_number_joins_the_telegram_chat_to_the_sms_person(
        gridbot: Gridbot, clock: FakeClock) -> None:
    by_sms = ChatDriver(gridbot, "sms", PHONE)
    number = await sms_report(by_sms)
    clock.advance(timedelta(minutes=5))
    on_telegram = ChatDriver(gridbot, "telegram", TELEGRAM_CHAT)
    await on_telegram.text("/start")
    linked = await link_shared_phone(gridbot.db, "telegram", TELEGRAM_CHAT, "139 1234 5678",
                                     "CN", gridbot.clock.now())
    sms_person = await person_of(gridbot, "sms", PHONE)
    assert linked is not None and linked.person_id == sms_person and not linked.conflict
    assert await person_of(gridbot, "telegram", TELEGRAM_CHAT) == sms_person
    await on_telegram.text("/mycases")
    assert number in on_telegram.said  # the SMS report, seen on Telegram
    assert await notice_channel(gridbot, sms_person) == "telegram"  # where they last wrote
    clock.advance(timedelta(minutes=5))
    await by_sms.text("HELP")
    assert await notice_channel(gridbot, sms_person) == "sms"


async def test_a_number_shared_before_any_sms_makes_the_first_sms_find_the_person(
        gridbot: Gridbot) -> None:
    on_telegram = ChatDriver(gridbot, "telegram", TELEGRAM_CHAT)
    await on_telegram.text("/start")
    linked = await link_shared_phone(gridbot.db, "telegram", TELEGRAM_CHAT, "+8613912345678",
                                     "CN", gridbot.clock.now())
    assert linked is not None and linked.merged_from is None
    number = await sms_report(ChatDriver(gridbot, "sms", PHONE))
    assert await person_of(gridbot, "sms", PHONE) == linked.person_id
    await on_telegram.text("/mycases")
    assert number in on_telegram.said
    person = await people_store.get_person(gridbot.db.conn, linked.person_id)
    assert person is not None and person.phone == PHONE


async def test_the_person_with_history_keeps_it_and_gains_the_other_address(
        gridbot: Gridbot) -> None:
    on_telegram = ChatDriver(gridbot, "telegram", TELEGRAM_CHAT)
    number = await sms_report(on_telegram)  # reported on Telegram
    await ChatDriver(gridbot, "sms", PHONE).text("你好")  # a new SMS person, no history
    linked = await link_shared_phone(gridbot.db, "telegram", TELEGRAM_CHAT, PHONE, "CN",
                                     gridbot.clock.now())
    telegram_person = await person_of(gridbot, "telegram", TELEGRAM_CHAT)
    assert linked is not None and linked.person_id == telegram_person
    assert await person_of(gridbot, "sms", PHONE) == telegram_person
    by_sms = ChatDriver(gridbot, "sms", PHONE)
    await by_sms.text("/mycases")
    assert number in by_sms.said


async def test_two_people_with_history_are_not_merged(gridbot: Gridbot) -> None:
    await sms_report(ChatDriver(gridbot, "telegram", TELEGRAM_CHAT))
    await sms_report(ChatDriver(gridbot, "sms", PHONE), "翠苑一区1幢门口垃圾堆了三天")
    linked = await link_shared_phone(gridbot.db, "telegram", TELEGRAM_CHAT, PHONE, "CN",
                                     gridbot.clock.now())
    assert linked is not None and linked.conflict
    assert (await person_of(gridbot, "telegram", TELEGRAM_CHAT)
            != await person_of(gridbot, "sms", PHONE))


async def test_a_number_that_is_not_a_phone_number_links_nothing(gridbot: Gridbot) -> None:
    assert await link_shared_phone(gridbot.db, "telegram", TELEGRAM_CHAT, "12", "CN",
                                   gridbot.clock.now()) is None
