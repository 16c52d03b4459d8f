"""Staff on a case: the action buttons of an assignment, /tasks, and the staff case card.

Every action is checked twice: the buttons offered are those the person's roles allow
(`casework.action_choices`), and pressing one checks role, scope and state again against
the case as it is now, so an old, forged or someone else's button changes nothing.
"""

from __future__ import annotations

import logging

from bot.domain import stats
from bot.domain.channels import spec_for
from bot.domain.messages import Choice, Kind
from bot.domain.workflow import Actor, Event, EventKind, Role
from bot.services import actions, casework, households, people
from bot.services import stats as stats_service
from handlers import common
from handlers.base import Context, short_list_size
from store import cases as case_store
from store import media as media_store
from store.cases import StoredCase

log = logging.getLogger(__name__)

FLOW = "staff"
MAX_NOTE = actions.MAX_NOTE
NEEDS_INPUT = actions.NEEDS_INPUT
# Staff roles below the community see residents' phone numbers masked.
MASKED_ROLES = {Role.GRID_CHIEF, Role.INFO_OFFICER, Role.DEPARTMENT}
DONE_WORDS = {"完成", "跳过", "done", "skip"}


async def on_action(ctx: Context) -> None:
    """A pressed action button: "act:NUMBER:EVENT"."""
    assert ctx.option is not None
    _, number, kind_value = ctx.option.split(":", 2)
    await start_action(ctx, number, kind_value)


async def start_action(ctx: Context, number: str, kind_value: str) -> None:
    """Check the action against the case as it is now; ask for what it needs, or apply."""
    actors = await casework.staff_actors(ctx.conn, ctx.contact.person_id)
    stored = await case_store.get_by_number(ctx.conn, number)
    if not actors:
        log.warning("refused %s on case %s for person %s: not staff", kind_value, number,
                    ctx.contact.person_id)
        ctx.say("not_staff")
        return
    if stored is None or not casework.can_view(stored.case, actors):
        log.warning("refused %s on case %s for person %s: outside their scope",
                    kind_value, number, ctx.contact.person_id)
        ctx.say("case_not_found", number=number)
        return
    try:
        kind = EventKind(kind_value)
    except ValueError:
        ctx.say("menu_stale")
        return
    actor = casework.actor_for(stored.case, kind, actors)
    if actor is None:
        ctx.say("action_conflict", number=number,
                state=ctx.label(f"state.{stored.case.state.value}"))
        await show_case(ctx, stored, actors)
        return
    need = NEEDS_INPUT.get(kind)
    if need is None:
        await _apply(ctx, stored, Event(kind), actor)
        return
    ctx.finish()
    ctx.goto(FLOW, need)
    ctx.data.update(number=number, kind=kind.value, photos=[])
    await prompt(ctx)


async def prompt(ctx: Context) -> None:
    """Ask for what the pending action needs."""
    step = ctx.conv.step
    action = ctx.label(f"act.{ctx.data.get('kind', '')}")
    if step == "reason":
        ctx.say("action_ask_reason", action=action)
    elif step == "note":
        ctx.say("action_ask_note")
    elif step == "merge":
        ctx.say("action_ask_merge")
    elif step == "days":
        ctx.say("action_ask_days")
    elif step == "target":
        stored = await case_store.get_by_number(ctx.conn, str(ctx.data.get("number")))
        if stored is not None:
            ctx.say("action_ask_department", _targets(ctx, stored))


def _targets(ctx: Context, stored: StoredCase) -> list[Choice]:
    """Where a case can be dispatched: down to a grid or community, or to a department."""
    return [Choice(f"to:{t.value}", t.name)
            for t in actions.targets(ctx.reference, stored.case, ctx.locale)]


async def handle(ctx: Context) -> bool:
    """The answer to what a pending action asked for."""
    number = str(ctx.data.get("number", ""))
    stored = await case_store.get_by_number(ctx.conn, number)
    if stored is None:
        ctx.finish()
        return False
    kind = EventKind(str(ctx.data["kind"]))
    actors = await casework.staff_actors(ctx.conn, ctx.contact.person_id)
    actor = casework.actor_for(stored.case, kind, actors)
    if actor is None:
        ctx.finish()
        ctx.say("action_conflict", number=number,
                state=ctx.label(f"state.{stored.case.state.value}"))
        return True
    step = ctx.conv.step
    text = ctx.msg.text.strip() if ctx.msg.kind == Kind.TEXT else ""
    if step == "note" and ctx.msg.kind == Kind.PHOTO and ctx.msg.photo is not None:
        photo = ctx.msg.photo
        media_id = await media_store.add(
            ctx.conn, ctx.msg.channel, ctx.now, provider_ref=photo.provider_ref,
            path=photo.path, sha256=photo.sha256, content_type=photo.content_type)
        ctx.data["photos"].append(media_id)
        ctx.say("action_photo_kept", count=len(ctx.data["photos"]))
        return True
    photos = tuple(ctx.data.get("photos", []))
    given = _given(ctx, stored, step, text, photos)
    event = actions.build_event(ctx.reference, stored.case, kind, given, ctx.now) \
        if given is not None else None
    if event is None:
        await prompt(ctx)
        return True
    ctx.finish()
    await _apply(ctx, stored, event, actor, after_photos=photos)
    return True


def _given(ctx: Context, stored: StoredCase, step: str | None, text: str,
           photos: tuple[int, ...]) -> actions.Given | None:
    """What the answer gives the pending action, or None when it does not fit (asked
    again)."""
    if step == "reason":
        return actions.Given(note=text)
    if step == "note":
        done = text.lower() in DONE_WORDS and bool(photos)  # "完成" after the photos
        return actions.Given(note="" if done else text, photos=photos)
    if step == "merge":
        target = casework.parse_case_number(text)
        if target is None or target == stored.case.number:
            ctx.say("case_usage")
            return None
        return actions.Given(merge_into=target)
    if step == "days":
        return actions.Given(days=int(text)) if text.isdigit() and len(text) <= 3 else None
    if step == "target" and ctx.option and ctx.option.startswith("to:"):
        return actions.Given(target=ctx.option[3:])
    return None


async def _apply(ctx: Context, stored: StoredCase, event: Event, actor: Actor,
                 after_photos: tuple[int, ...] = ()) -> None:
    """Apply an action, tell the person what it did, and show the case's next actions."""
    try:
        acted = await actions.apply(ctx.conn, ctx.reference, stored, event, actor, ctx.now,
                                    after_photos)
    except actions.ActionRefused as refused:
        if refused.code == "not_found":
            ctx.say("case_not_found", number=event.merged_into or "")
        elif refused.code == "conflict":
            ctx.say("action_conflict", number=stored.case.number,
                    state=ctx.label(f"state.{refused.state}") if refused.state else "")
        else:
            ctx.say("action_refused", reason=refused.message)
        return
    case = acted.case
    ctx.notices.extend(acted.notices)
    ctx.say("action_done", number=case.number, action=ctx.label(f"act.{event.kind.value}"),
            state=ctx.label(f"state.{case.state.value}"))
    refreshed = await case_store.get_by_number(ctx.conn, case.number)
    if refreshed is not None:  # again with the photos when the action added some
        await show_case(ctx, refreshed,
                        await casework.staff_actors(ctx.conn, ctx.contact.person_id),
                        media=bool(after_photos))


async def show_case(ctx: Context, stored: StoredCase, actors: list[Actor],
                    media: bool = True) -> None:
    """The staff card of a case with the actions this person may take now; with `media`,
    its photos (the problem, then the result) and its place on a map."""
    case = stored.case
    choices = casework.action_choices(case, actors)
    if spec_for(ctx.msg.channel).buttons and case.grid_code and households.reader_for(
            ctx.reference.district, case.grid_code, actors) is not None:
        # a staff action beside the workflow's (/link N on SMS: its card stays short)
        choices.append(Choice(f"hhl:{case.number}", "@btn.link_household"))
    reporter = ""
    if case.reporter_id is not None:
        reporter = await _reporter_line(ctx, case.reporter_id, actors)
    photos = [m.id for m in await media_store.for_case(ctx.conn, case.id or 0)]
    place, short, location = casework.case_place(ctx.reference.district, case, stored.details)
    ctx.say("staff_case", choices, attach=photos[:casework.MAX_CASE_PHOTOS] if media else (),
            location=location if media else None, number=case.number,
            category=case.category, urgency=case.urgency,
            state_label=ctx.label(f"state.{case.state.value}"),
            level_label=ctx.label(f"level.{case.level.value}"),
            area=ctx.reference.district.label(case.grid_code or case.community_code
                                             or case.street_code, ctx.locale),
            place=place.text(ctx.locale), place_short=short.text(ctx.locale),
            photos=len(photos), description=stored.details.description,
            reporter=reporter, deadline=case.deadline,
            overdue=case.deadline is not None and case.deadline < ctx.now,
            actions=bool(choices))


async def _reporter_line(ctx: Context, reporter_id: int, actors: list[Actor]) -> str:
    """Who reported: name and phone, the phone masked below the community level."""
    return await people.contact_line(ctx.conn, reporter_id,
                                     masked=all(a.role in MASKED_ROLES for a in actors))


async def tasks(ctx: Context) -> None:
    """/tasks: my open cases, overdue first, each a button."""
    ctx.finish()
    actors = await casework.staff_actors(ctx.conn, ctx.contact.person_id)
    if not actors:
        ctx.say("not_staff")
        return
    desks = [desk for actor in actors if (desk := _desk(actor)) is not None]
    found = await case_store.open_for_staff(ctx.conn, ctx.contact.person_id, desks)
    due = []  # on SMS the morning list carries them: /tasks stays within two segments
    if spec_for(ctx.msg.channel).buttons:
        due = await households.due_for_chief(ctx.conn, ctx.reference, ctx.contact.person_id,
                                             ctx.now, ctx.locale)
    if due:  # before the cases: the cases' message carries the buttons
        shown_due = due[:short_list_size(ctx) * 3]
        ctx.say("visits_due", total=len(due), households=[
            {"label": d.label, "overdue_days": d.overdue_days, "due_at": d.due_at}
            for d in shown_due])
    if not found:
        if not due:
            ctx.say("tasks_empty")
        return
    found.sort(key=lambda c: (not (c.deadline and c.deadline < ctx.now),
                              c.deadline or ctx.now))
    rows = [{"number": c.number, "category": c.category,
             "state": ctx.label(f"state.{c.state.value}"), "deadline": c.deadline,
             "overdue": bool(c.deadline and c.deadline < ctx.now)} for c in found]
    shown = found[:short_list_size(ctx)]
    ctx.say("tasks", [Choice(f"case:{c.number}", c.number) for c in shown],
            cases=rows[:len(shown)], total=len(found))


def _desk(actor: Actor) -> tuple[str, str, str] | None:
    """The cases a role sees as its own desk: (level, column, scope)."""
    if actor.scope is None:
        return None
    column = {Role.GRID_CHIEF: ("grid", "grid_code"),
              Role.COMMUNITY_STAFF: ("community", "community_code"),
              Role.COMMUNITY_DIRECTOR: ("community", "community_code"),
              Role.DISPATCHER: ("street", "street_code"),
              Role.DEPARTMENT: ("department", "department")}.get(actor.role)
    return (column[0], column[1], actor.scope) if column else None


async def quick_action(ctx: Context, kind: EventKind) -> None:
    """SMS shortcuts: ACCEPT N, DONE N, ESC N."""
    number = common.case_number(ctx, ctx.msg.args)
    if number is None:
        return
    await start_action(ctx, number, kind.value)


async def stats_command(ctx: Context) -> None:
    """/stats: this month's indicators for the person's own scope."""
    actors = await casework.staff_actors(ctx.conn, ctx.contact.person_id)
    scoped = [a for a in actors if a.scope in ctx.reference.district.areas]
    if not actors:
        ctx.say("not_staff")
        return
    scope = scoped[0].scope if scoped else None
    start, end = stats_service.month_of(ctx.now, ctx.reference.tz)
    found = await stats_service.month_report(ctx.conn, start, end, scope)
    report = found.report
    ctx.say("stats_summary", month=found.month,
            scope=ctx.reference.district.label(scope, ctx.locale) if scope else "",
            due=report.total.due, closed=report.total.closed,
            rates=stats.shown_rates(report.total),
            chiefs=[{"name": found.chiefs[pid][0], "handled": n,
                     "target": stats.APPRAISAL_TARGET}
                    for pid, n in report.handled_by_chief.items()])
