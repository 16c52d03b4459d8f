"""A fake department's own Open311 GeoReport v2 system on localhost, over real HTTP.

It takes POST requests.json (checking the api_key, answering its own request id like a
GeoReport server) and serves GET servicerequestupdates.json with the updates a test
`report`s, in FixMyStreet's extension's fields. `fail_next` makes the next POSTs answer
500. Served by uvicorn on 127.0.0.1 (tests.fake_twilio.LocalServer).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fake_twilio import LocalServer

PREFIX = "/open311/v2"


@dataclass
class FakeOpen311:
    """A department's GeoReport server: what it received, what it reports back."""

    api_key: str
    received: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    pulls: list[dict[str, str]] = field(default_factory=list)
    failures: int = 0
    hanging: bool = False  # POSTs wait, unanswered, until `stop`
    extra_updates: list[Any] = field(default_factory=list)  # served as they are, malformed
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.server = LocalServer(Starlette(routes=[
            Route(PREFIX + "/requests.json", self._create, methods=["POST"]),
            Route(PREFIX + "/servicerequestupdates.json", self._updates, methods=["GET"]),
        ]))
        self.endpoint = self.server.url + PREFIX
        self._released = asyncio.Event()

    async def start(self) -> None:
        """Serve on localhost."""
        self.server.serve()

    async def stop(self) -> None:
        """Stop serving (answering the hanging requests first)."""
        self._released.set()
        await self.server.stop()

    def fail_next(self, times: int = 1) -> None:
        """Answer the next POSTs with 500."""
        self.failures += times

    def report(self, request_id: str, status: str, at: datetime,
               description: str = "") -> None:
        """The department changes one of its requests at `at`; the next pull sees it."""
        self.updates.append({
            "update_id": f"U{len(self.updates) + 1}", "service_request_id": request_id,
            "status": status, "description": description, "media_url": None,
            "updated_datetime": at.isoformat(timespec="seconds")})

    async def _create(self, request: Request) -> Response:
        form = dict((await request.form()).items())
        if form.get("api_key") != self.api_key:
            return JSONResponse([{"code": 403, "description": "bad api_key"}], 403)
        if self.hanging:
            await self._released.wait()
            return JSONResponse([{"code": 503, "description": "gave up"}], 503)
        if self.failures:
            self.failures -= 1
            return JSONResponse([{"code": 500, "description": "down"}], 500)
        request_id = f"EXT-{next(self._ids)}"
        self.received.append({**form, "service_request_id": request_id})
        return JSONResponse([{"service_request_id": request_id}], 201)

    async def _updates(self, request: Request) -> Response:
        params = dict(request.query_params)
        if params.get("api_key") != self.api_key:
            return JSONResponse([{"code": 403, "description": "bad api_key"}], 403)
        self.pulls.append(params)
        return JSONResponse([*self.extra_updates, *self.updates])
