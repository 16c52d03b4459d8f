"""A test driver that talks to the engine like a person, and reads what comes back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.bootstrap import Gridbot
from bot.domain.messages import Inbound, Kind, Photo, parse_text
from store import outbox as outbox_store

NUMBERED = re.compile(r"^(?:回复 |Reply )?(\d+)[：:] ?(.*)$")


@dataclass
class Said:
    """One message the bot sent to this person."""

    text: str
    buttons: list[list[str]]
    payload: dict[str, Any]

    def button(self, label_part: str) -> str:
        """The option data of the first button whose label contains `label_part`."""
        for label, data in self.buttons:
            if label_part in label:
                return data
        raise AssertionError(f"no button with {label_part!r} in {self.buttons}")


class ChatDriver:
    """Sends messages as one person and collects the replies queued for them."""

    def __init__(self, bot: Gridbot, channel: str, address: str) -> None:
        self.bot = bot
        self.channel = channel
        self.address = address
        self.after = 0
        self.last: list[Said] = []

    async def _send(self, inbound: Inbound) -> list[Said]:
        await self.bot.engine.handle(inbound)
        return await self.inbox()

    async def inbox(self) -> list[Said]:
        """What arrived for this person since the last look (e.g. a notice)."""
        rows = await outbox_store.for_address(self.bot.db.conn, self.channel, self.address,
                                              self.after)
        if rows:
            self.after = rows[-1].id
        self.last = [Said(r.body, r.payload.get("buttons", []), r.payload) for r in rows]
        return self.last

    async def text(self, text: str) -> list[Said]:
        """Type a message (commands included)."""
        return await self._send(parse_text(self.channel, self.address, text))

    async def press(self, label_part: str) -> list[Said]:
        """Choose the option whose label contains `label_part`: a button, or on SMS the
        number of the "回复 N：label" line."""
        menu = next((s for s in reversed(self.last) if s.buttons), None)
        if menu is not None:
            return await self._send(Inbound(self.channel, self.address, Kind.OPTION,
                                            option=menu.button(label_part)))
        for line in self.said.splitlines():
            numbered = NUMBERED.match(line)
            if numbered and label_part in numbered.group(2):
                return await self.text(numbered.group(1))
        raise AssertionError(f"no option with {label_part!r} in {self.said!r}")

    async def option(self, data: str) -> list[Said]:
        """Send raw button data (to test stale or forged buttons)."""
        return await self._send(Inbound(self.channel, self.address, Kind.OPTION, option=data))

    async def location(self, lat: float, lon: float) -> list[Said]:
        """Share a GPS location."""
        return await self._send(Inbound(self.channel, self.address, Kind.LOCATION,
                                        lat=lat, lon=lon))

    async def photo(self, sha: str = "ab" * 32) -> list[Said]:
        """Send a photo (already stored by the channel)."""
        return await self._send(Inbound(self.channel, self.address, Kind.PHOTO,
                                        photo=Photo(provider_ref=f"file-{sha[:8]}",
                                                    path=f"{sha[:2]}/{sha}.jpg", sha256=sha,
                                                    content_type="image/jpeg")))

    @property
    def said(self) -> str:
        """Everything the bot said in answer to the last message, as one text."""
        return "\n".join(s.text for s in self.last)
