"""What flows see and say, independent of any channel.

An `Inbound` is one thing a person sent; a `Reply` is a template name with its context
and the choices to offer. Channels turn their payloads into `Inbound`s and render
`Reply`s their own way (buttons, numbered lines).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """The kinds of inbound message a flow handles."""

    TEXT = "text"
    COMMAND = "command"
    LOCATION = "location"
    PHOTO = "photo"
    OPTION = "option"


@dataclass(frozen=True)
class Photo:
    """A photo the channel has already received: where it is and what it is."""

    provider_ref: str | None = None
    path: str | None = None
    sha256: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class Inbound:
    """One message from a person on a channel."""

    channel: str
    address: str
    kind: Kind
    text: str = ""
    command: str | None = None
    args: str = ""
    lat: float | None = None
    lon: float | None = None
    photo: Photo | None = None
    option: str | None = None  # "MENU:INDEX" as the channel received it
    name: str | None = None  # the display name the channel gave, if any

    def to_payload(self) -> dict[str, Any]:
        """The inbound as a JSON-able dict (what the simulators store in the inbox)."""
        payload = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.photo is not None:
            payload["photo"] = {f.name: getattr(self.photo, f.name) for f in fields(self.photo)}
        return {k: v for k, v in payload.items() if v is not None and v != ""}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Inbound:
        """Rebuild an inbound stored by `to_payload`."""
        data = dict(payload)
        data["kind"] = Kind(data["kind"])
        if data.get("photo") is not None:
            data["photo"] = Photo(**data["photo"])
        return cls(**data)


class Unreadable(ValueError):
    """A stored payload refused as no message at all (a Telegram update that breaks the
    Bot API, an SMS from what is not a phone number): kept with this reason, not answered."""


def parse_text(channel: str, address: str, text: str, name: str | None = None) -> Inbound:
    """Turn typed text into a text or command inbound ("/case 12" → command "case")."""
    stripped = text.strip()
    if stripped.startswith("/") and len(stripped) > 1 and not stripped[1].isspace():
        head, _, args = stripped[1:].partition(" ")
        command = head.split("@", 1)[0].lower()  # Telegram adds @botname in groups
        return Inbound(channel, address, Kind.COMMAND, text=text, command=command,
                       args=args.strip(), name=name)
    return Inbound(channel, address, Kind.TEXT, text=text, name=name)


@dataclass(frozen=True)
class Choice:
    """One option offered to the person: a value for the flow, a label for the person."""

    value: str
    label: str


@dataclass(frozen=True)
class Localized:
    """A text in each locale, for a message whose recipient's language is not known yet
    (a notice to staff): the renderer picks the recipient's."""

    zh_CN: str
    en: str

    def text(self, locale: str) -> str:
        """The text in a locale (zh_CN unless English)."""
        return self.en if locale.startswith("en") else self.zh_CN


@dataclass(frozen=True)
class Location:
    """A place to show on a map with a message: the point, and what is there."""

    lat: float
    lon: float
    title: str | Localized = ""  # e.g. the nearest building
    address: str | Localized = ""  # e.g. its address and the grid


@dataclass(frozen=True)
class Reply:
    """A message to send: a template, its context, and what the person may choose."""

    template: str
    context: Mapping[str, Any] = field(default_factory=dict)
    choices: tuple[Choice, ...] = ()
    request_location: bool = False
    photos: tuple[int, ...] = ()  # media ids to show with the message
    location: Location | None = None  # where the message is about (a case's place)
