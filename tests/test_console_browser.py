"""The console in a real browser (issue 13 items 7 and 9): headless Chromium from Debian's
`chromium` package, driven by Playwright, against gridbot served by uvicorn with Telegram
on (the fake Bot API on localhost).

A dispatcher signs in by link, filters the list to overdue sanitation cases in one
community, opens one and dispatches it to 环卫 (the sanitation office); the office's staff
member gets it on Telegram. The list and the case page follow changes made elsewhere
without a reload.

Screenshots at 1280×900 and 390×844 go to `$CONSOLE_SCREENSHOTS` (docs/console.md's are
made with `CONSOLE_SCREENSHOTS=docs`), else to the test's temporary folder.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.domain.clock import FakeClock
from bot.domain.workflow import EventKind
from bot.services import actions
from tests.browser_harness import shots_folder, signed_in_page
from tests.console_harness import Console, file_case
from tests.telegram_harness import Harness

try:
    from playwright.async_api import Browser, expect
except ImportError:  # pragma: no cover - the dev extras bring it
    pytest.fail("the browser tests need Playwright: pip install -e '.[dev]'", pytrace=False)

STREET = "33010600100000"
COMMUNITY_1, COMMUNITY_2 = "33010600100100", "33010600100200"
DEPARTMENT_CHAT = 7_000_001  # the sanitation office's member on Telegram


@pytest.fixture
async def street(tg: Harness) -> AsyncIterator[Harness]:
    """gridbot with Telegram on; its scheduler stopped so that only the test moves cases."""
    if tg.bot.scheduler is not None:
        await tg.bot.scheduler.stop()
    yield tg


async def test_a_dispatcher_filters_overdue_sanitation_and_dispatches_to_sanitation(
        browser: Browser, street: Harness, clock: FakeClock, tmp_path: Path) -> None:
    bot, base = street.bot, str(street.http.base_url).rstrip("/")
    console = Console(bot)
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    await console.staff("环卫老钱", "department", "sanitation", str(DEPARTMENT_CHAT),
                        channel="telegram")
    chief = await console.staff("一网格长", "grid_chief", "33010600100101")
    director = await console.staff("社区书记", "community_director", COMMUNITY_1)
    target = await file_case(bot, "33010600100101", "翠苑一区7幢门口垃圾堆了三天",
                             address="翠苑一区7幢")
    other = await file_case(bot, "33010600100102", "垃圾桶满了没人清")
    elsewhere = await file_case(bot, "33010600100201", "二区的垃圾")  # other community
    road = await file_case(bot, "33010600100101", "路面有坑", category="roads")
    for person in (chief, director):  # the target reaches the street command center
        async with bot.db.transaction() as conn:
            await actions.act(conn, bot.reference, person, target, EventKind.ESCALATE,
                              actions.Given(note="需要环卫所清运"), clock.now())
    clock.advance(timedelta(days=5))  # all of them overdue now
    fresh = await file_case(bot, "33010600100103", "刚刚发现的垃圾")  # not overdue
    await street.deliver()
    before = len(street.fake.calls)

    page = await signed_in_page(browser, console, dispatcher, base)
    await expect(page.locator("tr.case")).to_have_count(5)
    await page.select_option("select[name=category]", "sanitation")
    await page.select_option("select[name=community]", COMMUNITY_1)
    await page.check("input[name=overdue]")
    await page.click("#apply-filters")
    rows = page.locator("tr.case")
    await expect(rows).to_have_count(2)
    shown = {await rows.nth(i).get_attribute("data-number") for i in range(2)}
    assert shown == {target, other}
    assert elsewhere not in shown and road not in shown and fresh not in shown
    await expect(rows.first.locator(".clock.red")).to_be_visible()
    folder = shots_folder(tmp_path)
    await page.screenshot(path=str(folder / "console-list-1280.png"), full_page=True)

    await page.click(f"a[href='/console/cases/{target}']")
    await expect(page.locator("#case-state")).to_have_text("已立案")
    dispatch = page.locator("details.action[data-kind=dispatch]")
    await dispatch.locator("summary").click()
    await dispatch.locator("select[name=target]").select_option("dept:sanitation")
    await dispatch.locator("textarea[name=note]").fill("请今天清运")
    await page.screenshot(path=str(folder / "console-case-1280.png"), full_page=True)
    await dispatch.locator("button[type=submit]").click()
    await expect(page.locator("#outcome")).to_contain_text("已派遣")
    await expect(page.locator("#case-state")).to_have_text("已派遣")
    await expect(page.locator("#case-level")).to_contain_text("环卫所")
    await expect(page.locator("#timeline li").last).to_contain_text("调度员小赵")

    sent = await street.deliver()
    to_department = [c for c in street.fake.calls[before:]
                     if c.method in ("sendMessage", "sendPhoto")
                     and c.params.get("chat_id") == DEPARTMENT_CHAT]
    assert to_department, [c.params for c in sent]
    text = " ".join(str(c.params.get("text") or c.params.get("caption") or "")
                    for c in to_department)
    assert target in text
    assert any("签收" in label for c in to_department for label, _ in c.buttons)
    assert not page.errors  # type: ignore[attr-defined]  # no CSP violation, no JS error

    phone = await signed_in_page(browser, console, dispatcher, base, 390, 844)
    await phone.screenshot(path=str(folder / "console-list-390.png"), full_page=True)
    await phone.goto(f"{base}/console/cases/{target}")
    await phone.screenshot(path=str(folder / "console-case-390.png"), full_page=True)


async def test_the_list_and_the_case_page_follow_changes_without_a_reload(
        browser: Browser, street: Harness, clock: FakeClock) -> None:
    bot, base = street.bot, str(street.http.base_url).rstrip("/")
    console = Console(bot)
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    chief = await console.staff("一网格长", "grid_chief", "33010600100101")
    first = await file_case(bot, "33010600100101", "第一件")
    page = await signed_in_page(browser, console, dispatcher, base)
    await expect(page.locator("tr.case")).to_have_count(1)
    second = await file_case(bot, "33010600100102", "后来的一件")
    await expect(page.locator(f"tr.case[data-number='{second}']")).to_have_count(1)

    await page.goto(f"{base}/console/cases/{first}")
    await expect(page.locator("#case-state")).to_have_text("已立案")
    async with bot.db.transaction() as conn:  # the chief signs for it in the bot meanwhile
        await actions.act(conn, bot.reference, chief, first, EventKind.SIGN, actions.Given(),
                          clock.now())
    await expect(page.locator("#case-state")).to_have_text("处理中")
    await expect(page.locator("#timeline li").last).to_contain_text("一网格长")
    assert not page.errors  # type: ignore[attr-defined]
