"""People, their channel addresses (contacts) and their roles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.domain.clock import iso
from store.db import Connection, Row, fetch, new_id


@dataclass(frozen=True)
class Contact:
    """One channel address of a person, with what we know of the person."""

    id: int
    person_id: int
    channel: str
    address: str
    opted_out: bool
    locale: str | None
    name: str | None
    grid_code: str | None


@dataclass(frozen=True)
class Person:
    """A person as staff and the bot know them."""

    id: int
    name: str | None
    phone: str | None
    locale: str | None
    grid_code: str | None
    duties: str | None
    phone_visible: bool = False
    photo_media_id: int | None = None


CONTACT_SQL = """
SELECT c.id, c.person_id, c.channel, c.address, c.opted_out, p.locale, p.name, p.grid_code
FROM contacts c JOIN people p ON p.id = c.person_id
"""


def contact_from_row(row: Row) -> Contact:
    return Contact(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7])


async def find_contact(conn: Connection, channel: str, address: str) -> Contact | None:
    """Return the contact for a channel address, if known."""
    rows = await fetch(conn,
        CONTACT_SQL + " WHERE c.channel = ? AND c.address = ?", (channel, address))
    return contact_from_row(rows[0]) if rows else None


async def get_or_create_contact(
    conn: Connection, channel: str, address: str, now: datetime,
    name: str | None = None,
) -> Contact:
    """Return the contact for a channel address, creating the person on first contact."""
    found = await find_contact(conn, channel, address)
    if found is not None:
        return found
    person_id = await new_id(
        conn, "INSERT INTO people (name, created_at) VALUES (?, ?)", (name, iso(now)))
    await conn.execute(
        "INSERT INTO contacts (person_id, channel, address, created_at, last_seen_at)"
        " VALUES (?, ?, ?, ?, ?)", (person_id, channel, address, iso(now), iso(now)))
    created = await find_contact(conn, channel, address)
    assert created is not None
    return created


async def add_person(
    conn: Connection, name: str, now: datetime, phone: str | None = None,
    grid_code: str | None = None, duties: str | None = None, locale: str | None = None,
) -> int:
    """Create a person (staff loaded from a file, say) and return the id."""
    return await new_id(conn,
        "INSERT INTO people (name, phone, grid_code, duties, locale, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)", (name, phone, grid_code, duties, locale, iso(now)))


async def add_contact(
    conn: Connection, person_id: int, channel: str, address: str, now: datetime
) -> None:
    """Give a person one more channel address."""
    await conn.execute(
        "INSERT OR IGNORE INTO contacts (person_id, channel, address, created_at)"
        " VALUES (?, ?, ?, ?)", (person_id, channel, address, iso(now)))


async def get_person(conn: Connection, person_id: int) -> Person | None:
    """Return a person by id."""
    rows = await fetch(conn,
        "SELECT id, name, phone, locale, grid_code, duties, phone_visible, photo_media_id"
        " FROM people WHERE id = ?",
        (person_id,))
    return Person(*rows[0]) if rows else None


async def set_locale(conn: Connection, person_id: int, locale: str) -> None:
    """Remember the language a person chose."""
    await conn.execute("UPDATE people SET locale = ? WHERE id = ?", (locale, person_id))


async def set_grid(conn: Connection, person_id: int, grid_code: str) -> None:
    """Remember the grid a person was last seen reporting in (unless they chose a home)."""
    await conn.execute("UPDATE people SET grid_code = ? WHERE id = ? AND home_at IS NULL",
                       (grid_code, person_id))


async def contacts_of(conn: Connection, person_id: int) -> list[Contact]:
    """Every channel address of a person, the one they last wrote from first."""
    # coalesce: SQLite sorts NULLs first, PostgreSQL last; a contact never written from
    # (no conversation yet) must come after those written from, on both.
    rows = await fetch(
        conn, CONTACT_SQL + " LEFT JOIN conversations v ON v.contact_id = c.id"
        " WHERE c.person_id = ? ORDER BY coalesce(v.updated_at, '') DESC,"
        " coalesce(c.last_seen_at, '') DESC, c.id DESC", (person_id,))
    return [contact_from_row(r) for r in rows]


async def grant_role(
    conn: Connection, person_id: int, role: str, scope: str | None, now: datetime
) -> None:
    """Give a person a role in a scope (an area or department code)."""
    await conn.execute(
        "INSERT INTO roles (person_id, role, scope, granted_at) VALUES (?, ?, ?, ?)",
        (person_id, role, scope, iso(now)))


async def holder_of(conn: Connection, role: str, scope: str) -> Person | None:
    """The person holding a role in a scope (the grid chief of a grid, say), if any."""
    rows = await fetch(conn,
        "SELECT p.id, p.name, p.phone, p.locale, p.grid_code, p.duties, p.phone_visible,"
        " p.photo_media_id FROM roles r"
        " JOIN people p ON p.id = r.person_id"
        " WHERE r.role = ? AND r.scope = ? AND r.revoked_at IS NULL ORDER BY r.id LIMIT 1",
        (role, scope))
    return Person(*rows[0]) if rows else None


async def roles_of(conn: Connection, person_id: int) -> list[tuple[str, str | None]]:
    """The active (role, scope) pairs of a person."""
    rows = await fetch(conn,
        "SELECT role, scope FROM roles WHERE person_id = ? AND revoked_at IS NULL ORDER BY id",
        (person_id,))
    return [(r[0], r[1]) for r in rows]


async def set_opted_out(
    conn: Connection, channel: str, address: str, opted_out: bool
) -> None:
    """Mark a contact as stopped (nothing more is sent to it) or resumed."""
    await conn.execute("UPDATE contacts SET opted_out = ? WHERE channel = ? AND address = ?",
                       (1 if opted_out else 0, channel, address))


async def holders(conn: Connection, roles: Sequence[str], scope: str | None) -> list[int]:
    """Ids of everyone holding one of `roles` (in `scope`, when one is given)."""
    marks = ", ".join("?" * len(roles))
    sql = f"SELECT DISTINCT person_id FROM roles WHERE role IN ({marks}) AND revoked_at IS NULL"
    params: list[object] = list(roles)
    if scope is not None:
        sql += " AND scope = ?"
        params.append(scope)
    rows = await fetch(conn, sql + " ORDER BY person_id", params)
    return [int(r[0]) for r in rows]


# --- one person, several channels: linking by phone number -----------------------------

@dataclass(frozen=True)
class Linked:
    """What linking a channel address to a phone number did."""

    person_id: int  # the person the address belongs to now
    merged_from: int | None = None  # the person whose contacts moved over, if any
    conflict: bool = False  # both people have history: nothing was moved


async def phone_owner(conn: Connection, phone: str,
                      spellings: Sequence[str] = ()) -> int | None:
    """The person an SMS number belongs to: its SMS contact's, else the one with that phone.

    `phone` is E.164; `spellings` are other forms the same number may be stored in
    `people.phone` (staff files hold national numbers such as 13800001001).
    """
    rows = await fetch(conn, "SELECT person_id FROM contacts WHERE channel = 'sms'"
                             " AND address = ?", (phone,))
    if rows:
        return int(rows[0][0])
    numbers = [phone, *spellings]
    marks = ", ".join("?" * len(numbers))
    rows = await fetch(conn, f"SELECT id FROM people WHERE phone IN ({marks}) ORDER BY id"
                             " LIMIT 1", numbers)
    return int(rows[0][0]) if rows else None


async def claim_sms_address(conn: Connection, phone: str, spellings: Sequence[str],
                            now: datetime) -> int | None:
    """Give an SMS number to the person known by that phone (staff), before its first message.

    Returns the owner's id (None when nobody has that number): the engine then finds this
    person for the number instead of creating a new one.
    """
    owner = await phone_owner(conn, phone, spellings)
    if owner is not None:
        await add_contact(conn, owner, "sms", phone, now)
    return owner


async def _has_history(conn: Connection, person_id: int) -> bool:
    """Cases reported, handled or followed, or a role: what a merge would have to rewrite."""
    rows = await fetch(
        conn, "SELECT EXISTS (SELECT 1 FROM cases WHERE reporter_id = ? OR assignee_id = ?)"
        " OR EXISTS (SELECT 1 FROM case_followers WHERE person_id = ?)"
        " OR EXISTS (SELECT 1 FROM roles WHERE person_id = ?)", (person_id,) * 4)
    return bool(rows[0][0])


async def link_phone(conn: Connection, channel: str, address: str, phone: str,
                     now: datetime, spellings: Sequence[str] = ()) -> Linked:
    """Join a channel address (a Telegram chat) and an SMS number into one person.

    The caller must have checked that the number is the sender's own (on Telegram: a
    shared contact whose user_id is the sender's). If another person owns the number, the
    contacts (with their conversations) of whichever of the two has no history move to
    the other; when both have history nothing moves (`conflict`). Without an owner, the
    number becomes this person's SMS contact, so their first SMS finds them.
    """
    contact = await get_or_create_contact(conn, channel, address, now)
    me = contact.person_id
    owner = await phone_owner(conn, phone, spellings)
    if owner is None or owner == me:
        await conn.execute("UPDATE people SET phone = coalesce(phone, ?) WHERE id = ?",
                           (phone, me))
        await add_contact(conn, me, "sms", phone, now)
        return Linked(me)
    mine, theirs = await _has_history(conn, me), await _has_history(conn, owner)
    if mine and theirs:
        return Linked(me, conflict=True)
    keep, drop = (me, owner) if mine else (owner, me)
    await conn.execute("UPDATE contacts SET person_id = ? WHERE person_id = ?", (keep, drop))
    await conn.execute(
        "UPDATE people SET name = coalesce(name, (SELECT name FROM people WHERE id = ?)),"
        " phone = coalesce(phone, ?), locale = coalesce(locale, (SELECT locale FROM people"
        " WHERE id = ?)), grid_code = coalesce(grid_code, (SELECT grid_code FROM people"
        " WHERE id = ?)) WHERE id = ?", (drop, phone, drop, drop, keep))
    await add_contact(conn, keep, "sms", phone, now)
    return Linked(keep, merged_from=drop)


async def set_phone_visible(conn: Connection, person_id: int, visible: bool) -> None:
    """Record whether the person agrees to show their phone number to their grid's staff."""
    await conn.execute("UPDATE people SET phone_visible = ? WHERE id = ?",
                       (1 if visible else 0, person_id))
