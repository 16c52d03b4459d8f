"""Telegram: the webhook or polling in, the Bot API out (python-telegram-bot as transport).

See docs/telegram.md for setting up a bot. The modules: `channel` (start, stop, polling),
`webhook` (the HTTP endpoint), `updates` (a stored update → `Inbound`), `send` (an outbox
row → Bot API calls).
"""

from bot.channels.telegram.channel import TelegramChannel
from bot.channels.telegram.webhook import routes

__all__ = ["TelegramChannel", "routes"]
