"""The console's case list and case page (issue 13 items 3, 4, 5 and 8): scope as in the
bot, filters, counts, countdowns, CSV, and what residents typed shown inert."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.bootstrap import Gridbot
from bot.domain.clock import FakeClock
from bot.domain.workflow import Actor, EventKind, Role, State
from bot.services import actions, caselist, casework
from store import caselist as caselist_store
from store import cases as case_store
from store import people as people_store
from store.db import fetch, is_postgres
from tests.console_harness import Console, file_case
from tests.helpers import COMMUNITY_1, GRID_1, STREET

GRID_2 = "33010600100102"
OTHER_COMMUNITY_GRID = "33010600100201"


@pytest.fixture
def console(gridbot: Gridbot) -> Console:
    """The console of the demo gridbot, in-process."""
    return Console(gridbot)


def numbers(html: str) -> set[str]:
    """The case numbers listed on a list page."""
    return set(re.findall(r'data-number="(\d{6}-\d{3,4})"', html))


async def test_a_grid_chief_sees_their_grid_and_gets_404_for_another_grid(
        gridbot: Gridbot, console: Console) -> None:
    mine = await file_case(gridbot, GRID_1, "1网格的垃圾")
    foreign = await file_case(gridbot, GRID_2, "2网格的垃圾")
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    async with console.client() as browser:
        await console.sign_in(chief, browser)
        listed = await browser.get("/console/cases")
        assert numbers(listed.text) == {mine}
        assert (await browser.get(f"/console/cases/{mine}")).status_code == 200
        refused = await browser.get(f"/console/cases/{foreign}")
        assert refused.status_code == 404
        assert "2网格的垃圾" not in refused.text
        # ...exactly as a case that does not exist, and the same for the live part.
        missing = await browser.get("/console/cases/261123-999")
        assert missing.status_code == 404 and missing.text == refused.text
        assert (await browser.get(f"/console/cases/{foreign}/live")).status_code == 404
        exported = await browser.get("/console/cases.csv")
        assert mine in exported.text and foreign not in exported.text


async def test_each_role_sees_its_own_area(gridbot: Gridbot, console: Console) -> None:
    in_1 = await file_case(gridbot, GRID_1, "一")
    in_2 = await file_case(gridbot, GRID_2, "二")
    elsewhere = await file_case(gridbot, OTHER_COMMUNITY_GRID, "三")
    seen = {}
    for role, scope in (("community_staff", COMMUNITY_1), ("dispatcher", STREET),
                        ("admin", None), ("department", "sanitation")):
        person = await console.staff(f"{role}的人", role, scope)
        async with console.client() as browser:
            await console.sign_in(person, browser)
            seen[role] = numbers((await browser.get("/console/cases")).text)
    assert seen["community_staff"] == {in_1, in_2}
    assert seen["dispatcher"] == seen["admin"] == {in_1, in_2, elsewhere}
    assert seen["department"] == set()  # nothing dispatched to it yet


async def test_the_list_scope_agrees_with_can_view_for_every_role(gridbot: Gridbot) -> None:
    """The SQL scope (caselist.scopes_for) and the bot's rule (casework.can_view) agree."""
    for grid in (GRID_1, GRID_2, OTHER_COMMUNITY_GRID):
        await file_case(gridbot, grid, "x")
    conn = gridbot.db.conn
    everything = await caselist.list_cases(conn, caselist.Filters(status="all"),
                                           [Actor(1, Role.ADMIN)], gridbot.clock.now(),
                                           gridbot.settings.timezone)
    for role, scope in ((Role.GRID_CHIEF, GRID_1), (Role.COMMUNITY_DIRECTOR, COMMUNITY_1),
                        (Role.DISPATCHER, STREET), (Role.SUPERVISOR, COMMUNITY_1),
                        (Role.SUPERVISOR, None), (Role.INFO_OFFICER, GRID_2),
                        (Role.DEPARTMENT, "sanitation"), (Role.DISPATCHER, "elsewhere")):
        actors = [Actor(1, role, scope)]
        listed = await caselist.list_cases(conn, caselist.Filters(status="all"), actors,
                                           gridbot.clock.now(), gridbot.settings.timezone)
        expected = {c.case.number for c in everything.cases
                    if casework.can_view(c.case, actors)}
        assert {c.case.number for c in listed.cases} == expected, (role, scope)


async def test_what_residents_type_is_shown_inert(gridbot: Gridbot, console: Console) -> None:
    attack = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    number = await file_case(gridbot, GRID_1, attack, address='"><b>3号楼</b>')
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    async with console.client() as browser:
        await console.sign_in(dispatcher, browser)
        for path in ("/console/cases", f"/console/cases/{number}"):
            page = (await browser.get(path)).text
            assert "<script>alert" not in page and "<img src=x" not in page
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
            assert "<b>3号楼</b>" not in page


async def test_filters_narrow_the_list(gridbot: Gridbot, console: Console,
                                       clock: FakeClock) -> None:
    old = await file_case(gridbot, GRID_1, "旧的垃圾堆")
    clock.advance(timedelta(days=3))
    road = await file_case(gridbot, GRID_2, "路面坑洼", category="roads")
    fresh = await file_case(gridbot, OTHER_COMMUNITY_GRID, "新的垃圾", channel="sim-sms",
                            reporter="web:sms")
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    async with console.client() as browser:
        await console.sign_in(dispatcher, browser)

        async def shown(query: str) -> set[str]:
            return numbers((await browser.get(f"/console/cases?{query}")).text)

        assert await shown("") == {old, road, fresh}
        assert await shown("category=sanitation") == {old, fresh}
        assert await shown(f"community={COMMUNITY_1}") == {old, road}
        assert await shown(f"grid={GRID_2}") == {road}
        chosen = (await browser.get(f"/console/cases?grid={GRID_2}")).text
        assert f'<option value="{GRID_2}" selected data-community="{COMMUNITY_1}">' in chosen
        assert await shown("channel=sim-sms") == {fresh}
        assert await shown("q=垃圾") == {old, fresh}
        assert await shown("q=%25") == set()  # a LIKE wildcard is searched as itself
        assert await shown("overdue=1") == {old}
        assert await shown("overdue=1&category=sanitation&community=" + COMMUNITY_1) == {old}
        today = clock.now().astimezone(gridbot.settings.timezone).date().isoformat()
        assert await shown(f"from={today}") == {road, fresh}
        assert await shown(f"to={today}") == {old, road, fresh}
        assert await shown("urgency=U1") == set()
        assert await shown("status=closed") == set()
        assert await shown("status=nonsense&page=x") == {old, road, fresh}  # ignored


async def test_counts_per_state_and_sorting(gridbot: Gridbot, console: Console,
                                            clock: FakeClock) -> None:
    first = await file_case(gridbot, GRID_1, "第一")
    clock.advance(timedelta(minutes=5))
    second = await file_case(gridbot, GRID_1, "第二")
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    async with console.client() as browser:
        await console.sign_in(dispatcher, browser)
        page = (await browser.get("/console/cases?sort=newest")).text
        assert page.index(second) < page.index(first)
        assert re.search(r"已立案 <b>2</b>", page)
        assert "共 2 件" in page
        page = (await browser.get("/console/cases?sort=deadline")).text
        assert page.index(first) < page.index(second)


async def test_countdowns_go_green_amber_red(gridbot: Gridbot, console: Console,
                                             clock: FakeClock) -> None:
    number = await file_case(gridbot, GRID_1, "垃圾")
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.deadline is not None
    start, deadline = stored.case.registered_at, stored.case.deadline
    assert start is not None
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    async with console.client() as browser:
        await console.sign_in(dispatcher, browser)

        async def colour() -> str:
            page = (await browser.get(f"/console/cases/{number}")).text
            found = re.search(r'class="clock (\w+)"', page)
            assert found
            return found.group(1)

        assert await colour() == "green"
        clock.advance(deadline - timedelta(minutes=30) - clock.now())  # 87 % of 4 h
        assert await colour() == "amber"
        clock.advance(deadline - clock.now() + timedelta(minutes=1))
        assert await colour() == "red"
        assert "超时" in (await browser.get("/console/cases")).text


async def test_the_countdown_counts_working_time_across_a_weekend(
        gridbot: Gridbot, console: Console, clock: FakeClock) -> None:
    """A sanitation case (4 working hours) filed at 16:30 on a Friday is due at 11:30 on
    Monday: 80 % of its limit is used at 10:42 on Monday, not on Sunday night as 80 % of
    the 67 clock hours would say, and the list and the case page both stay green until
    then."""
    local = gridbot.reference.tz
    clock.advance(datetime(2026, 11, 27, 16, 30, tzinfo=local) - clock.now())  # a Friday
    number = await file_case(gridbot, GRID_1, "周五傍晚的垃圾")
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.deadline is not None
    assert stored.case.deadline == datetime(2026, 11, 30, 11, 30, tzinfo=local)
    dispatcher = await console.staff("调度员", "dispatcher", STREET)

    async def colours() -> tuple[str, str]:
        async with console.client() as browser:  # signed in again: sessions idle out in 12 h
            await console.sign_in(dispatcher, browser)
            case_page = (await browser.get(f"/console/cases/{number}")).text
            listed = (await browser.get("/console/cases")).text
        found = [re.search(r'class="clock (\w+)"', page) for page in (case_page, listed)]
        assert found[0] and found[1]
        return found[0].group(1), found[1].group(1)

    for moment, expected in (
            ((2026, 11, 27, 17, 29), "green"),  # 59 of the 240 working minutes
            ((2026, 11, 29, 23, 0), "green"),   # Sunday night: 89 % of clock time
            ((2026, 11, 30, 10, 30), "green"),  # 3 working hours: 75 %
            ((2026, 11, 30, 10, 43), "amber"),  # 3 h 13 min: past 80 %
            ((2026, 11, 30, 11, 31), "red")):
        clock.advance(datetime(*moment, tzinfo=local) - clock.now())
        assert await colours() == (expected, expected), moment


async def test_the_csv_export_is_utf8_with_a_bom_and_every_filtered_case(
        gridbot: Gridbot, console: Console) -> None:
    numbers_filed = [await file_case(gridbot, GRID_1, f"第{i}件，含逗号") for i in range(3)]
    await file_case(gridbot, GRID_2, "别处", category="roads")
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    async with console.client() as browser:
        await console.sign_in(dispatcher, browser)
        answer = await browser.get("/console/cases.csv?category=sanitation")
        assert answer.headers["content-type"].startswith("text/csv")
        assert "attachment" in answer.headers["content-disposition"]
        assert answer.content.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
        assert rows[0][:3] == ["事件编号", "状态", "类别"]
        assert sorted(r[0] for r in rows[1:]) == sorted(numbers_filed)
        assert all(r[2] == "市容环卫" for r in rows[1:])
        assert "第0件，含逗号" in {r[7] for r in rows[1:]}


async def test_the_list_follows_the_persons_language(gridbot: Gridbot,
                                                     console: Console) -> None:
    await file_case(gridbot, GRID_1, "垃圾")
    dispatcher = await console.staff("Dispatcher Zhao", "dispatcher", STREET)
    async with gridbot.db.transaction() as conn:
        await people_store.set_locale(conn, dispatcher, "en")
    async with console.client() as browser:
        await console.sign_in(dispatcher, browser)
        page = (await browser.get("/console/cases")).text
        assert '<html lang="en">' in page
        assert "Sign out" in page and "Export CSV" in page
        assert "left" in page  # the countdown


async def test_the_list_answers_204_until_a_case_changes(gridbot: Gridbot,
                                                         console: Console) -> None:
    await file_case(gridbot, GRID_1, "垃圾")
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    async with console.client() as browser:
        await console.sign_in(dispatcher, browser)
        page = (await browser.get("/console/cases")).text
        since = re.search(r'data-since="(\d+)"', page)
        assert since
        rows = await browser.get(f"/console/cases/rows?since={since.group(1)}")
        assert rows.status_code == 204
        newer = await file_case(gridbot, GRID_2, "新来的")
        rows = await browser.get(f"/console/cases/rows?since={since.group(1)}")
        assert rows.status_code == 200 and newer in rows.text


def test_the_partial_indexes_are_on_exactly_the_lists_conditions() -> None:
    """SQLite and PostgreSQL use a partial index only when the query says the same: the
    migration's WHERE clauses must be store.caselist.OPEN_SQL and FINISHED_SQL."""
    sql = (Path(__file__).resolve().parents[1] / "store" / "migrations"
           / "0010_console.sql").read_text(encoding="utf-8")
    wheres = set(re.findall(r"WHERE (state IN \([^)]*\))", sql))
    assert wheres == {caselist_store.OPEN_SQL, caselist_store.FINISHED_SQL}
    assert set(caselist_store.OPEN_STATES) | set(caselist_store.FINISHED_STATES) == {
        s.value for s in State}


async def test_any_status_merges_open_and_finished_cases_in_order(
        gridbot: Gridbot, console: Console, clock: FakeClock) -> None:
    done = await file_case(gridbot, GRID_1, "已经办完的")
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    admin = await console.staff("管理员", "admin", None)
    async with gridbot.db.transaction() as conn:
        await actions.act(conn, gridbot.reference, admin, done, EventKind.FORCE_CLOSE,
                          actions.Given(note="重复"), clock.now())
    clock.advance(timedelta(minutes=1))
    later = [await file_case(gridbot, GRID_1, f"第{i}件") for i in range(3)]
    async with console.client() as browser:
        await console.sign_in(chief, browser)
        page = (await browser.get("/console/cases?status=all&sort=newest")).text
        shown = re.findall(r'data-number="(\d{6}-\d{3,4})"', page)
        assert shown == [*reversed(later), done]
        assert numbers((await browser.get("/console/cases?status=closed")).text) == {done}
        assert numbers((await browser.get("/console/cases")).text) == set(later)


async def test_a_rare_filter_combination_over_finished_cases_is_sought_by_an_index(
        gridbot: Gridbot, clock: FakeClock) -> None:
    """Closed, U1 and from Open311, one closed case in twelve: the page lists exactly
    those, in the list's order, with their count, and its queries seek them by an index
    of the filters (0026) instead of scanning the cases or walking every closed one."""
    number = await file_case(gridbot, GRID_1, "楼道堆物已清", address="5号楼")
    admin = await Console(gridbot).staff("管理员", "admin", None)
    async with gridbot.db.transaction() as conn:
        await actions.act(conn, gridbot.reference, admin, number, EventKind.FORCE_CLOSE,
                          actions.Given(note="已处理"), clock.now())
    conn = gridbot.db.conn
    if is_postgres(conn):
        column_sql = ("SELECT column_name FROM information_schema.columns WHERE table_name"
                      " = 'cases' AND table_schema = current_schema()")
    else:
        column_sql = "SELECT name FROM pragma_table_info('cases')"
    copied = [str(r[0]) for r in await fetch(conn, column_sql)
              if str(r[0]) not in ("id", "number", "urgency", "source_channel")]
    async with gridbot.db.transaction() as tx:  # 6,000 closed copies of it
        await tx.execute(
            "WITH RECURSIVE g (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 6000)"
            f" INSERT INTO cases (number, urgency, source_channel, {', '.join(copied)})"
            " SELECT 'F' || n, CASE WHEN n % 3 = 0 THEN 'U1' ELSE 'U3' END,"
            " CASE WHEN n % 4 = 1 THEN 'open311' ELSE 'telegram' END,"
            f" {', '.join(copied)} FROM cases CROSS JOIN g WHERE number = ? ORDER BY n",
            (number,))
    if is_postgres(conn):
        await conn.execute("ANALYZE cases")  # as autovacuum would after 6,000 rows
    else:
        await conn.execute("ANALYZE cases_facets")  # as 0026 does on a filled database
    filters = caselist.Filters(status="closed", urgency="U1", channel="open311")
    listed = await caselist.list_cases(conn, filters, [Actor(1, Role.ADMIN)], clock.now(),
                                       gridbot.settings.timezone)
    ids = {str(r[1]): int(r[0]) for r in await fetch(
        conn, "SELECT id, number FROM cases WHERE number LIKE 'F%'")}
    rare = [ids[f"F{n}"] for n in range(1, 6001) if n % 3 == 0 and n % 4 == 1]  # one deadline
    assert [c.case.id for c in listed.cases] == rare[:caselist.PAGE_SIZE]
    assert listed.by_state == {"closed": len(rare)} and listed.total == len(rare) == 500

    query = caselist.query_for(filters, [Actor(1, Role.ADMIN)], clock.now(),
                               gridbot.settings.timezone)
    counted = await caselist_store.counts(conn, query)
    [part] = caselist_store.halves(query, counted, postgres=is_postgres(conn))
    for sql, params in (caselist_store.select_sql(part), caselist_store.count_sql(query)):
        if is_postgres(conn):
            plan = " ".join(str(r[0]) for r in await fetch(conn, "EXPLAIN " + sql, params))
            assert "Seq Scan on cases" not in plan, plan
        else:
            plan = " ".join(str(r[3]) for r in await fetch(
                conn, "EXPLAIN QUERY PLAN " + sql, params))
            assert "cases_facets (urgency=? AND source_channel=? AND state=?)" in plan, plan
            assert not re.search(r"\bSCAN cases\b", plan), plan


async def test_later_pages_of_every_status_follow_on_in_each_order(
        gridbot: Gridbot, clock: FakeClock) -> None:
    """Every status is the open cases and the finished ones read apart and merged: page
    after page, in each order, they list every case once, in that order, as one list
    would (a later page merges the two by their order's columns, then reads its own)."""
    admin = await Console(gridbot).staff("管理员", "admin", None)
    numbers = []
    for n in range(7):
        clock.advance(timedelta(minutes=7))  # type: ignore[attr-defined]
        numbers.append(await file_case(gridbot, GRID_1 if n % 2 else GRID_2,
                                       f"第{n}件", reporter=f"web:r{n}"))
    for number in numbers[1::3]:  # three finished among them, created apart
        clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
        async with gridbot.db.transaction() as conn:
            await actions.act(conn, gridbot.reference, admin, number, EventKind.FORCE_CLOSE,
                              actions.Given(note="已处理"), clock.now())
    conn = gridbot.db.conn
    rows = await fetch(conn, "SELECT id, deadline, created_at, changed_at FROM cases")
    orders = {"newest": sorted(rows, key=lambda r: (r[2], r[0]), reverse=True),
              "changed": sorted(rows, key=lambda r: (r[3] or "", r[0]), reverse=True),
              "deadline": sorted(rows, key=lambda r: (r[1] is None, r[1] or "", r[0]))}
    for sort, expected in orders.items():
        if is_postgres(conn) and sort == "deadline":  # its NULLs come last: none here
            assert all(r[1] is not None for r in rows)
        shown: list[int] = []
        for offset in range(0, len(rows) + 3, 3):
            found = await caselist_store.page(conn, caselist_store.CaseQuery(
                scopes=[("*", None)], sort=sort, limit=3, offset=offset))
            shown += [c.case.id for c in found.cases]
        assert shown == [int(r[0]) for r in expected], sort


async def test_a_short_date_range_of_finished_cases_is_read_by_date_on_each_database(
        gridbot: Gridbot, clock: FakeClock) -> None:
    """A recent week's finished cases lie at the end of the deadline's index: SQLite finds
    them by their date first (`narrow_dates`); PostgreSQL, which walked that index from
    its start (1 s at 1,000,000 cases), sorts the range's matches instead (`dates_first`)."""
    query = caselist.query_for(
        caselist.Filters(status="all", date_from=clock.now().date() - timedelta(days=7)),
        [Actor(1, Role.ADMIN)], clock.now(), gridbot.settings.timezone)
    read = await caselist_store.as_read(gridbot.db.conn, query)
    parts = caselist_store.halves(read, {}, postgres=gridbot.db.postgres)
    finished = [p for p in parts if p.states == caselist_store.FINISHED_STATES][0]
    if gridbot.db.postgres:
        assert (read.narrow_dates, read.dates_first, finished.read_by) == (False, True, "matches")
        sql, _ = caselist_store.select_sql(finished)
        assert "ORDER BY (deadline || '')" in sql
    else:
        assert (read.narrow_dates, read.dates_first) == (True, False)
        sql, _ = caselist_store.select_sql(finished)
        assert "id IN (SELECT id FROM cases WHERE" in sql
