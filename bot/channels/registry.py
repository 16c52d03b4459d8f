"""Which provider channels run: each one whose settings are given."""

from __future__ import annotations

from starlette.routing import BaseRoute

from bot.channels import telegram
from bot.channels.base import Channel
from bot.channels.sms import channel as sms
from bot.channels.sms import webhook as sms_http
from bot.domain.clock import Clock
from bot.runtime.engine import Engine
from bot.settings import Settings


def configured_channels(settings: Settings, engine: Engine, clock: Clock) -> list[Channel]:
    """Build the channels the settings switch on (none by default: simulators only)."""
    channels: list[Channel] = []
    if settings.telegram_enabled:
        channels.append(telegram.TelegramChannel(settings, engine, clock))
    if settings.twilio_enabled:
        channels.append(sms.TwilioChannel(settings, engine, clock))
    return channels


def webhook_routes(settings: Settings) -> list[BaseRoute]:
    """The HTTP endpoints of the channels the settings switch on."""
    routes: list[BaseRoute] = []
    if settings.telegram_enabled and settings.telegram_mode == "webhook":
        routes += telegram.routes()
    if settings.twilio_enabled:
        routes += sms_http.routes()
    return routes
