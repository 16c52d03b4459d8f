"""Telegram end to end: the webhook over real HTTP, the engine, the outbox worker, and a
fake Bot API on localhost that checks every call against the published spec."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from starlette.testclient import TestClient
from telegram import Bot
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import BaseRequest

from bot.bootstrap import Gridbot
from bot.channels.telegram.api import BotApi, result_of
from bot.channels.telegram.send import TelegramSender, delivery_for, split_text, utf16_len
from bot.domain.channels import SMS, TELEGRAM, Message, join_texts
from bot.domain.clock import FakeClock, iso
from bot.entrypoints.http import create_app
from bot.runtime.outbox import Limits
from bot.services.links import KEY_FILE, LINK_DAYS, day_number, link_key, media_url, sign, verify
from bot.services.mediafiles import save_photo
from bot.settings import Settings
from store import inbox as inbox_store
from store import media as media_store
from store import outbox as outbox_store
from store import people as people_store
from store.db import Database
from store.outbox import OutboundRow, StoredOutbound
from tests.fake_telegram import (
    BOT_USER,
    FakeTelegram,
    Updates,
    Upload,
    html_problems,
)
from tests.helpers import CHECKER, SAMPLE, renderer
from tests.images import jpeg, png
from tests.telegram_harness import (
    PUBLIC_URL,
    SECRET,
    Harness,
    running_gridbot,
    telegram_settings,
)

RESIDENT = 700_001
GROUP = -100_200_300
CASE_NUMBER = re.compile(r"\d{6}-\d{3}")




def album_photo(fake: FakeTelegram, seed: str) -> tuple[list[str], bytes]:
    """A photo Telegram holds in two sizes; returns the file ids and the large bytes."""
    large = jpeg(seed + "-large")
    return [fake.add_file(jpeg(seed + "-thumb")), fake.add_file(large)], large


async def status_of_outbox(tg: Harness) -> list[tuple[str, str | None, str | None]]:
    """(status, next_attempt_at, error) of every Telegram outbox row."""
    rows = await tg.bot.db.fetchall(
        "SELECT status, next_attempt_at, error FROM outbox WHERE channel = 'telegram'"
        " ORDER BY id")
    return [(r[0], r[1], r[2]) for r in rows]


async def queue(tg: Harness, address: str, body: str, **payload: object) -> None:
    """Put a message in the outbox directly (as a notice from staff would be)."""
    async with tg.bot.db.transaction() as conn:
        await outbox_store.enqueue(conn, [OutboundRow("telegram", address, None, body,
                                                      dict(payload))], tg.clock.now())


# --- a whole report -------------------------------------------------------------------------

async def test_a_resident_reports_with_a_button_text_a_location_and_a_two_photo_album(
        tg: Harness, updates: Updates, fake: FakeTelegram) -> None:
    menu = await tg.send(updates.text(RESIDENT, "/report"))
    press = updates.callback(RESIDENT, menu[-1].button("市政设施"))
    asked = await tg.send(press)
    assert [(c.method, c.params) for c in tg.answers] == [
        ("answerCallbackQuery", {"callback_query_id": press["callback_query"]["id"]})]
    assert "描述" in asked[-1].params["text"] or "说明" in asked[-1].params["text"]

    location_prompt = await tg.send(updates.text(RESIDENT, "路灯坏了，晚上一片漆黑"))
    keyboard = location_prompt[-1].params["reply_markup"]["keyboard"]
    assert keyboard[0][0]["request_location"] is True

    found = await tg.send(updates.location(RESIDENT, 30.2801, 120.11661))
    assert found[0].params["reply_markup"] == {"remove_keyboard": True}

    first_ids, first_large = album_photo(fake, "a")
    second_ids, second_large = album_photo(fake, "b")
    for ids in (first_ids, second_ids):
        response = await tg.post(updates.photo(RESIDENT, ids, media_group_id="13579"))
        assert response.status_code == 200
    added = await tg.deliver()
    assert "第2张" in added[-1].params["text"]

    summary = await tg.send(updates.callback(RESIDENT, added[-1].button("完成")))
    assert "照片：2张" in summary[-1].params["text"]
    created = await tg.send(updates.callback(RESIDENT, summary[-1].button("确认提交")))
    number = CASE_NUMBER.search(created[0].params["text"])
    assert number is not None and created[0].params["chat_id"] == RESIDENT

    rows = await tg.bot.db.fetchall("SELECT id FROM cases WHERE number = ?",
                                    (number.group(),))
    photos = await media_store.for_case(tg.bot.db.conn, rows[0][0])
    assert [p.sha256 for p in photos] == [hashlib.sha256(first_large).hexdigest(),
                                          hashlib.sha256(second_large).hexdigest()]
    assert [p.provider_ref for p in photos] == [first_ids[-1], second_ids[-1]]
    media_dir = tg.bot.settings.media_dir
    assert all((media_dir / str(p.path)).read_bytes() in (first_large, second_large)
               for p in photos)
    assert len(tg.answers) == 3 and not fake.calls_to("answerCallbackQuery")
    assert all(status == "processed" for _, status in await tg.inbox())


# --- the webhook's door -------------------------------------------------------------------

async def test_a_forged_or_missing_secret_is_refused_and_nothing_is_stored(
        tg: Harness, updates: Updates) -> None:
    update = updates.text(RESIDENT, "/help")
    assert (await tg.post(update, secret="not-the-secret")).status_code == 403
    assert (await tg.post(update, secret=SECRET[:-1])).status_code == 403
    assert (await tg.post(update, secret=None)).status_code == 403
    assert await tg.inbox() == []
    assert await tg.deliver() == []


async def test_a_body_over_one_megabyte_is_refused_whether_announced_or_not(
        tg: Harness, updates: Updates) -> None:
    update = updates.text(RESIDENT, "x" * 100)
    padded = (b'{"update_id": 1, "message": {"text": "' + b"x" * (1024 * 1024) + b'"}}')
    assert (await tg.post(padded)).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 60_000  # no Content-Length: chunked transfer
        yield b"{}"

    response = await tg.http.post("/telegram/webhook", content=chunks(), headers={
        "X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert await tg.inbox() == []
    assert (await tg.post(update)).status_code == 200


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"message": {}}',
                                  b'{"update_id": "7"}', b"\xff\xfe"])
async def test_a_body_that_is_not_a_json_update_is_refused(tg: Harness, body: bytes) -> None:
    assert (await tg.post(body)).status_code == 400
    assert await tg.inbox() == []


async def test_a_redelivered_update_is_answered_and_processed_once(
        tg: Harness, updates: Updates) -> None:
    update = updates.text(RESIDENT, "/help")
    answers = await asyncio.gather(*(tg.post(update) for _ in range(3)))
    assert [a.status_code for a in answers] == [200, 200, 200]
    sent = await tg.deliver()
    assert len(sent) == 1
    assert await tg.inbox() == [(str(update["update_id"]), "processed")]


async def test_the_inbox_keeps_the_update_exactly_as_telegram_sent_it(
        tg: Harness, updates: Updates) -> None:
    body = json.dumps(updates.text(RESIDENT, "你好 <b>&"), indent=1).encode()  # \uXXXX
    assert (await tg.post(body)).status_code == 200
    await tg.deliver()
    rows = await tg.bot.db.fetchall("SELECT payload, status FROM inbox")
    assert [tuple(r) for r in rows] == [(body.decode(), "processed")]


async def test_a_button_on_an_inline_mode_message_is_answered_and_ignored(
        tg: Harness, updates: Updates) -> None:
    update = updates.callback(RESIDENT, "1:0")
    query = update["callback_query"]
    del query["message"]
    query["inline_message_id"] = "inline-1"
    answer = await tg.post(update)
    assert answer.json()["method"] == "answerCallbackQuery"
    assert await tg.deliver() == []
    assert await tg.inbox() == [(str(update["update_id"]), "ignored")]


async def test_update_kinds_we_do_not_handle_are_acknowledged_and_ignored(
        tg: Harness, updates: Updates) -> None:
    update = updates.poll_answer(RESIDENT)
    assert (await tg.post(update)).status_code == 200
    assert await tg.deliver() == []
    assert await tg.inbox() == [(str(update["update_id"]), "ignored")]


# --- what comes in ----------------------------------------------------------------------

async def test_a_stale_or_forged_button_is_answered_and_politely_refused(
        tg: Harness, updates: Updates, fake: FakeTelegram) -> None:
    menu = await tg.send(updates.text(RESIDENT, "/report"))
    old_button = menu[-1].button("市政设施")
    await tg.send(updates.text(RESIDENT, "/report"))  # a newer menu replaces it
    for data in (old_button, "999:0", "garbage"):
        refused = await tg.send(updates.callback(RESIDENT, data))
        assert "过期" in refused[0].params["text"]
    # Someone else's button: resolved against the presser's own chat, which has no menu.
    stranger = await tg.send(updates.callback(RESIDENT + 1, old_button))
    assert "过期" in stranger[0].params["text"]
    assert [c.method for c in tg.answers] == ["answerCallbackQuery"] * 4


def _plain_samples() -> list[tuple[str, dict[str, object]]]:
    """Messages read the short way, with the parts real clients add."""
    make = Updates(CHECKER)
    link = make.text(RESIDENT, "看这里 https://example.org/a?b=1")["message"]
    link["entities"] = [{"type": "url", "offset": 4, "length": 25}]
    link["link_preview_options"] = {"is_disabled": True}
    surname = make.text(RESIDENT, "路灯坏了")["message"]
    surname["from"] = {**surname["from"], "first_name": "Ming", "last_name": "Li"}
    live = make.location(RESIDENT, 30.2781, 120.1203)["message"]
    live["location"].update(horizontal_accuracy=12.5, live_period=900, heading=90)
    return [("command", make.text(RESIDENT, "/report")["message"]),
            ("deep link", make.text(RESIDENT, "/start inv-8f3a")["message"]),
            ("text", make.text(RESIDENT, "<b>门口</b> & 垃圾")["message"]),
            ("menu number", make.text(RESIDENT, "2")["message"]),
            ("spaces", make.text(RESIDENT, "  路灯坏了\n 第二行 ")["message"]),
            ("link", link), ("surname", surname),
            ("location", make.location(RESIDENT, 30.2781, 120.1203)["message"]),
            ("live location", live)]


@pytest.mark.parametrize(("kind", "message"), _plain_samples(),
                         ids=[kind for kind, _ in _plain_samples()])
async def test_the_short_reading_of_a_private_text_or_location_agrees_with_the_long_one(
        tg: Harness, kind: str, message: dict[str, object]) -> None:
    reader = tg.channel.reader
    row = inbox_store.InboxRow(1, "telegram", "1", str(RESIDENT),
                               {"update_id": 1, "message": message}, "received")
    short = reader.read_plain(message)
    assert short is not None, kind
    assert short == await reader.read_whole(row)


def _long_way_samples() -> list[dict[str, object]]:
    """Messages the short reading leaves to the long one."""
    make = Updates(CHECKER)
    reply = make.text(RESIDENT, "对")["message"]
    reply["reply_to_message"] = make.text(RESIDENT, "问题")["message"]
    return [make.text(GROUP, "/report", user_id=RESIDENT)["message"],
            make.mention(GROUP, "路灯坏了", RESIDENT)["message"],
            make.text(RESIDENT, "@gridbot_test_bot 路灯坏了",
                      entities=[{"type": "mention", "offset": 0, "length": 17}])["message"],
            make.venue(RESIDENT, 30.2781, 120.1203, "翠苑一区")["message"],
            make.photo(RESIDENT, ["f1"], caption="看")["message"], reply]


@pytest.mark.parametrize("message", _long_way_samples())
async def test_anything_but_a_plain_private_text_or_location_is_read_the_long_way(
        tg: Harness, message: dict[str, object]) -> None:
    assert tg.channel.reader.read_plain(message) is None


async def test_in_groups_only_commands_and_mentions_of_the_bot_are_read(
        tg: Harness, updates: Updates) -> None:
    chatter = updates.text(GROUP, "今天天气不错", user_id=RESIDENT)
    other_bot = updates.text(GROUP, "/help@some_other_bot", user_id=RESIDENT)
    assert await tg.send(chatter) == []
    assert await tg.send(other_bot) == []
    helped = await tg.send(updates.text(GROUP, f"/help@{BOT_USER['username']}",
                                        user_id=RESIDENT))
    assert len(helped) == 1 and helped[0].params["chat_id"] == GROUP
    mentioned = await tg.send(updates.mention(GROUP, "/help", user_id=RESIDENT))
    assert len(mentioned) == 1
    assert [status for _, status in await tg.inbox()] == ["ignored", "ignored", "processed",
                                                          "processed"]


async def test_an_edited_message_gets_a_short_note_and_changes_nothing(
        tg: Harness, updates: Updates) -> None:
    await tg.send(updates.text(RESIDENT, "/report"))
    note = await tg.send(updates.edited(RESIDENT, "/cancel"))
    assert len(note) == 1 and "修改" in note[0].params["text"]
    assert await tg.send(updates.edited_location(RESIDENT, 30.28, 120.12)) == []  # live pin
    statuses = [status for _, status in await tg.inbox()]
    assert statuses == ["processed", "ignored", "ignored"]
    menu_still_works = await tg.send(updates.text(RESIDENT, "1"))
    assert "过期" not in menu_still_works[0].params["text"]


async def test_an_image_sent_as_a_file_is_a_photo_and_a_sticker_gets_a_note(
        tg: Harness, updates: Updates, fake: FakeTelegram) -> None:
    data = png("sent as a file")
    file_id = fake.add_file(data, ".png")
    kept = await tg.send(updates.document(RESIDENT, file_id, "image/png"))
    assert any("照片" in c.params["text"] for c in kept)
    stored = await tg.bot.db.fetchall("SELECT provider_ref, content_type, sha256 FROM media")
    assert [tuple(r) for r in stored] == [(file_id, "image/png",
                                           hashlib.sha256(data).hexdigest())]
    note = await tg.send(updates.sticker(RESIDENT))
    assert "只能读取" in note[0].params["text"]
    pdf = await tg.send(updates.document(RESIDENT, fake.add_file(b"%PDF"), "application/pdf"))
    assert "只能读取" in pdf[0].params["text"]


async def test_a_venue_is_read_as_its_location(tg: Harness, updates: Updates) -> None:
    await tg.send(updates.text(RESIDENT, "/report"))
    found = await tg.send(updates.venue(RESIDENT, 30.2801, 120.11661, "翠苑一区3幢"))
    assert found, "the venue was not read"
    rows = await tg.bot.db.fetchall("SELECT data FROM conversations")
    assert "30.2801" in rows[0][0]


async def test_the_deep_link_start_payload_reaches_the_flows(
        tg: Harness, updates: Updates) -> None:
    update = updates.text(RESIDENT, "/start invite-3f9a")
    assert (await tg.post(update)).status_code == 200
    await tg.deliver()
    rows = await tg.bot.db.fetchall("SELECT id FROM inbox")
    row = await inbox_store.get(tg.bot.db.conn, rows[0][0])
    assert row is not None
    inbound = await tg.channel.reader.read(row)
    assert inbound is not None
    assert (inbound.command, inbound.args, inbound.address) == ("start", "invite-3f9a",
                                                                str(RESIDENT))


async def test_a_photo_download_that_fails_once_is_tried_again(
        tg: Harness, updates: Updates, fake: FakeTelegram) -> None:
    ids, large = album_photo(fake, "retry")
    fake.fail_next(500, method="getFile")
    await tg.send(updates.photo(RESIDENT, ids))
    stored = await tg.bot.db.fetchall("SELECT sha256 FROM media")
    assert [r[0] for r in stored] == [hashlib.sha256(large).hexdigest()]
    assert [c.status for c in fake.calls_to("getFile")] == [500, 200]


# --- what goes out, and provider errors ---------------------------------------------------

async def test_a_429_is_retried_after_the_wait_telegram_asked_for(
        tg: Harness, updates: Updates, fake: FakeTelegram) -> None:
    fake.fail_next(429, method="sendMessage", retry_after=7)
    assert await tg.send(updates.text(RESIDENT, "/help")) == []
    due = tg.clock.now() + timedelta(seconds=7)
    assert await status_of_outbox(tg) == [("queued", iso(due),
                                           "flood control: retry after 7 s")]
    assert await tg.deliver() == []  # not due yet
    tg.clock.advance(timedelta(seconds=7))
    sent = await tg.deliver()
    assert len(sent) == 1 and (await status_of_outbox(tg))[0][0] == "sent"


async def test_a_403_stops_the_contact_until_the_person_writes_again(
        tg: Harness, updates: Updates, fake: FakeTelegram) -> None:
    fake.fail_next(403, method="sendMessage")
    assert await tg.send(updates.text(RESIDENT, "/help")) == []
    stopped = await tg.bot.db.fetchall("SELECT opted_out FROM contacts WHERE address = ?",
                                       (str(RESIDENT),))
    assert stopped[0][0] == 1
    await queue(tg, str(RESIDENT), "您关注的事件已办结")  # a notice meanwhile: not sent
    assert await tg.deliver() == []
    assert [s for s, _, _ in await status_of_outbox(tg)] == ["failed", "failed"]
    again = await tg.send(updates.text(RESIDENT, "/help"))  # unblocked and wrote again
    assert len(again) == 1


async def test_a_5xx_is_retried_with_backoff_and_a_400_fails_the_message(
        tg: Harness, updates: Updates, fake: FakeTelegram) -> None:
    fake.fail_next(500, method="sendMessage")
    assert await tg.send(updates.text(RESIDENT, "/help")) == []
    status, next_attempt, _ = (await status_of_outbox(tg))[0]
    assert (status, next_attempt) == ("queued", iso(tg.clock.now() + timedelta(seconds=2)))
    tg.clock.advance(timedelta(seconds=2))
    assert len(await tg.deliver()) == 1
    fake.fail_next(400, method="sendMessage", description="Bad Request: chat not found")
    assert await tg.send(updates.text(RESIDENT, "/help")) == []
    assert (await status_of_outbox(tg))[-1] == ("failed", None, "Chat not found")


async def test_long_texts_are_split_on_lines_with_the_buttons_on_the_last_part(
        tg: Harness) -> None:
    body = "\n".join(f"第{i}行：" + "描述" * 45 for i in range(100))
    await queue(tg, str(RESIDENT), body, buttons=[["确认", "3:0"]])
    sent = await tg.deliver()
    texts = [c.params["text"] for c in sent]
    assert len(texts) == 3 and "\n".join(texts) == body
    assert all(len(t) <= 4096 for t in texts)
    assert [c.params.get("reply_markup") is not None for c in sent] == [False, False, True]


async def test_photos_are_resent_by_file_id_or_uploaded_from_the_media_folder(
        tg: Harness, fake: FakeTelegram) -> None:
    media_dir = tg.bot.settings.media_dir
    upload = jpeg("from-the-web-simulator")
    fallback = jpeg("file-id-expired")
    async with tg.bot.db.transaction() as conn:
        by_id = await media_store.add(conn, "telegram", tg.clock.now(), provider_ref="AgAC-1")
        stored = save_photo(media_dir, upload, "image/jpeg")
        from_web = await media_store.add(conn, "sim-telegram", tg.clock.now(),
                                         path=stored.path, content_type="image/jpeg")
        kept = save_photo(media_dir, fallback, "image/jpeg", "AgAC-expired")
        refused = await media_store.add(conn, "telegram", tg.clock.now(),
                                        provider_ref="AgAC-expired", path=kept.path)
    fake.fail_next(400, method="sendPhoto", after=1, description="Bad Request: wrong file id")
    await queue(tg, str(RESIDENT), "事件 261123-001 的照片", photos=[by_id, refused, from_web])
    await tg.deliver()
    photos = [c.params["photo"] for c in fake.calls_to("sendPhoto") if c.status == 200]
    assert photos[0] == "AgAC-1"
    assert isinstance(photos[1], Upload) and photos[1].data == fallback
    assert isinstance(photos[2], Upload) and photos[2].data == upload
    last = fake.calls[-1]  # the text rides on the last photo, as its caption
    assert last.method == "sendPhoto" and last.params["caption"] == "事件 261123-001 的照片"
    assert not fake.calls_to("sendMessage")


async def test_a_retry_does_not_repeat_the_parts_already_delivered(
        tg: Harness, fake: FakeTelegram) -> None:
    body = "\n".join("很长的一行" * 200 for _ in range(8))
    parts = split_text(body)
    assert len(parts) == 2
    await queue(tg, str(RESIDENT), body)
    fake.fail_next(429, method="sendMessage", retry_after=3, after=1)  # the second part
    await tg.deliver()
    tg.clock.advance(timedelta(seconds=3))
    await tg.deliver()
    delivered = [c.params["text"] for c in fake.calls_to("sendMessage") if c.status == 200]
    assert delivered == parts


async def test_the_location_button_is_offered_in_private_chats_only(tg: Harness) -> None:
    await queue(tg, str(GROUP), "问题在哪里？", request_location="发送我的位置")
    await queue(tg, str(RESIDENT), "问题在哪里？", request_location="发送我的位置")
    group, private = await tg.deliver()
    assert "reply_markup" not in group.params
    assert private.params["reply_markup"]["keyboard"][0][0] == {
        "text": "发送我的位置", "request_location": True}


async def test_after_a_restart_a_location_keyboard_left_showing_is_removed_once(
        tg: Harness) -> None:
    await queue(tg, str(RESIDENT), "问题在哪里？", request_location="发送我的位置")
    await tg.deliver()
    restarted = TelegramSender(tg.channel.bot, tg.bot.db, tg.bot.settings.media_dir)
    restarted.limits = tg.worker.sender.limits  # the harness's: no pacing to wait for
    tg.worker.sender = restarted
    for text in ("学院路103号", "好的"):
        await queue(tg, str(RESIDENT), text)
    await queue(tg, str(GROUP), "群消息")
    first, second, group = await tg.deliver()
    assert first.params["reply_markup"] == {"remove_keyboard": True}
    assert "reply_markup" not in second.params  # once is enough
    assert "reply_markup" not in group.params  # never in groups: it would reach everyone


class StumblingApi:
    """A Bot API stand-in whose first sendMessage fails with an error that is not
    Telegram's."""

    def __init__(self) -> None:
        self.markups: list[object] = []

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        self.markups.append(params.get("reply_markup"))
        if len(self.markups) == 1:
            raise RuntimeError("the connection pool was closed under us")
        return {"message_id": len(self.markups)}


async def test_a_keyboard_removal_that_did_not_go_out_is_tried_again(gridbot: Gridbot) -> None:
    api = StumblingApi()
    sender = TelegramSender(Bot("1:x"), gridbot.db, gridbot.settings.media_dir,
                            api=cast(BotApi, api))
    message = StoredOutbound(1, "telegram", str(RESIDENT), "好的", {}, "queued", "")
    with pytest.raises(RuntimeError):
        await sender.send(message)
    assert (await sender.send(message)).status == "sent"
    assert (await sender.send(replace(message, id=2))).status == "sent"
    removals = [m == {"remove_keyboard": True} for m in api.markups]
    assert removals == [True, True, False]  # the retry still carries it, then no more


async def test_the_sender_keeps_to_telegrams_limits(gridbot: Gridbot) -> None:
    sender = TelegramSender(Bot("1:x"), gridbot.db, gridbot.settings.media_dir)
    assert sender.limits == Limits(per_second=30, per_address_per_second=1,
                                   per_group_per_minute=20, group_prefix="-",
                                   per_address_burst=3)


@pytest.mark.parametrize(("error", "status"), [
    (RetryAfter(5), "retry"), (Forbidden("Forbidden: user is deactivated"), "stopped"),
    (BadRequest("Bad Request: message is too long"), "failed"),
    (TimedOut(), "retry"), (NetworkError("Bad Gateway"), "retry"),
])
def test_provider_errors_map_to_outbox_outcomes(error: Exception, status: str) -> None:
    assert isinstance(error, RetryAfter | Forbidden | NetworkError)
    assert delivery_for(error).status == status


def test_every_template_is_valid_telegram_html_whatever_people_typed() -> None:
    hostile = {key: "<b>R&D</b> & <script>" if isinstance(value, str) else value
               for key, value in SAMPLE.items()}
    for locale in renderer.locales:
        for name in renderer.template_names(locale):
            text = renderer.render_text(locale, name, hostile, TELEGRAM)
            assert not html_problems(text, f"{locale}/{name}"), text


def test_split_text_prefers_line_breaks_and_never_cuts_an_entity() -> None:
    assert split_text("短消息") == ["短消息"]
    assert split_text("  \n ") == []
    lines = ["a" * 3000, "b" * 3000]
    assert split_text("\n".join(lines)) == lines
    one_line = "x" * 4095 + "&lt;" + "y" * 10
    parts = split_text(one_line)
    assert parts[0] == "x" * 4095 and parts[1].startswith("&lt;")
    emoji = "😀" * 3000  # two UTF-16 units each, as Telegram counts
    assert all(utf16_len(p) <= 4096 for p in split_text(emoji))
    assert "".join(split_text(emoji)) == emoji


# --- starting, polling, media links -------------------------------------------------------

def test_start_registers_the_webhook_and_the_command_menu(
        tg_settings: Settings, fake: FakeTelegram, updates: Updates) -> None:
    with TestClient(create_app(tg_settings)) as client:
        update = updates.text(RESIDENT, "/help")
        response = client.post("/telegram/webhook", json=update,
                               headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert response.status_code == 200
    webhook = fake.calls_to("setWebhook")
    assert [c.params for c in webhook] == [{
        "url": PUBLIC_URL + "/telegram/webhook", "secret_token": SECRET,
        "allowed_updates": ["message", "edited_message", "callback_query"]}]
    menus = {c.params.get("language_code"): c.params["commands"]
             for c in fake.calls_to("setMyCommands")}
    assert {"zh", "en"} <= set(menus)
    assert [c["command"] for c in menus["en"]] == [c["command"] for c in menus["zh"]]
    assert menus["zh"][0]["description"] == "反映问题"
    assert menus["en"][0]["description"] == "Report a problem"
    assert "mydata" in [c["command"] for c in menus["zh"]]
    assert fake.calls_to("getMe")

    async def stored() -> list[str]:
        db = await Database.open(tg_settings.database)
        try:
            return [r[0] for r in await db.fetchall("SELECT status FROM inbox")]
        finally:
            await db.close()

    assert asyncio.run(stored()) == ["processed"]


async def test_polling_mode_removes_the_webhook_and_feeds_the_same_inbox(
        tmp_path: Path, clock: FakeClock, fake: FakeTelegram, updates: Updates) -> None:
    settings = telegram_settings(tmp_path, fake, TELEGRAM_MODE="polling",
                                 GRIDBOT_PUBLIC_URL="http://127.0.0.1:8080")
    async with running_gridbot(settings, clock, fake) as tg:
        update = updates.text(RESIDENT, "/help")
        press = updates.callback(RESIDENT, "1:0")
        fake.push_update(update)
        fake.push_update(press)
        next_offset = press["update_id"] + 1
        await asyncio.to_thread(
            lambda: fake.wait_for(lambda c: c.method == "getUpdates"
                                  and c.params.get("offset") == next_offset))
        sent = await tg.deliver()
        assert [c.params["chat_id"] for c in sent] == [RESIDENT, RESIDENT]
        assert "过期" in sent[1].params["text"]
        assert [c.params for c in fake.calls_to("answerCallbackQuery")] == [
            {"callback_query_id": press["callback_query"]["id"]}]
        assert await tg.inbox() == [(str(update["update_id"]), "processed"),
                                    (str(press["update_id"]), "processed")]
        assert fake.calls_to("deleteWebhook") and not fake.calls_to("setWebhook")
        assert (await tg.post(updates.text(RESIDENT, "/help"))).status_code == 404


async def test_polling_goes_on_after_the_database_was_locked_and_loses_no_update(
        tmp_path: Path, clock: FakeClock, fake: FakeTelegram, updates: Updates) -> None:
    settings = telegram_settings(tmp_path, fake, TELEGRAM_MODE="polling",
                                 GRIDBOT_PUBLIC_URL="http://127.0.0.1:8080")
    async with running_gridbot(settings, clock, fake) as tg:
        receive = tg.bot.engine.receive
        refusals = [sqlite3.OperationalError("database is locked")]

        async def locked_once(*args: Any, **kwargs: Any) -> int | None:
            if refusals:
                raise refusals.pop()
            return await receive(*args, **kwargs)

        tg.bot.engine.receive = locked_once  # type: ignore[method-assign]
        update = updates.text(RESIDENT, "/help")
        # Past any offset a long poll left waiting at the shared fake by an earlier test.
        update["update_id"] += 10_000
        fake.push_update(update)
        next_offset = update["update_id"] + 1
        await asyncio.to_thread(  # fetched again after the lock, then acknowledged
            lambda: fake.wait_for(lambda c: c.method == "getUpdates"
                                  and c.params.get("offset") == next_offset))
        assert refusals == []
        await tg.bot.engine.settle()
        assert await tg.inbox() == [(str(update["update_id"]), "processed")]
        assert [c.params["chat_id"] for c in await tg.deliver()] == [RESIDENT]


async def test_a_signed_media_link_serves_the_photo_until_it_expires(tg: Harness) -> None:
    data = jpeg("link")
    stored = save_photo(tg.bot.settings.media_dir, data, "image/jpeg", "AgAC-link")
    async with tg.bot.db.transaction() as conn:
        media_id = await media_store.add(conn, "telegram", tg.clock.now(),
                                         provider_ref="AgAC-link", path=stored.path,
                                         sha256=stored.sha256, content_type="image/jpeg")
    url = media_url(tg.bot.settings, media_id, tg.clock.now())
    assert url.startswith(PUBLIC_URL + f"/media/{media_id}?e=")
    path = url.removeprefix(PUBLIC_URL)
    good = await tg.http.get(path)
    assert good.status_code == 200 and good.content == data
    assert good.headers["content-type"] == "image/jpeg"
    assert (await tg.http.get(path[:-2] + "xx")).status_code == 403
    assert (await tg.http.get(f"/media/{media_id}")).status_code == 403
    later = path.replace(f"e={day_number(tg.clock.now()) + LINK_DAYS}",
                         f"e={day_number(tg.clock.now()) + LINK_DAYS + 365}")
    assert (await tg.http.get(later)).status_code == 403  # the day is signed too
    signature = path.split("sig=", 1)[1]
    for odd in ("²", "٣", "9" * 5000, "-1", ""):
        odd_link = f"/media/{media_id}?e={odd}&sig={signature}"
        assert (await tg.http.get(odd_link)).status_code == 403, odd[:10]
    assert "max-age=86400" in good.headers["cache-control"]
    other = media_url(tg.bot.settings, media_id + 1, tg.clock.now()).removeprefix(PUBLIC_URL)
    assert (await tg.http.get(other)).status_code == 404
    tg.clock.advance(timedelta(days=LINK_DAYS))
    last_day = await tg.http.get(path)
    assert last_day.status_code == 200  # through its last day, but not cached past it
    assert int(last_day.headers["cache-control"].split("max-age=")[1]) <= 86400 - 60 * 60
    tg.clock.advance(timedelta(days=1))
    expired = await tg.http.get(path)
    assert expired.status_code == 410 and "/case" in expired.text


def test_without_secrets_in_the_settings_the_link_key_is_kept_in_the_media_folder(
        settings: Settings) -> None:
    key = link_key(settings)
    assert (settings.media_dir / KEY_FILE).read_bytes() == key and len(key) == 32
    assert verify(key, 5, 100, sign(key, 5, 100)) and not verify(key, 6, 100, sign(key, 5, 100))


# --- the fake itself ------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "params", "problem"), [
    ("sendMesage", {"chat_id": 1, "text": "hi"}, "no such method"),
    ("sendMessage", {"chat_id": 1}, "required field 'text' missing"),
    ("sendMessage", {"chat_id": 1, "text": "hi", "colour": "red"}, "unknown field 'colour'"),
    ("sendMessage", {"chat_id": 1, "text": "x" * 4097}, "4097 characters"),
    ("sendMessage", {"chat_id": 1, "text": "a < b", "parse_mode": "HTML"}, "unescaped '<'"),
    ("sendMessage", {"chat_id": 1, "text": "hi", "reply_markup": {"inline_keyboard": [[
        {"text": "ok", "callback_data": "x" * 65}]]}}, "callback_data must be 1-64 bytes"),
    ("sendMessage", {"chat_id": 1, "text": "hi", "reply_markup": {"inline_keyboard": [[
        {"label": "ok"}]]}}, "unknown field 'label'"),
    ("sendMessage", {"chat_id": "1", "text": "hi", "disable_notification": "yes"},
     "expected Boolean"),
])
def test_the_fake_refuses_calls_that_break_the_spec(method: str, params: dict[str, object],
                                                    problem: str) -> None:
    problems = CHECKER.check_call(method, params)
    assert any(problem in p for p in problems), problems


def test_the_fake_accepts_what_the_bot_really_sends() -> None:
    assert CHECKER.check_call("sendMessage", {
        "chat_id": 1, "text": "&lt;b&gt; 已立案", "parse_mode": "HTML",
        "reply_markup": {"inline_keyboard": [[{"text": "确认", "callback_data": "3:0"}]]}}) == []
    assert CHECKER.check_call("setMyCommands", {
        "commands": [{"command": "report", "description": "反映问题"}],
        "language_code": "zh"}) == []


async def test_sharing_your_own_contact_links_your_sms_number_and_others_are_refused(
        tg: Harness, updates: Updates) -> None:
    own = updates._message(RESIDENT, contact={"phone_number": "+86 139 1234 5678",
                                              "first_name": "李", "user_id": RESIDENT})
    linked = await tg.send(updates._update(message=own))
    assert "已关联" in linked[-1].params["text"]
    rows = await tg.bot.db.fetchall(
        "SELECT count(DISTINCT person_id) FROM contacts WHERE address IN (?, ?)",
        [str(RESIDENT), "+8613912345678"])
    assert rows[0][0] == 1  # the Telegram chat and the SMS number are one person
    someone = updates._message(RESIDENT, contact={"phone_number": "+8613800009999",
                                                  "first_name": "王", "user_id": 424242})
    refused = await tg.send(updates._update(message=someone))
    assert "只能分享您自己的" in refused[-1].params["text"]
    rows = await tg.bot.db.fetchall("SELECT count(*) FROM contacts WHERE address = ?",
                                    ["+8613800009999"])
    assert rows[0][0] == 0


# --- staff command menus ----------------------------------------------------------------------

async def telegram_staff(tg: Harness, chat: int, role: str, scope: str,
                         locale: str | None = None) -> int:
    """A staff member who uses gridbot in a private Telegram chat; their person id."""
    now = tg.clock.now()
    async with tg.bot.db.transaction() as conn:
        person = await people_store.add_person(conn, "员工", now)
        await people_store.add_contact(conn, person, "telegram", str(chat), now)
        await people_store.grant_role(conn, person, role, scope, now)
        if locale:
            await people_store.set_locale(conn, person, locale)
    return person


def menus_by_chat(fake: FakeTelegram) -> dict[int, list[str] | None]:
    """The last menu call for each chat scope: its commands, or None when deleted."""
    found: dict[int, list[str] | None] = {}
    for call in fake.calls:
        scope = call.params.get("scope") or {}
        if call.method == "setMyCommands" and scope.get("type") == "chat":
            found[int(scope["chat_id"])] = [c["command"] for c in call.params["commands"]]
        elif call.method == "deleteMyCommands" and scope.get("type") == "chat":
            found[int(scope["chat_id"])] = None
    return found


async def test_staff_chats_get_their_roles_commands_once_and_lose_them_with_the_role(
        tg: Harness) -> None:
    chief = await telegram_staff(tg, 810_001, "grid_chief", "33010600100101")
    await telegram_staff(tg, 810_002, "dispatcher", "33010600100000", locale="en")
    assert await tg.channel.menus.sync() == 2
    menus = menus_by_chat(tg.fake)
    assert menus[810_001] is not None and menus[810_002] is not None
    assert {"tasks", "patrol", "visit", "meeting", "contact"} <= set(menus[810_001])
    assert "notice" not in menus[810_001]  # chiefs call meetings; notices are the office's
    assert {"tasks", "notice", "meeting"} <= set(menus[810_002])
    [english] = [c for c in tg.fake.calls_to("setMyCommands")
                 if c.params.get("scope", {}).get("chat_id") == 810_002]
    assert {"command": "notice", "description": "Send a notice"} in english.params["commands"]
    assert tg.fake.violations == []
    assert await tg.channel.menus.sync() == 0  # nothing changed: no calls
    async with tg.bot.db.transaction() as conn:
        await conn.execute("UPDATE roles SET revoked_at = ? WHERE person_id = ?",
                           (iso(tg.clock.now()), chief))
    assert await tg.channel.menus.sync() == 1
    assert menus_by_chat(tg.fake)[810_001] is None  # back to the residents' menu


async def test_a_chat_telegram_refuses_is_not_asked_again_until_its_menu_changes(
        tg: Harness) -> None:
    person = await telegram_staff(tg, 810_003, "grid_chief", "33010600100101")
    tg.fake.fail_next(400, method="setMyCommands")
    assert await tg.channel.menus.sync() == 1
    rows = await tg.bot.db.fetchall("SELECT error FROM telegram_menus WHERE address = ?",
                                    ["810003"])
    assert "Chat not found" in rows[0][0]
    assert await tg.channel.menus.sync() == 0
    async with tg.bot.db.transaction() as conn:
        await people_store.grant_role(conn, person, "community_staff", "33010600100100",
                                      tg.clock.now())
    assert await tg.channel.menus.sync() == 1  # a new menu: asked again
    assert "notice" in (menus_by_chat(tg.fake)[810_003] or [])


async def test_a_menu_that_failed_for_a_passing_reason_is_tried_again(tg: Harness) -> None:
    await telegram_staff(tg, 810_004, "grid_chief", "33010600100101")
    tg.fake.fail_next(500, method="setMyCommands")
    with pytest.raises(TelegramError):
        await tg.channel.menus.sync()
    assert await tg.bot.db.fetchall("SELECT * FROM telegram_menus") == []
    assert await tg.channel.menus.sync() == 1
    assert "tasks" in (menus_by_chat(tg.fake)[810_004] or [])


async def test_a_case_handed_over_shows_its_place_as_a_venue_then_its_photo_with_the_text(
        tg: Harness, fake: FakeTelegram) -> None:
    async with tg.bot.db.transaction() as conn:
        photo = await media_store.add(conn, "telegram", tg.clock.now(), provider_ref="AgAC-9")
    where = {"lat": 30.27812, "lon": 120.1264, "title": "3号楼附近",
             "address": "古翠路 88 号, 翠苑二区第4网格 33010600100204"}
    await queue(tg, str(RESIDENT), "事件 261123-001（市容环卫）", photos=[photo],
                location=where, buttons=[["签收", "1:0"]])
    await tg.deliver()
    await queue(tg, str(RESIDENT), "没有楼栋的地点", location={"lat": 30.2, "lon": 120.1})
    await tg.deliver()
    sent = [c for c in fake.calls if c.method.startswith("send")]
    assert [c.method for c in sent] == ["sendVenue", "sendPhoto",
                                        "sendLocation", "sendMessage"]
    case_photo = sent[1].params  # the case's text and its buttons on the photo itself
    assert case_photo["caption"] == "事件 261123-001（市容环卫）"
    assert case_photo["reply_markup"]["inline_keyboard"] == [
        [{"text": "签收", "callback_data": "1:0"}]]
    venue = sent[0].params
    assert (venue["latitude"], venue["longitude"]) == (30.27812, 120.1264)
    assert venue["title"] == "3号楼附近" and "33010600100204" in venue["address"]


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_every_menu_command_has_a_handler_and_a_label(locale: str) -> None:
    """A command in a resident's or any staff member's menu answers, and is described in
    the person's language (not a key, not the other language's text)."""
    from bot.channels.telegram.channel import MENU_COMMANDS
    from handlers.chief import staff_menu
    from handlers.common import STAFF_ROLE_NAMES
    from handlers.router import COMMANDS
    from tests.helpers import renderer

    listed = set(MENU_COMMANDS) | set(staff_menu(sorted(STAFF_ROLE_NAMES)))
    assert listed - set(COMMANDS) == set()
    labels = {name: renderer.label(locale, f"command.{name}") for name in listed}
    other = "en" if locale == "zh_CN" else "zh_CN"
    for name, label in labels.items():
        assert label and label != renderer.label(other, f"command.{name}"), name


class CannedRequest(BaseRequest):
    """PTB's request layer answering one canned (status, body): how PTB reads answers."""

    def __init__(self, status: int, body: bytes) -> None:
        self.answer = (status, body)

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    @property
    def read_timeout(self) -> float:
        return 5.0

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        return self.answer


@pytest.mark.parametrize(("status", "body"), [
    (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
           "parameters": {"retry_after": 7}}),
    (403, {"ok": False, "error_code": 403,
           "description": "Forbidden: bot was blocked by the user"}),
    (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}),
    (400, {"ok": False, "error_code": 400, "description": "Bad Request: group chat was upgraded",
           "parameters": {"migrate_to_chat_id": -1001234}}),
    (401, {"ok": False, "error_code": 401, "description": "Unauthorized"}),
    (404, {"ok": False, "error_code": 404, "description": "Not Found"}),
    (409, {"ok": False, "error_code": 409, "description": "Conflict: terminated by other"}),
    (502, b"<html>Bad Gateway</html>"),
    (500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}),
])
async def test_the_text_path_reads_bot_api_errors_as_python_telegram_bot_does(
        status: int, body: dict[str, Any] | bytes) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(TelegramError) as ours:
        result_of(status, raw)
    with pytest.raises(TelegramError) as ptbs:
        await CannedRequest(status, raw).post("https://api.telegram.org/bot1:x/sendMessage")
    assert type(ours.value) is type(ptbs.value)
    assert str(ours.value) == str(ptbs.value)
    assert delivery_for(ours.value) == delivery_for(ptbs.value)


# --- a turn's plain texts as one message -----------------------------------------------------

async def test_a_turn_of_two_plain_texts_arrives_as_one_message_in_their_order(
        tg: Harness, updates: Updates) -> None:
    menu = await tg.send(updates.text(RESIDENT, "/report"))
    category = menu[-1].button("市政设施")
    asked = await tg.send(updates.callback(RESIDENT, category))
    question = asked[-1].params["text"]
    # The menu is gone: a note that it is, then the question again, both plain texts.
    stale = await tg.send(updates.callback(RESIDENT, category))
    assert len(stale) == 1
    note, again = stale[0].params["text"].split("\n\n")
    assert "过期" in note and again == question
    rows = await tg.bot.db.fetchall("SELECT count(*) FROM outbox WHERE inbox_id ="
                                    " (SELECT max(id) FROM inbox)")
    assert rows[0][0] == 1  # one row, one Bot API call


async def test_a_text_followed_by_a_text_with_buttons_stays_two_messages(
        tg: Harness, updates: Updates) -> None:
    menu = await tg.send(updates.text(RESIDENT, "/report"))
    await tg.send(updates.callback(RESIDENT, menu[-1].button("市政设施")))
    await tg.send(updates.text(RESIDENT, "路灯坏了，晚上一片漆黑"))
    found = await tg.send(updates.location(RESIDENT, 30.2801, 120.11661))
    assert [c.method for c in found] == ["sendMessage", "sendMessage"]
    assert found[0].params["text"].startswith("地点") and not found[0].buttons
    assert "照片" in found[1].params["text"] and found[1].button("没有照片")


def test_only_plain_texts_are_joined_within_the_length_and_never_on_sms() -> None:
    plain: Message = ("一", {})
    button: Message = ("二", {"buttons": [["好", "1:0"]]})
    assert join_texts([plain, plain, button, plain, plain], TELEGRAM) == [
        ("一\n\n一", {}), button, ("一\n\n一", {})]
    photo: Message = ("图", {"photos": [7]})
    assert join_texts([plain, photo, plain], TELEGRAM) == [plain, photo, plain]
    long: Message = ("长" * 2100, {})
    assert join_texts([long, long], TELEGRAM) == [long, long]  # 4,202 > 4,096: two
    assert join_texts([plain, plain], SMS) == [plain, plain]
