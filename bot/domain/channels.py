"""Channels described as data: how long a message may be, how choices are shown.

The senders and webhooks of real providers live beside this module; the simulators use
the `sim-*` specs, which behave like the channel they imitate.
"""

from __future__ import annotations

from dataclasses import dataclass


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


TELEGRAM = ChannelSpec("telegram", buttons=True, max_length=4096, location_button=True,
                       photos_out=True, variant=None, html=True, location_out=True)
SMS = ChannelSpec("sms", buttons=False, max_length=335, location_button=False,
                  photos_out=False, variant="sms", resume_on_write=False)
SIM_TELEGRAM = ChannelSpec("sim-telegram", buttons=True, max_length=4096, location_button=True,
                           photos_out=True, variant=None, location_out=True)
SIM_SMS = ChannelSpec("sim-sms", buttons=False, max_length=335, location_button=False,
                      photos_out=False, variant="sms")

SPECS = {spec.name: spec for spec in (TELEGRAM, SMS, SIM_TELEGRAM, SIM_SMS)}
SIMULATED = ("sim-telegram", "sim-sms")


def spec_for(channel: str) -> ChannelSpec:
    """The spec of a channel by name."""
    try:
        return SPECS[channel]
    except KeyError:
        raise ValueError(f"unknown channel {channel!r}; known: {', '.join(SPECS)}") from None
