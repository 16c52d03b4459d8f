"""The console's case page: what a staff member reads about a case and may do now, their
internal notes, and their messages to the resident.

Internal notes and messages are kept in `case_notes`, apart from the audit trail that
residents read in `/case N` and Open311 clients in the status notes: an internal note
never reaches a resident. A message goes to the reporter through the outbox, on the
channel they last wrote from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.messages import Reply
from bot.domain.workflow import Actor, EventKind
from bot.services import actions, casework
from bot.services.notify import PersonalMessage
from bot.services.people import display_name
from bot.services.reference import ReferenceData
from store import console as console_store
from store import media as media_store
from store.cases import OPEN_STATES, StoredCase
from store.db import Connection

# characters: the SMS variant, "事件NNNNNN-NNN处理人员留言：" and this, fits two UCS-2 segments
MAX_MESSAGE = 100
MAX_INTERNAL = 2000


class NoteRefused(Exception):
    """A note or message that cannot be kept: empty, too long, or no one to send it to."""


@dataclass(frozen=True)
class Line:
    """One line of the case page's timeline: an audit record or a console note."""

    at: datetime
    kind: str  # "event", "internal" or "message"
    event: str  # the audit event (empty for notes)
    actor: str | None
    actor_role: str
    note: str


@dataclass(frozen=True)
class Photo:
    """A photo of the case: taken by the reporter ("before") or of the result ("after")."""

    media_id: int
    role: str


@dataclass(frozen=True)
class Possible:
    """An action the person may take now, and what it asks for (see actions.NEEDS_INPUT:
    "", "reason", "note", "target", "merge", "days")."""

    kind: str
    needs: str


@dataclass(frozen=True)
class CasePage:
    """Everything the case page shows beyond `casework.CaseView`."""

    timeline: list[Line]
    photos: list[Photo]
    possible: list[Possible]
    targets: list[actions.Target]
    stamp: str  # changes whenever the case or its notes change (the page polls it)
    can_message: bool


async def page_data(conn: Connection, reference: ReferenceData, view: casework.CaseView,
                    stored: StoredCase, actors: Sequence[Actor], locale: str, *,
                    masked: bool) -> CasePage:
    """The timeline with the notes, the photos before and after, and the actions."""
    case = stored.case
    assert case.id is not None
    lines = [Line(e.at, "event", e.event, e.actor, e.actor_role, e.note) for e in view.timeline]
    names: dict[int, str] = {}
    notes = await console_store.notes(conn, case.id)
    for note in notes:
        if note.person_id not in names:
            names[note.person_id] = await display_name(conn, note.person_id, masked=masked)
        lines.append(Line(note.at, note.kind, "", names[note.person_id], "", note.body))
    lines.sort(key=lambda line: line.at)
    photos = [Photo(m.id, m.role or media_store.BEFORE)
              for m in await media_store.for_case(conn, case.id)]
    possible = [Possible(kind.value, actions.NEEDS_INPUT.get(kind, ""))
                for kind in casework.ACTIONS if casework.actor_for(case, kind, actors)]
    targets = actions.targets(reference, case, locale) \
        if any(p.kind == EventKind.DISPATCH.value for p in possible) else []
    last = notes[-1].id if notes else 0
    return CasePage(lines, photos, possible, targets, f"{case.version}.{last}",
                    can_message=case.reporter_id is not None)


async def stamp(conn: Connection, stored: StoredCase) -> str:
    """The page's change stamp for a case as it is now."""
    assert stored.case.id is not None
    return f"{stored.case.version}.{await console_store.last_note(conn, stored.case.id)}"


async def add_internal_note(conn: Connection, stored: StoredCase, person_id: int,
                            text: str, now: datetime) -> None:
    """Keep an internal note on the case (staff only ever read it)."""
    body = text.strip()
    if not body or len(body) > MAX_INTERNAL:
        raise NoteRefused(f"a note has 1 to {MAX_INTERNAL} characters")
    assert stored.case.id is not None
    await console_store.add_note(conn, stored.case.id, person_id, "internal", body, now)


async def message_resident(conn: Connection, stored: StoredCase, person_id: int,
                           text: str, now: datetime) -> list[PersonalMessage]:
    """Keep a message to the case's reporter, and return it to be queued on their own
    channel (template `case_message`)."""
    body = text.strip()
    case = stored.case
    if not body or len(body) > MAX_MESSAGE:
        raise NoteRefused(f"a message has 1 to {MAX_MESSAGE} characters")
    if case.reporter_id is None:
        raise NoteRefused("the case has no reporter to write to")
    assert case.id is not None
    await console_store.add_note(conn, case.id, person_id, "message", body, now)
    return [PersonalMessage(case.reporter_id, Reply(
        "case_message", {"number": case.number, "text": body,
                         "open": case.state.value in OPEN_STATES}))]


@dataclass(frozen=True)
class Sketch:
    """The case's place drawn without tiles: its grid's outline and the point, in an SVG
    box of `width` × `height` (north up, longitude scaled for the latitude)."""

    width: int
    height: int
    outline: str  # an SVG path
    point: tuple[float, float] | None
    lat: float | None
    lon: float | None


def sketch(geometry: Mapping[str, Any] | None, lat: float | None, lon: float | None,
           width: int = 320, height: int = 200, margin: int = 12) -> Sketch | None:
    """Project a grid's outline (GeoJSON Polygon or MultiPolygon) and a point into a
    small box; None when there is neither."""
    rings: list[list[tuple[float, float]]] = []
    if geometry and geometry.get("type") == "Polygon":
        rings = [[(float(x), float(y)) for x, y, *_ in geometry["coordinates"][0]]]
    elif geometry and geometry.get("type") == "MultiPolygon":
        rings = [[(float(x), float(y)) for x, y, *_ in poly[0]]
                 for poly in geometry["coordinates"]]
    points = [p for ring in rings for p in ring]
    if lat is not None and lon is not None:
        points.append((lon, lat))
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    squash = math.cos(math.radians(sum(ys) / len(ys)))  # a degree of longitude is shorter
    span_x = max((max(xs) - min(xs)) * squash, 1e-6)
    span_y = max(max(ys) - min(ys), 1e-6)
    scale = min((width - 2 * margin) / span_x, (height - 2 * margin) / span_y)

    def at(x: float, y: float) -> tuple[float, float]:
        return (round(margin + (x - min(xs)) * squash * scale, 1),
                round(height - margin - (y - min(ys)) * scale, 1))

    outline = " ".join(
        "M " + " L ".join(f"{px} {py}" for px, py in (at(x, y) for x, y in ring)) + " Z"
        for ring in rings)
    point = at(lon, lat) if lat is not None and lon is not None else None
    return Sketch(width, height, outline, point, lat, lon)


async def place_sketch(conn: Connection, stored: StoredCase) -> Sketch | None:
    """The small map of a case: its grid's outline and its pin."""
    geometry = None
    if stored.case.grid_code:
        raw = await console_store.area_geometry(conn, stored.case.grid_code)
        geometry = json.loads(raw) if raw else None
    return sketch(geometry, stored.details.lat, stored.details.lon)
