"""Signing in to the console without passwords: staff are known by their chat.

A staff member asks the bot (`/console`) or the operator asks the CLI
(`gridbot console-link --role-id N`) for a sign-in link. The link carries a random secret,
stored only as its SHA-256; it works once, for that person, for `LINK_MINUTES`, and a
person gets at most `LINKS_PER_HOUR` of them. Redeeming it starts a session: another
random secret, kept (hashed) in `console_sessions` with the session's CSRF token, and
given to the browser in a cookie signed with itsdangerous under a key derived from the
server's link key (bot/services/links.py). A session ends after `IDLE` without a request,
or at sign-out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from itsdangerous import BadSignature, Signer

from bot.domain.workflow import Actor
from bot.services import casework, links
from bot.settings import Settings
from store import console as console_store
from store.db import Connection

LINK_MINUTES = 10
LINKS_PER_HOUR = 5
FAILED_SIGN_INS = 10  # wrong, used or expired links from one address...
FAILED_WINDOW = timedelta(minutes=10)  # ...within this, then refused until it passes
IDLE = timedelta(hours=12)
LOGIN_PATH = "/console/login"
_CONTEXT = b"gridbot console sessions v1"


class SignInRefused(Exception):
    """A sign-in link that cannot be used; `reason` is unknown, used, expired or not_staff."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooManyLinks(Exception):
    """The person asked for more sign-in links than `LINKS_PER_HOUR`."""


@dataclass(frozen=True)
class NewSession:
    """A session just started: the secret for the cookie and the person."""

    secret: str
    person_id: int
    csrf: str


@dataclass(frozen=True)
class SignedIn:
    """A live session: who, as which staff roles, and the token their forms carry."""

    session_id: int
    person_id: int
    actors: list[Actor]
    csrf: str
    last_seen_at: datetime


def digest(secret: str) -> str:
    """The stored form of a link's or session's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def session_signer(settings: Settings) -> Signer:
    """Signs and checks the session cookie, under a key of its own derived from the
    server's link key."""
    key = hmac.new(links.link_key(settings), _CONTEXT, hashlib.sha256).digest()
    return Signer(key, salt="gridbot-console-session")


def cookie_value(signer: Signer, secret: str) -> str:
    """The cookie's value for a session secret."""
    return signer.sign(secret).decode()


def secret_from_cookie(signer: Signer, value: str) -> str | None:
    """The session secret in a cookie, or None when its signature is wrong."""
    try:
        return signer.unsign(value).decode()
    except BadSignature:
        return None


async def issue_link(conn: Connection, person_id: int, now: datetime, base_url: str) -> str:
    """A new one-time sign-in link for a staff member.

    Raises SignInRefused("not_staff") for someone holding no staff role, and TooManyLinks
    past `LINKS_PER_HOUR`.
    """
    if not await casework.staff_actors(conn, person_id):
        raise SignInRefused("not_staff")
    if await console_store.links_since(conn, person_id, now - timedelta(hours=1)) \
            >= LINKS_PER_HOUR:
        raise TooManyLinks(person_id)
    secret = secrets.token_urlsafe(32)
    await console_store.add_link(conn, digest(secret), person_id, now,
                                 now + timedelta(minutes=LINK_MINUTES))
    return f"{base_url.rstrip('/')}{LOGIN_PATH}?t={secret}"


async def check_link(conn: Connection, secret: str, now: datetime) -> int:
    """The person a link is for, when it can still be used (without using it)."""
    link = await console_store.find_link(conn, digest(secret))
    if link is None:
        raise SignInRefused("unknown")
    if link.used_at is not None:
        raise SignInRefused("used")
    if now >= link.expires_at:
        raise SignInRefused("expired")
    return link.person_id


async def redeem(conn: Connection, secret: str, now: datetime) -> NewSession:
    """Use a sign-in link (once) and start a session for its person."""
    person_id = await check_link(conn, secret, now)
    link = await console_store.find_link(conn, digest(secret))
    assert link is not None
    if not await console_store.use_link(conn, link.id, now):
        raise SignInRefused("used")
    if not await casework.staff_actors(conn, person_id):
        raise SignInRefused("not_staff")  # the role was revoked since the link was given
    session_secret = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    await console_store.add_session(conn, digest(session_secret), person_id, csrf, now)
    return NewSession(session_secret, person_id, csrf)


async def signed_in(conn: Connection, secret: str, now: datetime) -> SignedIn | None:
    """The live session for a secret, or None (unknown, signed out, idle past `IDLE`, or
    the person no longer holds a staff role). Does not record the visit: see `touch`."""
    session = await console_store.find_session(conn, digest(secret))
    if session is None or session.ended_at is not None or now - session.last_seen_at > IDLE:
        return None
    actors = await casework.staff_actors(conn, session.person_id)
    if not actors:
        return None
    return SignedIn(session.id, session.person_id, actors, session.csrf, session.last_seen_at)


async def touch(conn: Connection, session: SignedIn, now: datetime) -> None:
    """Record a request on the session: its idle time starts again."""
    await console_store.touch_session(conn, session.session_id, now)


async def sign_out(conn: Connection, session: SignedIn, now: datetime) -> None:
    """End a session."""
    await console_store.end_session(conn, session.session_id, now)


def csrf_ok(session: SignedIn, given: str | None) -> bool:
    """Whether a request's CSRF token is its session's (constant time)."""
    return bool(given) and hmac.compare_digest(session.csrf.encode(), str(given).encode())


async def person_of_role(conn: Connection, role_id: int) -> int | None:
    """The person holding an active role, for `gridbot console-link --role-id N`."""
    return await console_store.person_of_role(conn, role_id)


@dataclass
class FailedSignIns:
    """Counts failed sign-ins per client address in memory: past `FAILED_SIGN_INS` within
    `FAILED_WINDOW` an address is refused (guessing links is pointless anyway: 256 bits)."""

    limit: int = FAILED_SIGN_INS
    window: timedelta = FAILED_WINDOW
    _failures: dict[str, deque[datetime]] = field(default_factory=dict)

    def blocked(self, address: str, now: datetime) -> bool:
        """Whether this address has failed too often lately."""
        times = self._failures.get(address)
        while times and now - times[0] > self.window:
            times.popleft()
        return times is not None and len(times) >= self.limit

    def failed(self, address: str, now: datetime) -> None:
        """Count one failed sign-in from this address."""
        if len(self._failures) > 10_000:  # bounded: forget the oldest addresses
            self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(address, deque()).append(now)
