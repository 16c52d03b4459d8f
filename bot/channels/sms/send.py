"""Sending SMS through the Twilio REST API with the twilio library, asynchronously.

twilio's `Client` addresses https://api.twilio.com. `RebasedHttpClient` is a twilio
`AsyncHttpClient` on httpx (the custom HTTP client twilio documents for proxies and
mocks) that sends the same requests to TWILIO_API_BASE_URL instead, so a gateway or the
tests' fake server can stand in; `create_async` then needs no thread.

`TwilioSender` makes one attempt per outbox row: 429 and 5xx are retried, 21610 (the
recipient texted STOP) stops the contact, other 4xx fail with Twilio's code and message.
It paces itself in segments (`SegmentPacer`): TWILIO_MPS counts segments, so a message of
three segments uses three of a second's budget.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from bot.domain.sms_segments import count, prepare
from bot.runtime.engine import KeyedLocks
from bot.runtime.outbox import Delivery, Limits
from bot.settings import Settings
from store.outbox import StoredOutbound

log = logging.getLogger(__name__)

TWILIO_HOST_SUFFIX = "twilio.com"
OPTED_OUT = 21610

# Twilio error codes worth a name on the message (https://www.twilio.com/docs/api/errors).
ERRORS = {
    "21211": "invalid 'To' phone number",
    "21408": "no permission to send to this region",
    "21610": "recipient unsubscribed (replied STOP)",
    "21614": "'To' is not a mobile number",
    "30003": "unreachable destination handset",
    "30004": "message blocked",
    "30005": "unknown destination handset",
    "30006": "landline or unreachable carrier",
    "30007": "message filtered by the carrier",
    "30008": "unknown error",
}


def describe(code: str | int | None, message: str = "") -> str:
    """An error as stored on a message: "30003 unreachable destination handset"."""
    name = ERRORS.get(str(code), message) if code is not None else message
    return f"{code} {name}".strip() if code is not None else name


class RebasedHttpClient(AsyncHttpClient):
    """twilio's requests over httpx, to TWILIO_API_BASE_URL instead of *.twilio.com."""

    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        super().__init__(logger=log, is_async=True, timeout=timeout)
        self.base = urlsplit(base_url.rstrip("/"))
        self.http = httpx.AsyncClient(timeout=timeout)

    def rebase(self, url: str) -> str:
        """The URL on the configured base, for a URL on a twilio.com host."""
        parts = urlsplit(url)
        if not parts.hostname or not parts.hostname.endswith(TWILIO_HOST_SUFFIX):
            return url
        return urlunsplit((self.base.scheme, self.base.netloc, self.base.path + parts.path,
                           parts.query, parts.fragment))

    async def request(  # the signature twilio calls
        self, method: str, uri: str, params: dict[str, object] | None = None,
        data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None, timeout: float | None = None,  # noqa: ASYNC109
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        """Make one HTTP request for the twilio library."""
        response = await self.http.request(
            method.upper(), self.rebase(uri), params=params, data=data,  # type: ignore[arg-type]
            headers=headers, auth=auth, timeout=timeout or self.timeout,
            follow_redirects=allow_redirects)
        return TwilioResponse(response.status_code, response.text, response.headers)

    async def close(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()


class SegmentPacer:
    """At most `rate` segments a second: each send reserves its segments' share of time."""

    def __init__(self, rate: float, now: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.rate = rate
        self.now = now
        self.sleep = sleep
        self.next_start = 0.0

    async def acquire(self, segments: int) -> float:
        """Wait for the turn of a message of `segments`; return the seconds waited."""
        now = self.now()
        start = max(now, self.next_start)
        self.next_start = start + max(segments, 1) / self.rate  # reserved before waiting
        if start > now:
            await self.sleep(start - now)
        return start - now


def delivery_for(exc: TwilioRestException | TwilioServiceException) -> Delivery:
    """What an error answer of the Twilio API means for the message."""
    status = int(getattr(exc, "status", 0) or 0)
    code = getattr(exc, "code", None)
    text = str(getattr(exc, "msg", None) or getattr(exc, "detail", None)
               or getattr(exc, "title", None) or "").removeprefix("Unable to create record: ")
    error = f"{code if code is not None else f'HTTP {status}'} {text}".strip()
    if code == OPTED_OUT:
        return Delivery("stopped", error=error)
    if status == 429 or status >= 500:
        return Delivery("retry", error=error)
    return Delivery("failed", error=error)


class TwilioSender:
    """Delivers the SMS outbox through Twilio's Messages API, paced in segments."""

    channel = "sms"

    def __init__(self, settings: Settings, status_url: str | None,
                 http: RebasedHttpClient | None = None,
                 pacer: SegmentPacer | None = None) -> None:
        self.http = http or RebasedHttpClient(settings.twilio_api_base_url)
        self.client = Client(settings.twilio_account_sid, settings.twilio_auth_token,
                             http_client=self.http)
        self.status_url = status_url
        self.pacer = pacer or SegmentPacer(settings.twilio_mps)
        self.limits = Limits(per_second=settings.twilio_mps,
                             concurrency=max(1, min(8, math.ceil(settings.twilio_mps))))
        self.origin: dict[str, str] = {}
        if settings.twilio_messaging_service_sid:
            self.origin["messaging_service_sid"] = settings.twilio_messaging_service_sid
        if settings.twilio_from_number:
            self.origin["from_"] = settings.twilio_from_number
        self.in_order = KeyedLocks()  # one recipient's messages leave in the queue's order

    async def send(self, message: StoredOutbound) -> Delivery:
        """Try to deliver one message; provider errors become a `Delivery`, never raise."""
        body = prepare(message.body)
        extra = {}
        if self.status_url:  # the row's id in the URL: a report finds it even before 'sent'
            extra["status_callback"] = f"{self.status_url}?id={message.id}"
        async with self.in_order.hold(message.address):
            await self.pacer.acquire(count(body).segments)
            try:
                created = await self.client.messages.create_async(
                    to=message.address, body=body, **self.origin, **extra)
            except (TwilioRestException, TwilioServiceException) as exc:
                return delivery_for(exc)
            except (httpx.HTTPError, TwilioException, ValueError) as exc:
                return Delivery("retry", error=f"{type(exc).__name__}: {exc}")
        return Delivery("sent", provider_id=str(created.sid))

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self.http.close()
