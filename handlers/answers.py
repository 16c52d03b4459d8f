"""Answers to bulk messages, in any dialogue: "收到" to a notice, attend yes / no to a meeting.

Notices and invitations carry standing buttons (`ack:ID`, `rsvp:ID:yes`) that do not open
a menu, and on SMS a bare "1"/"2" answers the latest of them. The router asks the question
of the dialogue under way again after a button answer, so a half-written report goes on.
"""

from __future__ import annotations

from bot.domain.messages import Kind
from bot.services import notices
from handlers.base import Context
from store import meetings as meeting_store
from store import notices as notice_store


async def on_ack(ctx: Context) -> None:
    """"ack:ID": the recipient pressed 收到 / Received."""
    assert ctx.option is not None
    part = ctx.option.split(":", 1)[1]
    await _acknowledge(ctx, int(part) if part.isdigit() else 0)


async def _acknowledge(ctx: Context, notice_id: int) -> None:
    outcome = await notice_store.acknowledge(ctx.conn, notice_id, ctx.contact.person_id,
                                             ctx.now)
    ctx.say("notice_acked" if outcome != "unknown" else "menu_stale")


async def typed_answer(ctx: Context) -> bool:
    """A bare "1"/"2" or "收到" answering the latest notice or invitation (SMS, idle)."""
    if ctx.msg.kind != Kind.TEXT:
        return False
    typed = ctx.msg.text.strip().lower()
    if typed not in ("1", "2", "收到", "received"):
        return False
    person = ctx.contact.person_id
    notice = await notice_store.latest_unacknowledged(ctx.conn, person,
                                                      ctx.now - notices.ANSWER_WINDOW)
    meeting = await meeting_store.latest_unanswered(ctx.conn, person, ctx.now)
    if meeting is not None and (notice is None or meeting[1] > notice[1]) \
            and typed in ("1", "2"):
        await answer(ctx, meeting[0], typed == "1")
        return True
    if notice is not None and typed != "2":
        await _acknowledge(ctx, notice[0])
        return True
    return False


async def ack_command(ctx: Context) -> None:
    """"收到" typed on its own: acknowledge the latest notice, if any."""
    if not await typed_answer(ctx):
        ctx.say("notice_nothing_to_ack")


async def on_rsvp(ctx: Context) -> None:
    """"rsvp:ID:yes|no": an invitee's answer."""
    assert ctx.option is not None
    _, meeting_part, choice = (ctx.option.split(":") + ["", ""])[:3]
    await answer(ctx, int(meeting_part) if meeting_part.isdigit() else 0, choice == "yes")


async def answer(ctx: Context, meeting_id: int, attend: bool) -> None:
    """Record an invitee's answer and thank them."""
    meeting = await meeting_store.get(ctx.conn, meeting_id)
    if meeting is None or meeting.starts_at <= ctx.now or not await meeting_store.answer(
            ctx.conn, meeting_id, ctx.contact.person_id, attend, ctx.now):
        ctx.say("meeting_not_found")
        return
    ctx.say("meeting_answered", attend=attend, title=meeting.title,
            starts_at=meeting.starts_at, place=meeting.place)
