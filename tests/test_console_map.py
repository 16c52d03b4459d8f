"""The console's map (issue 13 item 6, the map parts of 7 and 8): the data scoped exactly as
the list, the list's filters, the grids' counts, the ETag that lets the page poll cheaply,
a case's small map answering 404 outside one's scope, and the tile setting's CSP."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.bootstrap import Gridbot, build
from bot.domain.clock import FakeClock
from bot.domain.workflow import EventKind
from bot.services import actions, casemap
from bot.settings import Settings, SettingsError
from store import areas as area_store
from tests.console_harness import GRID_POINTS, Console, file_case
from tests.helpers import COMMUNITY_1, GRID_1, STREET

GRID_2 = "33010600100102"
OTHER_COMMUNITY_GRID = "33010600100201"
DEMO_GRIDS = 8


@pytest.fixture
def console(gridbot: Gridbot) -> Console:
    """The console of the demo gridbot, in-process."""
    return Console(gridbot)


async def map_of(console: Console, person: int, query: str = "") -> dict[str, Any]:
    """The map's data as the person's browser gets it."""
    async with console.client() as browser:
        await console.sign_in(person, browser)
        answer = await browser.get(f"/console/map/data.json{query}")
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()
        return data


def numbers(data: dict[str, Any]) -> set[str]:
    """The case numbers drawn as markers."""
    return {point[0] for point in data["points"]}


def grids(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The grids drawn, by code, with their properties."""
    return {f["properties"]["code"]: f["properties"] for f in data["grids"]["features"]}


async def dispatched_to_sanitation(bot: Gridbot, console: Console, number: str) -> None:
    """Up the chain to the street, then dispatched to 环卫 (sanitation)."""
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    community = await console.staff("社区书记", "community_director", COMMUNITY_1)
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    for person, kind, given in (
            (chief, EventKind.ESCALATE, actions.Given(note="需要协调")),
            (community, EventKind.ESCALATE, actions.Given(note="需要街道协调")),
            (dispatcher, EventKind.DISPATCH, actions.Given(target="dept:sanitation"))):
        async with bot.db.transaction() as conn:
            await actions.act(conn, bot.reference, person, number, kind, given,
                              bot.clock.now())


async def test_each_role_sees_on_the_map_what_it_sees_in_the_list(
        gridbot: Gridbot, console: Console) -> None:
    in_1 = await file_case(gridbot, GRID_1, "一网格")
    in_2 = await file_case(gridbot, GRID_2, "二网格")
    elsewhere = await file_case(gridbot, OTHER_COMMUNITY_GRID, "另一个社区")
    roles = {"grid_chief": GRID_1, "community_staff": COMMUNITY_1, "dispatcher": STREET,
             "admin": None}
    seen = {}
    for role, scope in roles.items():
        seen[role] = await map_of(console, await console.staff(f"{role}的人", role, scope))
    assert numbers(seen["grid_chief"]) == {in_1}
    assert set(grids(seen["grid_chief"])) == {GRID_1}  # a chief sees their grid only
    assert numbers(seen["community_staff"]) == {in_1, in_2}
    assert GRID_1 in grids(seen["community_staff"])
    assert OTHER_COMMUNITY_GRID not in grids(seen["community_staff"])
    assert numbers(seen["dispatcher"]) == numbers(seen["admin"]) == {in_1, in_2, elsewhere}
    assert len(grids(seen["dispatcher"])) == len(grids(seen["admin"])) == DEMO_GRIDS


async def test_a_department_sees_only_the_cases_dispatched_to_it(
        gridbot: Gridbot, console: Console) -> None:
    sent = await file_case(gridbot, GRID_1, "垃圾堆了三天")
    await file_case(gridbot, GRID_2, "没有派遣的")
    worker = await console.staff("环卫老钱", "department", "sanitation")
    before = await map_of(console, worker)
    assert numbers(before) == set()
    assert all(g["count"] == 0 for g in grids(before).values())
    await dispatched_to_sanitation(gridbot, console, sent)
    after = await map_of(console, worker)
    assert numbers(after) == {sent}
    assert grids(after)[GRID_1]["count"] == 1 and grids(after)[GRID_2]["count"] == 0


async def test_grids_carry_their_open_and_overdue_counts(
        gridbot: Gridbot, console: Console, clock: FakeClock) -> None:
    for text in ("甲", "乙"):
        await file_case(gridbot, GRID_1, text)
    clock.advance(timedelta(days=30))  # both past their deadline
    await file_case(gridbot, GRID_1, "刚报的")
    await file_case(gridbot, GRID_2, "二网格刚报的")
    admin = await console.staff("管理员", "admin", None)
    data = await map_of(console, admin)
    counted = grids(data)
    assert (counted[GRID_1]["count"], counted[GRID_1]["overdue"]) == (3, 2)
    assert (counted[GRID_2]["count"], counted[GRID_2]["overdue"]) == (1, 0)
    assert counted[GRID_1]["name"] and counted[OTHER_COMMUNITY_GRID]["count"] == 0
    overdue = {point[0] for point in data["points"] if point[5] == 1}
    assert len(overdue) == 2
    assert all(len(point) == 6 and point[3] in ("U1", "U2", "U3", "U4")
               for point in data["points"])


async def test_the_map_takes_the_lists_filters(gridbot: Gridbot, console: Console,
                                               clock: FakeClock) -> None:
    late = await file_case(gridbot, GRID_1, "旧的垃圾")
    clock.advance(timedelta(days=30))
    fresh = await file_case(gridbot, GRID_1, "新的垃圾")
    road = await file_case(gridbot, OTHER_COMMUNITY_GRID, "路灯坏了", category="utilities")
    admin = await console.staff("管理员", "admin", None)
    async with console.client() as browser:
        await console.sign_in(admin, browser)

        async def shown(query: str) -> set[str]:
            answer = await browser.get(f"/console/map/data.json{query}")
            assert answer.status_code == 200
            return numbers(answer.json())

        assert await shown("?overdue=1") == {late}
        assert await shown("?category=sanitation") == {late, fresh}
        assert await shown(f"?community={COMMUNITY_1}") == {late, fresh}
        assert await shown("?q=%E8%B7%AF%E7%81%AF") == {road}
        assert await shown("?status=closed") == set()
        # what does not parse is ignored, as in the list
        assert await shown("?status=bogus&from=never") == {late, fresh, road}


async def test_the_map_data_answers_304_until_a_case_changes(
        gridbot: Gridbot, console: Console) -> None:
    number = await file_case(gridbot, GRID_1, "第一件")
    admin = await console.staff("管理员", "admin", None)
    async with console.client() as browser:
        await console.sign_in(admin, browser)
        first = await browser.get("/console/map/data.json")
        etag = first.headers["etag"]
        same = await browser.get("/console/map/data.json", headers={"If-None-Match": etag})
        assert same.status_code == 304 and same.content == b""
        other_filter = await browser.get("/console/map/data.json?overdue=1",
                                         headers={"If-None-Match": etag})
        assert other_filter.status_code == 200
        second = await file_case(gridbot, GRID_2, "第二件")
        changed = await browser.get("/console/map/data.json", headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert numbers(changed.json()) == {number, second}

        # A district imported again (a grid renamed, a boundary moved): the map is sent
        # anew, for the grids alone too, without waiting for the minute to turn.
        etag = changed.headers["etag"]
        grids = await browser.get("/console/map/data.json?layer=grids")
        async with gridbot.db.transaction() as conn:
            row = next(a for a in await area_store.all_areas(conn) if a.code == GRID_1)
            await area_store.upsert_areas(conn, [replace(row, name="新名网格")],
                                          gridbot.clock.now())
        await gridbot.reference.reload_district(gridbot.db)
        for url, held in (("/console/map/data.json", etag),
                          ("/console/map/data.json?layer=grids", grids.headers["etag"])):
            renamed = await browser.get(url, headers={"If-None-Match": held})
            assert renamed.status_code == 200 and "新名网格" in renamed.text, url


async def test_a_cases_small_map_is_404_outside_ones_scope(
        gridbot: Gridbot, console: Console) -> None:
    mine = await file_case(gridbot, GRID_1, "1网格")
    foreign = await file_case(gridbot, GRID_2, "2网格")
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    async with console.client() as browser:
        await console.sign_in(chief, browser)
        place = await browser.get(f"/console/map/place/{mine}.json")
        assert place.status_code == 200
        data = place.json()
        assert data["grid"]["properties"]["code"] == GRID_1
        assert data["grid"]["geometry"]["type"] in ("Polygon", "MultiPolygon")
        assert data["point"] is not None and len(data["point"]) == 2
        refused = await browser.get(f"/console/map/place/{foreign}.json")
        missing = await browser.get("/console/map/place/261123-999.json")
        assert refused.status_code == missing.status_code == 404
        assert refused.text == missing.text
        page = (await browser.get(f"/console/cases/{mine}")).text
        assert f'data-place="/console/map/place/{mine}.json"' in page
        assert '<script src="/console/static/map.js" defer></script>' in page


async def test_the_map_needs_a_session(gridbot: Gridbot, console: Console) -> None:
    await file_case(gridbot, GRID_1, "x")
    async with console.client() as stranger:
        assert (await stranger.get("/console/map/data.json")).status_code in (303, 401)
        page = await stranger.get("/console/map")
        assert page.status_code == 303 and page.headers["location"] == "/console/login"


async def test_the_map_page_has_no_inline_script_and_no_tiles_by_default(
        gridbot: Gridbot, console: Console) -> None:
    admin = await console.staff("管理员", "admin", None)
    async with console.client() as browser:
        await console.sign_in(admin, browser)
        page = await browser.get("/console/map?category=sanitation")
    csp = page.headers["content-security-policy"]
    assert "img-src 'self' data: blob:;" in csp and "script-src 'self';" in csp
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) is None
    assert ' style="' not in page.text and " onclick=" not in page.text
    assert 'data-tiles=""' in page.text
    assert 'data-source="/console/map/data.json?status=open&amp;category=sanitation"' in page.text
    assert '/console/vendor/leaflet/leaflet.js' in page.text


async def test_a_tile_setting_adds_that_host_to_the_maps_csp_only(
        tmp_path: Path, clock: FakeClock) -> None:
    settings = Settings.from_mapping({
        "GRIDBOT_DATABASE": str(tmp_path / "gridbot.db"),
        "GRIDBOT_MEDIA_DIR": str(tmp_path / "media"),
        "GRIDBOT_MAP_TILES": "https://{s}.tiles.example.org/{z}/{x}/{y}.png",
        "GRIDBOT_MAP_ATTRIBUTION": "© Example <maps>",
    })
    bot = await build(settings, clock)
    try:
        console = Console(bot)
        admin = await console.staff("管理员", "admin", None)
        async with console.client() as browser:
            await console.sign_in(admin, browser)
            shown = await browser.get("/console/map")
            listed = await browser.get("/console/cases")
        assert "img-src 'self' data: blob: https://*.tiles.example.org;" in (
            shown.headers["content-security-policy"])
        assert "tiles.example.org" not in listed.headers["content-security-policy"]
        assert 'data-tiles="https://{s}.tiles.example.org/{z}/{x}/{y}.png"' in shown.text
        assert 'data-attribution="© Example &lt;maps&gt;"' in shown.text
    finally:
        await bot.close()


@pytest.mark.parametrize("bad", [
    "javascript:alert(1)//{z}{x}{y}", "https://tiles.example.org/{z}/{x}.png",
    "https://tiles.example.org; script-src *;/{z}/{x}/{y}", "ftp://tiles.example.org/{z}/{x}/{y}",
    "https://user@tiles.example.org/{z}/{x}/{y}"])
def test_a_tile_setting_that_is_not_a_plain_tile_url_is_refused(bad: str) -> None:
    with pytest.raises(SettingsError, match="GRIDBOT_MAP_TILES"):
        Settings.from_mapping({"GRIDBOT_MAP_TILES": bad})


async def test_a_map_of_finished_cases_draws_the_latest_filed_and_says_so(
        gridbot: Gridbot, console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(casemap, "MAX_FINISHED", 2)
    admin = await console.staff("管理员", "admin", None)
    filed = [await file_case(gridbot, GRID_1, f"第{n}件") for n in range(3)]
    async with console.client() as browser:
        await console.sign_in(admin, browser)
        everything = (await browser.get("/console/map/data.json?status=all")).json()
        still_open = (await browser.get("/console/map/data.json")).json()
    assert numbers(everything) == set(filed[1:]) and everything["truncated"] is True
    assert grids(everything)[GRID_1]["count"] == 2
    assert numbers(still_open) == set(filed) and still_open["truncated"] is False


def around(grid: str, margin: float = 0.0002) -> str:
    """A view's bbox parameter (west,south,east,north) just around a demo grid's point."""
    lat, lon = GRID_POINTS[grid]
    return f"{lon - margin},{lat - margin},{lon + margin},{lat + margin}"


async def test_past_the_points_limit_the_map_sends_grid_counts_and_the_views_points(
        gridbot: Gridbot, console: Console, clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(casemap, "POINTS_AT_ONCE", 3)
    in_1 = {await file_case(gridbot, GRID_1, f"一网格{n}") for n in range(3)}
    clock.advance(timedelta(days=30))  # those three are overdue
    in_2 = await file_case(gridbot, GRID_2, "二网格")
    road = await file_case(gridbot, OTHER_COMMUNITY_GRID, "路灯坏了", category="utilities")
    admin = await console.staff("管理员", "admin", None)
    async with console.client() as browser:
        await console.sign_in(admin, browser)

        async def data(query: str) -> dict[str, Any]:
            answer = await browser.get(f"/console/map/data.json{query}")
            assert answer.status_code == 200
            shown: dict[str, Any] = answer.json()
            return shown

        wide = await data("")  # five cases, more than three: counts only
        assert wide["aggregated"] is True and wide["points"] == [] and wide["total"] == 5
        counted = grids(wide)
        assert (counted[GRID_1]["count"], counted[GRID_1]["overdue"]) == (3, 3)
        assert (counted[GRID_2]["count"], counted[OTHER_COMMUNITY_GRID]["count"]) == (1, 1)
        # zoomed in on one grid: its cases one by one, the grids' counts as before
        near = await data(f"?bbox={around(GRID_1)}")
        assert near["aggregated"] is False and numbers(near) == in_1
        assert all(point[5] == 1 for point in near["points"])
        assert grids(near) == counted
        near_2 = await data(f"?bbox={around(GRID_2)}")
        assert numbers(near_2) == {in_2}
        # a view holding more than three is counted again; a malformed bbox is ignored
        assert (await data("?bbox=120,30,120.2,30.4"))["aggregated"] is True
        assert (await data("?bbox=120,30,x,30.4"))["aggregated"] is True
        assert (await data("?bbox=121,30,120,30.4"))["aggregated"] is True  # west > east
        # the list's filters still apply, and few enough come one by one without a bbox
        assert numbers(await data("?category=utilities")) == {road}
        assert numbers(await data(f"?category=sanitation&bbox={around(GRID_2)}")) == {in_2}
        # the ETag holds the bounds: another view is another answer, the same one a 304
        first = await browser.get(f"/console/map/data.json?bbox={around(GRID_1)}")
        etag = first.headers["etag"]
        again = await browser.get(f"/console/map/data.json?bbox={around(GRID_1)}",
                                  headers={"If-None-Match": etag})
        moved = await browser.get(f"/console/map/data.json?bbox={around(GRID_2)}",
                                  headers={"If-None-Match": etag})
        assert again.status_code == 304 and moved.status_code == 200


async def test_a_case_in_no_grid_is_drawn_even_when_the_grids_are_counted(
        gridbot: Gridbot, console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(casemap, "POINTS_AT_ONCE", 1)
    await file_case(gridbot, GRID_1, "一网格")
    loose = await file_case(gridbot, GRID_2, "网格之外")
    async with gridbot.db.transaction() as conn:  # a report placed outside every grid
        await conn.execute("UPDATE cases SET grid_code = NULL WHERE number = ?", (loose,))
    admin = await console.staff("管理员", "admin", None)
    data = await map_of(console, admin)
    assert data["aggregated"] is True and numbers(data) == {loose}
    assert grids(data)[GRID_1]["count"] == 1 and grids(data)[GRID_2]["count"] == 0
