"""Signing in to the console (issue 13 items 2 and 8): one-time links from the bot and the
CLI, the session cookie, idle expiry, sign-out, CSRF, the rate limits, the headers."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from bot.bootstrap import Gridbot, build
from bot.domain.clock import FakeClock
from bot.services import console_auth
from bot.settings import Settings
from tests.chat import ChatDriver
from tests.console_harness import Console, redeem
from tests.helpers import GRID_1, STREET, gridbot

LINK = re.compile(r"https?://\S+/console/login\?t=[A-Za-z0-9_\-]+")


@pytest.fixture
def console(gridbot: Gridbot) -> Console:
    """The console of the demo gridbot, in-process."""
    return Console(gridbot)


async def test_a_link_signs_in_once_and_then_is_refused(console: Console) -> None:
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    link = await console.link(dispatcher)
    async with console.client() as browser:
        answer = await redeem(browser, link)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/cases"
        page = await browser.get("/console/cases")
        assert page.status_code == 200
        assert "调度员小赵" in page.text
    async with console.client() as other:
        again = await other.get(link.removeprefix("http://console.test"))
        assert again.status_code == 410
        assert "已经用过" in again.text
        assert (await other.get("/console/cases")).status_code == 303  # not signed in


async def test_an_expired_link_is_refused(console: Console, clock: FakeClock) -> None:
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    link = await console.link(dispatcher)
    clock.advance(timedelta(minutes=console_auth.LINK_MINUTES, seconds=1))
    async with console.client() as browser:
        opened = await browser.get(link.removeprefix("http://console.test"))
        assert opened.status_code == 410
        assert "已过期" in opened.text


async def test_a_link_kept_past_its_time_before_pressing_sign_in_is_refused(
        console: Console, clock: FakeClock) -> None:
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    link = await console.link(dispatcher)
    async with console.client() as browser:
        assert (await browser.get(link.removeprefix("http://console.test"))).status_code == 303
        clock.advance(timedelta(minutes=11))
        pressed = await browser.post("/console/login",
                                     headers={"Origin": "http://console.test"})
        assert pressed.status_code == 410
        assert "gridbot_console=" not in pressed.headers.get("set-cookie", "")


async def test_an_unknown_link_is_refused(console: Console) -> None:
    async with console.client() as browser:
        answer = await browser.get("/console/login?t=not-a-link")
        assert answer.status_code == 404
        assert "无效" in answer.text


async def test_opening_the_link_drops_it_from_the_address_and_the_page(
        console: Console) -> None:
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    link = await console.link(dispatcher)
    secret = link.split("t=", 1)[1]
    async with console.client() as browser:
        opened = await browser.get(link.removeprefix("http://console.test"))
        assert opened.headers["location"] == "/console/login"
        confirm = await browser.get("/console/login")
        assert "以 调度员小赵 的身份登录" in confirm.text
        assert secret not in confirm.text
        signed = await browser.post("/console/login", headers={"Origin": "http://console.test"})
        page = await browser.get(signed.headers["location"])
        assert secret not in page.text


async def test_staff_get_a_link_from_the_bot_and_residents_do_not(gridbot: Gridbot,
                                                                 console: Console) -> None:
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")  # the demo's chief
    said = await chief.text("/console")
    found = LINK.search(said[0].text)
    assert found, said[0].text
    assert "10分钟" in said[0].text
    async with console.client() as browser:
        assert (await redeem(browser, found.group(0))).status_code == 303
        page = await browser.get("/console/cases")
        assert "王丽华" in page.text
    resident = ChatDriver(gridbot, "sim-telegram", "web:someone")
    said = await resident.text("/console")
    assert not LINK.search(said[0].text)
    assert "只对网格员和工作人员开放" in said[0].text


async def test_links_are_rate_limited_per_person(gridbot: Gridbot) -> None:
    chief = ChatDriver(gridbot, "sim-sms", "web:chief-sms")
    console = Console(gridbot)
    person = await console.staff("网格员", "grid_chief", GRID_1, "web:chief-sms", "sim-sms")
    for _ in range(console_auth.LINKS_PER_HOUR):
        await console.link(person)
    said = await chief.text("/console")
    assert "太频繁" in said[0].text and not LINK.search(said[0].text)
    gridbot.clock.advance(timedelta(hours=1, minutes=1))  # type: ignore[attr-defined]
    said = await chief.text("/console")
    assert LINK.search(said[0].text)


async def test_failed_sign_ins_from_one_address_are_refused_for_a_while(
        console: Console, clock: FakeClock) -> None:
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    async with console.client() as browser:
        for _ in range(console_auth.FAILED_SIGN_INS):
            assert (await browser.get("/console/login?t=guess")).status_code == 404
        link = await console.link(dispatcher)
        blocked = await browser.get(link.removeprefix("http://console.test"))
        assert blocked.status_code == 429
        assert "失败次数太多" in blocked.text
        clock.advance(console_auth.FAILED_WINDOW + timedelta(seconds=1))
        assert (await redeem(browser, await console.link(dispatcher))).status_code == 303


async def test_the_session_cookie_is_signed_httponly_and_samesite(console: Console) -> None:
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    async with console.client() as browser:
        answer = await redeem(browser, await console.link(dispatcher))
        cookie = [c for c in answer.headers.get_list("set-cookie")
                  if c.startswith("gridbot_console=")][0]
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
        assert "Path=/console" in cookie
        assert "Secure" not in cookie  # plain http on this machine
        # A cookie whose signature is wrong is no session.
        value = browser.cookies.get("gridbot_console", path="/console")
        assert value is not None
        browser.cookies.set("gridbot_console", value[:-2] + "xx", domain="console.test",
                            path="/console")
        assert (await browser.get("/console/cases")).status_code == 303


async def test_the_cookie_is_secure_behind_a_trusted_https_proxy(tmp_path: Path,
                                                                 clock: FakeClock) -> None:
    settings = Settings.from_mapping({"GRIDBOT_DATABASE": str(tmp_path / "g.db"),
                                      "GRIDBOT_MEDIA_DIR": str(tmp_path / "media"),
                                      "GRIDBOT_TRUST_PROXY": "true"})
    bot = await build(settings, clock)
    try:
        console = Console(bot)
        dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
        link = await console.link(dispatcher)
        async with console.client() as browser:
            proxied = {"X-Forwarded-Proto": "https"}
            opened = await browser.get(link.removeprefix("http://console.test"),
                                       headers=proxied)
            kept = opened.headers["set-cookie"]
            assert "Secure" in kept  # so httpx, on http here, would not send it back:
            secret = kept.split(";", 1)[0].split("=", 1)[1]
            answer = await browser.post("/console/login", headers={
                **proxied, "Origin": "http://console.test",
                "Cookie": f"gridbot_console_link={secret}"})
            cookie = [c for c in answer.headers.get_list("set-cookie")
                      if c.startswith("gridbot_console=")][0]
            assert "Secure" in cookie
    finally:
        await bot.close()


async def test_a_session_ends_after_twelve_idle_hours(console: Console,
                                                      clock: FakeClock) -> None:
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    async with console.client() as browser:
        await console.sign_in(dispatcher, browser)
        clock.advance(timedelta(hours=11, minutes=59))
        assert (await browser.get("/console/cases")).status_code == 200  # and counts as use
        clock.advance(timedelta(hours=11, minutes=59))
        assert (await browser.get("/console/cases")).status_code == 200
        clock.advance(console_auth.IDLE + timedelta(minutes=1))
        answer = await browser.get("/console/cases")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/login"


async def test_sign_out_ends_the_session(console: Console) -> None:
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    async with console.client() as browser:
        await console.sign_in(dispatcher, browser)
        kept = browser.cookies.get("gridbot_console", path="/console")
        out = await browser.post_form("/console/logout")
        assert out.status_code == 303
        assert (await browser.get(out.headers["location"])).status_code == 200
        assert (await browser.get("/console/cases")).status_code == 303
        assert kept is not None  # the old cookie, replayed, is no session either
        browser.cookies.set("gridbot_console", kept, domain="console.test", path="/console")
        assert (await browser.get("/console/cases")).status_code == 303


async def test_a_post_without_the_csrf_token_is_refused(console: Console) -> None:
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    async with console.client() as browser:
        await console.sign_in(dispatcher, browser)
        origin = {"Origin": "http://console.test"}
        missing = await browser.post("/console/logout", headers=origin)
        assert missing.status_code == 403 and "CSRF" in missing.text
        wrong = await browser.post("/console/logout", data={"csrf": "x" * 43}, headers=origin)
        assert wrong.status_code == 403
        header = await browser.post("/console/logout",
                                    headers={**origin, "X-CSRF-Token": "nope"})
        assert header.status_code == 403
        foreign = await browser.post("/console/logout", data={"csrf": browser.csrf},
                                     headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
        assert (await browser.get("/console/cases")).status_code == 200  # still signed in
        with_token = await browser.post("/console/logout",
                                        headers={**origin, "X-CSRF-Token": browser.csrf})
        assert with_token.status_code == 303


async def test_pages_carry_a_csp_without_inline_script(console: Console) -> None:
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    async with console.client() as browser:
        await console.sign_in(dispatcher, browser)
        for path in ("/console/cases", "/console/login", "/console/cases/261123-999"):
            answer = await browser.get(path, follow_redirects=True)
            csp = answer.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert "frame-ancestors 'none'" in csp
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", answer.text)
            assert not re.search(r"\son[a-z]+=", answer.text)
            assert not re.search(r"\sstyle=", answer.text)


async def test_the_cli_prints_a_link_for_a_role(tmp_path: Path) -> None:
    unknown = gridbot(tmp_path, "console-link", "--role-id", "9999")  # loads the demo too
    assert unknown.returncode == 1
    assert "no active role with id 9999" in unknown.stderr
    granted = gridbot(tmp_path, "staff", "list")
    assert granted.returncode == 0, granted.stderr
    role_id = re.search(r"^\s*(\d+)\b.*dispatcher", granted.stdout, re.M)
    assert role_id, granted.stdout
    printed = gridbot(tmp_path, "console-link", "--role-id", role_id.group(1))
    assert printed.returncode == 0, printed.stderr
    assert LINK.search(printed.stdout)
    assert "works once, for 10 minutes" in printed.stdout
