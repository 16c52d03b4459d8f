"""The web simulator's API over real HTTP (uvicorn on localhost, the local demo): long-poll
(issue 12 item 9), the page's cast and defaults (items 11-13), photos as links, and the
refusals of bad or empty input."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.domain.clock import FakeClock
from bot.settings import Settings
from tests.sim_harness import LiveSim, serving
from tests.test_app import PNG

ROOT = Path(__file__).resolve().parent.parent
README_EXAMPLE = "翠苑一区7幢门口垃圾堆了三天"  # the report README's quick start suggests
CASE_NUMBER = re.compile(r"\d{6}-\d{3}")


@pytest.fixture
async def live(settings: Settings, clock: FakeClock) -> AsyncIterator[LiveSim]:
    """The local demo, served."""
    async with serving(settings, clock) as sim:
        yield sim


@pytest.fixture
async def http(live: LiveSim) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the served simulator."""
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        yield client


class Pane:
    """One person in the simulator, as the page talks to the API."""

    def __init__(self, http: httpx.AsyncClient, address: str,
                 channel: str = "sim-telegram") -> None:
        self.http = http
        self.target = {"channel": channel, "address": address}
        self.after = 0

    async def inbox(self, wait: float = 0) -> list[dict[str, Any]]:
        """What arrived since the last look (waiting up to `wait` seconds for something)."""
        got = await self.http.get("/sim/api/messages",
                                  params={**self.target, "after": self.after, "wait": wait})
        assert got.status_code == 200, got.text
        messages: list[dict[str, Any]] = got.json()["messages"]
        if messages:
            self.after = messages[-1]["id"]
        return messages

    async def send(self, **body: object) -> list[dict[str, Any]]:
        """Send; return the replies."""
        sent = await self.http.post("/sim/api/send", json={**self.target, **body})
        assert sent.status_code == 200, sent.text
        return await self.inbox()

    async def press(self, messages: list[dict[str, Any]], label: str) -> list[dict[str, Any]]:
        """Press the button of the last message whose label contains `label`."""
        option = next(data for text, data in messages[-1]["buttons"] if label in text)
        return await self.send(option=option)


async def report_readme_example(resident: Pane) -> str:
    """The README's example report, confirmed; returns the case number."""
    asked = await resident.send(text=README_EXAMPLE)
    asked = await resident.press(asked, "垃圾")
    asked = await resident.press(asked, "没有照片")
    created = await resident.press(asked, "确认提交")
    number = CASE_NUMBER.search(created[0]["text"])
    assert number is not None, created
    return number.group()


# --- long-poll ---------------------------------------------------------------------------

async def test_a_waiting_poll_returns_as_soon_as_a_reply_is_queued(
        http: httpx.AsyncClient) -> None:
    pane = Pane(http, "web:waiter")
    started = asyncio.get_running_loop().time()
    waiting = asyncio.create_task(pane.inbox(wait=25))
    await http.post("/sim/api/send", json={**pane.target, "text": "/help"})
    replies = await asyncio.wait_for(waiting, 10)
    assert replies and "/report" in replies[0]["text"]
    assert asyncio.get_running_loop().time() - started < 10  # not the 25 s of the wait


async def test_a_poll_for_someone_else_is_not_woken_early_with_nothing(
        http: httpx.AsyncClient) -> None:
    other = Pane(http, "web:other")
    waiting = asyncio.create_task(other.inbox(wait=1))
    await Pane(http, "web:talker").send(text="/help")
    assert await waiting == []


@pytest.mark.parametrize(("params", "error"), [
    ({"after": "99999999999999999999999"}, "after"),
    ({"after": "-1"}, "after"),
    ({"wait": "600"}, "wait"),
    ({"wait": "soon"}, ""),
    ({"wait": "nan"}, "wait"),
])
async def test_bad_poll_parameters_get_a_clear_400(http: httpx.AsyncClient,
                                                   params: dict[str, str], error: str) -> None:
    got = await http.get("/sim/api/messages",
                         params={"channel": "sim-telegram", "address": "web:x", **params})
    assert got.status_code == 400 and error in got.json()["error"]


# --- the cast: who the page plays ----------------------------------------------------------

async def test_the_default_pin_the_default_chief_and_the_readme_example_agree(
        live: LiveSim, http: httpx.AsyncClient) -> None:
    cast = (await http.get("/sim/api/cast")).json()
    assert cast["default_chief"] == "web:chief-0102"
    chief_0102 = next(s for s in cast["staff"] if s["address"] == "web:chief-0102")
    assert chief_0102["scope"] == cast["pin"]["grid"] == "33010600100102"
    assert chief_0102["scope_name"] == "翠苑一区第2网格" and chief_0102["name"] == "陈建国"
    pin = live.bot.reference.district.locate_point(cast["pin"]["lat"], cast["pin"]["lon"])
    assert pin.grid_code == "33010600100102"
    assert f"`{README_EXAMPLE}`" in (ROOT / "README.md").read_text(encoding="utf-8")

    chief = Pane(http, cast["default_chief"])
    number = await report_readme_example(Pane(http, "web:resident"))
    assigned = await chief.inbox()
    assert any(number in m["text"] for m in assigned)
    assert assigned[-1]["buttons"], "the chief gets the case with its actions"


async def test_every_demo_grid_has_its_chief_in_the_cast(http: httpx.AsyncClient) -> None:
    staff = (await http.get("/sim/api/cast")).json()["staff"]
    assert [s["address"] for s in staff] == [f"web:chief-0{c}0{g}" for c in (1, 2)
                                             for g in (1, 2, 3, 4)]
    assert all(s["scope"].endswith(s["address"][-4:]) for s in staff)


async def test_a_chief_stays_the_chief_when_the_pane_switches_to_sms(
        http: httpx.AsyncClient) -> None:
    on_sms = Pane(http, "web:chief-0102", channel="sim-sms")
    tasks = await on_sms.send(text="/tasks")
    assert "只对网格员和工作人员开放" not in tasks[0]["text"]
    number = await report_readme_example(Pane(http, "web:resident"))
    assert any(number in m["text"] for m in await on_sms.inbox())  # where they last wrote


# --- messages as the page shows them -------------------------------------------------------

async def test_replies_carry_their_local_time_and_photo_links_that_open(
        live: LiveSim, http: httpx.AsyncClient) -> None:
    resident = Pane(http, "web:photographer")
    asked = await resident.send(text=README_EXAMPLE)
    await resident.press(asked, "垃圾")
    uploaded = await http.post("/sim/api/photo", data=resident.target,
                               files={"file": ("p.png", PNG, "image/png")})
    assert uploaded.status_code == 200
    asked = await resident.inbox()
    asked = await resident.press(asked, "完成")
    await resident.press(asked, "确认提交")
    assert {m["time"] for m in await Pane(http, "web:chief-0102").inbox()} == {"10:00"}
    detail = await Pane(http, "web:chief-0102").send(text="/tasks")
    number = CASE_NUMBER.search(detail[-1]["text"])
    assert number is not None, detail
    card = await Pane(http, "web:chief-0102").send(text=f"/case {number.group()}")
    links = [url for m in card for url in m["photo_urls"]]
    assert links and all(url.startswith("/media/") for url in links)
    photo = await http.get(links[0])
    assert photo.status_code == 200 and photo.content == PNG


# --- refusals -----------------------------------------------------------------------------

async def test_an_empty_message_is_refused_and_nothing_is_stored(
        live: LiveSim, http: httpx.AsyncClient) -> None:
    for text in ("", "   ", "\n"):
        sent = await http.post("/sim/api/send", json={"channel": "sim-telegram",
                                                      "address": "web:quiet", "text": text})
        assert sent.status_code == 400 and "empty" in sent.json()["error"]
    assert await live.bot.db.fetchall("SELECT id FROM inbox") == []


async def test_deeply_nested_json_gets_a_400(http: httpx.AsyncClient) -> None:
    body = b"[" * 10_000 + b"]" * 10_000
    sent = await http.post("/sim/api/send", content=body,
                           headers={"content-type": "application/json"})
    assert sent.status_code == 400 and "JSON" in sent.json()["error"]


async def test_a_post_from_another_site_is_refused(http: httpx.AsyncClient) -> None:
    sent = await http.post("/sim/api/send", json={"channel": "sim-telegram",
                                                  "address": "web:x", "text": "hi"},
                           headers={"origin": "https://evil.example"})
    assert sent.status_code == 403


async def test_the_page_allows_no_inline_script(http: httpx.AsyncClient) -> None:
    page = await http.get("/sim")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    assert re.search(r"<script(?![^>]*\bsrc=)", page.text) is None
    assert re.search(r"\son[a-z]+=", page.text) is None  # no onclick= attributes
    script = await http.get("/sim/static/sim.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
