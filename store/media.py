"""Photos and other media: where the file is, its hash, the case it belongs to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.domain.clock import iso
from store.db import Connection, fetch, new_id

BEFORE = "before"
AFTER = "after"
_COLUMNS = "id, case_id, channel, provider_ref, path, sha256, content_type, role"


@dataclass(frozen=True)
class MediaRow:
    """One stored media file."""

    id: int
    case_id: int | None
    channel: str
    provider_ref: str | None
    path: str | None
    sha256: str | None
    content_type: str | None
    role: str | None = None  # on a case: BEFORE (the problem) or AFTER (the result)


async def add(
    conn: Connection, channel: str, now: datetime, *, provider_ref: str | None = None,
    path: str | None = None, sha256: str | None = None, content_type: str | None = None,
) -> int:
    """Record a media file received on a channel and return its id."""
    return await new_id(conn,
        "INSERT INTO media (channel, provider_ref, path, sha256, content_type, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)", (channel, provider_ref, path, sha256, content_type,
                                       iso(now)))


async def attach(conn: Connection, media_ids: Sequence[int], case_id: int,
                 role: str = BEFORE) -> None:
    """Attach media files to a case, as showing the problem (BEFORE) or the result (AFTER)."""
    await conn.executemany("UPDATE media SET case_id = ?, role = ? WHERE id = ?",
                           [(case_id, role, m) for m in media_ids])


async def for_case(conn: Connection, case_id: int) -> list[MediaRow]:
    """The media files of a case, in the order received."""
    rows = await fetch(conn,
        f"SELECT {_COLUMNS} FROM media WHERE case_id = ? ORDER BY id", (case_id,))
    return [MediaRow(*r) for r in rows]


async def get(conn: Connection, media_id: int) -> MediaRow | None:
    """Return one media file by id."""
    found = await get_many(conn, [media_id])
    return found[0] if found else None


async def get_many(conn: Connection, media_ids: Sequence[int]) -> list[MediaRow]:
    """The media files with these ids, in the order asked for (unknown ids left out)."""
    if not media_ids:
        return []
    marks = ", ".join("?" * len(media_ids))
    rows = await fetch(conn,
        f"SELECT {_COLUMNS} FROM media WHERE id IN ({marks})", list(media_ids))
    by_id = {r[0]: MediaRow(*r) for r in rows}
    return [by_id[m] for m in media_ids if m in by_id]
