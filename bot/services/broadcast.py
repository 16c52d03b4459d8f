"""One message to many people: rendered once per language and channel, queued as bulk.

Bulk messages (notices, meeting invitations and reminders, digests, rating reminders) go
to the outbox behind replies and assignments. Queued during quiet hours they wait until
the quiet hours end, unless they would expire first (a reminder for a meeting at 07:30).
Their buttons are standing options ("ack:12", "rsvp:3:yes") that do not depend on the
recipient's current menu, so a notice never disturbs a dialogue under way; on channels
without buttons the same options are numbered lines, answered by typing the number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.channels import spec_for
from bot.services.render import Renderer
from store import bulk as bulk_store
from store.db import Connection
from store.notices import Recipient
from store.outbox import PRIORITY_BULK, OutboundRow

# Scheduled messages to one person (digests, warnings): after replies, before bulk.
PRIORITY_DIGEST = 5


@dataclass(frozen=True)
class Option:
    """A standing option: the value a button sends, the label key of its text."""

    value: str
    label: str  # a key in labels.toml


def quiet_until(now: datetime, quiet: tuple[time, time] | None, tz: ZoneInfo) -> datetime | None:
    """When the quiet hours `now` falls in end, or None outside quiet hours."""
    if quiet is None:
        return None
    start, end = quiet
    local = now.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    inside = (start <= clock < end) if start < end else (clock >= start or clock < end)
    if not inside:
        return None
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=tz)


@dataclass
class Bulk:
    """How a bulk message is queued: when, until when, with what priority."""

    now: datetime
    quiet: tuple[time, time] | None
    tz: ZoneInfo
    expires_at: datetime | None = None
    priority: int = PRIORITY_BULK

    def not_before(self) -> datetime | None:
        """The end of the quiet hours, unless the message would expire by then."""
        until = quiet_until(self.now, self.quiet, self.tz)
        if until is None or (self.expires_at is not None and until >= self.expires_at):
            return None
        return until


def render_bulk(
    renderer: Renderer, default_locale: str, recipients: Iterable[Recipient], template: str,
    context: Callable[[str], Mapping[str, Any]], bulk: Bulk,
    options: Sequence[Option] = (), photo_id: int | None = None,
) -> list[OutboundRow]:
    """Outbox rows for every recipient, each rendered once per (language, channel)."""
    rendered: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    not_before = bulk.not_before()
    rows = []
    for person in recipients:
        locale = person.locale or default_locale
        key = (locale, person.channel)
        if key not in rendered:
            rendered[key] = render_one(renderer, locale, person.channel, template,
                                       context(locale), options, photo_id)
        body, payload = rendered[key]
        rows.append(OutboundRow(person.channel, person.address, person.person_id, body,
                                payload, priority=bulk.priority, next_attempt_at=not_before,
                                expires_at=bulk.expires_at))
    return rows


def render_one(
    renderer: Renderer, locale: str, channel: str, template: str,
    context: Mapping[str, Any], options: Sequence[Option] = (), photo_id: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """(text, payload) of one message with standing options, for a language and channel."""
    spec = spec_for(channel)
    body = renderer.render_text(locale, template, {**context, "locale": locale}, spec)
    payload: dict[str, Any] = {}
    labels = [renderer.label(locale, option.label) for option in options]
    if options and spec.buttons:
        payload["buttons"] = [[label, option.value]
                              for label, option in zip(labels, options, strict=True)]
    elif options:
        body += "\n" + "\n".join(renderer.label(locale, "reply_n", n=n, label=label)
                                 for n, label in enumerate(labels, start=1))
    if photo_id is not None and spec.photos_out:
        payload["photos"] = [photo_id]
    return body, payload


async def queue_staged(
    conn: Connection, renderer: Renderer, default_locale: str,
    groups: Mapping[tuple[str | None, str], int], template: str,
    context: Callable[[str], Mapping[str, Any]], bulk: Bulk,
    options: Sequence[Option] = (), photo_id: int | None = None, notice_id: int | None = None,
) -> int:
    """Queue a message to a staged audience (`store.bulk.staged`, whose counts per language
    and channel are `groups`), rendered once for each; return how many rows (tagged with
    `notice_id` for a notice's delivery count)."""
    not_before = bulk.not_before()
    queued = 0
    for (locale, channel) in groups:
        shown = locale or default_locale
        body, payload = render_one(renderer, shown, channel, template, context(shown),
                                   options, photo_id)
        queued += await bulk_store.queue(conn, locale, channel, body, payload,
                                         priority=bulk.priority, now=bulk.now,
                                         next_attempt_at=not_before,
                                         expires_at=bulk.expires_at, notice_id=notice_id)
    return queued


def per_channel(recipients: Iterable[Recipient]) -> dict[str, int]:
    """How many recipients each channel reaches, by channel name."""
    counts: dict[str, int] = {}
    for person in recipients:
        counts[person.channel] = counts.get(person.channel, 0) + 1
    return dict(sorted(counts.items()))
