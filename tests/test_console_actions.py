"""Acting on a case from the console (issue 13 item 5): the same service and checks as the
bot's buttons, the audit trail under the person's name, two people at once, photos of the
result, a message to the resident on their own channel, internal notes kept from them."""

from __future__ import annotations

import re

import pytest

from bot.bootstrap import Gridbot
from bot.domain.workflow import EventKind
from bot.services import actions
from store import cases as case_store
from store import outbox as outbox_store
from tests.chat import ChatDriver
from tests.console_harness import Console, file_case
from tests.helpers import GRID_1, PNG, STREET

GRID_2 = "33010600100102"


@pytest.fixture
def console(gridbot: Gridbot) -> Console:
    """The console of the demo gridbot, in-process."""
    return Console(gridbot)


async def version_of(bot: Gridbot, number: str) -> int:
    stored = await case_store.get_by_number(bot.db.conn, number)
    assert stored is not None
    return stored.case.version


async def escalated_to_street(bot: Gridbot, console: Console, number: str) -> None:
    """The grid chief escalates the case to the community, the community to the street."""
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    community = await console.staff("社区书记", "community_director", "33010600100100")
    for person in (chief, community):
        async with bot.db.transaction() as conn:
            await actions.act(conn, bot.reference, person, number, EventKind.ESCALATE,
                              actions.Given(note="需要街道协调"), bot.clock.now())


async def test_a_dispatch_reaches_the_department_and_is_audited_under_the_name(
        gridbot: Gridbot, console: Console) -> None:
    number = await file_case(gridbot, GRID_1, "垃圾堆了三天")
    await escalated_to_street(gridbot, console, number)
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    worker = await console.staff("环卫老钱", "department", "sanitation", "web:sanitation")
    department = ChatDriver(gridbot, "sim-telegram", "web:sanitation")
    async with console.client() as browser:
        await console.sign_in(dispatcher, browser)
        page = (await browser.get(f"/console/cases/{number}")).text
        assert 'data-kind="dispatch"' in page and 'value="dept:sanitation"' in page
        answer = await browser.post_form(f"/console/cases/{number}/act", {
            "kind": "dispatch", "target": "dept:sanitation", "note": "请今天清运",
            "version": str(await version_of(gridbot, number))})
        assert answer.status_code == 303
        shown = (await browser.get(answer.headers["location"])).text
        assert "已派遣" in shown and "调度员小赵" in shown
    said = await department.inbox()
    assert any(number in s.text for s in said), [s.text for s in said]
    assert any("签收" in label for s in said for label, _ in s.buttons)
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.department == "sanitation"
    trail = await case_store.events(gridbot.db.conn, stored.case.id or 0)
    assert (trail[-1].event, trail[-1].actor_id, trail[-1].note) == (
        "dispatch", dispatcher, "请今天清运")
    assert worker


async def test_the_second_of_two_people_acting_at_once_is_told_the_case_changed(
        gridbot: Gridbot, console: Console) -> None:
    number = await file_case(gridbot, GRID_1, "垃圾")
    first = await console.staff("甲", "grid_chief", GRID_1)
    second = await console.staff("乙", "grid_chief", GRID_1)
    seen = str(await version_of(gridbot, number))
    async with console.client() as a, console.client() as b:
        await console.sign_in(first, a)
        await console.sign_in(second, b)
        done = await a.post_form(f"/console/cases/{number}/act",
                                 {"kind": "sign", "version": seen})
        late = await b.post_form(f"/console/cases/{number}/act",
                                 {"kind": "sign", "version": seen})
        assert "done=sign" in done.headers["location"]
        assert "refused=conflict" in late.headers["location"]
        told = (await b.get(late.headers["location"])).text
        assert "这个事件刚刚有了变化" in told and "处理中" in told
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None
    trail = await case_store.events(gridbot.db.conn, stored.case.id or 0)
    assert [e.actor_id for e in trail if e.event == "sign"] == [first]


async def test_only_the_actions_the_workflow_allows_are_offered_and_accepted(
        gridbot: Gridbot, console: Console) -> None:
    number = await file_case(gridbot, GRID_1, "垃圾")
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    async with console.client() as browser:
        await console.sign_in(chief, browser)
        page = (await browser.get(f"/console/cases/{number}")).text
        offered = set(re.findall(r'data-kind="(\w+)"', page))
        assert "sign" in offered and "force_close" not in offered
    async with console.client() as browser:
        await console.sign_in(dispatcher, browser)
        page = (await browser.get(f"/console/cases/{number}")).text
        assert "sign" not in set(re.findall(r'data-kind="(\w+)"', page))  # the grid holds it
        refused = await browser.post_form(f"/console/cases/{number}/act", {"kind": "sign"})
        assert "refused=not_allowed" in refused.headers["location"]
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.state.value == "registered"


async def test_acting_on_a_foreign_case_is_404_and_changes_nothing(
        gridbot: Gridbot, console: Console) -> None:
    foreign = await file_case(gridbot, GRID_2, "别的网格")
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    before = await version_of(gridbot, foreign)
    async with console.client() as browser:
        await console.sign_in(chief, browser)
        for path, data in ((f"/console/cases/{foreign}/act", {"kind": "sign"}),
                           (f"/console/cases/{foreign}/note",
                            {"kind": "internal", "text": "看看"})):
            answer = await browser.post_form(path, data)
            assert answer.status_code == 404
    assert await version_of(gridbot, foreign) == before


async def test_a_post_to_act_without_the_csrf_token_changes_nothing(
        gridbot: Gridbot, console: Console) -> None:
    number = await file_case(gridbot, GRID_1, "垃圾")
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    async with console.client() as browser:
        await console.sign_in(chief, browser)
        answer = await browser.post(f"/console/cases/{number}/act",
                                    data={"kind": "sign"},
                                    headers={"Origin": "http://console.test"})
        assert answer.status_code == 403
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.state.value == "registered"


async def test_a_reason_is_needed_where_the_bot_asks_for_one(gridbot: Gridbot,
                                                             console: Console) -> None:
    number = await file_case(gridbot, GRID_1, "垃圾")
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    async with console.client() as browser:
        await console.sign_in(chief, browser)
        answer = await browser.post_form(f"/console/cases/{number}/act",
                                         {"kind": "escalate", "note": "  "})
        assert "refused=incomplete" in answer.headers["location"]
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.level.value == "grid"


async def test_resolving_with_a_note_and_a_photo_shows_it_as_the_result(
        gridbot: Gridbot, console: Console) -> None:
    number = await file_case(gridbot, GRID_1, "垃圾")
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    async with console.client() as browser:
        await console.sign_in(chief, browser)
        await browser.post_form(f"/console/cases/{number}/act", {"kind": "sign"})
        answer = await browser.post_form(
            f"/console/cases/{number}/act", {"kind": "report_done", "note": "已清运"},
            files={"photo": ("after.png", PNG, "image/png")})
        assert "done=report_done" in answer.headers["location"]
        page = (await browser.get(f"/console/cases/{number}")).text
        assert "处置后照片" in page and "已清运" in page
        thumb = re.search(r'<figure class="photo after"><a href="([^"]+)"', page)
        assert thumb
        photo = await browser.get(thumb.group(1).replace("&amp;", "&"))
        assert photo.status_code == 200 and photo.content == PNG


async def test_a_message_reaches_the_resident_and_an_internal_note_never_does(
        gridbot: Gridbot, console: Console) -> None:
    resident = ChatDriver(gridbot, "sim-sms", "web:sms-resident")
    number = await file_case(gridbot, GRID_1, "垃圾", channel="sim-sms",
                             reporter="web:sms-resident")
    await resident.inbox()  # what filing said
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    async with console.client() as browser:
        await console.sign_in(chief, browser)
        sent = await browser.post_form(f"/console/cases/{number}/note",
                                       {"kind": "message", "text": "明天上午来清运"})
        assert "done=message" in sent.headers["location"]
        kept = await browser.post_form(f"/console/cases/{number}/note",
                                       {"kind": "internal", "text": "上报人是楼长的亲戚"})
        assert "done=internal" in kept.headers["location"]
        page = (await browser.get(f"/console/cases/{number}")).text
        assert "明天上午来清运" in page and "上报人是楼长的亲戚" in page
        too_long = await browser.post_form(f"/console/cases/{number}/note",
                                           {"kind": "message", "text": "长" * 101})
        assert "refused=note" in too_long.headers["location"]
    told = [s.text for s in await resident.inbox()]
    assert len(told) == 1 and "明天上午来清运" in told[0] and number in told[0]
    detail = [s.text for s in await resident.text(f"/case {number}")]
    assert not any("楼长的亲戚" in t for t in detail)
    rows = await gridbot.db.fetchall("SELECT body FROM outbox")
    assert not any("楼长的亲戚" in r[0] for r in rows)
    assert await outbox_store.for_address(gridbot.db.conn, "sim-sms", "web:sms-resident")


async def test_the_case_page_answers_204_until_the_case_or_its_notes_change(
        gridbot: Gridbot, console: Console) -> None:
    number = await file_case(gridbot, GRID_1, "垃圾")
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    async with console.client() as browser:
        await console.sign_in(chief, browser)
        page = (await browser.get(f"/console/cases/{number}")).text
        stamp = re.search(r'data-stamp="([\d.]+)"', page)
        assert stamp
        live = f"/console/cases/{number}/live?s={stamp.group(1)}"
        assert (await browser.get(live)).status_code == 204
        await browser.post_form(f"/console/cases/{number}/note",
                                {"kind": "internal", "text": "备注"})
        changed = await browser.get(live)
        assert changed.status_code == 200 and "备注" in changed.text
