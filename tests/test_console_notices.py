"""The console's notices, meetings and district pages (issue 14), in-process over ASGI.

A dispatcher composes a notice to one grid, reads the preview (recipients per channel,
the SMS text and its segments, who will not see the photo), confirms; the same service as
/notice queues it, the list shows its delivery and the acknowledgements per grid. A
scheduled notice can be cancelled; the others reminded. Meetings: called, answered,
reminders shown. The district: a file checked as the CLI checks it, previewed, applied,
and the running bot routes by the new boundary at once.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from bot.bootstrap import Gridbot
from bot.domain.clock import FakeClock
from bot.services import notices
from store import cases as case_store
from store import meetings as meeting_store
from store import notices as notice_store
from store import people as people_store
from tests.chat import ChatDriver
from tests.console_harness import Console, ConsoleClient, file_case
from tests.images import png

STREET = "33010600100000"
COMMUNITY_1, COMMUNITY_2 = "33010600100100", "33010600100200"
GRID_1, GRID_2, GRID_3 = "33010600100101", "33010600100102", "33010600100103"
OTHER_COMMUNITY_GRID = "33010600100203"  # its residents: web:r03…, unlike grid 1's
CASE_NUMBER = re.compile(r"\d{6}-\d{3,4}")


async def residents(bot: Gridbot, grid: str, *channels: str) -> list[int]:
    """Residents at home in a grid, one per channel given; their person ids."""
    now = bot.clock.now()
    found = []
    async with bot.db.transaction() as conn:
        for n, channel in enumerate(channels):
            person = await people_store.add_person(conn, f"居民{grid[-2:]}{n}", now,
                                                   grid_code=grid)
            await people_store.add_contact(conn, person, channel, f"web:r{grid[-2:]}{n}", now)
            found.append(person)
    return found


@asynccontextmanager
async def signed_in(console: Console, person: int) -> AsyncIterator[ConsoleClient]:
    """A console client signed in as the person."""
    async with console.client() as client:
        await console.sign_in(person, client)
        yield client


async def test_a_dispatcher_previews_and_sends_a_notice_to_one_grid_and_sees_its_acks(
        gridbot: Gridbot) -> None:
    console = Console(gridbot)
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    people = await residents(gridbot, GRID_1, "sim-telegram", "sim-sms")
    await residents(gridbot, GRID_2, "sim-telegram")  # not in the audience
    async with signed_in(console, dispatcher) as client:
        form = await client.get("/console/notices/new")
        assert form.status_code == 200
        assert f'value="{GRID_1}"' in form.text and 'value="building:' in form.text
        fields = {"scope": GRID_1, "audience": "residents",
                  "body": "周六上午停水检修，请提前储水。", "body_en": "No water on Saturday."}
        preview = await client.post(
            "/console/notices/preview", data={"csrf": client.csrf, **fields},
            files={"photo": ("water.png", png("water", (64, 48)), "image/png")},
            headers={"Origin": "http://console.test"})
        assert preview.status_code == 200, preview.text
        assert "2 人" in preview.text  # both residents of grid 1, not grid 2's
        assert re.search(r'data-channel="sim-sms">[^<]*: 1<', preview.text)
        assert re.search(r'data-channel="sim-telegram">[^<]*: 1<', preview.text)
        assert "1 条短信" in preview.text  # the SMS text fits in one segment
        assert "No water on Saturday." in preview.text  # what English SMS readers get
        assert 'id="no-photo-on-sms"' in preview.text and "有 1 人" in preview.text
        photo_id = re.search(r'name="photo_id" value="(\d+)"', preview.text)
        assert photo_id, "the photo is kept for the confirmation"
        assert await notice_store.latest(gridbot.db.conn) == []  # nothing stored yet

        sent = await client.post_form("/console/notices/send",
                                      {**fields, "photo_id": photo_id.group(1)})
        assert sent.status_code == 303
        notice_id = int(sent.headers["location"].split("/")[-1].split("?")[0])
        notice = await notice_store.get(gridbot.db.conn, notice_id)
        assert notice is not None and notice.status == "sent" and notice.recipients == 2
        assert notice.sender_id == dispatcher and notice.photo_id == int(photo_id.group(1))
        assert notice.body_en == "No water on Saturday."
        delivery = await notice_store.delivery(gridbot.db.conn, [notice_id])
        assert delivery[notice_id] == {"queued": 2, "sent": 0, "failed": 0}

        now = gridbot.clock.now()
        async with gridbot.db.transaction() as conn:
            assert await notice_store.acknowledge(conn, notice_id, people[0], now) == "new"
        page = await client.get(f"/console/notices/{notice_id}")
        assert page.status_code == 200
        assert "已确认收到 1 / 2（50%）" in page.text
        assert f'data-grid="{GRID_1}"' in page.text and "1 / 2 · 50%" in page.text
        assert 'id="remind"' in page.text
        listed = await client.get("/console/notices/live")
        assert f'data-id="{notice_id}"' in listed.text and "排队中 <b>2</b>" in listed.text

        shown = re.search(r'data-stamp="(\w+)"', page.text)
        assert shown
        live = f"/console/notices/{notice_id}/live?s={shown.group(1)}"
        assert (await client.get(live)).status_code == 204  # nothing changed since
        async with gridbot.db.transaction() as conn:
            await notice_store.acknowledge(conn, notice_id, people[1], now)
        fresh = await client.get(live)
        assert fresh.status_code == 200 and "2 / 2 · 100%" in fresh.text
        async with gridbot.db.transaction() as conn:  # as before, to remind the other one
            await conn.execute("UPDATE notice_recipients SET acked_at = NULL WHERE"
                               " notice_id = ? AND person_id = ?", (notice_id, people[1]))
        reminded = await client.post_form(f"/console/notices/{notice_id}/remind")
        assert reminded.status_code == 303
        delivery = await notice_store.delivery(gridbot.db.conn, [notice_id])
        assert delivery[notice_id]["queued"] == 3  # the one who has not acknowledged


async def test_the_sms_text_of_a_long_notice_shows_its_segments(gridbot: Gridbot) -> None:
    console = Console(gridbot)
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    await residents(gridbot, GRID_1, "sim-sms")
    async with signed_in(console, dispatcher) as client:
        preview = await client.post_form("/console/notices/preview", {
            "scope": GRID_1, "audience": "residents", "body": "停水通知" * 40})
        assert preview.status_code == 200
        shown = re.search(r'data-locale="zh_CN">(\d+) 条短信', preview.text)
        assert shown and int(shown.group(1)) >= 2


async def test_a_scheduled_notice_can_be_cancelled_before_it_goes(
        gridbot: Gridbot, clock: FakeClock) -> None:
    console = Console(gridbot)
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    await residents(gridbot, GRID_1, "sim-telegram")
    later = (clock.now() + timedelta(days=1)).astimezone(gridbot.settings.timezone)
    async with signed_in(console, dispatcher) as client:
        sent = await client.post_form("/console/notices/send", {
            "scope": GRID_1, "audience": "residents", "body": "明天停电",
            "send_at": later.strftime("%Y-%m-%dT%H:%M")})
        assert sent.status_code == 303 and "done=scheduled" in sent.headers["location"]
        notice_id = int(sent.headers["location"].split("/")[-1].split("?")[0])
        page = await client.get(f"/console/notices/{notice_id}")
        assert "待发送" in page.text and 'id="cancel-notice"' in page.text
        cancelled = await client.post_form(f"/console/notices/{notice_id}/cancel")
        assert "done=cancelled" in cancelled.headers["location"]
    clock.advance(timedelta(days=2))
    outreach = notices.Outreach(gridbot.renderer, gridbot.reference, None)
    async with gridbot.db.transaction() as conn:
        assert await notices.send_due(conn, outreach, clock.now()) == 0
    notice = await notice_store.get(gridbot.db.conn, notice_id)
    assert notice is not None and notice.status == "cancelled" and notice.recipients == 0


async def test_a_notice_in_the_past_or_outside_ones_area_is_refused(gridbot: Gridbot) -> None:
    console = Console(gridbot)
    staff = await console.staff("社区干事", "community_staff", COMMUNITY_1)
    chief = await console.staff("网格长", "grid_chief", GRID_1)
    async with signed_in(console, staff) as client:
        form = await client.get("/console/notices/new")
        assert f'value="{GRID_1}"' in form.text and f'value="{COMMUNITY_2}"' not in form.text
        foreign = await client.post_form("/console/notices/preview", {
            "scope": COMMUNITY_2, "audience": "residents", "body": "越界"})
        assert foreign.status_code == 400 and "请选择本辖区内" in foreign.text
        past = await client.post_form("/console/notices/send", {
            "scope": GRID_1, "audience": "residents", "body": "过去",
            "send_at": "2020-01-01T09:00"})
        assert past.status_code == 400 and "发送时间必须晚于现在" in past.text
    assert await notice_store.latest(gridbot.db.conn) == []
    async with signed_in(console, chief) as client:
        assert (await client.get("/console/notices")).status_code == 403


async def test_a_notice_post_without_the_csrf_token_is_refused_and_text_is_inert(
        gridbot: Gridbot) -> None:
    console = Console(gridbot)
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    await residents(gridbot, GRID_1, "sim-telegram")
    async with signed_in(console, dispatcher) as client:
        forged = await client.post("/console/notices/send", data={
            "scope": GRID_1, "audience": "residents", "body": "伪造"})
        assert forged.status_code == 403
        assert await notice_store.latest(gridbot.db.conn) == []
        sent = await client.post_form("/console/notices/send", {
            "scope": GRID_1, "audience": "residents", "body": "<script>alert(1)</script>"})
        page = await client.get(sent.headers["location"])
        assert "<script>alert(1)</script>" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_the_console_and_the_cli_count_the_same_audience(gridbot: Gridbot) -> None:
    await residents(gridbot, GRID_1, "sim-telegram", "sim-sms", "sim-sms")
    scope = notices.resolve_scope(gridbot.reference.district, GRID_1)
    assert scope is not None
    outreach = notices.Outreach(gridbot.renderer, gridbot.reference, None)
    shown = await notices.preview_draft(
        gridbot.db.conn, outreach, notices.Draft(scope, "residents", STREET, "通知",
                                                 has_photo=True))
    assert shown.counts == await notices.preview(gridbot.db.conn, scope, "residents")
    assert shown.counts.channels == {"sim-sms": 2, "sim-telegram": 1}
    assert shown.photo_not_on_sms == 2


def meeting_fields(bot: Gridbot, scope: str | list[str], audience: str = "chiefs",
                   title: str = "本周网格工作例会") -> dict[str, Any]:
    """The meeting form's fields: a title, a place, a start two days on, the ticked parts."""
    starts = (bot.clock.now() + timedelta(days=2)).astimezone(bot.settings.timezone)
    return {"title": title, "place": "社区二楼会议室", "scope": scope, "audience": audience,
            "starts_at": starts.strftime("%Y-%m-%dT%H:%M")}


async def test_a_meeting_called_in_the_console_shows_answers_and_reminders(
        gridbot: Gridbot, clock: FakeClock) -> None:
    console = Console(gridbot)
    staff = await console.staff("社区书记", "community_director", COMMUNITY_1)
    async with signed_in(console, staff) as client:
        page = await client.get("/console/meetings")
        assert page.status_code == 200 and 'id="meeting-form"' in page.text
        called = await client.post_form("/console/meetings", meeting_fields(
            gridbot, COMMUNITY_1))  # one area, as a single tick
        assert called.status_code == 303, called.text
        meeting_id = int(called.headers["location"].split("/")[-1].split("?")[0])
        meeting = await meeting_store.get(gridbot.db.conn, meeting_id)
        assert meeting is not None and meeting.status == "active" and meeting.invited == 4
        answers = await meeting_store.answers(gridbot.db.conn, meeting_id)
        async with gridbot.db.transaction() as conn:
            await meeting_store.answer(conn, meeting_id, answers[0][0], True, clock.now())
            await meeting_store.answer(conn, meeting_id, answers[1][0], False, clock.now())
        live = await client.get(f"/console/meetings/{meeting_id}/live")
        assert 'id="answers-yes" data-count="1"' in live.text
        assert 'id="answers-no" data-count="1"' in live.text
        assert 'id="answers-none" data-count="2"' in live.text
        assert str(answers[0][1]) in live.text
        assert 'data-which="day" data-state="planned"' in live.text
        assert "发给未表示不参加的 3 人" in live.text
        listed = await client.get("/console/meetings")
        assert "本周网格工作例会" in listed.text
        past = await client.post_form("/console/meetings", {
            "title": "x", "place": "y", "scope": COMMUNITY_1, "audience": "chiefs",
            "starts_at": "2020-01-01T09:00"})
        assert past.status_code == 400 and "开始时间必须晚于现在" in past.text
        foreign = await client.post_form("/console/meetings", meeting_fields(
            gridbot, COMMUNITY_2))
        assert foreign.status_code == 400


async def test_a_meeting_for_two_ticked_grids_invites_exactly_their_people(
        gridbot: Gridbot) -> None:
    console = Console(gridbot)
    director = await console.staff("社区书记", "community_director", COMMUNITY_1)
    conn = gridbot.db.conn
    chiefs = {grid: set(await people_store.holders(conn, ["grid_chief"], grid))
              for grid in (GRID_1, GRID_2, GRID_3)}
    assert all(chiefs.values())  # the demo's chiefs: someone to leave out in grid 3
    picked = await residents(gridbot, GRID_1, "sim-telegram") + await residents(
        gridbot, GRID_2, "sim-telegram", "sim-sms")
    await residents(gridbot, GRID_3, "sim-telegram")  # not invited
    async with signed_in(console, director) as client:
        form = await client.get("/console/meetings")
        assert 'id="scope-tree"' in form.text and 'id="audience-map"' in form.text
        assert f'type="checkbox" name="scope" value="{GRID_2}"' in form.text
        called = await client.post_form("/console/meetings", meeting_fields(
            gridbot, [GRID_1, GRID_2], title="两个网格的联席会"))
        assert called.status_code == 303, called.text
        meeting_id = int(called.headers["location"].split("/")[-1].split("?")[0])
        page = await client.get(f"/console/meetings/{meeting_id}")
        by_residents = await client.post_form("/console/meetings", meeting_fields(
            gridbot, f"{GRID_1},{GRID_2}", "residents", "楼道清理动员会"))
        assert by_residents.status_code == 303, by_residents.text
        listed = await client.get("/console/meetings")
    meeting = await meeting_store.get(conn, meeting_id)
    assert meeting is not None and meeting.scope == f"{GRID_1},{GRID_2}"
    invited = {person for person, _, _, _ in await meeting_store.answers(conn, meeting_id)}
    assert invited == chiefs[GRID_1] | chiefs[GRID_2]  # and none of grid 3's
    assert meeting.invited == len(invited)
    both = "翠苑一区第1网格、翠苑一区第2网格"
    assert both in page.text and both in listed.text
    residents_meeting = (await meeting_store.latest(conn, 1))[0]
    assert {person for person, _, _, _ in await meeting_store.answers(
        conn, residents_meeting.id)} == set(picked)
    # each invitation queued; its heading names no area for several (as a notice's)
    rows = await gridbot.db.fetchall("SELECT channel, body FROM outbox")
    assert len(rows) == len(invited) + len(picked)
    assert all(str(body).startswith("📅 会议通知\n") for channel, body in rows
               if channel == "sim-telegram")
    assert not any(GRID_1 in str(body) for _, body in rows)  # not the stored codes


async def test_a_forged_grid_outside_the_organizers_area_calls_no_meeting(
        gridbot: Gridbot) -> None:
    console = Console(gridbot)
    director = await console.staff("社区书记", "community_director", COMMUNITY_1)
    async with signed_in(console, director) as client:
        for forged_scope in ([GRID_1, OTHER_COMMUNITY_GRID], f"{GRID_1},{OTHER_COMMUNITY_GRID}"):
            forged = await client.post_form("/console/meetings", meeting_fields(
                gridbot, forged_scope))
            assert forged.status_code == 400 and "请选择本辖区内的区域或楼栋" in forged.text
            assert re.search(rf'value="{GRID_1}"[^>]*checked', forged.text)  # kept
        untitled = await client.post_form("/console/meetings", {
            **meeting_fields(gridbot, [GRID_1, GRID_2]), "title": ""})
        assert untitled.status_code == 400 and "请填写会议名称" in untitled.text
        for grid in (GRID_1, GRID_2):  # the ticks come back as they were
            assert re.search(rf'value="{grid}"[^>]*checked', untitled.text)
        assert not re.search(rf'value="{GRID_3}"[^>]*checked', untitled.text)
    # director of both communities: each grid is theirs, but no one role holds the two
    async with gridbot.db.transaction() as conn:
        await people_store.grant_role(conn, director, "community_director", COMMUNITY_2,
                                      gridbot.clock.now())
    async with signed_in(console, director) as client:
        span = await client.post_form("/console/meetings", meeting_fields(
            gridbot, [GRID_1, OTHER_COMMUNITY_GRID]))
        assert span.status_code == 400 and "请分开召集" in span.text
    assert await meeting_store.latest(gridbot.db.conn, 10) == []
    rows = await gridbot.db.fetchall("SELECT count(*) FROM outbox")
    assert rows[0][0] == 0  # nothing queued


# --- the district ---------------------------------------------------------------------

PIN = (30.2800, 120.1190)  # in grid 2 by the demo's boundary, in grid 1 by the new one


def moved_boundary() -> dict[str, object]:
    """Grids 1 and 2 of community 1 with their shared edge moved east, past PIN."""
    def grid(code: str, name: str, ring: list[list[float]]) -> dict[str, object]:
        return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"code": code, "name": name, "level": "grid",
                               "parent": COMMUNITY_1}}
    return {"type": "FeatureCollection", "features": [
        grid(GRID_1, "翠苑一区第1网格", [[120.115, 30.2789], [120.1195, 30.27865],
                                        [120.1195, 30.28135], [120.115, 30.2814],
                                        [120.115, 30.2789]]),
        grid(GRID_2, "翠苑一区第2网格", [[120.1195, 30.27865], [120.121, 30.279],
                                        [120.1214, 30.28025], [120.1212, 30.2815],
                                        [120.1195, 30.28135], [120.1195, 30.27865]]),
    ]}


def self_intersecting() -> dict[str, object]:
    """A valid first feature and a bow tie as the second."""
    data = moved_boundary()
    features = data["features"]
    assert isinstance(features, list)
    features[1]["geometry"]["coordinates"] = [[[120.1195, 30.2787], [120.121, 30.2815],
                                              [120.121, 30.2787], [120.1195, 30.2815],
                                              [120.1195, 30.2787]]]
    return data


async def report_with_pin(resident: ChatDriver, bot: Gridbot) -> str | None:
    """A resident reports with a pin at PIN; the grid the case went to."""
    await resident.text("/report")
    await resident.press("市容环卫")
    await resident.text("垃圾桶满了，一直没人清")
    await resident.location(*PIN)
    await resident.press("没有照片")
    await resident.press("确认提交")
    number = CASE_NUMBER.search(resident.said)
    assert number, resident.said
    stored = await case_store.get_by_number(bot.db.conn, number.group(0))
    assert stored is not None
    return stored.case.grid_code


async def upload(client: ConsoleClient, name: str, content: str, kind: str = "application/geo+json"
                 ) -> str:
    answer = await client.post("/console/district/check", data={"csrf": client.csrf},
                               files={"file": (name, content.encode(), kind)},
                               headers={"Origin": "http://console.test"})
    return answer.text


async def test_a_self_intersecting_polygon_is_refused_with_its_feature_number(
        gridbot: Gridbot) -> None:
    console = Console(gridbot)
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    async with signed_in(console, dispatcher) as client:
        text = await upload(client, "grids.geojson", json.dumps(self_intersecting()))
        assert 'id="district-error"' in text
        assert f"feature 2 (code {GRID_2}): geometry is not a valid polygon: Self-intersection" \
            in text
        assert 'id="district-apply"' not in text
        bad_csv = "name,address,grid_code,lat,lon\n7幢,学院路7号,33010600100101,30.28,120.116\n" \
                  "8幢,学院路8号,99999999999999,30.28,120.116\n"
        text = await upload(client, "b.csv", bad_csv, "text/csv")
        assert "line 3: grid 99999999999999 is not a known grid" in text


async def test_an_applied_boundary_routes_the_next_report_without_a_restart(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    assert await report_with_pin(resident, gridbot) == GRID_2
    console = Console(gridbot)
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    async with signed_in(console, dispatcher) as client:
        text = await upload(client, "grids.geojson", json.dumps(moved_boundary()))
        assert 'id="district-map"' in text and 'data-change="changed"' in text
        assert "0 个新增" not in text and "修改 2" in text
        content = re.search(r'<textarea name="content" hidden>(.*?)</textarea>', text, re.S)
        assert content
        applied = await client.post_form("/console/district/apply", {
            "kind": "areas", "content": html.unescape(content.group(1))})
        assert applied.status_code == 200, applied.text
        assert "已应用 2 个区域" in applied.text
    assert gridbot.reference.district.locate_point(*PIN).grid_code == GRID_1
    assert await report_with_pin(resident, gridbot) == GRID_1


async def test_only_the_street_changes_the_district(gridbot: Gridbot) -> None:
    console = Console(gridbot)
    staff = await console.staff("社区干事", "community_staff", COMMUNITY_1)
    async with signed_in(console, staff) as client:
        assert (await client.get("/console/district")).status_code == 403
        refused = await client.post_form("/console/district/apply", {
            "kind": "areas", "content": json.dumps(moved_boundary())})
        assert refused.status_code == 403
    assert gridbot.reference.district.locate_point(*PIN).grid_code == GRID_2


async def test_a_community_sees_the_streets_notice_to_it_but_cannot_cancel_it(
        gridbot: Gridbot, clock: FakeClock) -> None:
    console = Console(gridbot)
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    staff = await console.staff("社区干事", "community_staff", COMMUNITY_1)
    other = await console.staff("二区干事", "community_staff", COMMUNITY_2)
    later = (clock.now() + timedelta(days=1)).astimezone(gridbot.settings.timezone)
    async with signed_in(console, dispatcher) as client:
        sent = await client.post_form("/console/notices/send", {
            "scope": COMMUNITY_1, "audience": "chiefs", "body": "周五开会",
            "send_at": later.strftime("%Y-%m-%dT%H:%M")})
        where = sent.headers["location"].split("?")[0]
    async with signed_in(console, staff) as client:
        page = await client.get(where)
        assert page.status_code == 200 and 'id="cancel-notice"' not in page.text
        refused = await client.post_form(f"{where}/cancel")
        assert refused.status_code == 404
    async with signed_in(console, other) as client:
        assert (await client.get(where)).status_code == 404
    notice = await notice_store.get(gridbot.db.conn, int(where.rsplit("/", 1)[1]))
    assert notice is not None and notice.status == "scheduled"


async def test_the_pages_speak_english_to_staff_who_chose_it(gridbot: Gridbot) -> None:
    console = Console(gridbot)
    dispatcher = await console.staff("Zhao", "dispatcher", STREET)
    async with gridbot.db.transaction() as conn:
        await people_store.set_locale(conn, dispatcher, "en")
    await residents(gridbot, GRID_1, "sim-sms")
    async with signed_in(console, dispatcher) as client:
        form = await client.get("/console/notices/new")
        assert "New notice" in form.text and "Cuiyuan Area 1 Grid 1" in form.text
        assert "Map of the grids" in form.text and "Click a grid to add or remove it" in form.text
        preview = await client.post_form("/console/notices/preview", {
            "scope": GRID_1, "audience": "residents", "body": "停水", "body_en": "No water"})
        assert "1 recipients" in preview.text and "SMS segments" in preview.text
        assert "[Cuiyuan Street] No water" in preview.text
        assert "Meetings" in (await client.get("/console/meetings")).text
        assert "The district" in (await client.get("/console/district")).text


async def test_a_buildings_file_applied_is_found_by_the_bot_at_once(gridbot: Gridbot) -> None:
    console = Console(gridbot)
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    rows = "name,address,grid_code,lat,lon\n新建9幢,学院路99号,33010600100101,30.2801,120.1166\n"
    assert gridbot.reference.district.locate_text("新建9幢") is None
    async with signed_in(console, dispatcher) as client:
        text = await upload(client, "buildings.csv", rows, "text/csv")
        assert 'data-change="new"' in text and "新增 1" in text
        applied = await client.post_form("/console/district/apply",
                                         {"kind": "buildings", "content": rows})
        assert "已应用 1 栋楼" in applied.text
    place = gridbot.reference.district.locate_text("新建9幢")
    assert place is not None and place.grid_code == GRID_1


async def test_a_scheduled_notice_goes_at_its_time_in_each_readers_language(
        gridbot: Gridbot, clock: FakeClock) -> None:
    console = Console(gridbot)
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    chinese, english = await residents(gridbot, GRID_1, "sim-telegram", "sim-telegram")
    async with gridbot.db.transaction() as conn:
        await people_store.set_locale(conn, english, "en")
    later = (clock.now() + timedelta(hours=2)).astimezone(gridbot.settings.timezone)
    async with signed_in(console, dispatcher) as client:
        sent = await client.post_form("/console/notices/send", {
            "scope": GRID_1, "audience": "residents", "body": "今晚停电",
            "body_en": "No power tonight", "send_at": later.strftime("%Y-%m-%dT%H:%M")})
        notice_id = int(sent.headers["location"].split("/")[-1].split("?")[0])
    clock.advance(timedelta(hours=2))
    outreach = notices.Outreach(gridbot.renderer, gridbot.reference, None)
    async with gridbot.db.transaction() as conn:
        assert await notices.send_due(conn, outreach, clock.now()) == 2
    delivery = await notice_store.delivery(gridbot.db.conn, [notice_id])
    assert delivery[notice_id] == {"queued": 2, "sent": 0, "failed": 0}
    zh = await ChatDriver(gridbot, "sim-telegram", f"web:r{GRID_1[-2:]}0").inbox()
    en = await ChatDriver(gridbot, "sim-telegram", f"web:r{GRID_1[-2:]}1").inbox()
    assert "今晚停电" in zh[-1].text and "No power tonight" not in zh[-1].text
    assert "No power tonight" in en[-1].text
    assert chinese != english



async def test_grids_and_a_building_ticked_together_make_one_notice_to_their_residents(
        gridbot: Gridbot) -> None:
    console = Console(gridbot)
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    await residents(gridbot, GRID_1, "sim-telegram", "sim-sms")
    elsewhere = await residents(gridbot, OTHER_COMMUNITY_GRID, "sim-telegram")
    neighbours = await residents(gridbot, GRID_2, "sim-telegram", "sim-telegram")
    district = gridbot.reference.district
    building = next(b for b in district.buildings.values() if b.grid_code == GRID_2)
    async with gridbot.db.transaction() as conn:  # one of grid 2's lives in that building
        await notice_store.set_home(conn, neighbours[0], GRID_2, building.id,
                                    gridbot.clock.now())
    ticked = [GRID_1, OTHER_COMMUNITY_GRID, f"building:{building.id}"]
    async with signed_in(console, dispatcher) as client:
        preview = await client.post_form("/console/notices/preview", {
            "scope": ticked, "audience": "residents", "body": "周六清理楼道杂物"})
        assert preview.status_code == 200, preview.text
        assert "4 人" in preview.text  # grid 1's two, the other grid's one, the building's one
        assert f'name="scope" value="{",".join(ticked)}"' in preview.text
        # a community ticked with one of its grids: the community (the grid is in it)
        inside = await client.post_form("/console/notices/preview", {
            "scope": [COMMUNITY_1, GRID_1], "audience": "residents", "body": "通知"})
        assert f'name="scope" value="{COMMUNITY_1}"' in inside.text
        sent = await client.post_form("/console/notices/send", {
            "scope": ",".join(ticked), "audience": "residents", "body": "周六清理楼道杂物"})
        assert sent.status_code == 303
        listed = await client.get("/console/notices")
    assert f"翠苑一区第1网格、翠苑二区第3网格、{building.name}" in listed.text
    notice = (await notice_store.latest(gridbot.db.conn))[0]
    assert notice.scope == ",".join(ticked) and notice.issuer == STREET
    assert notice.recipients == 4
    got = {r.person_id for r in await notice_store.reach(
        gridbot.db.conn, notice_store.unacknowledged(notice.id))}
    assert elsewhere[0] in got and neighbours[0] in got and neighbours[1] not in got


async def test_a_community_picks_only_its_own_grids_and_a_forged_one_is_refused(
        gridbot: Gridbot) -> None:
    console = Console(gridbot)
    staff = await console.staff("社区干事", "community_staff", COMMUNITY_1)
    await residents(gridbot, GRID_1, "sim-telegram")
    await residents(gridbot, OTHER_COMMUNITY_GRID, "sim-telegram")
    await file_case(gridbot, GRID_1, "楼道堆物")
    own = sorted(c for c, a in gridbot.reference.district.areas.items()
                 if a.level == "grid" and a.parent == COMMUNITY_1)
    async with signed_in(console, staff) as client:
        form = await client.get("/console/notices/new")
        assert 'id="audience-map"' in form.text
        assert "/console/map/data.json?layer=grids" in form.text
        assert f'value="{OTHER_COMMUNITY_GRID}"' not in form.text
        grids = (await client.get("/console/map/data.json?layer=grids")).json()
        assert sorted(f["properties"]["code"] for f in grids["grids"]["features"]) == own
        assert grids["points"] == []  # the outlines alone: no case on the composer's map
        for url in ("/console/notices/preview", "/console/notices/send"):
            forged = await client.post_form(url, {
                "scope": [GRID_1, OTHER_COMMUNITY_GRID], "audience": "residents",
                "body": "越界"})
            assert forged.status_code == 400 and "请选择本辖区内" in forged.text
        joined = await client.post_form("/console/notices/send", {
            "scope": f"{GRID_1},{OTHER_COMMUNITY_GRID}", "audience": "residents",
            "body": "越界"})
        assert joined.status_code == 400
    assert await notice_store.latest(gridbot.db.conn) == []
    # staff of both communities may address each grid, but one notice has one issuer
    async with gridbot.db.transaction() as conn:
        await people_store.grant_role(conn, staff, "community_staff", COMMUNITY_2,
                                      gridbot.clock.now())
    async with signed_in(console, staff) as client:
        span = await client.post_form("/console/notices/preview", {
            "scope": [GRID_1, OTHER_COMMUNITY_GRID], "audience": "residents",
            "body": "两个社区"})
        assert span.status_code == 400 and "请分开发送" in span.text
        each = await client.post_form("/console/notices/preview", {
            "scope": [GRID_1, "33010600100104"], "audience": "residents", "body": "一个社区"})
        assert each.status_code == 200 and 'id="preview-total"' in each.text
