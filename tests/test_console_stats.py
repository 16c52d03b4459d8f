"""The console's statistics page: for a hand-made month, the figures on the page, in the
CSV and in the XLSX equal `gridbot stats` for the same month and area; each person reads
only the areas of their roles."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import openpyxl
import pytest

from bot.bootstrap import Gridbot
from bot.domain.clock import FakeClock
from bot.domain.stats import percent
from bot.domain.workflow import EventKind
from bot.services import actions
from bot.settings import Settings
from store.db import fetch
from tests.browser_harness import shots_folder
from tests.console_harness import Console, browser_sign_in, file_case, serving_console
from tests.helpers import COMMUNITY_1, GRID_1, STREET

try:
    from playwright.async_api import Browser
except ImportError:  # pragma: no cover - the dev extras bring it
    pytest.fail("the browser tests need Playwright: pip install -e '.[dev]'", pytrace=False)

MONTH = "2026-11"  # the clock's month (tests/helpers.py NOW)
GRID_2 = "33010600100102"
GRID_5 = "33010600100201"  # in the second community
COMMUNITY_2 = "33010600100200"
CELL = re.compile(r'<tr data-code="([^"]*)">\s*<th scope="row">(.*?)</th>(.*?)</tr>', re.S)
VALUE = re.compile(r'<td class="num" data-key="(\w+)">([^<]*)</td>')


def cli_stats(bot: Gridbot, *args: str) -> subprocess.CompletedProcess[str]:
    """`gridbot stats` in a subprocess on the test's database."""
    env = {**os.environ, "GRIDBOT_DATABASE": str(bot.settings.database),
           "GRIDBOT_MEDIA_DIR": str(bot.settings.media_dir)}
    return subprocess.run([sys.executable, "-m", "bot", "stats", "--month", MONTH, *args],
                          text=True, capture_output=True, env=env, timeout=60)


async def chief_of(bot: Gridbot, grid: str) -> int:
    rows = await fetch(bot.db.conn, "SELECT person_id FROM roles WHERE role = 'grid_chief'"
                       " AND scope = ? AND revoked_at IS NULL", (grid,))
    return int(rows[0][0])


async def hand_made_month(bot: Gridbot) -> None:
    """Four cases in three grids of two communities: one signed for in 20 minutes, one
    after two hours, one reported done and closed by its chief in the grid, one left."""
    clock = bot.clock
    first = await file_case(bot, GRID_1, "垃圾桶满了")
    second = await file_case(bot, GRID_1, "路灯不亮", category="utilities")
    third = await file_case(bot, GRID_2, "井盖松动", channel="sim-sms", reporter="web:r2")
    await file_case(bot, GRID_5, "楼道堆物", reporter="web:r3")
    chief_1, chief_2 = await chief_of(bot, GRID_1), await chief_of(bot, GRID_2)

    async def act(person: int, number: str, kind: EventKind, note: str = "") -> None:
        async with bot.db.transaction() as conn:
            await actions.act(conn, bot.reference, person, number, kind,
                              actions.Given(note=note), clock.now())

    clock.advance(timedelta(minutes=20))  # type: ignore[attr-defined]
    await act(chief_1, first, EventKind.SIGN)
    await act(chief_2, third, EventKind.SIGN)
    clock.advance(timedelta(hours=2))  # type: ignore[attr-defined]
    await act(chief_1, second, EventKind.SIGN)
    await act(chief_2, third, EventKind.REPORT_DONE, "已加固")


def table(html: str, table_id: str) -> dict[str, dict[str, str]]:
    """A stats table of the page: row code (or label) → column key → cell text."""
    start = html.index(f'id="{table_id}"')
    body = html[start:html.index("</table>", start)]
    return {code or label.strip(): dict(VALUE.findall(cells))
            for code, label, cells in CELL.findall(body)}


def shown(group: dict[str, object]) -> dict[str, str]:
    """What the page shows of a `gridbot stats --json` group."""
    cells = {"due": str(group["due"]), "closed": str(group["closed"])}
    for key in ("closing_rate", "on_time_closing_rate", "on_time_signing_rate",
                "rework_rate", "self_handling_rate", "satisfaction"):
        cells[key] = percent(group[key])  # type: ignore[arg-type]
    hours = group["average_handling_hours"]
    cells["average_handling_hours"] = "-" if hours is None else f"{hours:.1f}"
    return cells


async def test_the_page_shows_the_figures_of_gridbot_stats_for_the_same_month(
        gridbot: Gridbot) -> None:
    await hand_made_month(gridbot)
    console = Console(gridbot)
    dispatcher = await console.staff("孙调度", "dispatcher", STREET)
    async with console.client() as client:
        await console.sign_in(dispatcher, client)
        page = await client.get(f"/console/stats?month={MONTH}")
    assert page.status_code == 200, page.text
    cli = cli_stats(gridbot, "--scope", STREET, "--json")
    assert cli.returncode == 0, cli.stderr
    found = json.loads(cli.stdout)
    groups = found["indicators"]
    total = next(g for g in groups if g["group"] == "total")
    assert total["registered"] == 4 and total["assigned"] == 4  # the month is what we made
    assert total["on_time_signing_rate"] == 0.5  # two of four signed within the hour
    assert table(page.text, "stats-total")["合计"] == shown(total)
    grids = table(page.text, "stats-grids")
    communities = table(page.text, "stats-communities")
    people = table(page.text, "stats-people")
    for group in groups:
        if group["group"] == "grid":
            assert grids[group["code"]] == shown(group), group["code"]
        elif group["group"] == "community":
            assert communities[group["code"]] == shown(group), group["code"]
        elif group["group"] == "person":
            assert people[str(group["person_id"])] == shown(group), group["name"]
    assert set(grids) == {GRID_1, GRID_2, GRID_5}
    assert set(communities) == {COMMUNITY_1, COMMUNITY_2}
    assert "王丽华" in page.text and "陈建国" in page.text
    for row in found["appraisal"]:  # the appraisal against 10, chief by chief
        assert re.search(rf'{row["name"]}</th>.*?data-key="handled">{row["handled"]}<',
                         page.text, re.S), row
    assert "<details" in page.text and "应结案" in page.text  # definitions one click away


async def test_the_csv_is_the_cli_csv_and_the_xlsx_has_the_same_numbers(
        gridbot: Gridbot, tmp_path: Path) -> None:
    await hand_made_month(gridbot)
    console = Console(gridbot)
    director = await console.staff("社区主任", "community_director", COMMUNITY_1)
    async with console.client() as client:
        await console.sign_in(director, client)
        csv_answer = await client.get(f"/console/stats/export.csv?month={MONTH}")
        appraisal = await client.get(
            f"/console/stats/export.csv?month={MONTH}&table=appraisal")
        xlsx = await client.get(f"/console/stats/export.xlsx?month={MONTH}")
    cli = cli_stats(gridbot, "--scope", COMMUNITY_1, "--csv-dir", str(tmp_path))
    assert cli.returncode == 0, cli.stderr
    written = tmp_path / f"indicators-{MONTH}-{COMMUNITY_1}.csv"
    assert csv_answer.content.startswith(b"\xef\xbb\xbf")  # Excel reads it as UTF-8
    assert csv_answer.content.replace(b"\r\n", b"\n") == written.read_bytes().replace(
        b"\r\n", b"\n")
    assert appraisal.content.replace(b"\r\n", b"\n") == (
        tmp_path / f"appraisal-{MONTH}-{COMMUNITY_1}.csv").read_bytes().replace(b"\r\n", b"\n")
    assert "attachment" in xlsx.headers["content-disposition"]
    found = json.loads(cli_stats(gridbot, "--scope", COMMUNITY_1, "--json").stdout)
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    sheet = book.worksheets[0]
    header = [cell.value for cell in sheet[1]]
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert len(rows) == len(found["indicators"])
    for row, group in zip(rows, found["indicators"], strict=True):
        for key in ("due", "closed", "registered", "signed_on_time", "closing_rate",
                    "on_time_signing_rate", "self_handling_rate"):
            assert row[header.index(_column(key))] == group[key], (key, group)
    assert sheet.cell(2, header.index(_column("closing_rate")) + 1).number_format == "0.0%"
    names = [cell.value for cell in book["考核"]["A"]]
    assert names[1:] == [r["name"] for r in found["appraisal"]]
    assert "乙" not in names  # nothing outside the community


def _column(key: str) -> str:
    return {"due": "应结案", "closed": "已结案", "registered": "立案数",
            "signed_on_time": "按时签收", "closing_rate": "结案率",
            "on_time_signing_rate": "签收及时率", "self_handling_rate": "网格自办率"}[key]


async def test_a_community_reads_its_own_figures_and_another_area_is_404(
        gridbot: Gridbot) -> None:
    await hand_made_month(gridbot)
    console = Console(gridbot)
    staff = await console.staff("社区干部", "community_staff", COMMUNITY_1)
    department = await console.staff("环卫所", "department", "sanitation")
    async with console.client() as client:
        await console.sign_in(staff, client)
        own = await client.get(f"/console/stats?month={MONTH}")
        grid = await client.get(f"/console/stats?month={MONTH}&scope={GRID_2}")
        foreign = await client.get(f"/console/stats?month={MONTH}&scope={COMMUNITY_2}")
        street = await client.get(f"/console/stats?month={MONTH}&scope={STREET}")
        data = await client.get(f"/console/stats/data.json?month={MONTH}&scope={STREET}")
        xlsx = await client.get(f"/console/stats/export.xlsx?scope={COMMUNITY_2}")
    assert own.status_code == 200 and grid.status_code == 200
    assert set(table(own.text, "stats-grids")) == {GRID_1, GRID_2}
    assert set(table(grid.text, "stats-grids")) == {GRID_2}
    assert (foreign.status_code, street.status_code) == (404, 404)
    assert (data.status_code, xlsx.status_code) == (404, 404)
    assert f'value="{COMMUNITY_2}"' not in own.text  # not even offered
    async with console.client() as client:
        await console.sign_in(department, client)
        assert (await client.get("/console/stats")).status_code == 404


async def test_the_chart_data_has_bars_per_grid_a_12_month_trend_and_the_target(
        gridbot: Gridbot) -> None:
    await hand_made_month(gridbot)
    console = Console(gridbot)
    admin = await console.staff("管理员", "admin", None)
    async with console.client() as client:
        await console.sign_in(admin, client)
        page = await client.get(f"/console/stats?month={MONTH}&scope={COMMUNITY_1}")
        source = re.search(r'data-src="([^"]+)"', page.text)
        assert source
        data = (await client.get(source.group(1).replace("&amp;", "&"))).json()
        english = await client.get("/console/stats?month=2026-10")
    assert data["trend"]["labels"][-1] == MONTH and len(data["trend"]["labels"]) == 12
    assert data["trend"]["labels"][0] == "2025-12"
    assert data["trend"]["values"]["on_time_signing_rate"][-1] == round(200 / 3, 1)
    assert len(data["grids"]["labels"]) == 2
    assert data["grids"]["values"]["on_time_signing_rate"] == [50.0, 100.0]
    assert data["appraisal"]["target"] == 10
    assert sorted(data["categories"]["values"]) == [1, 2]
    assert sorted(data["channels"]["labels"]) == ["sim-sms", "sim-telegram"]
    assert english.status_code == 200 and "2026-10" in english.text
    assert "<script>" not in page.text and " style=" not in page.text  # CSP: files only


async def test_in_a_browser_the_charts_draw_under_the_csp_and_the_page_prints(
        browser: Browser, settings: Settings, clock: FakeClock, tmp_path: Path) -> None:
    async with serving_console(settings, clock) as live:
        await hand_made_month(live.bot)
        console = Console(live.bot)
        dispatcher = await console.staff("孙调度", "dispatcher", STREET)
        folder = shots_folder(tmp_path)
        for width, height in ((1280, 900), (390, 844)):
            context = await browser.new_context(viewport={"width": width, "height": height},
                                                locale="zh-CN", timezone_id="Asia/Shanghai")
            page = await context.new_page()
            page.set_default_timeout(15_000)
            errors: list[str] = []
            page.on("console", lambda m, e=errors: e.append(m.text)
                    if m.type == "error" else None)
            page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
            await browser_sign_in(page, await console.link(dispatcher, live.url))
            await page.goto(f"{live.url}/console/stats?month={MONTH}")
            await page.locator("body[data-charts=drawn]").wait_for()
            drawn = await page.evaluate(
                "Array.from(document.querySelectorAll('canvas')).filter("
                "c => window.Chart.getChart(c)).length")
            assert drawn == 11  # trend, 7 indicators per grid, appraisal, category, channel
            trend = await page.evaluate(
                "window.Chart.getChart(document.getElementById('chart-trend'))"
                ".data.labels")
            assert len(trend) == 12 and trend[-1] == MONTH
            await page.locator("#definitions summary").click()
            assert await page.locator("#definitions dd").first.is_visible()
            assert errors == []  # no CSP violation, no script error
            await page.screenshot(path=str(folder / f"console-stats-{width}.png"),
                                  full_page=width == 1280)
            if width == 1280:
                await page.emulate_media(media="print")
                assert not await page.locator("header.top").is_visible()
                assert await page.locator("#stats-grids").is_visible()
            await context.close()


async def test_a_change_to_a_case_shows_at_the_next_visit(gridbot: Gridbot) -> None:
    await hand_made_month(gridbot)
    console = Console(gridbot)
    dispatcher = await console.staff("孙调度", "dispatcher", STREET)
    async with console.client() as client:
        await console.sign_in(dispatcher, client)
        before = table((await client.get(f"/console/stats?month={MONTH}")).text,
                       "stats-total")["合计"]
        late = await file_case(gridbot, GRID_1, "又一件", reporter="web:r9")
        async with gridbot.db.transaction() as conn:
            await actions.act(conn, gridbot.reference, await chief_of(gridbot, GRID_1), late,
                              EventKind.SIGN, actions.Given(), gridbot.clock.now())
        after = table((await client.get(f"/console/stats?month={MONTH}")).text,
                      "stats-total")["合计"]
    assert before["on_time_signing_rate"] == "50.0%"
    assert after["on_time_signing_rate"] == "60.0%"  # three of five now


async def test_an_english_reader_gets_the_page_and_the_workbook_in_english(
        gridbot: Gridbot) -> None:
    await hand_made_month(gridbot)
    console = Console(gridbot)
    dispatcher = await console.staff("Sun", "dispatcher", STREET)
    async with gridbot.db.transaction() as conn:
        await conn.execute("UPDATE people SET locale = 'en' WHERE id = ?", (dispatcher,))
    async with console.client() as client:
        await console.sign_in(dispatcher, client)
        page = await client.get(f"/console/stats?month={MONTH}")
        xlsx = await client.get(f"/console/stats/export.xlsx?month={MONTH}")
    assert "Closing rate" in page.text and "How each indicator is defined" in page.text
    assert "结案率" not in page.text
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames == ["Indicators", "Appraisal", "By category", "By channel"]
    assert book["Indicators"]["A2"].value == "Total"
