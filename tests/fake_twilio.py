"""A fake Twilio REST API on localhost, over real HTTP, for the SMS tests.

It takes `POST /2010-04-01/Accounts/{sid}/Messages.json` with the form fields Twilio takes
(To, From or MessagingServiceSid, Body, StatusCallback...), checks HTTP basic auth with the
account SID and auth token, records each message and answers like Twilio (201, a JSON
message resource with an `SM...` sid and status `queued`). `fail_next` makes the next
calls answer with a Twilio error instead (21610, 429, 500...). It also serves MMS media
at the URLs Twilio gives them (`.../Messages/{MM}/Media/{ME}`), behind the same auth.

`LocalServer` serves any Starlette app with uvicorn on 127.0.0.1 on a port the OS picks;
the socket is bound before the server starts, so its URL is known at once and nothing
waits for the server to come up.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API = "/2010-04-01/Accounts"


class LocalServer:
    """A Starlette app served by uvicorn on 127.0.0.1, on a port the OS assigned."""

    def __init__(self, app: Starlette) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def serve(self, app: Starlette | None = None) -> None:
        """Start serving (the app given now, if it was not known when the port was)."""
        config = uvicorn.Config(app or self.app, lifespan="off", log_level="warning",
                                access_log=False)
        self._server = uvicorn.Server(config)
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._server.serve(sockets=[self.sock]))

    async def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class Failure:
    """An error answer for one call, as Twilio gives it."""

    status: int
    code: int
    message: str


@dataclass
class FakeTwilio:
    """The parts of Twilio's REST API gridbot uses, with what it was asked recorded."""

    account_sid: str
    auth_token: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    failures: deque[Failure] = field(default_factory=deque)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    media_fetches: list[str] = field(default_factory=list)
    refused_auth: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.server = LocalServer(Starlette(routes=[
            Route(API + "/{sid}/Messages.json", self._create, methods=["POST"]),
            Route(API + "/{sid}/Messages/{message}/Media/{media}", self._media,
                  methods=["GET"]),
        ]))
        self.base_url = self.server.url

    async def start(self) -> None:
        """Serve on localhost."""
        self.server.serve()

    async def stop(self) -> None:
        """Stop serving."""
        await self.server.stop()

    def fail_next(self, status: int, code: int, message: str, times: int = 1) -> None:
        """Answer the next `times` message requests with this error."""
        self.failures.extend(Failure(status, code, message) for _ in range(times))

    def add_media(self, data: bytes, content_type: str) -> str:
        """Store an MMS attachment; return its URL, as Twilio's MediaUrlN gives it."""
        number = next(self._ids)
        url = (f"{self.base_url}{API}/{self.account_sid}/Messages/MM{number:032d}"
               f"/Media/ME{number:032d}")
        self.media[url] = (data, content_type)
        return url

    def bodies_to(self, to: str) -> list[str]:
        """The texts sent to a number, in order."""
        return [m["Body"] for m in self.messages if m["To"] == to]

    def _authorized(self, request: Request, sid: str) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        ok = sid == self.account_sid and request.headers.get("authorization") == f"Basic {expected}"
        if not ok:
            self.refused_auth += 1
        return ok

    @staticmethod
    def _error(status: int, code: int, message: str) -> JSONResponse:
        return JSONResponse({"code": code, "message": message, "status": status,
                             "more_info": f"https://www.twilio.com/docs/errors/{code}"},
                            status_code=status)

    async def _create(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        if not self._authorized(request, sid):
            return self._error(401, 20003, "Authenticate")
        async with request.form() as form:
            params = {k: str(v) for k, v in form.items()}
        if self.failures:
            failure = self.failures.popleft()
            return self._error(failure.status, failure.code, failure.message)
        if not params.get("To"):
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not (params.get("From") or params.get("MessagingServiceSid")):
            return self._error(400, 21603, "A 'From' phone number is required.")
        if not (params.get("Body") or params.get("MediaUrl")):
            return self._error(400, 21602, "Message body is required.")
        message_sid = f"SM{next(self._ids):032d}"
        self.messages.append({**params, "Sid": message_sid})
        return JSONResponse({
            "sid": message_sid, "account_sid": sid, "api_version": "2010-04-01",
            "to": params["To"], "from": params.get("From"), "body": params["Body"],
            "messaging_service_sid": params.get("MessagingServiceSid"),
            "status": "queued", "direction": "outbound-api", "num_media": "0",
            "num_segments": "1", "error_code": None, "error_message": None, "price": None,
            "date_created": "Mon, 23 Nov 2026 02:00:00 +0000",
            "uri": f"{API}/{sid}/Messages/{message_sid}.json",
        }, status_code=201)

    async def _media(self, request: Request) -> Response:
        if not self._authorized(request, request.path_params["sid"]):
            return self._error(401, 20003, "Authenticate")
        url = f"{self.base_url}{request.url.path}"
        self.media_fetches.append(url)
        if url not in self.media:
            return self._error(404, 20404, "The requested resource was not found")
        data, content_type = self.media[url]
        return Response(data, media_type=content_type)
