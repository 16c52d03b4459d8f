"""Conversation state per contact, saved with a version so two writers cannot both win."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.domain.clock import iso
from store.db import Connection, fetch
from store.leader import lock_key
from store.people import Contact, contact_from_row
from store.pg import PgConnection


class ConversationConflict(RuntimeError):
    """The conversation changed since it was loaded (another process handled a message)."""


@dataclass
class Conversation:
    """Where a contact is in a dialogue: flow, step and the answers so far."""

    contact_id: int
    flow: str | None = None
    step: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    version: int = 0


async def load(conn: Connection, contact_id: int) -> Conversation:
    """Return the saved conversation of a contact, or a fresh idle one."""
    rows = await fetch(conn,
        "SELECT flow, step, data, version FROM conversations WHERE contact_id = ?",
        (contact_id,))
    if not rows:
        return Conversation(contact_id)
    flow, step, data, version = rows[0]
    return Conversation(contact_id, flow, step, json.loads(data), version)


async def load_by_address(
    conn: Connection, channel: str, address: str
) -> tuple[Contact, Conversation] | None:
    """A known contact and its conversation in one query; None for a first message."""
    rows = await fetch(
        conn,
        "SELECT c.id, c.person_id, c.channel, c.address, c.opted_out, p.locale, p.name,"
        " p.grid_code, v.flow, v.step, v.data, v.version"
        " FROM contacts c JOIN people p ON p.id = c.person_id"
        " LEFT JOIN conversations v ON v.contact_id = c.id"
        " WHERE c.channel = ? AND c.address = ?", (channel, address))
    if not rows:
        return None
    row = rows[0]
    contact = contact_from_row(row)
    if row[11] is None:
        return contact, Conversation(contact.id)
    return contact, Conversation(contact.id, row[8], row[9], json.loads(row[10]), row[11])


async def save(conn: Connection, conv: Conversation, now: datetime) -> None:
    """Store the conversation if nobody else changed it since it was loaded."""
    data = json.dumps(conv.data, ensure_ascii=False, separators=(",", ":"))
    if conv.version == 0:
        cursor = await conn.execute(
            "INSERT INTO conversations (contact_id, flow, step, data, version, updated_at)"
            " VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (contact_id) DO NOTHING",
            (conv.contact_id, conv.flow, conv.step, data, iso(now)))
    else:
        cursor = await conn.execute(
            "UPDATE conversations SET flow = ?, step = ?, data = ?, version = version + 1,"
            " updated_at = ? WHERE contact_id = ? AND version = ?",
            (conv.flow, conv.step, data, iso(now), conv.contact_id, conv.version))
    if cursor.rowcount != 1:
        raise ConversationConflict(f"conversation {conv.contact_id} changed meanwhile")
    conv.version += 1


async def lock_all(conn: Connection, keys: Iterable[tuple[str, str]]) -> None:
    """Hold each (channel, address)'s conversation for the rest of the transaction, so that
    no other process handles one person's messages meanwhile (PostgreSQL: transaction
    advisory locks, taken in sorted order so that two batches never deadlock). On SQLite
    the one writer already holds the whole database: nothing to do."""
    if not isinstance(conn, PgConnection):
        return
    wanted = sorted({lock_key(f"conversation:{channel}:{address}") for channel, address in keys})
    if wanted:
        await conn.execute_raw(
            "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k",
            (wanted,))
