"""The console's map in a real browser (issue 13 items 6, 7 and 9): headless Chromium from
Debian's `chromium` package, driven by Playwright, against gridbot served by uvicorn.

The map draws one SVG path per grid, markers for the cases and a cluster where they are
dense; a click on a marker opens its case; a case filed meanwhile appears without a
reload; the case page's small map draws the case's grid and pin. No CSP violation, no
script error.

Screenshots at 1280×900 and 390×844 go to `$CONSOLE_SCREENSHOTS` (docs/console.md's are
made with `CONSOLE_SCREENSHOTS=docs`), else to the test's temporary folder.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.domain.clock import FakeClock
from bot.services import casemap
from bot.settings import Settings
from tests.browser_harness import shots_folder, signed_in_page
from tests.console_harness import GRID_POINTS, Console, file_case, serving_console
from tests.sim_harness import LiveSim

try:
    from playwright.async_api import Browser, expect
except ImportError:  # pragma: no cover - the dev extras bring it
    pytest.fail("the browser tests need Playwright: pip install -e '.[dev]'", pytrace=False)

STREET = "33010600100000"
DENSE_GRID = "33010600100101"
LONE_GRID = "33010600100202"
SECOND_GRID = "33010600100102"


@pytest.fixture
async def live(settings: Settings, clock: FakeClock) -> AsyncIterator[LiveSim]:
    """gridbot on a localhost port, its scheduler stopped so that only the test moves
    cases."""
    async with serving_console(settings, clock) as served:
        if served.bot.scheduler is not None:
            await served.bot.scheduler.stop()
        yield served


async def test_the_map_shows_grids_markers_and_clusters_and_a_click_opens_the_case(
        browser: Browser, live: LiveSim, clock: FakeClock, tmp_path: Path) -> None:
    bot, base = live.bot, live.url
    console = Console(bot)
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    dense = [await file_case(bot, DENSE_GRID, f"翠苑一区{n}幢门口垃圾") for n in range(6)]
    clock.advance(timedelta(days=5))  # those six are overdue now
    singles = {grid: await file_case(bot, grid, "路面有坑", category="roads")
               for grid in GRID_POINTS if grid != DENSE_GRID}

    page = await signed_in_page(browser, console, dispatcher, base)
    await page.goto(f"{base}/console/map")
    canvas = page.locator("#case-map")
    await expect(canvas).to_have_attribute("data-points", str(len(dense) + len(singles)))
    # one SVG path per grid of the street, each with its name and counts
    await expect(page.locator("path.grid-area")).to_have_count(len(GRID_POINTS))
    for grid in GRID_POINTS:
        await expect(page.locator(f"path.grid-{grid}")).to_have_count(1)
    labels = page.locator(".grid-label")
    await expect(labels).to_have_count(len(GRID_POINTS))
    await expect(page.locator(".grid-label.has-overdue")).to_have_count(1)
    await expect(page.locator(".grid-label.has-overdue")).to_contain_text("超期 6 件")
    # the six cases at one place make a cluster (marked overdue); the others are markers
    cluster = page.locator(".case-cluster")
    await expect(cluster).to_have_count(1)
    await expect(cluster).to_have_text("6")
    await expect(page.locator(".case-cluster.has-overdue")).to_have_count(1)
    await expect(page.locator(".case-marker")).to_have_count(len(singles))
    await expect(page.locator(".case-marker.overdue")).to_have_count(0)
    folder = shots_folder(tmp_path)
    await page.screenshot(path=str(folder / "console-map-1280.png"), full_page=True)

    # live: a case filed meanwhile appears without a reload (at the same place as the
    # lone grid's case: the two make a second cluster)
    await file_case(bot, LONE_GRID, "新发现的井盖缺失", category="roads")
    await expect(canvas).to_have_attribute("data-points", str(len(dense) + len(singles) + 1))
    await expect(cluster).to_have_count(2)
    await expect(page.locator(".case-marker")).to_have_count(len(singles) - 1)

    # the cluster opens on a click; a marker opens its case
    await page.locator(".case-cluster.has-overdue").click()
    await expect(page.locator(".case-marker.overdue")).to_have_count(len(dense))
    target = singles[SECOND_GRID]
    await page.locator(f".case-marker[data-case='{target}']").click()
    await page.wait_for_url(f"**/console/cases/{target}")
    await expect(page.locator("#case-state")).to_be_visible()
    # the case page's small map: its grid and its pin, by the same map module
    small = page.locator(".place-map[data-drawn=leaflet]")
    await expect(small).to_have_count(1)
    await expect(small.locator(f"path.grid-area.grid-{SECOND_GRID}")).to_have_count(1)
    await expect(small.locator("path.case-pin")).to_have_count(1)
    assert not page.errors  # type: ignore[attr-defined]  # no CSP violation, no JS error

    phone = await signed_in_page(browser, console, dispatcher, base, 390, 844)
    await phone.goto(f"{base}/console/map")
    await expect(phone.locator("path.grid-area")).to_have_count(len(GRID_POINTS))
    await phone.screenshot(path=str(folder / "console-map-390.png"), full_page=True)
    assert not phone.errors  # type: ignore[attr-defined]


async def test_a_grid_chiefs_map_holds_their_grid_only(
        browser: Browser, live: LiveSim) -> None:
    bot, base = live.bot, live.url
    console = Console(bot)
    chief = await console.staff("一网格长", "grid_chief", DENSE_GRID)
    mine = await file_case(bot, DENSE_GRID, "我网格的垃圾")
    other = await file_case(bot, LONE_GRID, "别的网格")
    page = await signed_in_page(browser, console, chief, base)
    await page.goto(f"{base}/console/map")
    await expect(page.locator("#case-map")).to_have_attribute("data-points", "1")
    await expect(page.locator("path.grid-area")).to_have_count(1)
    await expect(page.locator(f"path.grid-{DENSE_GRID}")).to_have_count(1)
    await expect(page.locator(f".case-marker[data-case='{mine}']")).to_have_count(1)
    await expect(page.locator(f".case-marker[data-case='{other}']")).to_have_count(0)
    assert not page.errors  # type: ignore[attr-defined]


async def test_past_the_points_limit_the_map_draws_one_marker_per_grid_until_zoomed_in(
        browser: Browser, live: LiveSim, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(casemap, "POINTS_AT_ONCE", 5)
    bot, base = live.bot, live.url
    console = Console(bot)
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    dense = [await file_case(bot, DENSE_GRID, f"翠苑一区{n}幢门口垃圾") for n in range(3)]
    clock.advance(timedelta(days=5))  # those three are overdue now
    far = [await file_case(bot, LONE_GRID, f"井盖{n}", category="roads") for n in range(4)]
    await file_case(bot, SECOND_GRID, "路面有坑", category="roads")

    page = await signed_in_page(browser, console, dispatcher, base)
    await page.goto(f"{base}/console/map")
    canvas = page.locator("#case-map")
    # eight cases, more than five: one marker per grid that has any, with its count
    await expect(canvas).to_have_attribute("data-mode", "grids")
    await expect(canvas).to_have_attribute("data-points", "0")
    per_grid = page.locator(".grid-cluster")
    await expect(per_grid).to_have_count(3)
    await expect(page.locator(f".grid-cluster[data-grid='{DENSE_GRID}']")).to_have_text("3")
    await expect(page.locator(f".grid-cluster[data-grid='{LONE_GRID}']")).to_have_text(
        str(len(far)))
    await expect(page.locator(".grid-cluster.has-overdue")).to_have_count(1)
    await expect(page.locator("path.grid-area")).to_have_count(len(GRID_POINTS))
    await expect(page.locator("#map-status")).to_contain_text("共 8 件")
    await page.screenshot(path=str(shots_folder(tmp_path) / "console-map-grids-1280.png"),
                          full_page=True)

    # a click on a grid's marker zooms to it; its view's cases come one by one
    await page.locator(f".grid-cluster[data-grid='{DENSE_GRID}']").click()
    await expect(canvas).to_have_attribute("data-mode", "points")
    await expect(per_grid).to_have_count(0)
    cluster = page.locator(".case-cluster.has-overdue")
    await expect(cluster).to_have_text("3")  # the three at one place, clustered
    await cluster.click()
    await expect(page.locator(".case-marker.overdue")).to_have_count(len(dense))
    # zoomed out again: counted per grid again
    for _ in range(2):
        zoom = await canvas.get_attribute("data-zoom") or ""
        await page.locator(".leaflet-control-zoom-out").click()
        # this zoom over before the next click (a click during a zoom is lost)
        await expect(canvas).not_to_have_attribute("data-zoom", zoom)
    await expect(canvas).to_have_attribute("data-mode", "grids")
    await expect(per_grid).to_have_count(3)
    # and back in: a marker opens its case
    await page.locator(f".grid-cluster[data-grid='{DENSE_GRID}']").click()
    await expect(canvas).to_have_attribute("data-mode", "points")
    await page.locator(".case-cluster.has-overdue").click()
    target = dense[1]
    await page.locator(f".case-marker[data-case='{target}']").click()
    await page.wait_for_url(f"**/console/cases/{target}")
    assert not page.errors  # type: ignore[attr-defined]  # no CSP violation, no JS error
