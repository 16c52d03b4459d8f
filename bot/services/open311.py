"""Open311 GeoReport v2 over the casework: other systems list services, file and follow
cases, and add updates; `bot/entrypoints/open311.py` puts this on HTTP.

Every answer is plain data (dicts and lists in the spec's field names) that the entrypoint
writes as XML or JSON; every refusal is an `Open311Error` with the spec's status code.
A case filed here is filed by `casework.file_case`, like one from the chat, with the
channel "open311"; updates posted here go through `casework.apply_event` (the workflow
checks them like any actor's).
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlparse

import httpx

from bot.domain import open311 as spec
from bot.domain import workflow
from bot.domain.clock import Clock
from bot.domain.departments import Department
from bot.domain.messages import Photo
from bot.domain.open311 import Open311Error, Service
from bot.domain.workflow import Actor, Case, Event, EventKind, Level, Role
from bot.services import casework
from bot.services.districts import Place
from bot.services.mediafiles import MAX_PHOTO_BYTES, MediaRefused, save_photo
from bot.services.notify import PersonalMessage, render_personal
from bot.services.phones import spellings, to_e164
from bot.services.reference import ReferenceData
from bot.services.render import Renderer, mask_phone
from bot.settings import Settings
from store import cases as case_store
from store import media as media_store
from store import open311 as open311_store
from store import outbox as outbox_store
from store import people as people_store
from store.cases import CaseConflict
from store.db import Connection, Database
from store.open311 import SOURCE, ApiKey

Params = Mapping[str, Sequence[str]]  # a query string or form: each name, all its values
MAX_IDS = 200
MEDIA_TIMEOUT = 10.0

_EVENT_LABELS = {
    EventKind.SUBMIT: "Received", EventKind.REGISTER: "Registered",
    EventKind.REJECT: "Rejected", EventKind.MERGE: "Merged with another case",
    EventKind.DISPATCH: "Dispatched", EventKind.SIGN: "Accepted",
    EventKind.RETURN: "Returned", EventKind.ESCALATE: "Escalated",
    EventKind.REPORT_DONE: "Reported done", EventKind.CHECK_PASS: "Checked and closed",
    EventKind.CHECK_FAIL: "Checked: more work needed", EventKind.RATE: "Rated",
    EventKind.REOPEN: "Reopened", EventKind.FORCE_CLOSE: "Closed by the street office",
    EventKind.COMMENT: "Comment", EventKind.SUSPEND: "Suspended",
    EventKind.RESUME: "Resumed",
}
# Audit notes the public may read: a resident's own words, and reasons given to them.
_PUBLIC_NOTES = frozenset({EventKind.REJECT, EventKind.FORCE_CLOSE, EventKind.SUSPEND,
                           EventKind.CHECK_PASS})
# What reads like a phone number in free text: a mainland mobile (with +86, spaces or
# dashes or none), a landline with its area code, or any 7 or more digits in a row; not a
# case number (YYMMDD-NNN), whose runs are shorter.
_PHONE_LIKE = re.compile(r"(?<![\d+])(?:(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}"
                         r"|0\d{2,3}[ -]?\d{7,8}|\+?\d{7,})(?!\d)")


def mask_phones(text: str) -> str:
    """Free text with each phone-number-like digit run masked: 13800005678 → 138****5678."""
    return _PHONE_LIKE.sub(lambda m: mask_phone(re.sub(r"[ -]", "", m.group())), text)


def one(params: Params, name: str) -> str | None:
    """The first non-blank value of a parameter, stripped."""
    for value in params.get(name, ()):
        if value.strip():
            return value.strip()
    return None


def attribute_values(params: Params) -> dict[str, list[str]]:
    """The `attribute[code]` (and `attribute[code][]`) fields of a form."""
    found: dict[str, list[str]] = {}
    for name, values in params.items():
        if name.startswith("attribute[") and "]" in name:
            code = name[len("attribute["):name.index("]")]
            found.setdefault(code, []).extend(values)
    return found


@dataclass(frozen=True)
class Reporter:
    """Who the client says reported the problem."""

    name: str | None
    phone: str | None
    email: str | None


class GeoReport:
    """The GeoReport v2 server's use cases, over the database and the casework."""

    def __init__(self, db: Database, reference: ReferenceData, renderer: Renderer,
                 settings: Settings, clock: Clock,
                 on_queued: Sequence[Callable[[], None]] = ()) -> None:
        self.db = db
        self.reference = reference
        self.renderer = renderer
        self.settings = settings
        self.clock = clock
        self.on_queued = on_queued
        self.services = spec.services(reference.catalog, spec.load_attributes())
        self.by_code = {s.code: s for s in self.services}
        self.jurisdiction = settings.open311_jurisdiction or reference.district.top_street()
        self._agencies: dict[tuple[Level, str | None, str | None, str | None, str | None],
                             str] = {}
        self._status_notes: dict[tuple[workflow.State, Level, str, bool, str | None],
                                 str] = {}

    # --- checks shared by every call --------------------------------------------------

    def check_jurisdiction(self, params: Params) -> None:
        """Refuse a jurisdiction_id other than the configured street's (none is fine)."""
        given = one(params, "jurisdiction_id")
        if given is not None and given != self.jurisdiction:
            raise Open311Error(404, f"jurisdiction_id {given[:60]!r} is not served here"
                                    f" (this server serves {self.jurisdiction})")

    async def key(self, params: Params) -> ApiKey:
        """The active API key the call carries, or 403."""
        raw = one(params, "api_key")
        found = await open311_store.key_for(self.db.conn, raw) if raw else None
        if found is None:
            raise Open311Error(403, "api_key is missing, unknown or revoked")
        return found

    def service(self, code: str | None, status: int = 404) -> Service:
        """The service with this code, or the error (404 for a path, 400 for a field)."""
        if code is None:
            raise Open311Error(400, "service_code is required")
        found = self.by_code.get(code)
        if found is None:
            raise Open311Error(status, f"service_code {code[:60]!r} is not a service here"
                                       " (GET services lists them)")
        return found

    # --- discovery and services ---------------------------------------------------------

    def discovery(self, base_url: str) -> dict[str, object]:
        """The discovery document: where the endpoint is and what it speaks."""
        return {
            "changeset": "2026-11-01T00:00:00+08:00",
            "contact": "The street office's command center (街道指挥中心).",
            "key_service": "API keys come from the street office: gridbot api-key create.",
            "endpoints": [{
                "specification": spec.SPECIFICATION,
                "url": base_url,
                "changeset": "2026-11-01T00:00:00+08:00",
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }],
        }

    def service_list(self) -> list[dict[str, object]]:
        """GET services: one per subcategory, grouped by category."""
        return [{
            "service_code": s.code, "service_name": s.name, "description": s.description,
            "metadata": bool(s.attributes), "type": "realtime",
            "keywords": ", ".join(s.keywords), "group": s.category.name_en,
        } for s in self.services]

    def definition(self, code: str) -> dict[str, object]:
        """GET services/{code}: the service's attributes."""
        service = self.service(code)
        return {"service_code": service.code, "attributes": [{
            "variable": a.variable, "code": a.code, "datatype": a.datatype,
            "required": a.required, "datatype_description": a.datatype_description or None,
            "order": a.order, "description": a.description,
            "values": [{"key": v.key, "name": v.name} for v in a.values],
        } for a in service.attributes]}

    # --- POST requests ------------------------------------------------------------------

    async def file(self, params: Params) -> list[dict[str, object]]:
        """POST requests: check everything, then file the case like the chat does."""
        self.check_jurisdiction(params)
        key = await self.key(params)
        service = self.service(one(params, "service_code"), status=400)
        if key.services is not None and not {service.code, service.category.code} & set(
                key.services):
            raise Open311Error(403, f"this api_key may not file {service.code}")
        description = one(params, "description") or ""
        if len(description) > spec.MAX_DESCRIPTION:
            raise Open311Error(400, f"description may be at most {spec.MAX_DESCRIPTION}"
                                    f" characters, got {len(description)}")
        answers = spec.check_attributes(service, attribute_values(params))
        place = self.place(params)
        reporter = self.reporter(params)
        media_url = self.media_url(one(params, "media_url"))
        photo = await self.fetch_media(media_url) if media_url else None
        text = description or service.description
        if answers:
            labels = {a.code: a.description for a in service.attributes}
            text += "".join(f"\n[{labels[code]}: {value}]" for code, value in answers.items())
        now = self.clock.now()
        async with self.db.transaction() as conn:
            reporter_id = await self.person_for(conn, reporter, key, now)
            photo_ids: tuple[int, ...] = ()
            if photo is not None:
                photo_ids = (await media_store.add(
                    conn, SOURCE, now, provider_ref=media_url, path=photo.path,
                    sha256=photo.sha256, content_type=photo.content_type),)
            draft = casework.Draft(
                category=service.category.code,
                subcategory=service.subcategory.code if service.subcategory else None,
                description=text, place=place, photo_ids=photo_ids, channel=SOURCE)
            filed = await casework.file_case(conn, self.reference, reporter_id, draft, now)
            assert filed.case.id is not None
            await open311_store.add_filing(conn, filed.case.id, open311_store.Filing(
                key.id, email=reporter.email, device_id=one(params, "device_id"),
                account_id=one(params, "account_id"), media_url=media_url,
                attributes=answers))
            await self._queue(conn, filed.notices, now)
        area = self.reference.district.name(filed.case.grid_code or filed.case.street_code,
                                            "en")
        deadline = spec.w3c(filed.case.deadline, self.reference.tz)
        return [{"service_request_id": filed.case.number,
                 "service_notice": f"Registered with {area}; expected by {deadline}.",
                 "account_id": one(params, "account_id")}]

    def place(self, params: Params) -> Place:
        """Where: lat+long (in a grid), address_string (as the chat matches typed
        addresses; unmatched, it goes to the street as typed) or address_id (a building)."""
        district = self.reference.district
        lat_text, lon_text = one(params, "lat"), one(params, "long")
        if lat_text is not None or lon_text is not None:
            try:
                lat, lon = float(lat_text or "x"), float(lon_text or "x")
            except ValueError:
                raise Open311Error(400, "lat and long must both be numbers") from None
            if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90
                    and -180 <= lon <= 180):
                raise Open311Error(400, "lat and long must be WGS84 degrees")
            place = district.locate_point(lat, lon)
            if place.grid_code is None:
                raise Open311Error(400, f"the point {lat:.5f}, {lon:.5f} is outside every"
                                        " area this street office serves")
            return place
        address_id = one(params, "address_id")
        if address_id is not None:
            building = district.buildings.get(int(address_id))  # an integer: see INTEGERS
            if building is None:
                raise Open311Error(400, f"address_id {address_id[:40]!r} is not a building"
                                        " known here")
            return Place(building.grid_code, lat=building.lat, lon=building.lon,
                         address=building.address, building_id=building.id,
                         building_name=building.name)
        address = one(params, "address_string")
        if address is not None:
            return district.locate_text(address) or Place(None, address=address[:200],
                                                          note="address_unmatched")
        raise Open311Error(400, "a location is required: lat and long, address_string or"
                                " address_id")

    def reporter(self, params: Params) -> Reporter:
        """The reporter's name, phone (E.164) and email as given."""
        first, last = one(params, "first_name"), one(params, "last_name")
        parts = [p[:40] for p in (first, last) if p]
        if len(parts) == 2 and not (parts[0].isascii() or parts[1].isascii()):
            name: str | None = parts[1] + parts[0]  # 王 + 丽华: the family name comes first
        else:
            name = " ".join(parts) or None
        raw_phone = one(params, "phone")
        phone = to_e164(raw_phone, self.settings.phone_region) if raw_phone else None
        if raw_phone and phone is None:
            raise Open311Error(400, "phone is not a valid phone number")
        email = one(params, "email")
        return Reporter(name, phone, email[:200] if email else None)

    async def person_for(self, conn: Connection, reporter: Reporter, key: ApiKey,
                         now: datetime) -> int:
        """The person who reported: the one who has that phone, else a new one; with no
        details at all, the key's own person. With SMS on, the phone gets the updates."""
        if reporter.phone is not None:
            owner = await people_store.phone_owner(conn, reporter.phone,
                                                   spellings(reporter.phone))
            if owner is None:
                owner = await people_store.add_person(conn, reporter.name or "",
                                                      now, phone=reporter.phone)
            if self.settings.twilio_enabled:
                await people_store.add_contact(conn, owner, "sms", reporter.phone, now)
            return owner
        if reporter.name or reporter.email:
            return await people_store.add_person(conn, reporter.name or "", now)
        return key.person_id

    def media_url(self, raw: str | None) -> str | None:
        """A media link as stored: http(s) only, at most 2,000 characters."""
        if raw is None:
            return None
        parsed = urlparse(raw)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or len(raw) > 2000:
            raise Open311Error(400, "media_url must be an http(s) address")
        return raw

    async def fetch_media(self, url: str) -> Photo | None:
        """The photo at a media_url whose host is on the allowlist; None for any other
        host (never fetched) or when it cannot be had (the link is kept either way)."""
        host = (urlparse(url).netloc or "").lower()
        if host not in self.settings.open311_media_hosts:
            return None
        try:
            async with httpx.AsyncClient(timeout=MEDIA_TIMEOUT,
                                         follow_redirects=False) as client, client.stream(
                    "GET", url) as response:
                if response.status_code != 200:
                    return None
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_PHOTO_BYTES:
                        return None
                content_type = response.headers.get("content-type", "").split(";")[0]
            return save_photo(self.reference.media_dir, bytes(data), content_type.strip())
        except (httpx.HTTPError, MediaRefused, OSError):
            return None

    # --- GET requests -------------------------------------------------------------------

    async def requests(self, params: Params) -> list[dict[str, object]]:
        """GET requests: by ids (which override the rest), else a search of at most 90
        days by service, status and page (page, page_size: the paging extension)."""
        self.check_jurisdiction(params)
        await self.key(params)
        ids = one(params, "service_request_id")
        if ids is not None:
            numbers = [n.strip() for n in ids.split(",") if n.strip()][:MAX_IDS]
            found = await open311_store.by_numbers(self.db.conn, numbers)
            return [self.request_dict(open311_store.Listed.of(f)) for f in found]
        service = None
        if one(params, "service_code") is not None:
            service = self.service(one(params, "service_code"), status=400)
        tz = self.reference.tz
        start = one(params, "start_date")
        end = one(params, "end_date")
        window = spec.window(spec.parse_datetime("start_date", start, tz) if start else None,
                             spec.parse_datetime("end_date", end, tz) if end else None,
                             self.clock.now())
        state = one(params, "status")
        if state is not None and state.lower() not in ("open", "closed"):
            raise Open311Error(400, "status must be open or closed")
        page = _whole(params, "page", 1)
        size = _whole(params, "page_size", spec.DEFAULT_PAGE_SIZE)
        listed = await open311_store.search(
            self.db.conn, *window, closed=None if state is None else state.lower() == "closed",
            category=service.category.code if service else None,
            subcategory=service.subcategory.code if service and service.subcategory else None,
            limit=size, offset=(page - 1) * size)
        return [self.request_dict(one_case) for one_case in listed]

    async def request(self, params: Params, number: str) -> list[dict[str, object]]:
        """GET requests/{id}: one case (as a list of one, as the spec shows), or 404."""
        self.check_jurisdiction(params)
        await self.key(params)
        found = await open311_store.by_numbers(self.db.conn, [number])
        if not found:
            raise Open311Error(404, f"no service request {number[:40]!r}")
        return [self.request_dict(open311_store.Listed.of(found[0]))]

    def request_dict(self, listed: open311_store.Listed) -> dict[str, object]:
        """A case in GeoReport's fields, phone numbers in its text masked."""
        tz = self.reference.tz
        code = spec.service_code(listed.category, listed.subcategory)
        service = self.by_code.get(code)
        agency = self._agency(listed.level, listed.department, listed.grid_code,
                              listed.community_code, listed.street_code)
        requested = spec.w3c(listed.created_at, tz)
        return {
            "service_request_id": listed.number,
            "status": spec.status(listed.state),
            "status_notes": self._notes(listed.state, listed.level, agency,
                                        listed.force_closed, listed.merged_into),
            "service_name": service.name if service else code,
            "service_code": code,
            "description": mask_phones(listed.description[:spec.MAX_DESCRIPTION]),
            "agency_responsible": agency,
            "service_notice": None,
            "requested_datetime": requested,
            "updated_datetime": (spec.w3c(listed.updated_at, tz) if listed.updated_at
                                 else requested),
            "expected_datetime": spec.w3c(listed.deadline, tz),
            "address": listed.address,
            "address_id": str(listed.building_id) if listed.building_id else None,
            "zipcode": None,
            "lat": listed.lat,
            "long": listed.lon,
            "media_url": listed.media_url,
        }

    def _agency(self, level: Level, department: str | None, grid: str | None,
                community: str | None, street: str | None) -> str:
        """Who is in charge now: the department, or the grid, community or street."""
        # A page of 1,000 cases names a handful of areas: each is worked out once.
        key = (level, department, grid, community, street)
        found = self._agencies.get(key)
        if found is None:
            found = self._agencies[key] = self._agency_name(level, department, {
                Level.GRID: grid, Level.COMMUNITY: community, Level.STREET: street,
                Level.DEPARTMENT: department}[level] or street)
            if len(self._agencies) > 10_000:  # reference data: areas and departments
                self._agencies.clear()
        return found

    def _agency_name(self, level: Level, department: str | None, code: str | None) -> str:
        if level == Level.DEPARTMENT:
            found = self._department(department)
            if found is not None:
                return f"{found.name_zh} ({found.name_en})"
            return department or "department"
        district = self.reference.district
        zh, en = district.name(code, "zh_CN"), district.name(code, "en")
        return zh if zh == en else f"{zh} ({en})"

    def _notes(self, state: workflow.State, level: Level, agency: str, force_closed: bool,
               merged_into: str | None) -> str:
        key = (state, level, agency, force_closed, merged_into)
        notes = self._status_notes.get(key)
        if notes is None:
            notes = self._status_notes[key] = mask_phones(spec.notes_for(
                state, level, agency, force_closed=force_closed, merged_into=merged_into))
            if len(self._status_notes) > 10_000:
                self._status_notes.clear()
        return notes

    def _department(self, code: str | None) -> Department | None:
        return next((d for d in self.reference.departments if d.code == code), None)

    # --- FixMyStreet's servicerequestupdates -------------------------------------------

    async def updates(self, params: Params) -> list[dict[str, object]]:
        """GET servicerequestupdates: the audit trail in a window (FixMyStreet asks for
        both dates or neither), with FixMyStreet's extended statuses."""
        self.check_jurisdiction(params)
        await self.key(params)
        tz = self.reference.tz
        start, end = one(params, "start_date"), one(params, "end_date")
        window = spec.window(spec.parse_datetime("start_date", start, tz) if start else None,
                             spec.parse_datetime("end_date", end, tz) if end else None,
                             self.clock.now())
        rows = await open311_store.updates(self.db.conn, *window, limit=spec.MAX_PAGE_SIZE)
        return [self.update_dict(u) for u in rows]

    def update_dict(self, update: open311_store.Update) -> dict[str, object]:
        """One audit line as a request_update."""
        kind = EventKind(update.event)
        label = _EVENT_LABELS.get(kind, kind.value.replace("_", " ").capitalize())
        public = kind in _PUBLIC_NOTES or (kind == EventKind.COMMENT and update.actor_role in (
            Role.RESIDENT.value, Role.DEPARTMENT.value))
        text = f"{label}: {update.note}" if public and update.note else label
        return {"update_id": str(update.id), "service_request_id": update.number,
                "status": spec.extended_status(update.event, update.to_state),
                "updated_datetime": spec.w3c(update.at, self.reference.tz),
                "description": mask_phones(text[:spec.MAX_DESCRIPTION]), "media_url": None}

    async def post_update(self, params: Params) -> list[dict[str, object]]:
        """POST servicerequestupdates: a comment or a status change, as the key's actor: a
        department key acts as that department (accepted, done, returned) on the cases
        dispatched to it, any other key as a resident who comments on the cases it filed.
        The workflow refuses what that actor may not do."""
        self.check_jurisdiction(params)
        key = await self.key(params)
        number = one(params, "service_request_id")
        if number is None:
            raise Open311Error(400, "service_request_id is required")
        note = one(params, "description") or ""
        if len(note) > spec.MAX_DESCRIPTION:
            raise Open311Error(400, f"description may be at most {spec.MAX_DESCRIPTION}"
                                    " characters")
        status = one(params, "status") or "OPEN"
        update_id = one(params, "update_id")
        now = self.clock.now()
        async with self.db.transaction() as conn:
            found = await open311_store.by_numbers(conn, [number])
            if not found:
                raise Open311Error(404, f"no service request {number[:40]!r}")
            if update_id and await open311_store.was_pulled(conn, f"key:{key.id}", update_id):
                raise Open311Error(400, f"update_id {update_id[:40]!r} was posted already")
            stored = found[0].stored
            await self.check_may_update(conn, key, stored.case, stored.details)
            if key.department is not None:
                actor = Actor(person_id=key.person_id, role=Role.DEPARTMENT,
                              scope=key.department)
                kinds = spec.department_events(stored.case, status, note)
            else:
                actor = Actor(person_id=key.person_id, role=Role.RESIDENT)
                if status.upper() not in ("OPEN", ""):
                    raise Open311Error(403, "this api_key may only comment; a department's"
                                            " key may change the status")
                kinds = [EventKind.COMMENT] if note else []
            if not kinds:
                raise Open311Error(400, "nothing to do: give a description, or a status that"
                                        " changes the case")
            notices = await apply_events(conn, self.reference, stored.case.number, kinds,
                                         note, actor, now)
            last = await open311_store.last_event_id(conn, stored.case.id or 0)
            if update_id:
                await open311_store.mark_pulled(conn, f"key:{key.id}", update_id,
                                                stored.case.id, status, now)
            await self._queue(conn, notices, now)
        return [{"update_id": str(last)}]

    async def check_may_update(self, conn: Connection, key: ApiKey, case: Case,
                               details: case_store.CaseDetails) -> None:
        """403 unless the key may post on this case: a department's key on a case
        dispatched to its department; any other key on a case it filed, of its services."""
        if key.department is not None:
            if case.level != Level.DEPARTMENT or case.department != key.department:
                raise Open311Error(403, f"case {case.number} is not dispatched to this"
                                        f" api_key's department ({key.department})")
            return
        if case.id is None or await open311_store.filing_key(conn, case.id) != key.id:
            raise Open311Error(403, f"this api_key did not file case {case.number}: it may"
                                    " post updates only on its own cases")
        code = spec.service_code(case.category, details.subcategory)
        if key.services is not None and not {code, case.category} & set(key.services):
            raise Open311Error(403, f"this api_key may not post on {code}")

    async def _queue(self, conn: Connection, notices: list[PersonalMessage],
                     now: datetime) -> None:
        rows = await render_personal(conn, self.renderer, self.reference.default_locale,
                                     notices, now)
        await outbox_store.enqueue(conn, rows, now)
        if rows:
            for callback in self.on_queued:
                callback()


async def apply_events(conn: Connection, reference: ReferenceData, number: str,
                       kinds: Sequence[EventKind], note: str, actor: Actor,
                       now: datetime) -> list[PersonalMessage]:
    """Apply events one after the other to a case as one actor; Open311Error when the
    workflow refuses (403 for who, 400 for when or what)."""
    notices: list[PersonalMessage] = []
    for kind in kinds:
        stored = await case_store.get_by_number(conn, number)
        assert stored is not None
        reason = note or ("Returned by the department's own system"
                          if kind == EventKind.RETURN else "")
        try:
            _, told = await casework.apply_event(conn, reference,
                                                 stored, Event(kind, note=reason), actor, now)
        except workflow.TransitionRefused as refused:
            who = refused.code in ("role_not_allowed", "out_of_scope")
            raise Open311Error(403 if who else 400, refused.message) from None
        except CaseConflict:
            raise Open311Error(400, f"case {number} changed meanwhile; try again") from None
        notices.extend(told)
    return notices


# The integer parameters and their bounds; the entrypoint reads them with the shared
# integer reader (ASCII digits, within these) before any use case sees them.
INTEGERS = {"page": (1, 1_000_000), "page_size": (1, spec.MAX_PAGE_SIZE),
            "address_id": (0, 2**63 - 1)}


def _whole(params: Params, name: str, default: int) -> int:
    raw = one(params, name)
    return default if raw is None else int(raw)


async def create_api_key(db: Database, reference: ReferenceData, name: str, now: datetime, *,
                         services: Sequence[str] = (), department: str | None = None
                         ) -> tuple[int, str]:
    """Make an API key bound to the services it may file (category or service codes; none:
    all) and, for a department's own system, to that department; return (id, key). Only
    its hash is stored: the key is shown once."""
    name = name.strip()
    if not name:
        raise ValueError("the key needs a name (who uses it, e.g. FixMyStreet)")
    known = {s.code for s in spec.services(reference.catalog, {})} | {
        c.code for c in reference.catalog.categories}
    unknown = [code for code in services if code not in known]
    if unknown:
        raise ValueError(f"unknown service or category code {unknown[0]!r}"
                         " (GET services lists them)")
    if department is not None and department not in {d.code for d in reference.departments}:
        raise ValueError(f"unknown department {department!r} (see departments.toml)")
    key = "o311_" + secrets.token_urlsafe(32)
    async with db.transaction() as conn:
        person = await people_store.add_person(conn, f"Open311: {name}", now)
        key_id = await open311_store.add_key(conn, name, key, person, now,
                                             services=list(services) or None,
                                             department=department)
        if department is not None:
            await people_store.grant_role(conn, person, Role.DEPARTMENT.value, department, now)
    return key_id, key
