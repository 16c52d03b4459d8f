"""/visit, /household and /link: a building, then a household of it (or "not registered
yet"), then what the visit needs, the household's card, or the case to link.

Who may see households: bot/services/households.py (the grid's staff and the levels
above); every list and card shown is logged as a read. An information officer logs visits
with the household typed, as before the archive.
"""

from __future__ import annotations

import re
from typing import Any

from bot.domain.households import mask_name
from bot.domain.messages import Choice, Kind
from bot.domain.workflow import Actor
from bot.services import casework
from bot.services import households as household_service
from handlers import common
from handlers.base import Context, short_list_size
from handlers.chief import FIELD_ROLES
from store import cases as case_store
from store import households as household_store
from store import people as people_store
from store.households import Household

FLOW = "visit"
MAX_TEXT = 1000
MAX_BUILDING_BUTTONS = 8
NOT_DIGITS = re.compile(r"\D+")


def _door_key(text: str) -> str:
    return NOT_DIGITS.sub("", text)


async def visit(ctx: Context) -> None:
    """/visit: log a household visit."""
    if await _field_actor(ctx) is None:
        return
    await _begin(ctx, "visit")


async def household(ctx: Context) -> None:
    """/household: a household's card (staff who read households only)."""
    if not household_service.is_reader(await casework.staff_actors(ctx.conn,
                                                                  ctx.contact.person_id)):
        ctx.say("household_not_allowed")
        return
    await _begin(ctx, "card")


async def link(ctx: Context) -> None:
    """/link CASE: link a case to a household."""
    actors = await casework.staff_actors(ctx.conn, ctx.contact.person_id)
    if not household_service.is_reader(actors):
        ctx.say("household_not_allowed")
        return
    number = common.case_number(ctx, ctx.msg.args)
    if number is None:
        return
    await _link(ctx, number)


async def _link(ctx: Context, number: str) -> None:
    actors = await casework.staff_actors(ctx.conn, ctx.contact.person_id)
    if not household_service.is_reader(actors):
        ctx.say("household_not_allowed")
        return
    stored = await case_store.get_by_number(ctx.conn, number)
    if stored is None or not casework.can_view(stored.case, actors):
        ctx.say("case_not_found", number=number)
        return
    await _begin(ctx, "link", number=number, building_id=stored.details.building_id)


async def on_link_button(ctx: Context) -> None:
    """"hhl:NUMBER" on a staff case card: link the case to a household."""
    assert ctx.option is not None
    await _link(ctx, ctx.option.split(":", 1)[1])


async def _field_actor(ctx: Context) -> bool | None:
    roles = await people_store.roles_of(ctx.conn, ctx.contact.person_id)
    if not any(role in FIELD_ROLES for role, _ in roles):
        ctx.say("not_staff")
        return None
    return True


async def _begin(ctx: Context, purpose: str, **data: Any) -> None:
    ctx.finish()
    ctx.goto(FLOW, "building")
    ctx.data.update(purpose=purpose, **data)
    building_id = data.get("building_id")
    if building_id is not None and building_id in ctx.reference.district.buildings:
        await _choose_building(ctx, int(building_id))
        return
    await _ask_building(ctx)


async def _scope_buildings(ctx: Context) -> list[int]:
    """The buildings of the grids this person covers (their own grid for an officer)."""
    actors = await casework.staff_actors(ctx.conn, ctx.contact.person_id)
    grids = set(household_service.grids_of(ctx.reference.district, actors))
    grids |= {a.scope for a in actors if a.role.value == "info_officer" and a.scope}
    return sorted(b.id for b in ctx.reference.district.buildings.values()
                  if b.grid_code in grids)


async def _ask_building(ctx: Context) -> None:
    ids = await _scope_buildings(ctx)
    district = ctx.reference.district
    if 0 < len(ids) <= MAX_BUILDING_BUTTONS:
        ctx.say("visit_building", [Choice(f"vb:{b}", district.building_name(b, ctx.locale))
                                   for b in ids])
    else:
        ctx.say("visit_building")


async def step(ctx: Context) -> bool:
    """The answer at the current step."""
    handler = {"building": _on_building, "household": _on_household, "raised": _on_raised,
               "follow": _on_follow}.get(ctx.conv.step or "")
    if handler is None:
        return False
    await handler(ctx)
    return True


async def prompt(ctx: Context) -> None:
    """Ask the question of the current step again."""
    current = ctx.conv.step
    if current == "building":
        await _ask_building(ctx)
    elif current == "household":
        await _ask_household(ctx)
    elif current == "follow":
        _ask_follow(ctx)
    else:
        ctx.say("visit_raised")


def _text(ctx: Context) -> str:
    return ctx.msg.text.strip()[:MAX_TEXT] if ctx.msg.kind == Kind.TEXT else ""


async def _on_building(ctx: Context) -> None:
    if ctx.option and ctx.option.startswith("vb:") and ctx.option[3:].isdigit():
        await _choose_building(ctx, int(ctx.option[3:]))
        return
    text = _text(ctx)
    if not text:
        await _ask_building(ctx)
        return
    mine = set(await _scope_buildings(ctx))
    found = [p.building_id for p in ctx.reference.district.find_text(text)
             if p.building_id in mine]
    if len(found) == 1 and found[0] is not None:
        await _choose_building(ctx, found[0])
        return
    if ctx.data["purpose"] != "visit":
        ctx.say("visit_building_unknown", place=text[:40])
        await _ask_building(ctx)
        return
    ctx.data["building_text"] = text  # a building not on file: logged as typed
    ctx.goto(FLOW, "household")
    ctx.say("visit_household")


async def _choose_building(ctx: Context, building_id: int) -> None:
    ctx.data["building_id"] = building_id
    ctx.goto(FLOW, "household")
    await _ask_household(ctx)


async def _reader(ctx: Context) -> Actor | None:
    building = ctx.reference.district.buildings.get(int(ctx.data.get("building_id") or 0))
    if building is None:
        return None
    return household_service.reader_for(
        ctx.reference.district, building.grid_code,
        await casework.staff_actors(ctx.conn, ctx.contact.person_id))


async def _households(ctx: Context) -> list[Household]:
    reader = await _reader(ctx)
    if reader is None:
        return []
    return await household_service.list_building(ctx.conn, ctx.reference,
                                                 int(ctx.data["building_id"]), reader, ctx.now)


async def _lookup(ctx: Context) -> list[Household]:
    """The building's households to find the one answered (not shown: no read logged)."""
    if await _reader(ctx) is None:
        return []
    return await household_store.in_building(ctx.conn, int(ctx.data["building_id"]))


async def _ask_household(ctx: Context) -> None:
    found = await _households(ctx)
    building = ctx.reference.district.building_name(ctx.data.get("building_id"), ctx.locale)
    if not found and ctx.data["purpose"] != "visit":
        ctx.finish()
        ctx.say("household_none_here", building=building)
        return
    shown = found[:short_list_size(ctx)]  # SMS: 3, and the door can be typed
    choices = [Choice(f"vh:{h.id}", household_service.short_label(ctx.reference, h,
                                                                   ctx.locale))
               for h in shown]
    if ctx.data["purpose"] == "visit":
        choices.append(Choice("vh:new", ctx.label("btn.household_unregistered")))
    ctx.say("visit_household", choices, building=building, total=len(found))


async def _on_household(ctx: Context) -> None:
    chosen: Household | None = None
    if ctx.option and ctx.option.startswith("vh:"):
        value = ctx.option[3:]
        if value == "new":
            ctx.data["unregistered"] = True
            ctx.say("visit_household_type")
            return
        if value.isdigit():
            chosen = next((h for h in await _lookup(ctx) if h.id == int(value)), None)
    else:
        text = _text(ctx)
        if not text:
            await _ask_household(ctx)
            return
        if ctx.data.get("unregistered") or ctx.data.get("building_text"):
            ctx.data["household_text"] = text
            ctx.goto(FLOW, "raised")
            ctx.say("visit_raised")
            return
        key = _door_key(text)
        chosen = next((h for h in await _lookup(ctx)
                       if key and _door_key(h.unit + h.room) == key), None)
        if chosen is None:
            if ctx.data["purpose"] != "visit":
                await _ask_household(ctx)
                return
            ctx.data["household_text"] = text
            ctx.goto(FLOW, "raised")
            ctx.say("visit_raised")
            return
    if chosen is None:
        await _ask_household(ctx)
        return
    await _chosen(ctx, chosen)


async def _chosen(ctx: Context, chosen: Household) -> None:
    purpose = ctx.data["purpose"]
    reader = await _reader(ctx)
    assert reader is not None
    if purpose == "card":
        ctx.finish()
        await show_card(ctx, chosen, reader)
        return
    if purpose == "link":
        number = str(ctx.data["number"])
        ctx.finish()
        outcome = await household_service.link_case(
            ctx.conn, ctx.reference, number, chosen.id,
            await casework.staff_actors(ctx.conn, ctx.contact.person_id), ctx.now)
        ctx.say("household_linked" if outcome == "linked" else "household_not_found",
                number=number, door=chosen.door)
        return
    ctx.data["household_id"] = chosen.id
    ctx.goto(FLOW, "raised")
    ctx.say("visit_raised_for", door=chosen.door, head=mask_name(chosen.head_name))


async def _on_raised(ctx: Context) -> None:
    text = _text(ctx)
    if not text:
        ctx.say("visit_raised")
        return
    ctx.data["raised"] = text
    ctx.goto(FLOW, "follow")
    _ask_follow(ctx)


def _ask_follow(ctx: Context) -> None:
    ctx.say("visit_follow", [Choice("vf:none", ctx.label("btn.no_follow_up"))])


async def _on_follow(ctx: Context) -> None:
    if ctx.option == "vf:none":
        await _save(ctx, None)
        return
    text = _text(ctx)
    if not text:
        _ask_follow(ctx)
        return
    await _save(ctx, text)


async def _save(ctx: Context, follow_up: str | None) -> None:
    data = dict(ctx.data)
    chosen = None
    if data.get("household_id"):
        chosen = await household_store.get(ctx.conn, int(data["household_id"]))
    await household_service.log_visit(
        ctx.conn, ctx.reference, ctx.contact.person_id, ctx.contact.grid_code, ctx.now,
        raised=str(data["raised"]), follow_up=follow_up,
        building_id=data.get("building_id"), building_text=str(data.get("building_text", "")),
        household=chosen, household_text=str(data.get("household_text", "")))
    ctx.finish()
    next_due = None
    if chosen is not None:
        interval = ctx.reference.household_tags.interval(chosen.tags)
        next_due = ctx.now + interval if interval else None
    ctx.say("visit_logged", door=chosen.door if chosen else "", next_due=next_due,
            follow_up=bool(follow_up))


# --- the household's card ----------------------------------------------------------------

async def show_card(ctx: Context, chosen: Household, reader: Actor) -> None:
    """A household's card for a reader (the read logged), with what they may do."""
    seen = await household_service.view(ctx.conn, ctx.reference, chosen, reader, ctx.locale,
                                        ctx.now)
    choices = [Choice(f"hhv:{chosen.id}", ctx.label("btn.log_visit"))]
    actors = await casework.staff_actors(ctx.conn, ctx.contact.person_id)
    if household_service.reader_for(ctx.reference.district, chosen.grid_code, actors,
                                    household_service.DELETERS) is not None:
        choices.append(Choice(f"hhd:{chosen.id}", ctx.label("btn.delete_household")))
    ctx.say("household_card", choices, building=seen.building, door=seen.door,
            head=seen.head_name, phone=seen.phone, people=seen.people, tags=seen.tags,
            last_visit=seen.last_visit, next_visit=seen.next_visit, visit_count=seen.visits,
            case_numbers=seen.cases)


async def _readable(ctx: Context) -> tuple[Household, Actor] | None:
    assert ctx.option is not None
    value = ctx.option.split(":", 1)[1]
    found = None
    if value.isdigit():
        found = await household_service.readable(
            ctx.conn, ctx.reference, int(value),
            await casework.staff_actors(ctx.conn, ctx.contact.person_id))
    if found is None:
        ctx.say("household_not_found", number="", door="")
    return found


async def on_visit_button(ctx: Context) -> None:
    """"hhv:ID": log a visit to this household."""
    found = await _readable(ctx)
    if found is None:
        return
    await household_store.log_reads(ctx.conn, [found[0].id], ctx.contact.person_id,
                                    found[1].role.value, "visit", ctx.now)
    ctx.finish()
    ctx.data.update(purpose="visit", building_id=found[0].building_id,
                    household_id=found[0].id)
    ctx.goto(FLOW, "raised")
    ctx.say("visit_raised_for", door=found[0].door, head=mask_name(found[0].head_name))


async def on_delete_button(ctx: Context) -> None:
    """"hhd:ID": the street asks to delete a household; "hhd:ID:yes" confirms."""
    assert ctx.option is not None
    parts = ctx.option.split(":")
    actors = await casework.staff_actors(ctx.conn, ctx.contact.person_id)
    if parts[1:] == ["cancel"]:
        ctx.say("cancelled")
        return
    if len(parts) == 3 and parts[2] == "yes" and parts[1].isdigit():
        done = await household_service.delete(ctx.conn, ctx.reference, int(parts[1]), actors,
                                              ctx.now)
        ctx.say("household_deleted" if done else "household_not_found", number="", door="")
        return
    found = await _readable(ctx)
    if found is None:
        return
    if household_service.reader_for(ctx.reference.district, found[0].grid_code, actors,
                                    household_service.DELETERS) is None:
        ctx.say("household_not_allowed")
        return
    ctx.say("household_delete_confirm", [
        Choice(f"hhd:{found[0].id}:yes", ctx.label("btn.delete_household")),
        Choice("hhd:cancel", ctx.label("btn.cancel"))], door=found[0].door)


def due_rows(items: list[household_service.DueItem]) -> list[dict[str, Any]]:
    """Due visits as the templates list them."""
    return [{"label": i.label, "due_at": i.due_at, "last_visit": i.last_visit,
             "overdue_days": i.overdue_days} for i in items]
