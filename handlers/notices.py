"""/notice for street and community staff.

The dialogue: where (an area, or a building typed by name) → who (residents, grid chiefs,
all staff) → the text → an optional photo → now or at a time → a preview with the number
of recipients per channel → confirm. The notice is stored; the scheduler sends it at once
(or at its time). `/notice` also lists the sender's latest notices: each shows the
acknowledgements per grid, and can remind those who have not acknowledged.
"""

from __future__ import annotations

from datetime import datetime

from bot.domain.messages import Choice, Kind
from bot.services import notices
from handlers.audience import ask_audience, ask_scope, pick_scope, preview_context
from handlers.base import Context
from store import media as media_store
from store import notices as notice_store
from store import people as people_store

FLOW = "notice"


async def begin(ctx: Context) -> None:
    """/notice: start a notice, or open one sent before."""
    ctx.finish()
    roles = await people_store.roles_of(ctx.conn, ctx.contact.person_id)
    areas = notices.areas_for(ctx.reference.district, roles, notices.SENDER_ROLES)
    if not areas:
        ctx.say("notice_not_allowed")
        return
    ctx.goto(FLOW, "scope")
    ctx.data["areas"] = areas
    sent = await notice_store.by_sender(ctx.conn, ctx.contact.person_id, limit=3)
    ask_scope(ctx, "notice_scope", [Choice(f"nshow:{n.id}", ctx.label("bulk.notice_sent", id=n.id))
                     for n in sent])


async def handle(ctx: Context) -> bool:
    """One answer in the notice dialogue."""
    step = ctx.conv.step or "scope"
    await STEPS[step](ctx)
    return True


async def _on_scope(ctx: Context) -> None:
    scope = await pick_scope(ctx, notices.SENDER_ROLES)
    if scope is None:
        ask_scope(ctx, "notice_scope")
        return
    ctx.data["scope"] = scope.code
    ctx.goto(FLOW, "audience")
    ask_audience(ctx, "notice_audience")


async def _on_audience(ctx: Context) -> None:
    if not (ctx.option and ctx.option.startswith("nto:")):
        ask_audience(ctx, "notice_audience")
        return
    ctx.data["audience"] = ctx.option.split(":", 1)[1]
    ctx.goto(FLOW, "text")
    ctx.say("notice_text", limit=notices.MAX_TEXT)


async def _on_text(ctx: Context) -> None:
    if ctx.msg.kind == Kind.PHOTO and ctx.msg.photo is not None:
        await _keep_photo(ctx)
        ctx.say("notice_text", limit=notices.MAX_TEXT)
        return
    text = ctx.msg.text.strip() if ctx.msg.kind == Kind.TEXT else ""
    if not text:
        ctx.say("notice_text", limit=notices.MAX_TEXT)
        return
    ctx.data["text"] = text[:notices.MAX_TEXT]
    if len(text) > notices.MAX_TEXT:
        ctx.say("notice_text_cut", limit=notices.MAX_TEXT)
    if ctx.data.get("photo"):
        _ask_when(ctx)
        return
    ctx.goto(FLOW, "photo")
    ctx.say("notice_photo", [Choice("nphoto:none", ctx.label("btn.no_photos"))])


async def _keep_photo(ctx: Context) -> None:
    photo = ctx.msg.photo
    assert photo is not None
    ctx.data["photo"] = await media_store.add(
        ctx.conn, ctx.msg.channel, ctx.now, provider_ref=photo.provider_ref, path=photo.path,
        sha256=photo.sha256, content_type=photo.content_type)


async def _on_photo(ctx: Context) -> None:
    if ctx.msg.kind == Kind.PHOTO and ctx.msg.photo is not None:
        await _keep_photo(ctx)
    elif ctx.option != "nphoto:none":
        ctx.say("notice_photo", [Choice("nphoto:none", ctx.label("btn.no_photos"))])
        return
    _ask_when(ctx)


def _ask_when(ctx: Context) -> None:
    ctx.goto(FLOW, "when")
    ctx.say("notice_when", [Choice("nwhen:now", ctx.label("bulk.send_now"))])


async def _on_when(ctx: Context) -> None:
    if ctx.option == "nwhen:now":
        ctx.data.pop("send_at", None)
    else:
        moment = notices.parse_when(ctx.msg.text, ctx.reference.tz, ctx.now) \
            if ctx.msg.kind == Kind.TEXT else None
        if moment is None:
            ctx.say("notice_when_unclear")
            _ask_when(ctx)
            return
        ctx.data["send_at"] = moment.isoformat()
    ctx.goto(FLOW, "confirm")
    await _ask_confirm(ctx)


async def _ask_confirm(ctx: Context) -> None:
    send_at = ctx.data.get("send_at")
    ctx.say("notice_preview", [Choice("nconfirm:yes", ctx.label("bulk.send")),
                               Choice("nconfirm:no", ctx.label("btn.cancel"))],
            attach=[int(ctx.data["photo"])] if ctx.data.get("photo") else [],
            text=ctx.data["text"], send_at=datetime.fromisoformat(send_at) if send_at else None,
            has_photo=bool(ctx.data.get("photo")), **await preview_context(ctx))


async def _on_confirm(ctx: Context) -> None:
    if ctx.option == "nconfirm:no":
        ctx.finish()
        ctx.say("cancelled")
        return
    if ctx.option != "nconfirm:yes":
        ctx.say("choose_from_menu")
        await _ask_confirm(ctx)
        return
    district = ctx.reference.district
    scope = notices.resolve_scope(district, str(ctx.data["scope"]))
    roles = await people_store.roles_of(ctx.conn, ctx.contact.person_id)
    issuer = notices.may_address(district, roles, scope, notices.SENDER_ROLES) \
        if scope else None
    if scope is None or issuer is None:
        ctx.finish()
        ctx.say("notice_not_allowed")
        return
    send_at = datetime.fromisoformat(ctx.data["send_at"]) if ctx.data.get("send_at") else ctx.now
    notice, _ = await notices.create_notice(  # the scheduler sends it right after the commit
        ctx.conn, sender_id=ctx.contact.person_id, issuer=issuer, scope=scope.code,
        audience=str(ctx.data["audience"]), body=str(ctx.data["text"]),
        photo_id=ctx.data.get("photo"), send_at=send_at, now=ctx.now)
    notice_id = notice.id
    later = send_at > ctx.now
    ctx.finish()
    ctx.say("notice_queued", [Choice(f"nshow:{notice_id}", ctx.label("bulk.notice_status"))],
            id=notice_id, send_at=send_at if later else None)


async def on_show(ctx: Context) -> None:
    """"nshow:ID": a notice's acknowledgements per grid, for its sender, with a reminder
    button while some have not acknowledged."""
    assert ctx.option is not None
    part = ctx.option.split(":", 1)[1]
    notice_id = int(part) if part.isdigit() else 0
    notice = await notice_store.get(ctx.conn, notice_id)
    if notice is None or notice.sender_id != ctx.contact.person_id:
        ctx.finish()
        ctx.say("notice_not_found", id=notice_id)
        return
    district = ctx.reference.district
    counts = await notice_store.ack_counts(ctx.conn, notice_id)
    # `label` names a grid with its code; SMS, short of room, shows the name's end only.
    rows = [{"area": district.name(area, ctx.locale) if area else "-",
             "label": district.label(area, ctx.locale) if area else "-", "total": total,
             "acked": acked} for area, total, acked in counts]
    acked = sum(count for _area, _total, count in counts)
    choices = []
    if notice.status == "sent" and acked < notice.recipients:
        choices.append(Choice(f"nremind:{notice_id}", ctx.label("bulk.remind")))
    ctx.finish()
    ctx.say("notice_status", choices, id=notice_id, text=notice.body[:60],
            status=ctx.label(f"notice_status.{notice.status}"), send_at=notice.send_at,
            total=notice.recipients, acked=acked, grids=rows)


async def on_remind(ctx: Context) -> None:
    """"nremind:ID": remind those who have not acknowledged (sent by the scheduler, which
    renders for many people, right after this commit)."""
    assert ctx.option is not None
    part = ctx.option.split(":", 1)[1]
    notice = await notice_store.get(ctx.conn, int(part) if part.isdigit() else 0)
    ctx.finish()
    if notice is None or notice.sender_id != ctx.contact.person_id:
        ctx.say("notice_not_found", id=part)
        return
    await notices.queue_reminder(ctx.conn, notice, ctx.contact.person_id, ctx.now)
    ctx.say("notice_reminder_queued", id=notice.id)


async def prompt(ctx: Context) -> None:
    """Ask the current question of the notice dialogue again."""
    step = ctx.conv.step or "scope"
    if step == "scope":
        ask_scope(ctx, "notice_scope")
    elif step == "audience":
        ask_audience(ctx, "notice_audience")
    elif step == "text":
        ctx.say("notice_text", limit=notices.MAX_TEXT)
    elif step == "photo":
        ctx.say("notice_photo", [Choice("nphoto:none", ctx.label("btn.no_photos"))])
    elif step == "when":
        _ask_when(ctx)
    elif step == "confirm":
        await _ask_confirm(ctx)


STEPS = {"scope": _on_scope, "audience": _on_audience, "text": _on_text, "photo": _on_photo,
         "when": _on_when, "confirm": _on_confirm}
