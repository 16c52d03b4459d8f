"""The resident's report: category → description → location → photos → confirm → case.

Anything sent at the "wrong" step is kept, not lost: a photo while we ask for words is
attached, a pin while we ask for the category becomes the location, and the person is told.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from bot.domain.geo import distance_m
from bot.domain.messages import Choice, Kind
from bot.domain.workflow import Actor, Case, Role
from bot.services import casework, phonein
from bot.services.districts import Place
from handlers.base import Context
from store import cases as case_store
from store import media as media_store

FLOW = "report"
MAX_DESCRIPTION = 1000
MAX_PHOTOS = 5
DUPLICATE_RADIUS_M = 100.0
DUPLICATE_DAYS = 7
MAX_PLACE_CHOICES = 4  # buildings offered when a typed place is ambiguous (SMS: 2 segments)
ON_BEHALF = "on_behalf"  # a phone-in: the caller's number, SMS or not, the staff role
DONE_WORDS = {"完成", "好了", "跳过", "没有", "done", "skip", "no", "none"}


async def begin(ctx: Context, text: str | None = None) -> None:
    """Start a report, from /report or from a first free-text message."""
    ctx.finish()
    ctx.goto(FLOW, "category")
    ctx.data["photos"] = []
    if ctx.msg.kind in (Kind.PHOTO, Kind.LOCATION):
        await _keep_stray(ctx)
    if text and text.strip():
        await _suggest(ctx, text)
    else:
        _ask_category(ctx)


async def handle(ctx: Context) -> bool:
    """Handle a message at the current step; False when the message is not for this flow."""
    step = ctx.conv.step or "category"
    await STEPS[step](ctx)
    return True


async def prompt(ctx: Context) -> None:
    """Ask the current step's question again."""
    step = ctx.conv.step or "category"
    PROMPTS[step](ctx)


# --- category ---------------------------------------------------------------------------

def _ask_category(ctx: Context, template: str = "report_category") -> None:
    choices = [Choice(f"cat:{c.code}", c.name(ctx.locale))
               for c in ctx.reference.catalog.categories]
    ctx.say(template, choices)


def _is_wordy(text: str) -> bool:
    """At least two letters: "99" or "?" is not a description of a problem."""
    return sum(ch.isalpha() for ch in text) >= 2


async def _suggest(ctx: Context, text: str) -> None:
    if not ctx.data.get("description") and _is_wordy(text):
        _set_description(ctx, text)
    place_note = ""
    if not ctx.data.get("place"):
        found = ctx.reference.district.find_text(text)
        if len(found) == 1:
            ctx.data["place"] = asdict(found[0])
            place_note = _place_text(ctx, found[0])
        elif found:  # "3号楼" of several estates: asked at the location step
            _offer_places(ctx, text, found)
    suggestions = ctx.reference.catalog.suggest(text, limit=3)
    if not suggestions:
        _ask_category(ctx, "report_category_unclear")
        return
    choices = []
    for s in suggestions:
        sub = s.subcategory.code if s.subcategory else ""
        name = s.category.name(ctx.locale)
        if s.subcategory is not None:
            name = f"{name} · {s.subcategory.name(ctx.locale)}"
        choices.append(Choice(f"cat:{s.category.code}:{sub}", name))
    choices.append(Choice("cat:menu", ctx.label("btn.other_category")))
    ctx.say("report_suggest", choices, suggestion=choices[0].label, place=place_note)


async def _on_category(ctx: Context) -> None:
    if ctx.option == "cat:menu":
        _ask_category(ctx)
        return
    if ctx.option and ctx.option.startswith("cat:"):
        _, code, *rest = ctx.option.split(":")
        ctx.data["category"] = code
        ctx.data["subcategory"] = rest[0] if rest and rest[0] else None
        await _next(ctx)
        return
    if ctx.msg.kind == Kind.TEXT:
        await _suggest(ctx, ctx.msg.text)
        return
    await _keep_stray(ctx)
    if ctx.data.get("description"):
        ctx.keep_menu = True  # a photo after a one-message report: the suggestion still holds
    else:
        _ask_category(ctx)


# --- description ------------------------------------------------------------------------

def _ask_description(ctx: Context) -> None:
    ctx.say("report_description", limit=MAX_DESCRIPTION)


def _set_description(ctx: Context, text: str) -> bool:
    cleaned = text.strip()
    if not cleaned:
        return False
    if len(cleaned) > MAX_DESCRIPTION:
        cleaned = cleaned[:MAX_DESCRIPTION]
        ctx.say("report_description_truncated", limit=MAX_DESCRIPTION, got=len(text.strip()))
    ctx.data["description"] = cleaned
    return True


async def _on_description(ctx: Context) -> None:
    if ctx.msg.kind == Kind.TEXT:
        if _set_description(ctx, ctx.msg.text):
            await _next(ctx)
        else:
            ctx.say("report_description_empty")
        return
    await _keep_stray(ctx)
    _ask_description(ctx)


# --- location ---------------------------------------------------------------------------

def _ask_location(ctx: Context) -> None:
    offered = ctx.data.get("place_options")
    if offered:
        district = ctx.reference.district
        choices = [Choice(f"loc:b:{b}", _place_text(ctx, district.building_place(b), True))
                   for b in offered["ids"] if b in district.buildings]
        choices.append(Choice("loc:none", ctx.label("btn.none_of_these")))
        ctx.say("report_location_which", choices, place=offered["text"])
        return
    ctx.say("report_location", ask_location=True)


def _offer_places(ctx: Context, text: str, found: list[Place]) -> None:
    """Remember the buildings an ambiguous text may mean, to ask which one."""
    ids = [p.building_id for p in found if p.building_id is not None][:MAX_PLACE_CHOICES]
    typed = text.strip()  # quoted when it is just the place ("3号楼"), not a whole report
    ctx.data["place_options"] = {"text": typed if len(typed) <= 16 else "", "ids": ids}


def valid_point(lat: float | None, lon: float | None) -> bool:
    """Say whether a latitude and longitude are real numbers within range."""
    return (lat is not None and lon is not None and math.isfinite(lat) and math.isfinite(lon)
            and -90 <= lat <= 90 and -180 <= lon <= 180)


def _point_place(ctx: Context, lat: float, lon: float) -> Place:
    place = ctx.reference.district.locate_point(lat, lon)
    if place.grid_code is None:
        place = Place(None, lat=lat, lon=lon, note="outside_grids")
    return place


async def _on_location(ctx: Context) -> None:
    if ctx.option == "loc:typed":
        typed = str(ctx.data.get("typed_address", ""))
        _set_place(ctx, Place(None, address=typed, note="address_unmatched"))
        ctx.say("report_location_street", place=typed)
        await _next(ctx)
        return
    if ctx.option == "loc:retry":
        _ask_location(ctx)
        return
    if ctx.option == "loc:none":
        ctx.data.pop("place_options", None)
        _ask_location(ctx)
        return
    if ctx.option and ctx.option.startswith("loc:b:"):
        building_id = int(ctx.option[len("loc:b:"):])
        if building_id in ctx.reference.district.buildings:
            place = ctx.reference.district.building_place(building_id)
            _set_place(ctx, place)
            _say_place(ctx, place)
            await _next(ctx)
            return
    if ctx.msg.kind == Kind.LOCATION:
        if not valid_point(ctx.msg.lat, ctx.msg.lon):
            ctx.say("report_location_invalid")
            return
        assert ctx.msg.lat is not None and ctx.msg.lon is not None
        place = _point_place(ctx, ctx.msg.lat, ctx.msg.lon)
        _set_place(ctx, place)
        _say_place(ctx, place)
        await _next(ctx)
        return
    if ctx.msg.kind == Kind.TEXT:
        text = ctx.msg.text.strip()
        if not text:
            _ask_location(ctx)
            return
        candidates = ctx.reference.district.find_text(text)
        if len(candidates) > 1:
            _offer_places(ctx, text, candidates)
            _ask_location(ctx)
            return
        found = candidates[0] if candidates else None
        if found is None:
            ctx.data["typed_address"] = text[:200]
            ctx.say("report_location_unknown", [
                Choice("loc:typed", ctx.label("btn.use_as_typed")),
                Choice("loc:retry", ctx.label("btn.try_again")),
            ], place=text[:200])
            return
        _set_place(ctx, found)
        _say_place(ctx, found)
        await _next(ctx)
        return
    await _keep_stray(ctx)
    if not ctx.data.get("place"):
        _ask_location(ctx)


def _set_place(ctx: Context, place: Place) -> None:
    ctx.data["place"] = asdict(place)
    ctx.data.pop("typed_address", None)
    ctx.data.pop("place_options", None)


def _say_place(ctx: Context, place: Place) -> None:
    if place.grid_code is None:
        ctx.say("report_location_street", place=_place_text(ctx, place))
    else:
        ctx.say("report_location_found", place=_place_text(ctx, place))


def _place_text(ctx: Context, place: Place, with_address: bool = False) -> str:
    """The place as the person reads it: building (and its address), or what was typed,
    or the pin; with the grid."""
    district = ctx.reference.district
    parts = []
    building = district.building_name(place.building_id, ctx.locale) or place.building_name
    if building:
        address = district.building_address(place.building_id, ctx.locale)
        parts.append(f"{building}, {address}" if with_address and address else building)
    elif place.address:
        parts.append(place.address)
    elif place.lat is not None and place.lon is not None:
        parts.append(f"{place.lat:.5f}, {place.lon:.5f}")
    if place.grid_code:
        parts.append(f"({_area(ctx, place.grid_code)})")
    return " ".join(parts)


def _area(ctx: Context, code: str | None) -> str:
    """An area as the reporter reads it: staff on patrol see a grid's code with its name."""
    district = ctx.reference.district
    return district.label(code, ctx.locale) if ctx.data.get("patrol") else district.name(
        code, ctx.locale)


# --- photos -----------------------------------------------------------------------------

def _ask_photos(ctx: Context) -> None:
    ctx.say("report_photos", [Choice("photos:done", ctx.label("btn.no_photos"))],
            limit=MAX_PHOTOS)


async def _add_photo(ctx: Context) -> bool:
    photos: list[int] = ctx.data.setdefault("photos", [])
    if len(photos) >= MAX_PHOTOS:
        ctx.say("report_photos_full", limit=MAX_PHOTOS)
        return False
    photo = ctx.msg.photo
    assert photo is not None
    media_id = await media_store.add(
        ctx.conn, ctx.msg.channel, ctx.now, provider_ref=photo.provider_ref, path=photo.path,
        sha256=photo.sha256, content_type=photo.content_type)
    photos.append(media_id)
    return True


async def _on_photos(ctx: Context) -> None:
    photos: list[int] = ctx.data.setdefault("photos", [])
    if ctx.option == "photos:done":
        await _next(ctx, photos_done=True)
        return
    if ctx.msg.kind == Kind.PHOTO:
        if await _add_photo(ctx):
            if len(photos) >= MAX_PHOTOS:
                await _next(ctx, photos_done=True)
                return
            ctx.say("report_photo_added", [Choice("photos:done", ctx.label("btn.done"))],
                    count=len(photos), limit=MAX_PHOTOS)
        else:
            await _next(ctx, photos_done=True)
        return
    if ctx.msg.kind == Kind.TEXT:
        text = ctx.msg.text.strip()
        if text.lower() in DONE_WORDS:
            await _next(ctx, photos_done=True)
            return
        if text:
            # Words at this step are more about the problem: keep them with the description.
            combined = f"{ctx.data.get('description', '')}\n{text}".strip()
            _set_description(ctx, combined)
            ctx.say("report_description_added")
        _ask_photos(ctx)
        return
    await _keep_stray(ctx)
    _ask_photos(ctx)


# --- confirm, edit, duplicates -----------------------------------------------------------

def _summary_context(ctx: Context) -> dict[str, Any]:
    catalog = ctx.reference.catalog
    category = catalog.get(ctx.data["category"])
    name = category.name(ctx.locale)
    sub_code = ctx.data.get("subcategory")
    for sub in category.subcategories:
        if sub.code == sub_code:
            name = f"{name} · {sub.name(ctx.locale)}"
    place = Place(**ctx.data["place"])
    return {
        "category": name,
        "description": ctx.data["description"],
        "place": _place_text(ctx, place),
        "street_level": place.grid_code is None,
        "photos": len(ctx.data.get("photos", [])),
    }


def _ask_confirm(ctx: Context) -> None:
    ctx.say("report_summary", [
        Choice("confirm:yes", ctx.label("btn.confirm")),
        Choice("confirm:edit", ctx.label("btn.edit")),
        Choice("confirm:cancel", ctx.label("btn.cancel")),
    ], **_summary_context(ctx))


async def _on_confirm(ctx: Context) -> None:
    if ctx.option == "confirm:yes":
        await _check_duplicates_then_file(ctx)
    elif ctx.option == "confirm:edit":
        ctx.goto(FLOW, "edit")
        _ask_edit(ctx)
    elif ctx.option == "confirm:cancel":
        ctx.finish()
        ctx.say("cancelled")
    else:
        if ctx.msg.kind != Kind.TEXT:
            await _keep_stray(ctx)
        else:
            ctx.say("choose_from_menu")
        _ask_confirm(ctx)


def _ask_edit(ctx: Context) -> None:
    ctx.say("report_edit", [
        Choice("edit:category", ctx.label("btn.edit_category")),
        Choice("edit:description", ctx.label("btn.edit_description")),
        Choice("edit:location", ctx.label("btn.edit_location")),
        Choice("edit:photos", ctx.label("btn.edit_photos")),
    ])


async def _on_edit(ctx: Context) -> None:
    if ctx.option and ctx.option.startswith("edit:"):
        step = ctx.option.split(":", 1)[1]
        ctx.data["editing"] = True
        if step == "photos":
            ctx.data["photos"] = []
        ctx.goto(FLOW, step)
        PROMPTS[step](ctx)
        return
    ctx.say("choose_from_menu")
    _ask_edit(ctx)


async def _check_duplicates_then_file(ctx: Context) -> None:
    place = Place(**ctx.data["place"])
    similar = await case_store.open_similar(
        ctx.conn, ctx.data["category"], ctx.now - timedelta(days=DUPLICATE_DAYS),
        lat=place.lat, lon=place.lon, radius_m=DUPLICATE_RADIUS_M,
        building_id=place.building_id)
    # Someone else's case nearby is offered to follow (+1); the person's own is not: they
    # hear of it already, and following it would change nothing.
    reporter_id = await _reporter_id(ctx)
    nearby = [s for s in similar if _is_near(s, place)
              and s.case.reporter_id != reporter_id]
    if nearby:
        ctx.goto(FLOW, "duplicate")
        _ask_duplicate(ctx, [s.case.number for s in nearby], [s.details.description
                                                              for s in nearby])
        return
    await _file(ctx)


def _is_near(stored: case_store.StoredCase, place: Place) -> bool:
    if place.building_id is not None and stored.details.building_id == place.building_id:
        return True
    if None in (place.lat, place.lon, stored.details.lat, stored.details.lon):
        return False
    return distance_m(place.lat, place.lon, stored.details.lat,  # type: ignore[arg-type]
                      stored.details.lon) <= DUPLICATE_RADIUS_M  # type: ignore[arg-type]


def _ask_duplicate(ctx: Context, numbers: list[str], descriptions: list[str]) -> None:
    ctx.data["duplicates"] = numbers
    choices = [Choice(f"follow:{n}", ctx.label("btn.follow", number=n)) for n in numbers]
    choices.append(Choice("dup:new", ctx.label("btn.file_new")))
    ctx.say("report_duplicates", choices,
            cases=[{"number": n, "description": d[:60]}
                   for n, d in zip(numbers, descriptions, strict=True)])


async def _on_duplicate(ctx: Context) -> None:
    if ctx.option == "dup:new":
        await _file(ctx)
        return
    if ctx.option and ctx.option.startswith("follow:"):
        number = ctx.option.split(":", 1)[1]
        stored = await case_store.get_by_number(ctx.conn, number)
        if stored is None:
            await _file(ctx)
            return
        await casework.follow_case(ctx.conn, stored.case, await _reporter_id(ctx), ctx.now)
        ctx.finish()
        ctx.say("report_followed", number=number)
        return
    ctx.say("choose_from_menu")
    numbers = list(ctx.data.get("duplicates", []))
    ctx.say("report_duplicates_again", [
        *(Choice(f"follow:{n}", ctx.label("btn.follow", number=n)) for n in numbers),
        Choice("dup:new", ctx.label("btn.file_new"))])


async def _reporter_id(ctx: Context) -> int:
    """Who reports: the person writing, or the caller a staff member files for."""
    behalf = ctx.data.get(ON_BEHALF)
    if not behalf:
        return ctx.contact.person_id
    if behalf.get("caller_id") is None:
        behalf["caller_id"] = await phonein.caller(ctx.conn, behalf["phone"],
                                                   bool(behalf["sms"]), ctx.now)
    return int(behalf["caller_id"])


async def _file(ctx: Context) -> None:
    place = Place(**ctx.data["place"])
    behalf = ctx.data.get(ON_BEHALF)
    draft = casework.Draft(
        category=ctx.data["category"], subcategory=ctx.data.get("subcategory"),
        description=ctx.data["description"], place=place,
        photo_ids=tuple(ctx.data.get("photos", [])),
        channel=phonein.CHANNEL if behalf else ctx.msg.channel)
    patrol = ctx.data.get("patrol")
    filed = await casework.file_case(
        ctx.conn, ctx.reference, await _reporter_id(ctx), draft, ctx.now,
        reporter_role=Role(patrol["role"]) if patrol else Role.RESIDENT,
        reporter_scope=patrol["scope"] if patrol else None, found_on_patrol=bool(patrol))
    summary = _summary_context(ctx)
    handler_name = filed.handler.name if filed.handler and filed.handler.name else ""
    area = _area(ctx, filed.case.grid_code or filed.case.street_code)
    ctx.finish()
    ctx.say("case_created", number=filed.case.number, category=summary["category"],
            handler=handler_name, deadline=filed.case.deadline,
            area=area,
            street_level=place.grid_code is None)
    ctx.notices.extend(filed.notices)
    if behalf:
        await _phoned_in(ctx, filed.case, behalf)


async def _phoned_in(ctx: Context, case: Case, behalf: dict[str, Any]) -> None:
    """Mark the case as phoned in, link the household chosen, and tell the caller (SMS)
    or the staff member (who passes it on by phone)."""
    filer = Actor(ctx.contact.person_id, Role(behalf["role"]), behalf.get("scope"))
    caller_id, sms = int(behalf["caller_id"]), bool(behalf["sms"])
    household_id = behalf.get("household_id")
    ctx.notices.extend(await phonein.phoned_in(
        ctx.conn, case, filer, caller_id, sms, int(household_id) if household_id else None,
        ctx.now))
    ctx.say("phonein_done", number=case.number, sms=sms, phone=behalf["phone"])


# --- moving on --------------------------------------------------------------------------

async def _next(ctx: Context, photos_done: bool = False) -> None:
    """Go to the first step still missing an answer (or back to the summary when editing)."""
    if photos_done:
        ctx.data["photos_done"] = True
    if not ctx.data.get("category"):
        step = "category"
    elif not ctx.data.get("description"):
        step = "description"
    elif not ctx.data.get("place"):
        step = "location"
    elif not ctx.data.get("photos_done") and not ctx.data.get("editing"):
        step = "photos"
    else:
        step = "confirm"
    ctx.goto(FLOW, step)
    PROMPTS[step](ctx)


async def _keep_stray(ctx: Context) -> None:
    """Keep a photo or pin sent at another step, and say so; refuse other kinds clearly."""
    if ctx.msg.kind == Kind.PHOTO and ctx.msg.photo is not None:
        if await _add_photo(ctx):
            ctx.say("report_photo_kept", count=len(ctx.data["photos"]), limit=MAX_PHOTOS)
    elif ctx.msg.kind == Kind.LOCATION:
        if valid_point(ctx.msg.lat, ctx.msg.lon):
            assert ctx.msg.lat is not None and ctx.msg.lon is not None
            place = _point_place(ctx, ctx.msg.lat, ctx.msg.lon)
            _set_place(ctx, place)
            ctx.say("report_location_kept", place=_place_text(ctx, place))
        else:
            ctx.say("report_location_invalid")


STEPS = {
    "category": _on_category,
    "description": _on_description,
    "location": _on_location,
    "photos": _on_photos,
    "confirm": _on_confirm,
    "edit": _on_edit,
    "duplicate": _on_duplicate,
}

PROMPTS = {
    "category": _ask_category,
    "description": _ask_description,
    "location": _ask_location,
    "photos": _ask_photos,
    "confirm": _ask_confirm,
    "edit": _ask_edit,
    "duplicate": lambda ctx: _ask_duplicate(ctx, list(ctx.data.get("duplicates", [])),
                                            [""] * len(ctx.data.get("duplicates", []))),
}
