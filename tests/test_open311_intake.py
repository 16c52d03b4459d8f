"""Open311 intake over real HTTP on localhost: a reporter's phone gets the case's updates
by SMS (the fake Twilio), and a media_url is fetched only from an allowlisted host (a
local HTTP server plays the allowlisted host and a refused one)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot.domain.clock import FakeClock
from bot.domain.workflow import Actor, Event, EventKind, Role
from bot.services import casework
from bot.services.mediafiles import MAX_PHOTO_BYTES
from bot.services.notify import render_personal
from bot.services.open311 import create_api_key
from store import cases as case_store
from store import media as media_store
from store import outbox as outbox_store
from tests.fake_twilio import FakeTwilio, LocalServer
from tests.helpers import GRID_1, GRID_1_POINT, STREET
from tests.images import jpeg
from tests.sms_harness import SmsHarness

API = "/open311/v2"
REPORTER = "+8613912340001"
PHOTO = jpeg("open311 media")


@dataclass
class PhotoHost:
    """Someone else's web server on localhost, which remembers every path asked for."""

    server: LocalServer
    asked: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        """host:port, as the allowlist names it."""
        return f"127.0.0.1:{self.server.port}"

    def url(self, path: str, host: str | None = None) -> str:
        """A URL on this server, under the host name given (default: 127.0.0.1)."""
        return f"http://{host or self.host}{path}"


@pytest.fixture
async def photo_host() -> AsyncIterator[PhotoHost]:
    """A photo server: a real JPEG, an HTML page, a body over the photo limit, a redirect."""
    holder: dict[str, PhotoHost] = {}

    async def answer(request: Request) -> Response:
        holder["host"].asked.append(request.url.path)
        path = request.url.path
        if path == "/photo.jpg":
            return Response(PHOTO, media_type="image/jpeg")
        if path == "/huge.jpg":
            return Response(PHOTO + b"\0" * MAX_PHOTO_BYTES, media_type="image/jpeg")
        if path == "/redirect.jpg":
            return RedirectResponse(f"http://localhost:{holder['host'].server.port}/photo.jpg")
        return Response("<html>not a photo</html>", media_type="text/html")

    server = LocalServer(Starlette(routes=[Route("/{name}", answer)]))
    holder["host"] = PhotoHost(server)
    server.serve()
    try:
        yield holder["host"]
    finally:
        await server.stop()


async def _key(sms: SmsHarness) -> str:
    _, key = await create_api_key(sms.bot.db, sms.bot.reference, "FixMyStreet", sms.now())
    return key


async def _file(sms: SmsHarness, key: str, **fields: Any) -> str:
    """POST requests.json to the served app; return the case number."""
    data = {"api_key": key, "service_code": "sanitation-garbage", "lat": GRID_1_POINT[0],
            "long": GRID_1_POINT[1], "description": "3号楼门口垃圾满了", **fields}
    response = await sms.http.post(f"{sms.server.url}{API}/requests.json", data=data)
    assert response.status_code == 201, response.text
    number: str = response.json()[0]["service_request_id"]
    return number


async def _photos_of(sms: SmsHarness, number: str) -> list[media_store.MediaRow]:
    stored = await case_store.get_by_number(sms.bot.db.conn, number)
    assert stored is not None and stored.case.id is not None
    return await media_store.for_case(sms.bot.db.conn, stored.case.id)


# --- the reporter's phone ------------------------------------------------------------------

async def test_a_reporter_who_gives_a_phone_gets_the_case_updates_by_sms(
        sms: SmsHarness) -> None:
    key = await _key(sms)
    number = await _file(sms, key, first_name="丽华", last_name="王", phone="13912340001")
    bot = sms.bot

    async with bot.db.transaction() as conn:  # the grid chief accepts it, then fixes it
        for kind in (EventKind.SIGN, EventKind.REPORT_DONE, EventKind.CHECK_PASS):
            stored = await case_store.get_by_number(conn, number)
            assert stored is not None
            chief = Actor(stored.case.assignee_id, Role.GRID_CHIEF, GRID_1)
            _, told = await casework.apply_event(conn, bot.reference, stored, Event(kind),
                                                 chief, sms.now())
            await outbox_store.enqueue(conn, await render_personal(
                conn, bot.renderer, bot.reference.default_locale, told, sms.now()), sms.now())
    await sms.drain()
    updates = sms.replies(REPORTER).splitlines()
    assert f"事件{number}（市容环卫）已签收，正在处理。" in updates
    assert f"事件{number}（市容环卫）已办结。" in updates
    assert "回复 1：已解决" in updates  # asked whether it is fixed, as SMS menus are


# --- media_url: fetched only from allowlisted hosts --------------------------------------

@pytest.fixture
async def media_sms(tmp_path: Path, clock: FakeClock, twilio: FakeTwilio,
                    photo_host: PhotoHost) -> AsyncIterator[SmsHarness]:
    """gridbot whose settings allowlist the photo host (127.0.0.1:PORT) and no other."""
    harness = await SmsHarness.start(tmp_path, clock, twilio,
                                     GRIDBOT_OPEN311_MEDIA_HOSTS=photo_host.host)
    try:
        yield harness
    finally:
        await harness.close()


async def test_a_photo_from_an_allowlisted_host_is_fetched_and_kept_with_the_case(
        media_sms: SmsHarness, photo_host: PhotoHost) -> None:
    key = await _key(media_sms)
    url = photo_host.url("/photo.jpg")
    number = await _file(media_sms, key, media_url=url)
    assert photo_host.asked == ["/photo.jpg"]
    [photo] = await _photos_of(media_sms, number)
    assert photo.content_type == "image/jpeg"
    assert (media_sms.bot.reference.media_dir / photo.path).read_bytes() == PHOTO
    answer = await media_sms.http.get(f"{media_sms.server.url}{API}/requests/{number}.json",
                                      params={"api_key": key})
    assert answer.json()[0]["media_url"] == url  # the link is shown as given


async def test_a_url_on_any_other_host_is_never_fetched(
        media_sms: SmsHarness, photo_host: PhotoHost) -> None:
    key = await _key(media_sms)
    # The same server under another name, and with a user name before the host: neither
    # is the allowlisted host, so nothing is asked of it; the link is kept.
    for url in (photo_host.url("/photo.jpg", host=f"localhost:{photo_host.server.port}"),
                photo_host.url("/photo.jpg", host=f"me@{photo_host.host}")):
        number = await _file(media_sms, key, media_url=url)
        assert await _photos_of(media_sms, number) == []
    assert photo_host.asked == []


async def test_a_redirect_away_from_the_allowlisted_host_is_not_followed(
        media_sms: SmsHarness, photo_host: PhotoHost) -> None:
    key = await _key(media_sms)
    number = await _file(media_sms, key, media_url=photo_host.url("/redirect.jpg"))
    assert photo_host.asked == ["/redirect.jpg"]  # not /photo.jpg on "localhost"
    assert await _photos_of(media_sms, number) == []


async def test_what_is_not_an_image_or_too_big_is_not_kept(
        media_sms: SmsHarness, photo_host: PhotoHost) -> None:
    key = await _key(media_sms)
    for path in ("/page.html", "/huge.jpg"):
        number = await _file(media_sms, key, media_url=photo_host.url(path))
        assert await _photos_of(media_sms, number) == [], path
    assert photo_host.asked == ["/page.html", "/huge.jpg"]


# --- tokens ------------------------------------------------------------------------------

async def test_there_are_no_tokens_a_filing_answers_its_case_number_at_once(
        sms: SmsHarness) -> None:
    key = await _key(sms)
    number = await _file(sms, key)
    assert number  # the POST's answer carries service_request_id, never a token
    response = await sms.http.get(f"{sms.server.url}{API}/tokens/{number}.json",
                                  params={"api_key": key})
    assert response.status_code == 404
    [error] = response.json()
    assert error["code"] == 404 and "tokens" in error["description"]


# --- the search's status notes -----------------------------------------------------------

async def test_the_search_tells_a_force_closed_and_a_merged_case_as_the_case_itself_does(
        sms: SmsHarness) -> None:
    """The search reads force_closed and merged_into without loading each whole case
    (store/open311.py Listed): its answers are the same as for the case asked by id."""
    key = await _key(sms)
    forced, kept, merged = [await _file(sms, key) for _ in range(3)]
    bot = sms.bot
    async with bot.db.transaction() as conn:
        stored = await case_store.get_by_number(conn, forced)
        assert stored is not None
        street = Actor(stored.case.assignee_id, Role.DISPATCHER, STREET)
        await casework.apply_event(conn, bot.reference, stored,
                                   Event(EventKind.FORCE_CLOSE, note="重复上报"), street,
                                   sms.now())
        stored = await case_store.get_by_number(conn, merged)
        assert stored is not None
        chief = Actor(stored.case.assignee_id, Role.GRID_CHIEF, GRID_1)
        await casework.apply_event(conn, bot.reference, stored,
                                   Event(EventKind.MERGE, merged_into=kept), chief, sms.now())
    listed = await sms.http.get(f"{sms.server.url}{API}/requests.json",
                                params={"api_key": key})
    by_number = {r["service_request_id"]: r for r in listed.json()}
    assert by_number[forced]["status_notes"] == "Closed by the street office."
    assert by_number[merged]["status_notes"] == f"Duplicate of {kept}."
    assert by_number[kept]["status"] == "open"
    for number in (forced, kept, merged):
        one = await sms.http.get(f"{sms.server.url}{API}/requests/{number}.json",
                                 params={"api_key": key})
        assert one.json() == [by_number[number]]
