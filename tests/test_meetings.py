"""Meetings: invitations with attend yes / no, the answers, reminders that expire."""

from __future__ import annotations

from datetime import timedelta

from bot.bootstrap import Gridbot
from bot.domain.clock import FakeClock
from store import meetings as meeting_store
from store import outbox as outbox_store
from tests.chat import ChatDriver
from tests.helpers import COMMUNITY_1, add_staff, received, scheduler


async def call_meeting(gridbot: Gridbot, when: str = "11-25 14:30") -> ChatDriver:
    """The community director calls the chiefs of community 1 to a meeting."""
    await add_staff(gridbot, "社区主任", "community_director", COMMUNITY_1, "web:director")
    director = ChatDriver(gridbot, "sim-telegram", "web:director")
    await director.text("/meeting")
    await director.press("翠苑一区社区")
    await director.press("网格长")
    await director.text("本周网格工作例会")
    await director.text("社区二楼会议室")
    await director.text(when)
    assert "将通知 4 人" in director.said
    await director.press("发送")
    assert "邀请正在发出" in director.said
    return director


async def test_invitees_answer_and_the_organizer_sees_the_answers(gridbot: Gridbot) -> None:
    director = await call_meeting(gridbot)
    assert await scheduler(gridbot).send_pending(gridbot.clock.now()) == 4
    chief_1 = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    chief_2 = ChatDriver(gridbot, "sim-telegram", "web:chief-0102")
    [invitation] = await received(chief_1)
    assert "本周网格工作例会" in invitation and "11-25 14:30" in invitation
    await received(chief_2)
    await chief_1.press("参加")
    assert "已登记您参加" in chief_1.said
    await chief_2.press("不参加")
    assert "不参加" in chief_2.said

    await director.text("/meeting")
    await director.press("本周网格工作例会")
    assert "参加 1 人：王丽华" in director.said
    assert "不参加 1 人：陈建国" in director.said and "未回复 2 人" in director.said


async def meeting_news(chat: ChatDriver) -> list[str]:
    """What reached a chief besides the morning's list of households due a visit."""
    return [text for text in await received(chat) if "应走访" not in text]


async def test_reminders_go_a_day_and_an_hour_before_and_not_to_those_who_declined(
        gridbot: Gridbot, clock: FakeClock) -> None:
    await call_meeting(gridbot)  # Wednesday 14:30 local; now Monday 10:00
    await scheduler(gridbot).send_pending(clock.now())
    chief_2 = ChatDriver(gridbot, "sim-telegram", "web:chief-0102")
    await received(chief_2)
    await chief_2.press("不参加")
    chief_1 = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    await meeting_news(chief_1)

    clock.advance(timedelta(hours=28, minutes=30))  # Tuesday 14:30: a day before
    await scheduler(gridbot).tick()
    [reminder] = await meeting_news(chief_1)
    assert "明天开会" in reminder
    assert await meeting_news(chief_2) == []
    await scheduler(gridbot).tick()
    assert await received(chief_1) == []  # once

    clock.advance(timedelta(hours=23))  # Wednesday 13:30: an hour before
    await scheduler(gridbot).tick()
    [soon] = await meeting_news(chief_1)
    assert "1 小时后" in soon
    director = ChatDriver(gridbot, "sim-telegram", "web:director")
    answers = await received(director)
    assert any("回复情况" in text for text in answers)


async def test_a_reminder_still_queued_when_the_meeting_starts_is_dropped(
        gridbot: Gridbot, clock: FakeClock) -> None:
    await call_meeting(gridbot, when="11-23 10:30")  # in half an hour
    await scheduler(gridbot).send_pending(clock.now())
    clock.advance(timedelta(minutes=31))
    async with gridbot.db.transaction() as conn:
        claimed = await outbox_store.claim(conn, "sim-telegram", clock.now(), 100)
    assert not [m for m in claimed if m.body.startswith("📅")]
    rows = await gridbot.db.fetchall("SELECT count(*) FROM outbox WHERE status = 'expired'")
    assert rows[0][0] == 4


async def test_a_late_start_sends_one_reminder_not_two(
        gridbot: Gridbot, clock: FakeClock) -> None:
    await call_meeting(gridbot)
    await scheduler(gridbot).send_pending(clock.now())
    chief_1 = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    await meeting_news(chief_1)
    clock.advance(timedelta(hours=51, minutes=50))  # down until 20 minutes before
    await scheduler(gridbot).tick()
    [reminder] = await meeting_news(chief_1)
    assert "1 小时后" in reminder


async def test_only_invitees_can_answer(gridbot: Gridbot) -> None:
    await call_meeting(gridbot)
    await scheduler(gridbot).send_pending(gridbot.clock.now())
    meeting_id = (await gridbot.db.fetchall("SELECT id FROM meetings"))[0][0]
    stranger = ChatDriver(gridbot, "sim-telegram", "web:stranger")
    await stranger.option(f"rsvp:{meeting_id}:yes")
    assert "不存在" in stranger.said
    rows = await gridbot.db.fetchall("SELECT count(*) FROM meeting_invitees"
                                     " WHERE answer IS NOT NULL")
    assert rows[0][0] == 0


async def test_a_meeting_whose_area_is_gone_invites_no_one_and_holds_up_no_other(
        gridbot: Gridbot) -> None:
    now = gridbot.clock.now()
    async with gridbot.db.transaction() as conn:
        lost = await meeting_store.create(
            conn, organizer_id=None, title="旧楼协调会", place="3幢", scope="building:999999",
            starts_at=now + timedelta(days=2), audience="chiefs", now=now)
    await call_meeting(gridbot)
    assert await scheduler(gridbot).send_pending(gridbot.clock.now()) == 4
    meeting = await meeting_store.get(gridbot.db.conn, lost)
    assert meeting is not None and meeting.status == "active" and meeting.invited == 0
    staged = await gridbot.db.fetchall("SELECT count(*) FROM temp.bulk_staged")
    assert staged[0][0] == 0  # nothing left behind for the next message to many
