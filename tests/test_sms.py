"""SMS through Twilio, end to end over real HTTP: signed webhooks in, the fake REST API out."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.requests import Request

from bot.channels.sms.send import SegmentPacer, TwilioSender
from bot.channels.sms.webhook import called_url
from bot.domain.clock import FakeClock
from bot.services.links import LINK_DAYS
from bot.services.mediafiles import save_photo
from bot.services.phones import sms_address, to_e164
from store import cases as case_store
from store import conversations as conversation_store
from store import media as media_store
from store import outbox as outbox_store
from store import people as people_store
from store.outbox import PRIORITY_BULK, OutboundRow
from tests.fake_twilio import FakeTwilio
from tests.helpers import PNG
from tests.sms_harness import (
    CHIEF_PHONE,
    NEIGHBOUR,
    OUR_NUMBER,
    RESIDENT,
    SmsHarness,
    inbound_form,
    settings_for,
)

CASE_NUMBER = re.compile(r"\d{6}-\d{3,4}")


async def report_by_sms(sms: SmsHarness, sender: str = RESIDENT,
                        text: str = "古翠路88号3号楼门口垃圾堆了三天", place: str = "3号楼") -> str:
    """The one-message report, confirmed with numbers; return the case number."""
    said = await sms.text(text, sender)
    assert "市容环卫" in said and place in said and "回复 1" in said, said
    assert "照片" in await sms.text("1", sender)  # the suggested category
    assert "请确认" in await sms.text("1", sender)  # no photos
    created = await sms.text("1", sender)  # submit
    match = CASE_NUMBER.search(created)
    assert match and "已立案" in created, created
    return match.group(0)


async def opted_out(sms: SmsHarness, address: str = RESIDENT) -> bool:
    contact = await people_store.find_contact(sms.bot.db.conn, "sms", address)
    assert contact is not None
    return contact.opted_out


async def queue_notice(sms: SmsHarness, text: str, address: str = RESIDENT) -> None:
    """A bulk notice for a number, as the street office's announcements are queued."""
    async with sms.bot.db.transaction() as conn:
        await outbox_store.enqueue(conn, [OutboundRow("sms", address, None, text, {},
                                                      priority=PRIORITY_BULK)], sms.now())


# --- the webhook ---------------------------------------------------------------------------

async def test_a_signed_message_is_stored_answered_with_empty_twiml_and_replied_to(
        sms: SmsHarness, twilio: FakeTwilio) -> None:
    response = await sms.post(inbound_form("你好"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert re.fullmatch(r'<\?xml version="1.0" encoding="UTF-8"\?><Response ?/>',
                        response.text.strip())
    assert await sms.count("SELECT count(*) FROM inbox WHERE channel = 'sms'"
                           " AND address = ? AND status = 'processed'", RESIDENT) == 1
    await sms.drain()
    [sent] = twilio.messages
    assert sent["To"] == RESIDENT and sent["From"] == OUR_NUMBER
    assert sent["StatusCallback"].startswith(sms.public_url + "/sms/twilio/status?id=")
    assert "市容环卫" in sent["Body"] or "类别" in sent["Body"]


async def test_an_oversized_form_with_any_signature_is_refused_before_it_is_buffered(
        sms: SmsHarness, twilio: FakeTwilio) -> None:
    form = inbound_form("x" * (65 * 1024))  # Twilio's forms are a few kB
    response = await sms.post(form, signature="bm90IGEgc2lnbmF0dXJl")
    assert response.status_code == 413 and "over 65536 bytes" in response.text
    assert await sms.count("SELECT count(*) FROM inbox") == 0


@pytest.mark.parametrize("how", ["forged", "missing", "wrong url", "tampered body"])
async def test_unsigned_or_wrongly_signed_posts_get_403_and_nothing_is_stored(
        sms: SmsHarness, twilio: FakeTwilio, how: str) -> None:
    form = inbound_form("古翠路88号3号楼门口垃圾堆了三天")
    if how == "forged":
        response = await sms.post(form, signature="bm90IGEgc2lnbmF0dXJl")
    elif how == "missing":
        response = await sms.post(form, signature=None)
    elif how == "wrong url":
        response = await sms.post(form, signed_url="https://evil.example/sms/twilio")
    else:
        signature = sms.sign(sms.public_url + "/sms/twilio", form)
        response = await sms.post({**form, "Body": "STOP"}, signature=signature)
    assert response.status_code == 403
    assert await sms.count("SELECT count(*) FROM inbox") == 0
    assert await sms.drain() == 0 and twilio.messages == []


async def test_a_repeated_message_sid_is_processed_once(sms: SmsHarness,
                                                        twilio: FakeTwilio) -> None:
    form = inbound_form("HELP")
    first = await sms.post(form)
    again = await sms.post(form)  # Twilio retries when it did not hear back in time
    assert first.status_code == again.status_code == 200
    assert "<Response" in again.text
    await sms.drain()
    assert len(twilio.bodies_to(RESIDENT)) == 1
    assert await sms.count("SELECT count(*) FROM inbox") == 1


def _request(headers: dict[str, str], path: str = "/sms/twilio", query: str = "") -> Request:
    return Request({"type": "http", "method": "POST", "path": path, "query_string":
                    query.encode(), "headers": [(k.lower().encode(), v.encode())
                                                for k, v in headers.items()],
                    "scheme": "http", "server": ("127.0.0.1", 8080)})


def test_the_signed_url_is_the_public_one_and_forwarded_headers_count_only_when_trusted(
        tmp_path: Path) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "grid.example.cn, proxy"}
    plain = settings_for(tmp_path, "https://bot.example.cn/gridbot", "https://api.twilio.com")
    assert called_url(_request(forwarded, query="id=7"), plain) == \
        "https://bot.example.cn/gridbot/sms/twilio?id=7"
    trusting = settings_for(tmp_path, "http://127.0.0.1:8080", "https://api.twilio.com",
                            GRIDBOT_TRUST_PROXY="true")
    assert called_url(_request(forwarded), trusting) == "https://grid.example.cn/sms/twilio"
    assert called_url(_request({}), trusting) == "http://127.0.0.1:8080/sms/twilio"


async def test_behind_a_trusted_proxy_a_post_signed_for_the_forwarded_url_is_accepted(
        tmp_path: Path, clock: FakeClock, twilio: FakeTwilio) -> None:
    harness = await SmsHarness.start(tmp_path, clock, twilio, GRIDBOT_TRUST_PROXY="true",
                                     public_url="https://internal.invalid")
    try:
        proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "grid.example.cn"}
        form = inbound_form("HELP")
        ok = await harness.post(form, signed_url="https://grid.example.cn/sms/twilio",
                                headers=proxy)
        assert ok.status_code == 200
        other = inbound_form("HELP")
        refused = await harness.post(other, signed_url="https://grid.example.cn/sms/twilio")
        assert refused.status_code == 403  # no forwarded headers: the public URL is checked
    finally:
        await harness.close()


# --- the dialogue ----------------------------------------------------------------------------

async def test_a_whole_report_by_sms_ends_with_a_case_number(sms: SmsHarness) -> None:
    number = await report_by_sms(sms)
    stored = await case_store.get_by_number(sms.bot.db.conn, number)
    assert stored is not None
    assert stored.case.grid_code == "33010600100204"
    assert stored.details.source_channel == "sms"
    assert stored.details.description == "古翠路88号3号楼门口垃圾堆了三天"
    reporter = await people_store.find_contact(sms.bot.db.conn, "sms", RESIDENT)
    assert reporter is not None and stored.case.reporter_id == reporter.person_id
    assert await sms.count("SELECT count(*) FROM outbox WHERE channel = 'sms'"
                           " AND status != 'sent'") == 0


async def test_an_mms_photo_is_downloaded_with_the_account_and_attached_to_the_case(
        sms: SmsHarness, twilio: FakeTwilio) -> None:
    url = twilio.add_media(PNG, "image/png")
    said = await sms.text("古翠路88号3号楼门口垃圾堆了三天", media=[(url, "image/png")])
    assert "已收到照片" in said and "市容环卫" in said
    assert twilio.media_fetches == [url] and twilio.refused_auth == 0
    await sms.text("1")  # the suggested category (the menu held through the photo)
    assert "照片1张" in await sms.text("1")  # no more photos: the summary
    number = CASE_NUMBER.search(await sms.text("1"))
    assert number
    stored = await case_store.get_by_number(sms.bot.db.conn, number.group(0))
    assert stored is not None and stored.case.id is not None
    [photo] = await media_store.for_case(sms.bot.db.conn, stored.case.id)
    assert photo.channel == "sms" and photo.content_type == "image/png"
    assert photo.provider_ref == url and photo.path is not None
    assert (sms.bot.settings.media_dir / photo.path).read_bytes() == PNG


async def test_a_non_image_mms_is_refused_clearly_and_not_fetched(
        sms: SmsHarness, twilio: FakeTwilio) -> None:
    url = twilio.add_media(b"#!AMR\n", "audio/amr")
    said = await sms.text("", media=[(url, "audio/amr")])
    assert "只能接收照片" in said and "audio/amr" in said
    assert twilio.media_fetches == []


async def test_media_outside_the_twilio_api_is_not_fetched_with_the_credentials(
        sms: SmsHarness, twilio: FakeTwilio) -> None:
    said = await sms.text("", media=[("https://evil.example/steal.png", "image/png")])
    assert "照片没有收到" in said
    assert twilio.media_fetches == []


async def test_an_english_sms_user_gets_gsm7_menus(sms: SmsHarness, twilio: FakeTwilio) -> None:
    await sms.text("language")
    assert "English" in await sms.text("2")
    said = await sms.text("garbage piled up at building 3")
    assert "Reply with a number" in said and "\n1: Sanitation - " in said
    assert all(ch.isascii() for ch in twilio.bodies_to(RESIDENT)[-1])  # one GSM-7 text


# --- keywords --------------------------------------------------------------------------------

async def test_help_answers_with_the_short_sms_help(sms: SmsHarness) -> None:
    said = await sms.text("HELP")
    assert "查询" in said and "退订" in said
    assert "查询" in await sms.text("帮助")


async def test_status_n_shows_the_case_to_its_reporter_and_no_one_else(
        sms: SmsHarness) -> None:
    number = await report_by_sms(sms)
    said = await sms.text(f"STATUS {number}")
    assert number in said and "已立案" in said
    assert number in await sms.text(f"查询{number.replace('-', '')}")
    other = await sms.text(f"查询 {number}", NEIGHBOUR)
    assert "没有找到" in other and "已立案" not in other
    assert "查询 261122-001" in await sms.text("status")


async def test_keywords_in_the_middle_of_a_report_keep_the_report(sms: SmsHarness) -> None:
    first = await report_by_sms(sms)
    said = await sms.text("楼道里的路灯坏了好几天")
    assert "市政设施" in said and "回复 1" in said
    assert "查询" in await sms.text("HELP")
    assert first in await sms.text(f"STATUS {first}")
    assert "问题在哪里" in await sms.text("1")  # still answers the suggestion menu
    assert "翠苑一区第1网格" in await sms.text("33010600100101")


async def test_stop_then_a_notice_is_not_sent_and_start_sends_again(
        sms: SmsHarness, twilio: FakeTwilio) -> None:
    await sms.text("你好")
    assert await sms.text("STOP") == ""  # Twilio itself confirms its stop words
    assert await opted_out(sms)
    await queue_notice(sms, "【翠苑街道】明天上午停水")
    await sms.drain()
    assert "停水" not in " ".join(twilio.bodies_to(RESIDENT))
    rows = await sms.bot.db.fetchall("SELECT status, error FROM outbox WHERE body LIKE ?",
                                     ["%停水%"])
    assert [tuple(r) for r in rows] == [("failed", "recipient opted out")]
    assert await sms.text("古翠路88号3号楼门口垃圾堆了三天") == ""  # nothing is queued for it
    assert "已恢复" in await sms.text("START")
    assert not await opted_out(sms)
    await queue_notice(sms, "【翠苑街道】周六社区义诊")
    await sms.drain()
    assert twilio.bodies_to(RESIDENT)[-1] == "【翠苑街道】周六社区义诊"


async def test_tuiding_gets_one_confirmation_and_then_nothing(sms: SmsHarness) -> None:
    await sms.text("你好")
    assert "已退订" in await sms.text("退订")
    assert await opted_out(sms)
    assert await sms.text("退订") == ""  # one confirmation, not two
    await queue_notice(sms, "【翠苑街道】明天上午停水")
    assert await sms.text("HELP") == ""
    assert "已恢复" in await sms.text("订阅")


async def test_cancel_is_a_twilio_stop_word_and_keeps_the_dialogue_for_later(
        sms: SmsHarness) -> None:
    await sms.text("古翠路88号3号楼门口垃圾堆了三天")
    assert await sms.text("cancel") == ""  # Twilio unsubscribes on CANCEL: so do we
    assert await opted_out(sms)
    said = await sms.text("UNSTOP")
    assert "已恢复" in said and "回复 1" in said  # and the question under way again
    assert "已取消" in await sms.text("取消")  # 取消 is how SMS users leave a report


async def test_error_21610_from_the_api_stops_the_number(sms: SmsHarness,
                                                         twilio: FakeTwilio) -> None:
    twilio.fail_next(400, 21610, "Attempt to send to unsubscribed recipient")
    await sms.text("HELP")
    assert await opted_out(sms)
    rows = await sms.bot.db.fetchall("SELECT status, error FROM outbox")
    assert rows[0][0] == "failed" and rows[0][1].startswith("21610")
    await queue_notice(sms, "【翠苑街道】明天上午停水")
    await sms.drain()
    assert twilio.messages == []


@pytest.mark.parametrize("status,code", [(429, 20429), (500, 20500), (503, 20503)])
async def test_rate_limits_and_server_errors_are_retried_later(
        sms: SmsHarness, twilio: FakeTwilio, clock: FakeClock, status: int, code: int) -> None:
    twilio.fail_next(status, code, "try later")
    await sms.text("HELP")
    assert twilio.messages == []
    rows = await sms.bot.db.fetchall("SELECT status, attempts, error FROM outbox")
    assert tuple(rows[0])[:2] == ("queued", 1) and str(code) in rows[0][2]
    clock.advance(timedelta(minutes=1))
    await sms.drain()
    assert "查询" in sms.replies(RESIDENT)


async def test_other_client_errors_fail_with_twilio_code_and_message(
        sms: SmsHarness, twilio: FakeTwilio) -> None:
    twilio.fail_next(400, 21211, "The 'To' number is not a valid phone number.")
    await sms.text("HELP")
    rows = await sms.bot.db.fetchall("SELECT status, error FROM outbox")
    assert tuple(rows[0]) == ("failed", "21211 The 'To' number is not a valid phone number.")


# --- delivery reports ------------------------------------------------------------------------

async def test_status_callbacks_move_forward_only_whatever_their_order(
        sms: SmsHarness, twilio: FakeTwilio) -> None:
    await sms.text("HELP")
    [message] = twilio.messages
    message_id = int(message["StatusCallback"].rsplit("=", 1)[1])
    for status in ("delivered", "sent", "queued", "failed"):
        response = await sms.status(message, status)
        assert response.status_code == 204
    report = await outbox_store.delivery_of(sms.bot.db.conn, message_id)
    assert report is not None
    assert (report.status, report.delivery_status, report.error_code) == (
        "delivered", "delivered", None)


async def test_a_failed_delivery_records_the_carrier_error(sms: SmsHarness,
                                                           twilio: FakeTwilio) -> None:
    await sms.text("HELP")
    [message] = twilio.messages
    await sms.status(message, "sent")
    await sms.status(message, "undelivered", "30003")
    report = await outbox_store.delivery_of(
        sms.bot.db.conn, int(message["StatusCallback"].rsplit("=", 1)[1]))
    assert report is not None
    assert (report.status, report.delivery_status, report.error_code) == (
        "failed", "undelivered", "30003")
    assert report.error == "30003 unreachable destination handset"


async def test_a_delivery_report_with_21610_opts_the_number_out(sms: SmsHarness,
                                                                twilio: FakeTwilio) -> None:
    await sms.text("HELP")
    await sms.status(twilio.messages[0], "failed", "21610")
    assert await opted_out(sms)


async def test_an_unsigned_delivery_report_is_refused(sms: SmsHarness,
                                                      twilio: FakeTwilio) -> None:
    await sms.text("HELP")
    form = {"MessageSid": twilio.messages[0]["Sid"], "MessageStatus": "failed"}
    response = await sms.post(form, "/sms/twilio/status?id=1", signature=None)
    assert response.status_code == 403
    assert await sms.count("SELECT count(*) FROM outbox WHERE delivery_status IS NOT NULL") == 0


# --- who is texting ---------------------------------------------------------------------------

async def test_a_grid_chief_texting_from_the_phone_on_file_is_the_grid_chief(
        sms: SmsHarness) -> None:
    assert "待办" in await sms.text("/tasks", CHIEF_PHONE)  # staff, not a stranger
    contact = await people_store.find_contact(sms.bot.db.conn, "sms", CHIEF_PHONE)
    assert contact is not None and contact.name == "王丽华"
    number = await report_by_sms(sms, NEIGHBOUR, "翠苑一区1幢门口垃圾堆了三天", "翠苑一区1幢")
    assigned = sms.replies(CHIEF_PHONE)  # the new case reached her where she last wrote
    assert number in assigned and "回复 1：签收" in assigned
    await sms.text("1", CHIEF_PHONE)  # sign for it by number
    stored = await case_store.get_by_number(sms.bot.db.conn, number)
    assert stored is not None and stored.case.state.value == "in_progress"
    assert "已签收" in sms.replies(NEIGHBOUR)


async def test_staff_on_sms_get_a_cases_photo_as_a_short_lived_link(sms: SmsHarness) -> None:
    number = await report_by_sms(sms, NEIGHBOUR, "翠苑一区1幢门口垃圾堆了三天", "翠苑一区1幢")
    stored = await case_store.get_by_number(sms.bot.db.conn, number)
    assert stored is not None and stored.case.id is not None
    saved = save_photo(sms.bot.settings.media_dir, PNG, "image/png", "mms-1")
    async with sms.bot.db.transaction() as conn:
        photo = await media_store.add(conn, "sms", sms.now(), provider_ref="mms-1",
                                      path=saved.path, sha256=saved.sha256,
                                      content_type="image/png")
        await media_store.attach(conn, [photo], stored.case.id)
    card = await sms.text(f"/case {number}", CHIEF_PHONE)
    link = re.search(r"照片：(\S+)", card)
    assert link and link.group(1).startswith(sms.public_url + f"/media/{photo}?e="), card
    path = link.group(1).removeprefix(sms.public_url)
    opened = await sms.http.get(sms.server.url + path)
    assert opened.status_code == 200 and opened.content == PNG
    sms.clock.advance(timedelta(days=LINK_DAYS + 1))
    assert (await sms.http.get(sms.server.url + path)).status_code == 410


def test_sms_senders_are_known_by_e164() -> None:
    assert to_e164("+86 138 0000 1001") == CHIEF_PHONE
    assert to_e164("13800001001", "CN") == CHIEF_PHONE
    assert to_e164("+1 (500) 555-0006") == OUR_NUMBER
    assert to_e164("10086") is None and to_e164("GRIDBOT") is None
    assert sms_address("10086", "CN") == "10086"  # short codes stay as sent


async def test_the_conversation_survives_a_stop_and_start(sms: SmsHarness) -> None:
    await sms.text("古翠路88号3号楼门口垃圾堆了三天")
    await sms.text("STOP")
    found = await conversation_store.load_by_address(sms.bot.db.conn, "sms", RESIDENT)
    assert found is not None and found[1].flow == "report"


# --- pacing ------------------------------------------------------------------------------------

async def test_a_long_text_takes_its_segments_from_the_rate(sms: SmsHarness,
                                                            twilio: FakeTwilio) -> None:
    sender = sms.worker.sender
    assert isinstance(sender, TwilioSender)
    asked: list[int] = []

    class Recording:
        async def acquire(self, segments: int) -> float:
            asked.append(segments)
            return 0.0

    sender.pacer = Recording()  # type: ignore[assignment]
    await queue_notice(sms, "【翠苑街道】" + "停水通知" * 40)  # 166 characters: 3 × 67
    await queue_notice(sms, "Water is off on Saturday morning.")
    await sms.drain()
    assert asked == [3, 1] and len(twilio.messages) == 2


async def test_the_pacer_counts_segments_against_the_rate() -> None:
    now = [100.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    pacer = SegmentPacer(2.0, now=lambda: now[0], sleep=sleep)
    starts = []
    for size in (3, 1, 1, 2):
        await pacer.acquire(size)
        starts.append(now[0] - 100.0)
    assert starts == [0.0, 1.5, 2.0, 2.5]  # 3 segments at 2 a second hold the next 1.5 s
    assert waits == [1.5, 0.5, 0.5]
