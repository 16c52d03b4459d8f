"""The console's notices, meetings and district in a real browser (issue 14, item 6):
headless Chromium from Debian's `chromium` package, driven by Playwright, against gridbot
served by uvicorn with Telegram on (the fake Bot API on localhost).

A dispatcher composes a notice to one grid, previews and sends it; the residents get it
on Telegram with a 收到 button, and as they press it the acknowledgement bars on the
notice's page fill without a reload. A dispatcher picks two grids on the composer's map
(ticked in the tree, and a community ticked in the tree fills its grids on the map) and
only their residents get it; without JavaScript the tree alone does. A director calls a
meeting of two grids' chiefs, one ticked in the tree and one clicked on the map, and
only those two are invited; their answers arrive live. A GeoJSON with a
self-intersecting polygon is refused with the feature's number. Screenshots go to
`$CONSOLE_SCREENSHOTS` (docs/console.md's are made with `CONSOLE_SCREENSHOTS=docs`), else
to the test's temporary folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.domain.clock import FakeClock
from store import people as people_store
from tests.browser_harness import shots_folder, signed_in_page
from tests.console_harness import Console
from tests.fake_telegram import Updates
from tests.telegram_harness import Harness

try:
    from playwright.async_api import Browser, expect
except ImportError:  # pragma: no cover - the dev extras bring it
    pytest.fail("the browser tests need Playwright: pip install -e '.[dev]'", pytrace=False)

STREET = "33010600100000"
COMMUNITY_1 = "33010600100100"
GRID_1, GRID_2 = "33010600100101", "33010600100102"
RESIDENTS = (720_101, 720_102)  # Telegram chats of two residents of grid 1
ELSEWHERE = 720_201  # a resident of grid 2
GRID_3, OTHER_COMMUNITY_GRID = "33010600100103", "33010600100201"
COMMUNITY_1_GRIDS = (GRID_1, GRID_2, GRID_3, "33010600100104")
# picked on the map: two grids in two communities (chat id → grid)
PICKED = {720_101: GRID_1, 720_102: GRID_1, 720_301: OTHER_COMMUNITY_GRID}
NOT_PICKED = {720_201: GRID_2, 720_202: GRID_3}


@pytest.fixture
async def street(tg: Harness) -> AsyncIterator[Harness]:
    """gridbot with Telegram on; its scheduler stopped so that only the test sends."""
    if tg.bot.scheduler is not None:
        await tg.bot.scheduler.stop()
    yield tg


async def telegram_residents(street: Harness, homes: dict[int, str] | None = None) -> None:
    """Residents on Telegram: chat id → grid (by default two in grid 1, one in grid 2)."""
    now = street.clock.now()
    homes = homes or {RESIDENTS[0]: GRID_1, RESIDENTS[1]: GRID_1, ELSEWHERE: GRID_2}
    async with street.bot.db.transaction() as conn:
        for chat, grid in homes.items():
            person = await people_store.add_person(conn, f"居民{chat}", now, grid_code=grid)
            await people_store.add_contact(conn, person, "telegram", str(chat), now)


async def test_a_dispatcher_sends_a_notice_to_one_grid_and_watches_the_acks_arrive(
        browser: Browser, street: Harness, updates: Updates, tmp_path: Path) -> None:
    bot, base = street.bot, str(street.http.base_url).rstrip("/")
    console = Console(bot)
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    await telegram_residents(street)
    page = await signed_in_page(browser, console, dispatcher, base)
    folder = shots_folder(tmp_path)

    await page.goto(f"{base}/console/notices")
    await page.click("#compose")
    await page.check(f"#scope-tree input[value='{GRID_1}']")
    await page.check("input[name=audience][value=residents]")
    await page.fill("textarea[name=body]", "周六上午 8:00-12:00 停水检修，请提前储水。")
    await page.fill("textarea[name=body_en]", "No water on Saturday 8:00-12:00: please store some.")
    await page.screenshot(path=str(folder / "console-notice-compose-1280.png"), full_page=True)
    await page.click("#to-preview")
    await expect(page.locator("#preview-total")).to_contain_text("2 人")
    await expect(page.locator("#preview-total li[data-channel=telegram]")).to_contain_text("2")
    await expect(page.locator("#preview-sms .segments[data-locale=zh_CN]")).to_contain_text(
        "1 条短信")
    await page.screenshot(path=str(folder / "console-notice-preview-1280.png"), full_page=True)
    await page.click("#confirm-send")
    await expect(page.locator("#outcome")).to_contain_text("通知已进入发送队列")
    await expect(page.locator("#acks-total")).to_contain_text("已确认收到 0 / 2")

    sent = await street.deliver()
    got = {int(c.params["chat_id"]): c for c in sent}
    assert set(got) == set(RESIDENTS)  # not the resident of grid 2
    assert all("停水检修" in str(c.params.get("text")) for c in got.values())
    await expect(page.locator("#notice-live .d-sent b")).to_have_text("2")

    bars = page.locator(f"#notice-live .bar-row[data-grid='{GRID_1}']")
    await street.send(updates.callback(RESIDENTS[0], got[RESIDENTS[0]].button("收到")))
    await expect(bars.locator(".bar-figure")).to_contain_text("1 / 2 · 50%")
    await expect(page.locator("#acks-total")).to_contain_text("已确认收到 1 / 2")
    await page.screenshot(path=str(folder / "console-notice-acks-1280.png"), full_page=True)
    await street.send(updates.callback(RESIDENTS[1], got[RESIDENTS[1]].button("收到")))
    await expect(bars.locator(".bar-figure")).to_contain_text("2 / 2 · 100%")
    await expect(page.locator("#remind")).to_have_count(0)  # nobody left to remind

    await page.goto(f"{base}/console/notices")
    await expect(page.locator("article.notice")).to_have_count(1)
    await page.screenshot(path=str(folder / "console-notices-1280.png"), full_page=True)
    assert not page.errors  # type: ignore[attr-defined]  # no CSP violation, no JS error

    phone = await signed_in_page(browser, console, dispatcher, base, 390, 844)
    await phone.goto(f"{base}/console/notices")
    await phone.screenshot(path=str(folder / "console-notices-390.png"), full_page=True)


async def test_a_meeting_is_called_and_its_answers_arrive_live(
        browser: Browser, street: Harness, updates: Updates, clock: FakeClock,
        tmp_path: Path) -> None:
    bot, base = street.bot, str(street.http.base_url).rstrip("/")
    console = Console(bot)
    director = await console.staff("社区书记", "community_director", COMMUNITY_1)
    for n, grid in enumerate((GRID_1, GRID_2, GRID_3)):
        await console.staff(f"网格长{n + 1}", "grid_chief", grid, str(730_001 + n),
                            channel="telegram")
    page = await signed_in_page(browser, console, director, base)
    starts = (clock.now() + timedelta(days=2)).astimezone(bot.settings.timezone)
    await page.goto(f"{base}/console/meetings")
    await page.fill("input[name=title]", "本周网格工作例会")
    await page.fill("input[name=place]", "社区二楼会议室")
    await page.fill("input[name=starts_at]", starts.strftime("%Y-%m-%dT%H:%M"))
    # two of the community's four grids: one ticked in the tree, one clicked on the map
    audience_map = page.locator("#audience-map")
    await expect(audience_map).to_have_attribute("data-grids", str(len(COMMUNITY_1_GRIDS)))
    await page.check(f"#scope-tree input[value='{GRID_1}']")
    await page.locator(f"#audience-map path.grid-{GRID_2}").click()
    await expect(audience_map).to_have_attribute("data-chosen", f"{GRID_1},{GRID_2}")
    await expect(page.locator(f"#scope-tree input[value='{GRID_2}']")).to_be_checked()
    await expect(page.locator("#audience-chosen")).to_contain_text("翠苑一区第2网格")
    await page.check("input[name=audience][value=chiefs]")
    await page.screenshot(path=str(shots_folder(tmp_path) / "console-meeting-call-1280.png"),
                          full_page=True)
    await page.click("#call-meeting")
    await expect(page.locator("#outcome")).to_contain_text("会议通知已进入发送队列")
    await expect(page.locator("#meeting-live")).to_contain_text(
        "翠苑一区第1网格、翠苑一区第2网格")
    sent = await street.deliver()
    assert {int(c.params["chat_id"]) for c in sent} == {730_001, 730_002}  # not grid 3's
    invitation = next(c for c in sent if int(c.params["chat_id"]) == 730_001)
    await street.send(updates.callback(730_001, invitation.button("参加")))
    await expect(page.locator("#answers-yes")).to_have_attribute("data-count", "1")
    await expect(page.locator("#answers-yes")).to_contain_text("网格长1")
    await expect(page.locator("#reminders li[data-which=day]")).to_contain_text("已排定")
    await page.screenshot(path=str(shots_folder(tmp_path) / "console-meeting-1280.png"),
                          full_page=True)
    assert not page.errors  # type: ignore[attr-defined]


async def test_a_self_intersecting_polygon_is_refused_with_its_feature_number_in_the_browser(
        browser: Browser, street: Harness, tmp_path: Path) -> None:
    bot, base = street.bot, str(street.http.base_url).rstrip("/")
    console = Console(bot)
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    good = [[120.115, 30.2789], [120.1195, 30.27865], [120.1195, 30.28135],
            [120.115, 30.2814], [120.115, 30.2789]]
    bow_tie = [[120.1195, 30.2787], [120.121, 30.2815], [120.121, 30.2787],
               [120.1195, 30.2815], [120.1195, 30.2787]]

    def collection(second: list[list[float]]) -> bytes:
        return json.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
             "properties": {"code": code, "name": name, "level": "grid",
                            "parent": COMMUNITY_1}}
            for code, name, ring in ((GRID_1, "翠苑一区第1网格", good),
                                     (GRID_2, "翠苑一区第2网格", second))]},
            ensure_ascii=False).encode()

    page = await signed_in_page(browser, console, dispatcher, base)
    folder = shots_folder(tmp_path)
    await page.goto(f"{base}/console/district")
    await page.set_input_files("input[name=file]", files=[{
        "name": "grids.geojson", "mimeType": "application/geo+json",
        "buffer": collection(bow_tie)}])
    await page.click("#district-check")
    error = page.locator("#district-error")
    await expect(error).to_contain_text("feature 2")
    await expect(error).to_contain_text("Self-intersection")
    await expect(page.locator("#district-apply")).to_have_count(0)
    await page.screenshot(path=str(folder / "console-district-refused-1280.png"),
                          full_page=True)
    # The refusal is a 400 page, which Chromium logs as a failed load: nothing else may be.
    assert page.errors == [  # type: ignore[attr-defined]
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"]
    page.errors.clear()  # type: ignore[attr-defined]

    fixed = [[120.1195, 30.27865], [120.121, 30.279], [120.1214, 30.28025],
             [120.1212, 30.2815], [120.1195, 30.28135], [120.1195, 30.27865]]
    await page.set_input_files("input[name=file]", files=[{
        "name": "grids.geojson", "mimeType": "application/geo+json",
        "buffer": collection(fixed)}])
    await page.click("#district-check")
    await expect(page.locator("#district-map path[data-change=changed]")).to_have_count(2)
    await page.screenshot(path=str(folder / "console-district-preview-1280.png"),
                          full_page=True)
    await page.click("#district-apply")
    await expect(page.locator("#outcome")).to_contain_text("已应用 2 个区域")
    assert bot.reference.district.locate_point(30.2800, 120.1190).grid_code == GRID_1
    assert not page.errors  # type: ignore[attr-defined]



async def test_a_dispatcher_picks_two_grids_on_the_map_and_only_their_residents_get_it(
        browser: Browser, street: Harness, tmp_path: Path) -> None:
    bot, base = street.bot, str(street.http.base_url).rstrip("/")
    console = Console(bot)
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    await telegram_residents(street, {**PICKED, **NOT_PICKED})
    page = await signed_in_page(browser, console, dispatcher, base)
    folder = shots_folder(tmp_path)
    await page.goto(f"{base}/console/notices/new")
    audience_map = page.locator("#audience-map")
    await expect(audience_map).to_have_attribute("data-grids", "8")  # the street's grids
    tree = page.locator("#scope-tree")

    def box(value: str) -> Any:
        return tree.locator(f"input[value='{value}']")

    # the tree drives the map: a community ticked chooses its four grids
    await box(COMMUNITY_1).check()
    await expect(page.locator("#audience-map path.chosen")).to_have_count(4)
    for grid in COMMUNITY_1_GRIDS:
        await expect(page.locator(f"#audience-map path.grid-{grid}")).to_have_class(
            re.compile(r"\bchosen\b"))
        await expect(box(grid)).to_be_disabled()  # covered by the community's tick
    # the map drives the tree: grid 2 clicked away leaves the community's other three
    await page.locator(f"#audience-map path.grid-{GRID_2}").click()
    await expect(box(COMMUNITY_1)).not_to_be_checked()
    await expect(box(GRID_2)).not_to_be_checked()
    for grid in (GRID_1, GRID_3, "33010600100104"):
        await expect(box(grid)).to_be_checked()
    await box(GRID_3).uncheck()
    await box("33010600100104").uncheck()
    # two grids picked on the map, in two communities: both ticked in the tree
    await page.locator(f"#audience-map path.grid-{OTHER_COMMUNITY_GRID}").click()
    await expect(audience_map).to_have_attribute("data-chosen",
                                                 f"{GRID_1},{OTHER_COMMUNITY_GRID}")
    await expect(box(GRID_1)).to_be_checked()
    await expect(box(OTHER_COMMUNITY_GRID)).to_be_checked()
    await expect(tree.locator("input:checked:not(:disabled)")).to_have_count(2)
    await expect(page.locator("#audience-chosen")).to_contain_text("翠苑一区第1网格")

    await page.check("input[name=audience][value=residents]")
    await page.fill("textarea[name=body]", "本周六上午两个网格集中清理楼道杂物。")
    await page.screenshot(path=str(folder / "console-notice-map-1280.png"), full_page=True)
    await page.click("#to-preview")
    await expect(page.locator("#preview-total")).to_contain_text(f"{len(PICKED)} 人")
    await expect(page.locator("#preview-total li[data-channel=telegram]")).to_contain_text(
        str(len(PICKED)))
    await page.click("#confirm-send")
    await expect(page.locator("#outcome")).to_contain_text("通知已进入发送队列")
    sent = await street.deliver()
    assert {int(c.params["chat_id"]) for c in sent} == set(PICKED)  # exactly those grids'
    assert all("清理楼道杂物" in str(c.params.get("text")) for c in sent)
    bars = page.locator("#notice-live .bar-row")
    await expect(bars).to_have_count(2)
    assert not page.errors  # type: ignore[attr-defined]  # no CSP violation, no JS error

    phone = await signed_in_page(browser, console, dispatcher, base, 390, 844)
    await phone.goto(f"{base}/console/notices/new")
    await expect(phone.locator("#audience-map")).to_have_attribute("data-grids", "8")
    await phone.locator(f"#audience-map path.grid-{GRID_1}").click()
    await expect(phone.locator(f"#scope-tree input[value='{GRID_1}']")).to_be_checked()
    await phone.screenshot(path=str(folder / "console-notice-map-390.png"), full_page=True)
    assert not phone.errors  # type: ignore[attr-defined]


async def test_without_javascript_a_community_ticks_its_grids_in_the_tree_and_sends(
        browser: Browser, street: Harness) -> None:
    bot, base = street.bot, str(street.http.base_url).rstrip("/")
    console = Console(bot)
    staff = await console.staff("社区干事", "community_staff", COMMUNITY_1)
    await telegram_residents(street, {720_101: GRID_1, 720_301: GRID_3, 720_201: GRID_2,
                                      720_401: OTHER_COMMUNITY_GRID})
    page = await signed_in_page(browser, console, staff, base, script=False)
    await page.goto(f"{base}/console/notices/new")
    await expect(page.locator("#audience-map-box")).to_be_hidden()  # no map without script
    tree = page.locator("#scope-tree")
    await expect(tree.locator(f"input[value='{OTHER_COMMUNITY_GRID}']")).to_have_count(0)
    await tree.locator(f"input[value='{GRID_1}']").check()
    await tree.locator(f"input[value='{GRID_3}']").check()
    await page.fill("textarea[name=body]", "明天上午检查消防通道。")
    await page.click("#to-preview")
    await expect(page.locator("#preview-total")).to_contain_text("2 人")
    await page.click("#confirm-send")
    await expect(page.locator("#outcome")).to_contain_text("通知已进入发送队列")
    sent = await street.deliver()
    assert {int(c.params["chat_id"]) for c in sent} == {720_101, 720_301}
