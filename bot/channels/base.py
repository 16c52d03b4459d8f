"""What a provider channel (Telegram, SMS) plugs into: a parser, a sender, start/stop.

Its webhook routes are listed in `bot.channels.registry.webhook_routes`; their endpoints
find the running channel with `Gridbot.channel(name)`.
"""

from __future__ import annotations

from typing import Protocol

from bot.runtime.engine import InboundParser
from bot.runtime.outbox import ChannelSender


class Channel(Protocol):
    """A provider channel, built by `bot.channels.registry` when its settings are given."""

    name: str

    def parser(self) -> InboundParser:
        """How the engine turns this channel's stored inbox payloads into `Inbound`s."""
        ...

    def sender(self) -> ChannelSender:
        """How queued messages of this channel are delivered."""
        ...

    async def start(self) -> None:
        """Connect to the provider (register the webhook, start polling...)."""
        ...

    async def stop(self) -> None:
        """Disconnect cleanly."""
        ...
