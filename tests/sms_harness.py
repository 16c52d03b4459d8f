"""gridbot with SMS on, over real HTTP on localhost, against the fake Twilio.

The webhook posts are signed with twilio's own `RequestValidator`; the outbox is drained
by calling the SMS worker's `drain_once` (no background sender, no sleeping), and the
replies are read from what the fake Twilio recorded.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

from bot.bootstrap import Gridbot, build
from bot.channels.sms.channel import INBOUND_PATH, STATUS_PATH, TwilioChannel
from bot.domain.clock import FakeClock
from bot.entrypoints.http import create_app
from bot.runtime.outbox import OutboxWorker
from bot.settings import Settings
from tests.fake_twilio import FakeTwilio, LocalServer

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f3c2a1b0e9d8c7b6a5f4e3d2c1b0a9f8"
OUR_NUMBER = "+15005550006"
RESIDENT = "+8613912345678"
NEIGHBOUR = "+8613987654321"
CHIEF_PHONE = "+8613800001001"  # 王丽华, grid chief of grid 1 in the demo staff file

_sids = itertools.count(1)


def settings_for(tmp_path: Path, public_url: str, base_url: str,
                 **extra: str) -> Settings:
    """Settings with SMS on, pointing at the fake Twilio."""
    return Settings.from_mapping({
        "GRIDBOT_DATABASE": str(tmp_path / "gridbot.db"),
        "GRIDBOT_MEDIA_DIR": str(tmp_path / "media"),
        "GRIDBOT_PUBLIC_URL": public_url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": OUR_NUMBER,
        "TWILIO_API_BASE_URL": base_url,
        "TWILIO_MPS": "1000",
        **extra,
    })


def inbound_form(body: str, sender: str = RESIDENT,
                 media: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """A webhook form as Twilio posts it for an incoming SMS or MMS."""
    sid = f"SM{next(_sids):032x}"
    form = {
        "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": str(len(media)),
        "ToCity": "", "FromZip": "", "SmsSid": sid, "FromState": "", "SmsStatus": "received",
        "FromCity": "", "Body": body, "FromCountry": "CN", "To": OUR_NUMBER, "ToZip": "",
        "NumSegments": "1", "MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": sender,
        "ApiVersion": "2010-04-01",
    }
    for index, (url, content_type) in enumerate(media):
        form[f"MediaUrl{index}"] = url
        form[f"MediaContentType{index}"] = content_type
    return form


@dataclass
class SmsHarness:
    """One running gridbot with SMS, its HTTP address, and the fake Twilio."""

    bot: Gridbot
    server: LocalServer
    twilio: FakeTwilio
    clock: FakeClock
    http: httpx.AsyncClient = field(default_factory=httpx.AsyncClient)
    validator: RequestValidator = field(default_factory=lambda: RequestValidator(AUTH_TOKEN))
    seen: dict[str, int] = field(default_factory=dict)

    @classmethod
    async def start(cls, tmp_path: Path, clock: FakeClock, twilio: FakeTwilio,
                    **extra: str) -> SmsHarness:
        """Build gridbot on a fresh database and serve it on localhost."""
        server = LocalServer(None)  # type: ignore[arg-type]
        settings = settings_for(tmp_path, extra.pop("public_url", server.url),
                                twilio.base_url, **extra)
        bot = await build(settings, clock)
        app = create_app(settings, bot)
        app.state.gridbot = bot  # lifespan off: no background senders in tests
        server.serve(app)
        await bot.channel("sms").start()
        return cls(bot, server, twilio, clock)

    async def close(self) -> None:
        """Stop everything this harness started."""
        await self.http.aclose()
        await self.server.stop()
        await self.channel.stop()
        await self.bot.close()

    @property
    def channel(self) -> TwilioChannel:
        """The running SMS channel."""
        channel = self.bot.channel("sms")
        assert isinstance(channel, TwilioChannel)
        return channel

    @property
    def worker(self) -> OutboxWorker:
        """The SMS outbox worker (driven by hand)."""
        return next(w for w in self.bot.workers if w.sender.channel == "sms")

    @property
    def public_url(self) -> str:
        """The URL Twilio would be told to call."""
        return self.bot.settings.public_url

    def sign(self, url: str, form: Mapping[str, str]) -> str:
        """The X-Twilio-Signature Twilio would send for this URL and form."""
        return str(self.validator.compute_signature(url, dict(form)))

    async def post(self, form: Mapping[str, str], path: str = INBOUND_PATH, *,
                   signature: str | None = "sign", signed_url: str | None = None,
                   headers: Mapping[str, str] | None = None) -> httpx.Response:
        """POST a form to gridbot, signed for `signed_url` (default: the public URL)."""
        all_headers = dict(headers or {})
        if signature == "sign":
            signature = self.sign(signed_url or self.public_url + path, form)
        if signature is not None:
            all_headers["X-Twilio-Signature"] = signature
        response = await self.http.post(self.server.url + path, data=dict(form),
                                        headers=all_headers)
        await self.channel.engine.settle()
        return response

    async def drain(self) -> int:
        """Send everything due now through the fake Twilio; return how many were tried."""
        tried = 0
        while sent := await self.worker.drain_once():
            tried += sent
        return tried

    async def text(self, body: str, sender: str = RESIDENT,
                   media: Sequence[tuple[str, str]] = ()) -> str:
        """Text gridbot as `sender`; return what it texted back (all of it, one string)."""
        response = await self.post(inbound_form(body, sender, media))
        assert response.status_code == 200, response.text
        await self.drain()
        return self.replies(sender)

    def replies(self, sender: str) -> str:
        """What was texted to `sender` since the last look."""
        bodies = self.twilio.bodies_to(sender)
        new = bodies[self.seen.get(sender, 0):]
        self.seen[sender] = len(bodies)
        return "\n".join(new)

    async def status(self, message: Mapping[str, str], status: str,
                     error_code: str | None = None) -> httpx.Response:
        """Post the delivery report Twilio would send for a message it recorded."""
        form = {"MessageSid": message["Sid"], "MessageStatus": status, "SmsStatus": status,
                "To": message["To"], "From": OUR_NUMBER, "AccountSid": ACCOUNT_SID,
                "ApiVersion": "2010-04-01"}
        if error_code:
            form["ErrorCode"] = error_code
        callback = message["StatusCallback"]
        path = callback.removeprefix(self.public_url)
        assert path.startswith(STATUS_PATH), callback
        return await self.post(form, path, signed_url=callback)

    async def count(self, sql: str, *params: object) -> int:
        """A count from the database."""
        rows = await self.bot.db.fetchall(sql, params)
        return int(rows[0][0])

    def now(self) -> datetime:
        """The harness clock's time."""
        return self.clock.now()
