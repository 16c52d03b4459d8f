"""The simulator page in a real browser (issue 12 items 11-15): headless Chromium from
Debian's `chromium` package, driven by Playwright, against the app served by uvicorn on a
localhost port.

Screenshots at 1280×900 and 390×844 go to `$SIM_SCREENSHOTS` (README's are made with
`SIM_SCREENSHOTS=docs`), else to the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.domain.clock import FakeClock
from bot.settings import Settings
from tests.sim_harness import LiveSim, serving
from tests.test_app import PNG
from tests.test_sim_api import README_EXAMPLE

CHROMIUM = shutil.which("chromium")  # Debian's package: /usr/bin/chromium
INSTALL = "apt-get install -y chromium chromium-driver fonts-noto-cjk"
try:
    from playwright.async_api import Browser, Locator, Page, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extras bring it
    pytest.fail("the browser tests need Playwright: pip install -e '.[dev]'", pytrace=False)


@pytest.fixture
async def live(settings: Settings, clock: FakeClock) -> AsyncIterator[LiveSim]:
    """The local demo, served."""
    async with serving(settings, clock) as sim:
        yield sim


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium; a missing Chromium fails the test with what to install."""
    if CHROMIUM is None:
        pytest.fail(f"Chromium is missing for the browser tests: {INSTALL}", pytrace=False)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                    args=["--no-sandbox"])  # CI runs as root
        try:
            yield chromium
        finally:
            await chromium.close()


async def open_page(browser: Browser, live: LiveSim, clock: FakeClock,
                    width: int = 1280, height: int = 900) -> Page:
    """The simulator at a window size, its clock at the server's, once both panes greeted."""
    context = await browser.new_context(viewport={"width": width, "height": height},
                                        timezone_id="Asia/Shanghai", locale="zh-CN")
    page = await context.new_page()
    await page.clock.set_fixed_time(clock.now())
    page.set_default_timeout(15_000)
    await page.goto(live.url + "/sim")
    await expect(page.locator(".pane")).to_have_count(2)
    return page


def pane(page: Page, index: int) -> Locator:
    return page.locator(".pane").nth(index)


async def say(p: Locator, text: str) -> None:
    await p.locator(".text").fill(text)
    await p.locator(".text").press("Enter")


async def press(p: Locator, label: str) -> None:
    """Press the first enabled button whose label has `label`, once it is there."""
    button = p.locator(".buttons button:enabled", has_text=label).last
    await button.click()


async def report_readme_example(resident: Locator) -> str:
    await say(resident, README_EXAMPLE)
    await press(resident, "垃圾")
    await press(resident, "没有照片")
    await press(resident, "确认提交")
    created = resident.locator(".msg.out", has_text="事件编号")
    await expect(created).to_have_count(1)
    number = re.search(r"\d{6}-\d{3}", await created.inner_text())
    assert number is not None
    return number.group()


async def heights(buttons: Locator) -> list[float]:
    boxes = [await buttons.nth(i).bounding_box() for i in range(await buttons.count())]
    return [box["height"] for box in boxes if box is not None]


def shots_folder(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SIM_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- item 11: a greeting in each pane that says who it plays ---------------------------

async def test_each_pane_greets_and_says_who_it_plays(browser: Browser, live: LiveSim,
                                                      clock: FakeClock) -> None:
    page = await open_page(browser, live, clock)
    resident, chief = pane(page, 0), pane(page, 1)
    await expect(resident.locator(".role")).to_have_text("居民 / resident")
    await expect(resident.locator(".msg.system")).to_contain_text("扮演 居民 / resident")
    await expect(chief.locator(".role")).to_have_text("网格长 chief-0102 (翠苑一区第2网格)")
    await expect(chief.locator(".msg.system")).to_contain_text(
        "网格长 chief-0102 (翠苑一区第2网格，网格 33010600100102)")
    await expect(chief.locator(".who")).to_have_value("chief-0102")


# --- items 12 and 15: the README's report reaches the chief on the page ----------------

async def test_the_readme_report_from_the_resident_pane_reaches_the_chief_pane(
        browser: Browser, live: LiveSim, clock: FakeClock) -> None:
    page = await open_page(browser, live, clock)
    resident, chief = pane(page, 0), pane(page, 1)
    number = await report_readme_example(resident)
    assigned = chief.locator(".msg.out", has_text=number)
    await expect(assigned).to_have_count(1)
    await expect(assigned.locator(".buttons button", has_text="签收")).to_be_enabled()
    # Old menus are greyed out: only the newest message's buttons can be pressed.
    pressed = resident.locator(".buttons button:disabled")
    assert await pressed.count() >= 4
    await expect(resident.locator(".buttons button.chosen")).to_have_count(3)
    assert all(h >= 40 for h in await heights(page.locator("button:visible")))
    await expect(resident.locator(".msg.out time").first).to_have_text("10:00")
    await expect(resident.locator(".msg.in time").first).to_have_text("10:00")


async def test_the_chief_of_another_grid_is_one_choice_away(
        browser: Browser, live: LiveSim, clock: FakeClock) -> None:
    page = await open_page(browser, live, clock)
    await page.select_option("#add-staff", "web:chief-0204")
    third = pane(page, 2)
    await expect(third.locator(".role")).to_have_text("网格长 chief-0204 (翠苑二区第4网格)")
    await third.locator(".channel").select_option("sim-sms")  # still the chief on SMS
    await expect(third.locator(".role")).to_have_text("网格长 chief-0204 (翠苑二区第4网格)")
    await say(third, "/tasks")
    await expect(third.locator(".msg.out")).to_contain_text(["目前没有待办事件"])


# --- item 14: photos, the file chooser, empty sends -------------------------------------

async def test_a_photo_shows_as_a_thumbnail_and_the_file_chooser_is_cleared(
        browser: Browser, live: LiveSim, clock: FakeClock, tmp_path: Path) -> None:
    page = await open_page(browser, live, clock)
    resident, chief = pane(page, 0), pane(page, 1)
    photo = tmp_path / "垃圾.png"
    photo.write_bytes(PNG)
    await say(resident, README_EXAMPLE)
    await press(resident, "垃圾")
    await resident.locator(".file").set_input_files(photo)
    await expect(resident.locator(".msg.in img")).to_have_count(1)
    assert await resident.locator(".file").evaluate("input => input.files.length") == 0
    await expect(resident.locator(".msg.out", has_text="第1张")).to_have_count(1)
    await press(resident, "完成")
    await press(resident, "确认提交")
    await expect(resident.locator(".msg.out", has_text="事件编号")).to_have_count(1)
    number = re.search(r"\d{6}-\d{3}", await resident.locator(
        ".msg.out", has_text="事件编号").inner_text())
    assert number is not None
    await say(chief, f"/case {number.group()}")
    thumbnail = chief.locator(".msg.out img").last
    await expect(thumbnail).to_have_attribute("src", re.compile(r"^/media/\d+\?e=\d+&sig="))
    await page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                                 arg=await thumbnail.element_handle())


async def test_an_empty_send_adds_no_bubble(browser: Browser, live: LiveSim,
                                            clock: FakeClock) -> None:
    page = await open_page(browser, live, clock)
    resident = pane(page, 0)
    await say(resident, "   ")
    await resident.locator(".send").click()
    await say(resident, "/help")  # a real message after them, to know they were handled
    await expect(resident.locator(".msg.out")).to_have_count(1)
    assert await resident.locator(".msg.in").all_inner_texts() == ["/help\n10:00"]


# --- item 15: the layout ----------------------------------------------------------------

async def test_the_pin_is_behind_a_button_and_sends_the_default_location(
        browser: Browser, live: LiveSim, clock: FakeClock) -> None:
    page = await open_page(browser, live, clock)
    resident = pane(page, 0)
    await expect(resident.locator(".lat")).to_be_hidden()
    await resident.locator(".pin").click()
    await expect(resident.locator(".lat")).to_have_value("30.2812")
    await resident.locator(".sendloc").click()
    await expect(resident.locator(".msg.out", has_text="翠苑一区第2网格")).to_have_count(1)
    await expect(resident.locator(".lat")).to_be_hidden()


async def test_three_panes_fit_side_by_side_at_1280(
        browser: Browser, live: LiveSim, clock: FakeClock, tmp_path: Path) -> None:
    page = await open_page(browser, live, clock)
    resident = pane(page, 0)
    await report_readme_example(resident)
    await expect(pane(page, 1).locator(".buttons button", has_text="签收")).to_have_count(1)
    await page.click("#add-resident")
    await expect(page.locator(".pane")).to_have_count(3)
    await say(pane(page, 2), "/help")
    await expect(pane(page, 2).locator(".msg.out")).to_have_count(1)
    boxes: list[Any] = [await pane(page, i).bounding_box() for i in range(3)]
    assert len({round(b["y"]) for b in boxes}) == 1, boxes  # one row
    assert max(b["x"] + b["width"] for b in boxes) <= 1280
    assert all(h >= 40 for h in await heights(page.locator("button:visible")))
    await page.screenshot(path=str(shots_folder(tmp_path) / "sim-1280.png"))


async def test_on_a_phone_one_pane_fills_the_width_and_nothing_sticks_out(
        browser: Browser, live: LiveSim, clock: FakeClock, tmp_path: Path) -> None:
    phone = await open_page(browser, live, clock, width=390, height=844)
    resident = pane(phone, 0)
    await say(resident, README_EXAMPLE)
    await press(resident, "垃圾")
    await expect(resident.locator(".buttons button:enabled", has_text="没有照片")).to_have_count(1)
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing sticks out sideways
    box = await pane(phone, 0).bounding_box()
    assert box is not None and box["width"] >= 370
    assert all(h >= 40 for h in await heights(phone.locator("button:visible")))
    await expect(resident.locator(".close")).to_be_in_viewport()
    await phone.screenshot(path=str(shots_folder(tmp_path) / "sim-390.png"))

