"""The console list's text search (issue 13 item 4, its benchmark in item 10) on SQLite's
trigram index and PostgreSQL's pg_trgm (migration 0017): the same cases as a substring
search of the description or the address, within the person's scope, with the same
counts per status, for texts of any length; and the index is what finds them."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from bot.bootstrap import Gridbot
from bot.domain.clock import FakeClock
from bot.domain.workflow import Actor, EventKind, Role
from bot.services import actions, caselist
from store import caselist as caselist_store
from store.db import fetch, is_postgres
from tests.console_harness import Console, file_case
from tests.helpers import COMMUNITY_1, GRID_1

GRID_2 = "33010600100102"


@dataclass(frozen=True)
class Filed:
    """The demo cases the searches look for, by what they hold."""

    lid: str  # description 小区门口井盖松动, address 3号楼
    lamp: str  # description 路灯不亮, address 幸福路古井 (ends in 古井)
    wildcards: str  # description 满100%_送小广告, no address
    other_grid: str  # description 井盖丢失, in GRID_2
    closed: str  # description 楼道堆物已清, closed


@pytest.fixture
async def filed(gridbot: Gridbot, clock: FakeClock) -> Filed:
    """Five cases, one of them closed, one in another grid."""
    lid = await file_case(gridbot, GRID_1, "小区门口井盖松动", address="3号楼")
    lamp = await file_case(gridbot, GRID_1, "路灯不亮", address="幸福路古井")
    wildcards = await file_case(gridbot, GRID_1, "满100%_送小广告")
    other_grid = await file_case(gridbot, GRID_2, "井盖丢失", address="7号楼")
    closed = await file_case(gridbot, GRID_1, "楼道堆物已清", address="5号楼")
    admin = await Console(gridbot).staff("管理员", "admin", None)
    async with gridbot.db.transaction() as conn:
        await actions.act(conn, gridbot.reference, admin, closed, EventKind.FORCE_CLOSE,
                          actions.Given(note="已处理"), clock.now())
    return Filed(lid, lamp, wildcards, other_grid, closed)


async def found(gridbot: Gridbot, text: str, actors: list[Actor] | None = None,
                status: str = "all") -> tuple[set[str], dict[str, int]]:
    """The numbers a text finds (every status unless told) and the counts per status."""
    listed = await caselist.list_cases(
        gridbot.db.conn, caselist.Filters(status=status, q=text),
        actors or [Actor(1, Role.ADMIN)], gridbot.clock.now(), gridbot.settings.timezone)
    return {c.case.number for c in listed.cases}, listed.by_state



async def list_page(gridbot: Gridbot, role: str, scope: str | None, text: str) -> str:
    """The list page of every status searched for `text`, as a new staff member of this
    role and scope signed in to the console sees it."""
    console = Console(gridbot)
    person = await console.staff("职员", role, scope)
    async with console.client() as browser:
        await console.sign_in(person, browser)
        answer = await browser.get("/console/cases", params={"status": "all", "q": text})
        return answer.text

@pytest.fixture(params=["index", "filter", "common"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each search as a rare text (its cases read from the index), a common one (LIKE in
    the list's order; the index sifts the finished states' counts) and a commonest one
    (LIKE alone)."""
    if request.param in ("filter", "common"):
        monkeypatch.setattr(caselist_store, "TEXT_CANDIDATES", 0)
    if request.param == "common":
        monkeypatch.setattr(caselist_store, "FILTER_CANDIDATES", 0)
        monkeypatch.setattr(caselist_store, "SHORT_TEXT_TERMS", 0)
        monkeypatch.setattr(caselist_store, "COMMON_IN_SAMPLE", 1)
    return str(request.param)


async def test_a_text_is_found_in_the_description_or_the_address_of_any_status(
        gridbot: Gridbot, filed: Filed, way: str) -> None:
    assert (await found(gridbot, "门口井盖"))[0] == {filed.lid}  # in the description
    assert (await found(gridbot, "幸福路"))[0] == {filed.lamp}  # in the address
    assert (await found(gridbot, "已清"))[0] == {filed.closed}  # a closed case
    assert (await found(gridbot, "已清", status="open"))[0] == set()
    assert (await found(gridbot, "水管爆裂"))[0] == set()
    numbers, counts = await found(gridbot, "号楼")
    assert numbers == {filed.lid, filed.other_grid, filed.closed}
    assert counts == {"registered": 2, "closed": 1}


async def test_texts_of_one_and_two_characters(gridbot: Gridbot, filed: Filed,
                                               way: str) -> None:
    assert (await found(gridbot, "井盖"))[0] == {filed.lid, filed.other_grid}
    assert (await found(gridbot, "古井"))[0] == {filed.lamp}  # the address's last two
    assert (await found(gridbot, "井"))[0] == {filed.lid, filed.lamp, filed.other_grid}
    assert (await found(gridbot, "楼"))[0] == {filed.lid, filed.other_grid, filed.closed}
    assert (await found(gridbot, "清"))[0] == {filed.closed}  # a description's last one
    assert (await found(gridbot, "鼎"))[0] == set()
    numbers, counts = await found(gridbot, "井")
    assert counts == {"registered": 3}


async def test_a_case_described_in_a_long_message_is_filed_and_found(
        gridbot: Gridbot) -> None:
    """A Telegram message may hold 4,096 characters (12 kB of UTF-8 in Chinese): the case
    is filed whole on both databases (no index entry may be too long for it) and its text
    is found, the end of it too."""
    rnd = random.Random(7)
    text = "".join(chr(rnd.randint(0x4E00, 0x9FA5)) for _ in range(4090)) + "井盖松动"
    number = await file_case(gridbot, GRID_1, text, address="幸福路" + "长" * 500)
    numbers, _ = await found(gridbot, "井盖松动")
    assert numbers == {number}


async def test_wildcards_are_searched_as_themselves(gridbot: Gridbot, filed: Filed,
                                                    way: str) -> None:
    for text in ("%", "_", "%_", "100%_送", "0%"):
        assert (await found(gridbot, text))[0] == {filed.wildcards}, text
    assert (await found(gridbot, "1%0"))[0] == set()
    assert (await found(gridbot, "满_0"))[0] == set()
    assert (await found(gridbot, '"井盖'))[0] == set()  # a quote is no FTS syntax


async def test_latin_letters_are_found_whatever_their_case_on_both_databases(
        gridbot: Gridbot, filed: Filed, way: str) -> None:
    """SQLite's LIKE ignores the case of ASCII letters; PostgreSQL's ILIKE is used for it."""
    number = await file_case(gridbot, GRID_1, "ATM机旁井盖松动", address="Block C")
    for text in ("atm", "ATM", "Atm机", "block c", "C"):
        assert number in (await found(gridbot, text))[0], text


async def test_a_case_edited_later_is_found_by_its_new_text_only(
        gridbot: Gridbot, filed: Filed, way: str) -> None:
    async with gridbot.db.transaction() as conn:
        await conn.execute("UPDATE cases SET description = ?, address = ? WHERE number = ?",
                           ("窨井冒水", "和平路9号", filed.lamp))
    assert (await found(gridbot, "窨井冒水"))[0] == {filed.lamp}
    assert (await found(gridbot, "和平路"))[0] == {filed.lamp}
    assert (await found(gridbot, "路灯不亮"))[0] == set()
    assert (await found(gridbot, "古井"))[0] == set()
    async with gridbot.db.transaction() as conn:
        for table in ("case_events", "case_facts"):  # what refers to it (gridbot itself
            await conn.execute(f"DELETE FROM {table} WHERE case_id ="  # never deletes one)
                               " (SELECT id FROM cases WHERE number = ?)", (filed.wildcards,))
        await conn.execute("DELETE FROM cases WHERE number = ?", (filed.wildcards,))
    assert (await found(gridbot, "小广告"))[0] == set()
    later = await file_case(gridbot, GRID_1, "新来的小广告")
    assert (await found(gridbot, "小广告"))[0] == {later}


async def test_the_search_stays_within_the_persons_scope_and_the_filters(
        gridbot: Gridbot, filed: Filed, way: str) -> None:
    chief = [Actor(1, Role.GRID_CHIEF, GRID_1)]
    assert (await found(gridbot, "井盖", chief))[0] == {filed.lid}
    assert (await found(gridbot, "井盖丢失", chief))[0] == set()
    assert (await found(gridbot, "号楼", chief)) == ({filed.lid, filed.closed},
                                                   {"registered": 1, "closed": 1})
    community = [Actor(1, Role.COMMUNITY_STAFF, COMMUNITY_1)]  # both grids
    assert (await found(gridbot, "井盖", community))[0] == {filed.lid, filed.other_grid}
    in_grid_2 = await caselist.list_cases(
        gridbot.db.conn, caselist.Filters(status="all", q="井盖", grid=GRID_2), community,
        gridbot.clock.now(), gridbot.settings.timezone)
    assert {c.case.number for c in in_grid_2.cases} == {filed.other_grid}
    page = await list_page(gridbot, "grid_chief", GRID_1, "井盖")
    assert set(re.findall(r'data-number="(\d{6}-\d{3,4})"', page)) == {filed.lid}


async def test_a_text_searchs_counts_stop_at_their_own_cap(
        gridbot: Gridbot, filed: Filed, way: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A search counts each state up to TEXT_COUNT_CAP (shown "N+"), the list without a
    text up to COUNT_CAP; what it lists is the same."""
    monkeypatch.setattr(caselist_store, "TEXT_COUNT_CAP", 2)
    more = {await file_case(gridbot, GRID_1, f"井盖松动{n}") for n in range(2)}
    listed = await caselist.list_cases(
        gridbot.db.conn, caselist.Filters(status="all", q="井盖"), [Actor(1, Role.ADMIN)],
        gridbot.clock.now(), gridbot.settings.timezone)
    assert {c.case.number for c in listed.cases} == {filed.lid, filed.other_grid, *more}
    assert (listed.by_state, listed.total, listed.capped, listed.cap) == (
        {"registered": 2}, 2, True, 2)
    plain = await caselist.list_cases(
        gridbot.db.conn, caselist.Filters(status="all"), [Actor(1, Role.ADMIN)],
        gridbot.clock.now(), gridbot.settings.timezone)
    assert (plain.by_state, plain.capped) == ({"registered": 6, "closed": 1}, False)
    page = await list_page(gridbot, "admin", None, "井盖")
    assert re.search(r"state-registered[^>]*>[^<]*<b>2\+</b>", page), page
    assert "最多数到 2" in page


async def test_the_page_and_its_counts_are_read_through_the_text_index(
        gridbot: Gridbot, filed: Filed) -> None:
    conn = gridbot.db.conn
    if is_postgres(conn):
        # Five cases are fewer than any index is worth: 20,000 closed ones more (copies
        # of one, numbered apart), and the planner's statistics, make the choice real.
        columns = [str(r[0]) for r in await fetch(
            conn, "SELECT column_name FROM information_schema.columns WHERE table_name ="
            " 'cases' AND table_schema = current_schema() AND column_name NOT IN"
            " ('id', 'number', 'description', 'address', 'state')")]
        async with gridbot.db.transaction() as tx:
            await tx.execute(
                f"INSERT INTO cases (number, description, address, state, {', '.join(columns)})"
                f" SELECT 'F' || g, '旧案' || g, 'X路' || g, 'closed', {', '.join(columns)}"
                " FROM cases CROSS JOIN generate_series(1, 20000) AS g WHERE number = ?",
                (filed.closed,))
        await conn.execute("ANALYZE cases")
    for text in ("门口井盖", "井盖", "井"):
        query = caselist.query_for(caselist.Filters(status="all", q=text),
                                   [Actor(1, Role.ADMIN)], gridbot.clock.now(),
                                   gridbot.settings.timezone)
        query = await caselist_store.with_text_index(conn, query)
        for sql, params in (caselist_store.select_sql(
                replace(query, states=caselist_store.FINISHED_STATES)),
                caselist_store.count_sql(query)):
            if is_postgres(conn):
                plan = " ".join(str(r[0]) for r in await fetch(conn, "EXPLAIN " + sql,
                                                                  params))
                if len(text) >= 3:  # pg_trgm finds no whole trigram in a shorter text
                    assert "cases_description_trgm" in plan, (text, plan)
                    assert "cases_address_trgm" in plan, (text, plan)
                else:  # a shorter one by the index of the cases' characters (0027)
                    assert "cases_text_chars" in plan, (text, plan)
            else:
                plan = " ".join(str(r[3]) for r in await fetch(
                    conn, "EXPLAIN QUERY PLAN " + sql, params))
                assert "cases_text VIRTUAL TABLE" in plan, (text, plan)
                assert not re.search(r"\bSCAN cases\b(?! USING)", plan), plan


async def test_a_search_asked_again_and_again_is_planned_for_its_own_text(
        gridbot: Gridbot, filed: Filed) -> None:
    """PostgreSQL: a `LIKE ?` statement is never prepared (store.dialect.planned_per_pattern),
    so its plan is always made for its pattern, not a generic one past psycopg's fifth run."""
    for _ in range(8):  # past psycopg's prepare threshold (5)
        for text, cases in (("井盖", {filed.lid, filed.other_grid}), ("门口井盖", {filed.lid})):
            numbers, _ = await found(gridbot, text)
            assert numbers == cases, text
    if is_postgres(gridbot.db.conn):
        kept = [str(r[0]) for r in await fetch(
            gridbot.db.conn, "SELECT statement FROM pg_prepared_statements")]
        assert kept, "psycopg prepared none at all: the check below would prove nothing"
        assert not [sql for sql in kept if " LIKE " in sql], kept


def test_the_open_text_index_is_on_exactly_the_lists_condition() -> None:
    """The open cases' covering index of 0017 is used only if its WHERE is OPEN_SQL."""
    sql = (Path(__file__).resolve().parents[1] / "store" / "migrations"
           / "0017_case_text.sql").read_text(encoding="utf-8")
    assert re.findall(r"WHERE (state IN \([^)]*\))", sql) == [caselist_store.OPEN_SQL]
