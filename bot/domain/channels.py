"""Channels described as data: how long a message may be, how choices are shown.

The senders and webhooks of real providers live beside this module; the simulators use
the `sim-*` specs, which behave like the channel they imitate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChannelSpec:
    """What a channel can carry."""

    name: str
    buttons: bool  # inline buttons; otherwise numbered lines ("回复 1 …")
    max_length: int  # characters in one message
    location_button: bool  # can ask for a GPS pin with a button
    photos_out: bool  # can show photos
    variant: str | None  # template variant folder ("sms"), None for the plain templates
    html: bool = False  # parse mode HTML: user text is escaped
    # Writing again undoes a stop (Telegram: the person unblocked the bot). On SMS only
    # START does, as carriers require.
    resume_on_write: bool = True
    location_out: bool = False  # can show a place on a map (a venue); otherwise a map link
    # A turn's consecutive plain texts go as one message (`join_texts`): Telegram spaces
    # the messages to one chat after a short burst. Not on SMS: there only the overall
    # rate counts, and each template's text keeps its own tested segment budget.
    joins_texts: bool = False


TELEGRAM = ChannelSpec("telegram", buttons=True, max_length=4096, location_button=True,
                       photos_out=True, variant=None, html=True, location_out=True,
                       joins_texts=True)
SMS = ChannelSpec("sms", buttons=False, max_length=335, location_button=False,
                  photos_out=False, variant="sms", resume_on_write=False)
SIM_TELEGRAM = ChannelSpec("sim-telegram", buttons=True, max_length=4096, location_button=True,
                           photos_out=True, variant=None, location_out=True, joins_texts=True)
SIM_SMS = ChannelSpec("sim-sms", buttons=False, max_length=335, location_button=False,
                      photos_out=False, variant="sms")

SPECS = {spec.name: spec for spec in (TELEGRAM, SMS, SIM_TELEGRAM, SIM_SMS)}
SIMULATED = ("sim-telegram", "sim-sms")


Message = tuple[str, dict[str, Any]]  # a rendered text and its payload (buttons, photos …)
JOINER = "\n\n"


def join_texts(messages: Sequence[Message], spec: ChannelSpec) -> list[Message]:
    """A turn's messages to one chat, consecutive plain texts (nothing in the payload: no
    buttons, photos, place or keyboard) joined into one, within the channel's length;
    order kept, and a message with anything more stays a message of its own."""
    if not spec.joins_texts:
        return list(messages)
    joined: list[Message] = []
    for body, payload in messages:
        if joined and not payload and not joined[-1][1] and body.strip() \
                and joined[-1][0].strip() \
                and _units(joined[-1][0]) + _units(JOINER) + _units(body) <= spec.max_length:
            joined[-1] = (joined[-1][0] + JOINER + body, {})
        else:
            joined.append((body, payload))
    return joined


def _units(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts (never less than characters)."""
    return len(text.encode("utf-16-le")) // 2


def spec_for(channel: str) -> ChannelSpec:
    """The spec of a channel by name."""
    try:
        return SPECS[channel]
    except KeyError:
        raise ValueError(f"unknown channel {channel!r}; known: {', '.join(SPECS)}") from None
