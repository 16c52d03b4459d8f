"""Hostile input over real HTTP: whatever is posted, a 4xx with a reason or a stored row
marked refused; never a 500, a traceback, or a reply to nobody.

The web simulator through Starlette's TestClient, Telegram through uvicorn on localhost
against the fake Bot API, SMS against the fake Twilio, each with the real app and the
real SQLite file.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bot.channels.telegram.updates import chat_address
from bot.entrypoints.http import create_app
from bot.settings import Settings
from store import db as db_module
from store import media as media_store
from store import outbox as outbox_store
from store.db import Database
from store.outbox import OutboundRow
from tests.fake_telegram import FakeTelegram, Updates
from tests.fake_twilio import FakeTwilio
from tests.helpers import CHECKER
from tests.images import jpeg, png, png_claiming
from tests.sms_harness import ACCOUNT_SID, RESIDENT, SmsHarness, inbound_form
from tests.telegram_harness import Harness
from tests.test_app import SimUser

CHAT = 700_101
DEEP = 10_000
HUGE = "99999999999999999999999"  # beyond SQLite's 64-bit integers


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app with the web simulator, through Starlette's TestClient."""
    with TestClient(create_app(settings)) as client:
        yield client


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records that carry a traceback, or say something failed."""
    return [r.getMessage() for r in caplog.records
            if r.exc_info or r.levelno >= logging.ERROR]


def nested(depth: int) -> bytes:
    """A JSON value nested `depth` levels deep: [[[...]]]."""
    return b"[" * depth + b"]" * depth


# --- 5: bodies and numbers beyond bounds ---------------------------------------------------

@pytest.mark.parametrize("body", [nested(DEEP),
                                  b'{"a":' * DEEP + b"1" + b"}" * DEEP,
                                  b'{"channel": "sim-sms", "address": "a", "text": '
                                  + nested(DEEP) + b"}"])
def test_json_nested_ten_thousand_levels_is_refused_by_the_simulator(
        client: TestClient, body: bytes, caplog: pytest.LogCaptureFixture) -> None:
    response = client.post("/sim/api/send", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "nests deeper" in response.json()["error"]
    assert tracebacks(caplog) == []


def test_the_simulator_refuses_a_body_over_a_megabyte(client: TestClient) -> None:
    body = b'{"channel": "sim-sms", "address": "a", "text": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.post("/sim/api/send", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code == 413 and "bytes" in response.json()["error"]


async def test_json_nested_ten_thousand_levels_is_refused_by_the_telegram_webhook(
        tg: Harness, caplog: pytest.LogCaptureFixture) -> None:
    for body in (nested(DEEP), b'{"update_id": 1, "message": ' + nested(DEEP) + b"}"):
        response = await tg.post(body)
        assert response.status_code == 400
        assert "nests deeper" in response.text
    assert await tg.inbox() == []
    assert tracebacks(caplog) == []


async def test_brackets_inside_a_text_are_not_nesting(tg: Harness, updates: Updates) -> None:
    text = "[" * 300 + "{路灯坏了}" + "]" * 300
    sent = await tg.send(updates.text(CHAT, text))
    assert sent and await tg.inbox() != [] and (await tg.inbox())[0][1] == "processed"


@pytest.mark.parametrize("after", [HUGE, "-1", "１２", "1e3", "0x10"])
def test_a_message_id_sqlite_cannot_hold_or_not_a_number_is_a_400(
        client: TestClient, after: str, caplog: pytest.LogCaptureFixture) -> None:
    response = client.get("/sim/api/messages",
                          params={"channel": "sim-sms", "address": "a", "after": after})
    assert response.status_code == 400
    assert "after must be a whole number" in response.json()["error"]
    assert tracebacks(caplog) == []
    fine = client.get("/sim/api/messages", params={"channel": "sim-sms", "address": "a",
                                                   "after": str(2**63 - 1)})
    assert fine.status_code == 200 and fine.json() == {"messages": []}


async def test_a_signed_delivery_report_with_an_id_beyond_sqlite_is_a_400(
        sms: SmsHarness, caplog: pytest.LogCaptureFixture) -> None:
    form = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered",
            "AccountSid": ACCOUNT_SID}
    response = await sms.post(form, f"/sms/twilio/status?id={HUGE}")
    assert response.status_code == 400 and "id must be a whole number" in response.text
    assert tracebacks(caplog) == []
    assert (await sms.post(form, "/sms/twilio/status?id=5")).status_code == 204


# --- 7: updates that break the Bot API, with the right secret ------------------------------

def _broken_updates() -> list[tuple[str, dict[str, Any], str]]:
    """(what is wrong, the update, a word of the reason recorded)."""
    make = Updates(CHECKER, next_id=800_000)  # ids apart from the fixture's
    as_string = {"update_id": 900_001, "message": "hello"}
    no_chat = make.text(CHAT, "/help")
    del no_chat["message"]["chat"]
    number_text = make.text(CHAT, "路灯坏了")
    number_text["message"]["text"] = 12345
    string_pin = make.location(CHAT, 30.2781, 120.1203)
    string_pin["message"]["location"] = {"latitude": "30.2781", "longitude": "120.1203"}
    number_data = make.callback(CHAT, "1:0")
    number_data["callback_query"]["data"] = 7
    bool_chat = make.text(CHAT, "/help")
    bool_chat["message"]["chat"]["id"] = True
    return [("message is a string", as_string, "update.message is not an object"),
            ("message without chat", no_chat, "update.message.chat is missing"),
            ("text is a number", number_text, "update.message.text is not a string"),
            ("location as strings", string_pin, "latitude is not a number"),
            ("callback data as a number", number_data, "data is not a string"),
            ("chat id is true", bool_chat, "chat.id is not an integer")]


@pytest.mark.parametrize(("what", "update", "reason"), _broken_updates(),
                         ids=[what for what, _, _ in _broken_updates()])
async def test_an_update_that_breaks_the_bot_api_is_stored_refused_and_not_answered(
        tg: Harness, updates: Updates, caplog: pytest.LogCaptureFixture, what: str,
        update: dict[str, Any], reason: str) -> None:
    assert CHECKER.check_object("Update", update), f"{what}: the spec allows it"
    response = await tg.post(update)
    assert response.status_code == 200  # stored: Telegram must not send it again
    assert await tg.deliver() == []  # no apology to anyone
    rows = await tg.bot.db.fetchall("SELECT status, error FROM inbox")
    [(status, error)] = [tuple(r) for r in rows]
    assert status == "refused" and reason in error and "\n" not in error
    assert tracebacks(caplog) == []
    later = await tg.send(updates.text(CHAT, "/help"))  # the chat is not stuck
    assert "/report" in later[0].params["text"]


async def test_a_refused_update_is_refused_again_after_a_restart_not_lost(
        tg: Harness) -> None:
    broken = copy.deepcopy(_broken_updates()[2][1])
    inbox_id = await tg.bot.engine.receive(  # stored, then the process died
        "telegram", str(broken["update_id"]), chat_address(broken), broken)
    assert inbox_id is not None
    assert await tg.bot.engine.recover() == 1
    rows = await tg.bot.db.fetchall("SELECT status FROM inbox WHERE id = ?", [inbox_id])
    assert rows[0][0] == "refused"
    assert await tg.deliver() == []


# --- 8: SMS from what is not a phone number -----------------------------------------------

@pytest.mark.parametrize("sender", ["abc", "12345", "1390003\x000008", "+abc"])
async def test_an_sms_from_what_is_not_a_phone_number_is_stored_refused_and_not_answered(
        sms: SmsHarness, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture,
        sender: str) -> None:
    form = inbound_form("/help", sender=sender)
    response = await sms.post(form)
    assert response.status_code == 200  # stored: Twilio gets its TwiML
    await sms.drain()
    assert twilio.messages == []  # nothing went to Twilio with that as its To
    rows = await sms.bot.db.fetchall("SELECT provider_id, status, error FROM inbox")
    assert [tuple(r) for r in rows] == [
        (form["MessageSid"], "refused", f"the sender is not a phone number: {sender!r}")]
    assert await sms.count("SELECT count(*) FROM contacts WHERE address = ?", sender) == 0
    assert tracebacks(caplog) == []
    assert "/report" in await sms.text("/help", RESIDENT)  # real numbers are answered


# --- 6: images are checked when they arrive, and a photo Telegram refuses is left out ----

NOT_AN_IMAGE = b"this is not an image at all"
BOMB = png_claiming(20_000, 20_000)  # 400 megapixels declared in a few dozen bytes
FORTY_EIGHT_MP = png_claiming(8_000, 6_000)


def stored_media(folder: Path) -> list[Path]:
    """The files in the media folder (the link key aside)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".key")


@pytest.mark.parametrize(("data", "reason"), [
    (NOT_AN_IMAGE, "not a JPEG, PNG, GIF or WebP image"),
    (BOMB, "too many pixels"),
    (FORTY_EIGHT_MP, "8000 x 6000 pixels is over 40 megapixels"),
    (b"", "empty")])
def test_the_simulator_refuses_what_is_not_an_image_and_the_report_goes_on(
        client: TestClient, settings: Settings, data: bytes, reason: str) -> None:
    user = SimUser(client)
    user.press(user.send(text="/report"), "市政设施")
    user.send(text="路灯坏了")
    user.send(lat=30.2801, lon=120.11661)
    refused = client.post("/sim/api/photo", data=user.target,
                          files={"file": ("a.jpg", data, "image/jpeg")})
    assert refused.status_code == 415 and reason in refused.json()["error"]
    assert stored_media(settings.media_dir) == []
    kept = client.post("/sim/api/photo", data=user.target,  # a PNG said to be a JPEG
                       files={"file": ("b.jpg", png("real"), "image/jpeg")})
    assert kept.status_code == 200
    assert [p.suffix for p in stored_media(settings.media_dir)] == [".png"]
    summary = user.press(user.inbox(), "完成")
    assert "照片：1张" in summary[-1]["text"]


async def test_a_telegram_photo_that_is_no_image_is_refused_with_a_clear_answer(
        tg: Harness, updates: Updates, fake: FakeTelegram) -> None:
    menu = await tg.send(updates.text(CHAT, "/report"))
    await tg.send(updates.callback(CHAT, menu[-1].button("市政设施")))
    await tg.send(updates.text(CHAT, "路灯坏了"))
    await tg.send(updates.location(CHAT, 30.2801, 120.11661))
    fake_photo = fake.add_file(NOT_AN_IMAGE)
    said = await tg.send(updates.photo(CHAT, [fake_photo]))
    assert [c.params["text"] for c in said] == [
        "这个文件不是能读取的照片（JPG、PNG、GIF 或 WebP），没有保存。"
        "已填写的内容都还在，请换一张照片发送。"]
    bomb = await tg.send(updates.document(CHAT, fake.add_file(BOMB, ".png"), "image/png"))
    assert "超过4000万像素" in bomb[0].params["text"]
    assert stored_media(tg.bot.settings.media_dir) == []
    rows = await tg.bot.db.fetchall("SELECT status, error FROM inbox ORDER BY id")
    assert [tuple(r) for r in rows][-2:] == [
        ("ignored", "photo refused: not a JPEG, PNG, GIF or WebP image"),
        ("ignored", "photo refused: the image has too many pixels")]
    added = await tg.send(updates.photo(CHAT, [fake.add_file(jpeg("real"))]))
    assert "照片" in added[-1].params["text"]
    summary = await tg.send(updates.callback(CHAT, added[-1].button("完成")))
    assert "照片：1张" in summary[-1].params["text"]  # the report kept all the rest


async def test_an_mms_image_that_is_no_image_is_refused_and_its_text_kept(
        sms: SmsHarness, twilio: FakeTwilio) -> None:
    liar = twilio.add_media(NOT_AN_IMAGE, "image/jpeg")
    bomb = twilio.add_media(BOMB, "image/png")
    said = await sms.text("3号楼门口垃圾堆了三天", media=[(liar, "image/jpeg"),
                                                      (bomb, "image/png")])
    assert "市容环卫" in said  # the text was read and the report begun
    assert "照片无法读取或超过4000万像素，没有保存" in said
    assert stored_media(sms.bot.settings.media_dir) == []
    assert await sms.count("SELECT count(*) FROM media") == 0


async def test_a_photo_telegram_refuses_is_left_out_and_the_text_and_buttons_still_go(
        tg: Harness, fake: FakeTelegram) -> None:
    async with tg.bot.db.transaction() as conn:
        photo = await media_store.add(conn, "telegram", tg.clock.now(),
                                      provider_ref="AgAC-broken")
    async with tg.bot.db.transaction() as conn:
        await outbox_store.enqueue(conn, [OutboundRow(
            "telegram", str(CHAT), None, "事件 261123-001：路灯坏了",
            {"photos": [photo], "buttons": [["签收", "1:0"], ["退回", "1:1"]]})],
            tg.clock.now())
    fake.fail_next(400, method="sendPhoto", description="Bad Request: IMAGE_PROCESS_FAILED")
    sent = await tg.deliver()
    assert [c.method for c in sent] == ["sendMessage"]
    assert sent[0].params["text"] == "事件 261123-001：路灯坏了"
    assert sent[0].button("签收") == "1:0"
    rows = await tg.bot.db.fetchall("SELECT status FROM outbox WHERE address = ?", [str(CHAT)])
    assert [r[0] for r in rows] == ["sent"]


async def test_a_message_of_photos_only_that_telegram_all_refuses_fails(
        tg: Harness, fake: FakeTelegram) -> None:
    async with tg.bot.db.transaction() as conn:
        photo = await media_store.add(conn, "telegram", tg.clock.now(),
                                      provider_ref="AgAC-broken")
        await outbox_store.enqueue(conn, [OutboundRow(
            "telegram", str(CHAT), None, "", {"photos": [photo]})], tg.clock.now())
    fake.fail_next(400, method="sendPhoto", description="Bad Request: IMAGE_PROCESS_FAILED")
    assert await tg.deliver() == []
    rows = await tg.bot.db.fetchall("SELECT status, error FROM outbox WHERE address = ?",
                                    [str(CHAT)])
    assert [tuple(r) for r in rows] == [("failed", "no photo of the message could be sent")]


# --- the migration that allows 'refused' ---------------------------------------------------

async def test_the_inbox_rebuild_keeps_every_row_and_what_points_at_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    everything = db_module.migration_files("sqlite")
    monkeypatch.setattr(db_module, "migration_files",
                        lambda dialect: [m for m in everything if m[0] < "0008"])
    old = await Database.open(tmp_path / "old.db")
    async with old.transaction() as conn:
        await conn.execute("INSERT INTO inbox (channel, provider_id, address, payload,"
                           " received_at, status) VALUES ('sms', 'SM1', '+8613912345678',"
                           " '{}', '2026-11-24T01:00:00Z', 'processed')")
        await conn.execute("INSERT INTO outbox (channel, address, body, inbox_id, created_at)"
                           " VALUES ('sms', '+8613912345678', 'hi', 1, '2026-11-24T01:00:00Z')")
    await old.close()
    monkeypatch.undo()
    db = await Database.open(tmp_path / "old.db")
    try:
        assert [tuple(r) for r in await db.fetchall(
            "SELECT id, provider_id, status FROM inbox")] == [(1, "SM1", "processed")]
        assert [tuple(r) for r in await db.fetchall(
            "SELECT i.provider_id FROM outbox o JOIN inbox i ON i.id = o.inbox_id")] == [
            ("SM1",)]
        async with db.transaction() as conn:
            await conn.execute("UPDATE inbox SET status = 'refused' WHERE id = 1")
        with pytest.raises(Exception, match="FOREIGN KEY"):  # the keys are on again
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO outbox (channel, address, body, inbox_id,"
                                   " created_at) VALUES ('sms', 'x', 'y', 99, 'now')")
    finally:
        await db.close()


def test_a_simulator_upload_over_the_photo_limit_is_refused_before_it_is_read_whole(
        client: TestClient, settings: Settings) -> None:
    user = SimUser(client)
    too_big = b"\xff\xd8\xff" + bytes(21 * 1024 * 1024)
    refused = client.post("/sim/api/photo", data=user.target,
                          files={"file": ("huge.jpg", too_big, "image/jpeg")})
    assert refused.status_code == 413 and "over" in refused.json()["error"]
    assert stored_media(settings.media_dir) == []
