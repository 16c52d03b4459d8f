"""Staff invitations and roles: the one place that makes an invitation code (for
`gridbot invite` and the console's staff page), says who may invite and revoke whom, and
draws the QR code of an invitation's Telegram deep link.

Who manages staff: an administrator, anyone; a street's dispatcher, roles in their street
(its communities and grids) and department roles, never the unscoped roles (admin,
supervisor). The CLI is the operator's and is not restricted.
"""

from __future__ import annotations

import base64
import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import segno

from bot.domain.workflow import Actor, Role
from bot.services.reference import ReferenceData
from store import staff as staff_store
from store.db import Connection

INVITE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read aloud safely
STAFF_ROLE_NAMES = ("grid_chief", "info_officer", "community_staff", "community_director",
                    "dispatcher", "department", "supervisor", "admin")
UNSCOPED_ROLES = frozenset({"admin", "supervisor"})
DEFAULT_LIFETIME = timedelta(days=7)


class InviteRefused(Exception):
    """No invitation made: `code` is scope_required, unknown_scope, unknown_role or
    not_allowed."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Invitation:
    """A fresh invitation: the code (shown once, only its hash is stored)."""

    code: str
    role: str
    scope: str | None
    expires_at: datetime


def new_code() -> str:
    """Eight characters that read aloud without confusion."""
    return "".join(secrets.choice(INVITE_ALPHABET) for _ in range(8))


def check_scope(reference: ReferenceData, role: str, scope: str | None) -> None:
    """Refuse a role that does not exist, or a scope it needs and lacks or that is unknown."""
    if role not in STAFF_ROLE_NAMES:
        raise InviteRefused("unknown_role")
    if scope is None and role not in UNSCOPED_ROLES:
        raise InviteRefused("scope_required")
    known = set(reference.district.areas) | {d.code for d in reference.departments}
    if scope is not None and scope not in known:
        raise InviteRefused("unknown_scope")


async def create_invite(conn: Connection, reference: ReferenceData, role: str,
                        scope: str | None, now: datetime,
                        lifetime: timedelta = DEFAULT_LIFETIME) -> Invitation:
    """Check and store a one-time invitation for a role in a scope; return its code."""
    check_scope(reference, role, scope)
    code = new_code()
    await staff_store.add_invite(conn, code, role, scope, now, now + lifetime)
    return Invitation(code, role, scope, now + lifetime)


def _street_of(reference: ReferenceData, code: str | None) -> str | None:
    return reference.district.ancestor(code, "street") if code else None


def may_manage(actors: Sequence[Actor], reference: ReferenceData, role: str,
               scope: str | None) -> bool:
    """Whether these roles may invite to, or revoke, a role in a scope."""
    for actor in actors:
        if actor.role == Role.ADMIN:
            return True
        if actor.role != Role.DISPATCHER or role in UNSCOPED_ROLES or scope is None:
            continue
        if any(d.code == scope for d in reference.departments) and role == "department":
            return True
        if actor.scope is not None and _street_of(reference, scope) == actor.scope:
            return True
    return False


def manages_anyone(actors: Sequence[Actor]) -> bool:
    """Whether the person may manage staff at all (an administrator or a dispatcher)."""
    return any(a.role in (Role.ADMIN, Role.DISPATCHER) for a in actors)


async def revoke(conn: Connection, reference: ReferenceData, actors: Sequence[Actor],
                 role_id: int, now: datetime) -> bool:
    """End one active role if these roles may (the store call of `gridbot staff
    revoke`); False when there is no such role or it is not theirs to end."""
    rows = [r for r in await staff_store.list_staff(conn) if r.role_id == role_id]
    if not rows or not may_manage(actors, reference, rows[0].role, rows[0].scope):
        return False
    return await staff_store.revoke_role(conn, role_id, now)


def deep_link(bot_username: str, code: str) -> str:
    """The Telegram link that opens the bot with `/start CODE` (the join)."""
    return f"https://t.me/{bot_username}?start={code}"


def qr_svg(link: str) -> str:
    """The link as a QR code in SVG (error correction M, a quiet zone of 4), sized for
    print: scale 6 gives about 4 cm for a deep link."""
    out = io.BytesIO()
    segno.make(link, error="m", micro=False).save(out, kind="svg", scale=6, border=4,
                                                   xmldecl=False, svgns=True,
                                                   title=link)
    return out.getvalue().decode("utf-8")


def qr_data_uri(link: str) -> str:
    """The QR code as a data: URI for an <img> (the page's CSP allows data: images)."""
    return "data:image/svg+xml;base64," + base64.b64encode(qr_svg(link).encode()).decode()
