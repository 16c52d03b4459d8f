"""Notices from the street office and communities: audience, preview, sending, "收到".

A notice is stored first (`create`), with the time to send it; `send` resolves the
audience at that moment and queues one bulk message per recipient, in one transaction
with the recipient list, so a crash sends it whole or not at all (inside SQLite: see
`store.bulk`). The scheduler sends due notices (and is woken right after a notice is
confirmed); the command line sends at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from bot.domain import sms_segments
from bot.domain.channels import spec_for
from bot.services.broadcast import Bulk, Option, per_channel, queue_staged, render_one
from bot.services.districts import District
from bot.services.reference import ReferenceData
from bot.services.render import Renderer
from store import bulk as bulk_store
from store import notices as notice_store
from store.db import Connection
from store.notices import NoticeRow, People, Recipient

log = logging.getLogger(__name__)

AUDIENCES = ("residents", "chiefs", "staff")
# Who may send notices: street and community staff (and admins).
SENDER_ROLES = frozenset({"dispatcher", "community_staff", "community_director", "admin"})
# Who may call meetings: the same, and grid chiefs (the weekly grid meeting).
ORGANIZER_ROLES = SENDER_ROLES | {"grid_chief"}
MAX_TEXT = 1000
# How long a typed "1" (SMS) can still acknowledge a notice.
ANSWER_WINDOW = timedelta(days=7)


# Between the parts of a scope of several areas or buildings ("G1,G2,building:7"), as the
# console's tree and map send them and as a notice stores them.
SCOPE_SEPARATOR = ","
MAX_SCOPE_PARTS = 500  # a street's grids and buildings fit; a forged list stops there


@dataclass(frozen=True)
class Scope:
    """Where an audience lives: an area with its grids, one building, or several of those
    (`parts`; then `area` is the lowest area holding them all)."""

    code: str  # an area code, "building:ID", or parts joined by SCOPE_SEPARATOR
    area: str  # the area code (the building's grid for a building)
    grids: tuple[str, ...]
    areas: tuple[str, ...]  # the area and every area below it
    building_id: int | None = None
    building_name: str | None = None
    parts: tuple[Scope, ...] = ()  # several areas or buildings; () for one

    def name(self, district: District, locale: str) -> str:
        """How people read the scope: an area's or a building's name (several, listed)."""
        if self.parts:
            joiner = ", " if locale.startswith("en") else "、"
            return joiner.join(part.name(district, locale) for part in self.parts)
        return self.building_name or district.name(self.area, locale)

    def members(self) -> tuple[Scope, ...]:
        """The single areas and buildings this scope is made of (itself when one)."""
        return self.parts or (self,)


def resolve_scope(district: District, text: str) -> Scope | None:
    """An area code, "building:ID", a building's name or address, or several area codes
    and "building:ID"s joined by SCOPE_SEPARATOR; None if unknown."""
    code = text.strip()
    if SCOPE_SEPARATOR in code:
        several = _resolve_parts(district, code.split(SCOPE_SEPARATOR))
        if several is not None:
            return several
    if code.startswith("building:") and code[9:].isdigit():
        building = district.buildings.get(int(code[9:]))
        if building is None:
            return None
        return Scope(code, building.grid_code, (building.grid_code,), (building.grid_code,),
                     building.id, building.name)
    area = district.areas.get(code)
    if area is not None and area.level != "district":
        below = tuple(c for c, a in district.areas.items()
                      if district.ancestor(c, area.level) == code)
        grids = tuple(c for c in below if district.areas[c].level == "grid")
        return Scope(code, code, grids, below)
    place = district.locate_text(code) if code else None
    if place is not None and place.building_id is not None and place.grid_code:
        return resolve_scope(district, f"building:{place.building_id}")
    return None


def _resolve_parts(district: District, texts: Sequence[str]) -> Scope | None:
    """Several codes as one scope: None unless each is an area code or "building:ID";
    parts inside another part are dropped (a grid of a chosen community), and one part
    left is that part's own scope."""
    found: list[Scope] = []
    for text in dict.fromkeys(t.strip() for t in texts if t.strip()):
        if not (text in district.areas or text.startswith("building:")):
            return None
        part = resolve_scope(district, text)
        if part is None or part.parts or len(found) >= MAX_SCOPE_PARTS:
            return None
        found.append(part)
    kept = [part for part in found if not any(_inside(part, other) for other in found)]
    if not kept:
        return None
    if len(kept) == 1:
        return kept[0]
    return Scope(SCOPE_SEPARATOR.join(part.code for part in kept),
                 _lowest_common_area(district, [part.area for part in kept]),
                 tuple(dict.fromkeys(g for part in kept for g in part.grids)),
                 tuple(dict.fromkeys(a for part in kept for a in part.areas)),
                 parts=tuple(kept))


def _inside(part: Scope, other: Scope) -> bool:
    """Whether `other`, an area, holds `part` (an area below it, or a building in it)."""
    if other is part or other.building_id is not None or part.area not in other.areas:
        return False
    return part.building_id is not None or part.area != other.area


def _lowest_common_area(district: District, codes: Sequence[str]) -> str:
    """The lowest area holding all these areas (the district itself at worst)."""
    def chain(code: str | None) -> list[str]:
        found = []
        while code is not None and code in district.areas:
            found.append(code)
            code = district.areas[code].parent
        return found

    common = set(chain(codes[0]))
    for code in codes[1:]:
        common &= set(chain(code))
    return next((c for c in chain(codes[0]) if c in common), codes[0])


def may_address(district: District, roles: Sequence[tuple[str, str | None]], scope: Scope,
                allowed: frozenset[str]) -> str | None:
    """The area of the first of a person's roles that covers the scope, or None.

    An admin covers everything (their area is the scope's street).
    """
    for role, area in roles:
        if role not in allowed:
            continue
        if role == "admin":
            return district.ancestor(scope.area, "street") or scope.area
        level = district.areas[area].level if area in district.areas else None
        if level is not None and district.ancestor(scope.area, level) == area:
            return area
    return None


def scope_refusal(district: District, roles: Sequence[tuple[str, str | None]],
                  scope: Scope | None, allowed: frozenset[str]) -> str | None:
    """Why a person may not address a scope: "scope" (unknown, or not theirs),
    "scope_span" (several parts, each theirs, but no one role of theirs holds them all:
    a notice has one issuer); None when they may."""
    if scope is None:
        return "scope"
    if may_address(district, roles, scope, allowed) is not None:
        return None
    if scope.parts and all(may_address(district, roles, part, allowed) is not None
                           for part in scope.parts):
        return "scope_span"
    return "scope"


def areas_for(district: District, roles: Sequence[tuple[str, str | None]],
              allowed: frozenset[str]) -> list[str]:
    """Areas a person may address: each role's own area, then the areas right below it."""
    found: list[str] = []
    for role, area in roles:
        if role not in allowed:
            continue
        tops = ([c for c, a in district.areas.items() if a.level == "street"]
                if role == "admin" else [area] if area in district.areas else [])
        for top in tops:
            found.append(top)
            found += sorted(c for c, a in district.areas.items() if a.parent == top)
    return list(dict.fromkeys(found))


def scope_tree(district: District, roles: Sequence[tuple[str, str | None]], locale: str,
               allowed: frozenset[str] = SENDER_ROLES) -> list[dict[str, Any]]:
    """The areas (street → community → grid, each followed by its buildings) a person may
    address with `allowed` roles, in tree order: value ("CODE" or "building:ID"), name,
    depth, level and parent (the value of the item above it, or None) of each."""
    children: dict[str | None, list[str]] = {}
    for code, area in sorted(district.areas.items()):
        children.setdefault(area.parent, []).append(code)
    buildings: dict[str, list[int]] = {}
    for b in sorted(district.buildings.values(), key=lambda b: b.name):
        buildings.setdefault(b.grid_code, []).append(b.id)
    seen: set[str] = set()
    found: list[dict[str, Any]] = []

    def walk(code: str, depth: int, parent: str | None) -> None:
        if code in seen:
            return
        seen.add(code)
        area = district.areas[code]
        found.append({"value": code, "name": area.display(locale), "depth": depth,
                      "level": area.level, "parent": parent})
        for child in children.get(code, []):
            walk(child, depth + 1, code)
        for building_id in buildings.get(code, []):
            found.append({"value": f"building:{building_id}", "depth": depth + 1,
                          "name": district.building_name(building_id, locale),
                          "level": "building", "parent": code})

    for top in areas_for(district, roles, allowed):  # a role's area, then those below it
        walk(top, 0, None)
    return found


def audience(scope: Scope, to: str) -> People:
    """Everyone a notice to `to` (residents, chiefs, staff) in a scope reaches."""
    if to == "residents":
        members = scope.members()
        return notice_store.residents(
            [g for part in members if part.building_id is None for g in part.grids],
            [(part.area, part.building_id) for part in members if part.building_id is not None])
    if to == "chiefs":
        return notice_store.chiefs(scope.grids)
    if to == "staff":
        return notice_store.staff(scope.areas)
    raise ValueError(f"audience must be one of {', '.join(AUDIENCES)}, not {to!r}")


async def recipients(conn: Connection, scope: Scope, to: str) -> list[Recipient]:
    """Where a message to an audience reaches each of its people."""
    return await notice_store.reach(conn, audience(scope, to))


@dataclass(frozen=True)
class Preview:
    """What a notice would reach: recipients per channel."""

    total: int
    channels: dict[str, int]

    @property
    def text_only(self) -> int:
        """How many are on channels that cannot show a photo (SMS): they get the text."""
        return sum(count for name, count in self.channels.items()
                   if not spec_for(name).photos_out)


async def preview(conn: Connection, scope: Scope, to: str) -> Preview:
    """Count the audience per channel (nothing is stored)."""
    people = await recipients(conn, scope, to)
    return Preview(len(people), per_channel(people))


@dataclass
class Outreach:
    """What sending to many people needs: templates, the district, quiet hours."""

    renderer: Renderer
    reference: ReferenceData
    quiet: tuple[time, time] | None

    def bulk(self, now: datetime, expires_at: datetime | None = None) -> Bulk:
        """Queueing rules for a bulk message created now."""
        return Bulk(now, self.quiet, self.reference.tz, expires_at)


def notice_context(outreach: Outreach, notice: NoticeRow, locale: str) -> dict[str, Any]:
    """What the notice templates show: who it is from, what it says."""
    return _context(outreach.reference.district, notice.issuer, notice.scope,
                    notice.text(locale), locale)


def _context(district: District, issuer: str | None, scope: str, text: str,
             locale: str) -> dict[str, Any]:
    return {"org": district.name(issuer, locale) if issuer else "", "text": text,
            "area": heading_area(district, scope, locale)}


def heading_area(district: District, code: str, locale: str) -> str:
    """The area a message's heading names for a stored scope: one area's name; none for a
    building, for several parts or for an area gone from the district."""
    # Several areas ticked are not listed in the text: twenty grids' names would make
    # every SMS several segments longer (the console's list and page name them).
    resolved = resolve_scope(district, code)
    if resolved is None or resolved.building_id is not None or resolved.parts:
        return ""
    return resolved.name(district, locale)


def scope_name(district: District, code: str, locale: str) -> str:
    """How people read a stored scope (an area, "building:ID" or several of them, listed);
    the code itself when the district no longer knows it."""
    resolved = resolve_scope(district, code)
    return resolved.name(district, locale) if resolved else code


@dataclass(frozen=True)
class Draft:
    """A notice being composed, before it is stored: where, to whom, what."""

    scope: Scope
    audience: str
    issuer: str
    body: str
    body_en: str | None = None
    has_photo: bool = False


@dataclass(frozen=True)
class DraftPreview:
    """What confirming a draft would do: recipients per channel, and what SMS shows."""

    counts: Preview
    sms_text: dict[str, str]  # per language, the text an SMS recipient reads
    sms_segments: dict[str, int]  # per language, its segments
    photo_not_on_sms: int  # recipients who get the text without the photo


async def preview_draft(conn: Connection, outreach: Outreach, draft: Draft) -> DraftPreview:
    """Count a draft's audience per channel and render its SMS text in both languages
    (with the 收到 reply line) to count its segments; nothing is stored."""
    counts = await preview(conn, draft.scope, draft.audience)
    district = outreach.reference.district
    texts: dict[str, str] = {}
    for locale in ("zh_CN", "en"):
        text = draft.body_en or draft.body if locale == "en" else draft.body
        texts[locale], _ = render_one(
            outreach.renderer, locale, "sms", "notice",
            _context(district, draft.issuer, draft.scope.code, text, locale),
            [Option("ack:0", "bulk.received")])
    return DraftPreview(counts, texts,
                        {locale: sms_segments.segments(text) for locale, text in texts.items()},
                        counts.text_only if draft.has_photo else 0)


def sender_roles(roles: Sequence[tuple[str, str | None]]) -> bool:
    """Whether any of these roles may send notices."""
    return any(role in SENDER_ROLES for role, _ in roles)


def visible_to(district: District, roles: Sequence[tuple[str, str | None]],
               notice: NoticeRow) -> bool:
    """Whether a person may see (and remind, cancel) a notice: its scope is in an area
    they may send to."""
    scope = resolve_scope(district, notice.scope)
    return scope is not None and may_address(district, roles, scope, SENDER_ROLES) is not None


def may_manage(district: District, roles: Sequence[tuple[str, str | None]],
               person_id: int, notice: NoticeRow) -> bool:
    """Whether a person may remind or cancel a notice: they sent it, or they may send from
    the area it was issued by (a street dispatcher for a community's notice; not a
    community for the street's)."""
    if notice.sender_id == person_id:
        return True
    issuer = resolve_scope(district, notice.issuer) if notice.issuer else None
    return issuer is not None and may_address(district, roles, issuer,
                                              SENDER_ROLES) is not None


async def visible_notices(conn: Connection, district: District,
                          roles: Sequence[tuple[str, str | None]],
                          limit: int = 30) -> list[NoticeRow]:
    """The latest notices a person may see, newest first."""
    found = [n for n in await notice_store.latest(conn, 200)
             if visible_to(district, roles, n)]
    return found[:limit]


@dataclass(frozen=True)
class GridAcks:
    """Acknowledgements of a notice in one grid (or area)."""

    code: str | None
    recipients: int
    acknowledged: int

    @property
    def percent(self) -> int:
        """The share acknowledged, 0-100."""
        return round(100 * self.acknowledged / self.recipients) if self.recipients else 0


async def acknowledgements(conn: Connection, notice_id: int) -> list[GridAcks]:
    """Per grid, how many received the notice and how many acknowledged it."""
    return [GridAcks(code, total, done)
            for code, total, done in await notice_store.ack_counts(conn, notice_id)]


async def cancel(conn: Connection, notice_id: int) -> bool:
    """Cancel a scheduled notice before it goes; False when it went (or was cancelled)."""
    return await notice_store.cancel(conn, notice_id)


async def queue_reminder(conn: Connection, notice: NoticeRow, sender_id: int | None,
                         now: datetime) -> NoticeRow:
    """Store a reminder of a notice for those who have not acknowledged it (the scheduler
    sends it right away, as for the bot's Remind button)."""
    reminder, _ = await create_notice(
        conn, sender_id=sender_id, issuer=notice.issuer, scope=notice.scope,
        audience=notice.audience, body=notice.body, send_at=now, now=now, kind="reminder",
        reminds=notice.id)
    return reminder


async def create_notice(
    conn: Connection, *, sender_id: int | None, issuer: str | None, scope: str,
    audience: str, body: str, send_at: datetime, now: datetime, photo_id: int | None = None,
    kind: str = "notice", reminds: int | None = None, outreach: Outreach | None = None,
    body_en: str | None = None,
) -> tuple[NoticeRow, int | None]:
    """Store a notice (kind "notice", "weekly", or a "reminder" of notice `reminds`), with
    an optional English text for those who read English.

    The one way a notice is made: the bot's /notice, `gridbot notice`, the console and the
    scheduler all call this. With `outreach` a notice due now is queued in the same transaction and
    the count of its recipients returned; otherwise (or later) the scheduler sends it.
    """
    notice_id = await notice_store.create(
        conn, sender_id=sender_id, issuer=issuer, scope=scope, audience=audience, body=body,
        photo_id=photo_id, send_at=send_at, now=now, kind=kind, reminds=reminds,
        body_en=body_en or None)
    notice = await notice_store.get(conn, notice_id)
    assert notice is not None
    if outreach is None or send_at > now:
        return notice, None
    return notice, await send(conn, outreach, notice, now)


async def send(conn: Connection, outreach: Outreach, notice: NoticeRow,
               now: datetime) -> int:
    """Queue a stored notice to its audience now; return how many it went to."""
    if notice.kind == "reminder":
        return await _send_reminder(conn, outreach, notice, now)
    scope = resolve_scope(outreach.reference.district, notice.scope)
    if scope is None:  # its area is gone from the district since it was written
        log.warning("notice %s: its scope %s is no longer in the district; sent to no one",
                    notice.id, notice.scope)
        await notice_store.mark_sent(conn, notice.id, 0, now)
        return 0
    async with bulk_store.staged(conn, audience(scope, notice.audience)) as groups:
        count = sum(groups.values())
        if not await notice_store.mark_sent(conn, notice.id, count, now):
            return 0
        await notice_store.add_staged_recipients(conn, notice.id)
        template = "notice" if notice.kind == "notice" else "weekly_meeting"
        await queue_staged(conn, outreach.renderer, outreach.reference.default_locale, groups,
                           template, lambda locale: notice_context(outreach, notice, locale),
                           outreach.bulk(now), [Option(f"ack:{notice.id}", "bulk.received")],
                           notice.photo_id, notice_id=notice.id)
    return count


async def send_due(conn: Connection, outreach: Outreach, now: datetime) -> int:
    """Send every scheduled notice whose time has come; return how many messages."""
    return sum([await send(conn, outreach, notice, now)
                for notice in await notice_store.due(conn, now)])


async def _send_reminder(conn: Connection, outreach: Outreach, reminder: NoticeRow,
                         now: datetime) -> int:
    original = await notice_store.get(conn, reminder.reminds or 0)
    if original is None:
        await notice_store.mark_sent(conn, reminder.id, 0, now)
        return 0
    count = await remind(conn, outreach, original, now)
    await notice_store.mark_sent(conn, reminder.id, count, now)
    return count


async def remind(conn: Connection, outreach: Outreach, notice: NoticeRow,
                 now: datetime) -> int:
    """Send the notice again to those who have not acknowledged it; return how many."""
    async with bulk_store.staged(conn, notice_store.unacknowledged(notice.id)
                                 ) as groups:
        await queue_staged(conn, outreach.renderer, outreach.reference.default_locale, groups,
                           "notice_reminder",
                           lambda locale: notice_context(outreach, notice, locale),
                           outreach.bulk(now), [Option(f"ack:{notice.id}", "bulk.received")],
                           notice_id=notice.id)
    await notice_store.mark_reminded(conn, notice.id, now)
    return sum(groups.values())


def parse_when(text: str, tz: Any, now: datetime) -> datetime | None:
    """Read a local time to send at: "2026-11-24 09:00", "11-24 09:00" or "09:00" (the
    next such time); None when unreadable or not in the future."""
    text = " ".join(text.replace("：", ":").split())
    local_now = now.astimezone(tz)
    for fmt in ("%Y-%m-%d %H:%M", "%m-%d %H:%M", "%H:%M"):
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if fmt == "%H:%M":
            moment = datetime.combine(local_now.date(), parsed.time(), tzinfo=tz)
            if moment <= now:
                moment += timedelta(days=1)
        elif fmt == "%m-%d %H:%M":
            moment = parsed.replace(year=local_now.year, tzinfo=tz)
        else:
            moment = parsed.replace(tzinfo=tz)
        return moment if moment > now else None
    return None
