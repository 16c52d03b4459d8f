"""Signing in to the console from a test: staff, sign-in links, an HTTP client holding a
session, and the same through a real browser.

    console = Console(bot)                       # gridbot from the `gridbot` fixture
    chief = await console.staff("王丽华", "grid_chief", GRID_1)
    async with console.client() as client:       # httpx client, in-process (ASGI)
        await console.sign_in(chief, client)
        page = await client.get("/console/cases")
        await client.post_form("/console/…", {…})  # with client.csrf and the Origin

`serving_console(settings, clock)` serves the app on a localhost port for a browser;
`browser_sign_in(page, base_url, link)` opens a link and presses "sign in".
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.bootstrap import Gridbot
from bot.domain.clock import FakeClock
from bot.entrypoints.http import create_app
from bot.services import casework, console_auth, notify
from bot.services.districts import Place
from bot.settings import Settings
from store import outbox as outbox_store
from store import people as people_store
from tests.sim_harness import LiveSim, serving

BASE = "http://console.test"
CSRF = re.compile(r'name="csrf" value="([A-Za-z0-9_\-]+)"')


class ConsoleClient(httpx.AsyncClient):
    """An HTTP client on the console; after `Console.sign_in`, holding a session."""

    csrf: str = ""

    async def post_form(self, url: str, data: dict[str, Any] | None = None,
                        **kwargs: Any) -> httpx.Response:
        """POST a form with the session's CSRF token and this server's Origin."""
        return await self.post(url, data={"csrf": self.csrf, **(data or {})},
                               headers={"Origin": str(self.base_url).rstrip("/")}, **kwargs)


@dataclass
class Console:
    """The console of a gridbot, reached in-process through ASGI (no port)."""

    bot: Gridbot

    async def staff(self, name: str, role: str, scope: str | None,
                    address: str | None = None, channel: str = "sim-telegram") -> int:
        """A staff member (with a chat address when given); returns the person id."""
        now = self.bot.clock.now()
        async with self.bot.db.transaction() as conn:
            person = await people_store.add_person(conn, name, now)
            if address is not None:
                await people_store.add_contact(conn, person, channel, address, now)
            await people_store.grant_role(conn, person, role, scope, now)
        return person

    async def link(self, person_id: int, base_url: str = BASE) -> str:
        """A fresh one-time sign-in link for the person."""
        async with self.bot.db.transaction() as conn:
            return await console_auth.issue_link(conn, person_id, self.bot.clock.now(),
                                                 base_url)

    def client(self) -> ConsoleClient:
        """A client with no session yet (close it, or use `async with`)."""
        app = create_app(self.bot.settings, self.bot)
        app.state.gridbot = self.bot
        return ConsoleClient(transport=httpx.ASGITransport(app=app), base_url=BASE,
                             follow_redirects=False)

    async def sign_in(self, person_id: int, client: ConsoleClient) -> ConsoleClient:
        """Sign the client in as the person, by their link, as a browser does it."""
        await redeem(client, await self.link(person_id))
        page = await client.get("/console/cases")
        assert page.status_code == 200, page.text
        found = CSRF.search(page.text)
        assert found, "no CSRF field on the list page"
        client.csrf = found.group(1)
        return client


async def redeem(client: httpx.AsyncClient, link: str) -> httpx.Response:
    """Open a sign-in link and press the button: the answer to the POST."""
    parts = urlsplit(link)  # the link names the public URL; the client has its own
    opened = await client.get(f"{parts.path}?{parts.query}")
    assert opened.status_code == 303, opened.text
    confirm = await client.get("/console/login")
    assert confirm.status_code == 200, confirm.text
    return await client.post("/console/login",
                             headers={"Origin": str(client.base_url).rstrip("/")})


@asynccontextmanager
async def serving_console(settings: Settings, clock: FakeClock) -> AsyncIterator[LiveSim]:
    """gridbot served on a localhost port (for a browser), as the simulator's tests do."""
    async with serving(settings, clock) as live:
        yield live


async def browser_sign_in(page: Any, link: str) -> None:
    """In Playwright: open a sign-in link, press the button, land on the case list."""
    await page.goto(link)
    await page.locator("#signin-button").click()
    await page.wait_for_url("**/console/cases", wait_until="domcontentloaded")


# Points inside each demo grid (the centres of bot/data/demo/district.geojson's grids).
GRID_POINTS = {
    "33010600100101": (30.28003, 120.11663), "33010600100102": (30.28011, 120.12002),
    "33010600100103": (30.27735, 120.11668), "33010600100104": (30.27740, 120.12008),
    "33010600100201": (30.28019, 120.12242), "33010600100202": (30.28003, 120.12583),
    "33010600100203": (30.27746, 120.12250), "33010600100204": (30.27733, 120.12590),
}


async def file_case(bot: Gridbot, grid: str, description: str, *,
                    category: str = "sanitation", reporter: str = "web:resident",
                    channel: str = "sim-telegram", address: str | None = None) -> str:
    """A resident's case filed through the same service as the report dialogue (and its
    notices queued), in a demo grid; returns the case number."""
    lat, lon = GRID_POINTS[grid]
    now = bot.clock.now()
    async with bot.db.transaction() as conn:
        contact = await people_store.get_or_create_contact(conn, channel, reporter, now)
        draft = casework.Draft(category=category, subcategory=None, description=description,
                               place=Place(grid, lat=lat, lon=lon, address=address),
                               photo_ids=(), channel=channel)
        filed = await casework.file_case(conn, bot.reference, contact.person_id, draft, now)
        rows = await notify.render_personal(conn, bot.renderer, bot.reference.default_locale,
                                            filed.notices, now)
        await outbox_store.enqueue(conn, rows, now)
    return filed.case.number
