"""A light Bot API call for the hot path: sendMessage as a JSON post on one shared client.

python-telegram-bot builds a `Message` object from every answer and goes through its
request layers for each call: at 100 updates a second that cost about a quarter of the
sending time (1.6 ms of CPU a message against 1.2 ms for the post alone). Texts, most of
what gridbot sends, go through here instead; photos, venues and the rest stay with PTB.

The answer's errors become the exceptions PTB raises for them, with PTB's own rules, so
the sender's handling (`send.delivery_for`) is one and the same for both ways: 429 with
`retry_after`, 403, 400, a group that moved, the token refused, network errors.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import httpx
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

# PTB's defaults for its own client (seconds), so that both ways wait alike.
TIMEOUT = httpx.Timeout(connect=5.0, read=5.0, write=5.0, pool=1.0)
JSON_HEADERS = {"Content-Type": "application/json"}


class BotApi:
    """Posts Bot API methods as JSON over one keep-alive HTTP/1.1 client.

    The pool holds as many connections as the outbox lets messages be in flight, so a
    message never waits for a connection. Like PTB's client it reads HTTPS_PROXY and the
    like from the environment.
    """

    def __init__(self, base_url: str, connections: int) -> None:
        self.base_url = base_url  # https://api.telegram.org/bot<token>
        self.connections = connections
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=TIMEOUT, http1=True, http2=False, follow_redirects=False,
                limits=httpx.Limits(max_connections=self.connections,
                                    max_keepalive_connections=self.connections))
        return self._client

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """Call a method; its `result`, or the TelegramError PTB would raise."""
        body = json.dumps(params, ensure_ascii=False).encode()
        try:
            answer = await self._http().post(f"{self.base_url}/{method}", content=body,
                                             headers=JSON_HEADERS)
        except httpx.TimeoutException as exc:
            raise TimedOut(f"{method} timed out: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise NetworkError(f"httpx.{type(exc).__name__}: {exc}") from exc
        return result_of(answer.status_code, answer.content)

    async def close(self) -> None:
        """Close the connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def result_of(status: int, content: bytes) -> Any:
    """The `result` of a Bot API answer, or its error as PTB raises it
    (telegram.request.BaseRequest._request_wrapper)."""
    try:
        data = json.loads(content)
    except ValueError:
        data = None
    if HTTPStatus.OK <= status <= 299:
        if not isinstance(data, dict):
            raise TelegramError(f"Invalid server response: {content[:200]!r}")
        return data.get("result")
    try:
        message = f"{HTTPStatus(status).phrase} ({status})"
    except ValueError:
        message = f"Unknown HTTPError ({status})"
    if isinstance(data, dict):
        message = data.get("description") or message
        parameters = data.get("parameters")
        if parameters:
            if parameters.get("migrate_to_chat_id"):
                raise ChatMigrated(parameters["migrate_to_chat_id"])
            if parameters.get("retry_after"):
                raise RetryAfter(parameters["retry_after"])
            message += f". The server response contained unknown parameters: {parameters}"
    else:
        message += f". Parsing the server response {content[:200]!r} failed"
    if status == HTTPStatus.FORBIDDEN:
        raise Forbidden(message)
    if status in (HTTPStatus.NOT_FOUND, HTTPStatus.UNAUTHORIZED):
        raise InvalidToken(message)
    if status == HTTPStatus.BAD_REQUEST:
        raise BadRequest(message)
    if status == HTTPStatus.CONFLICT:
        raise Conflict(message)
    if status == HTTPStatus.BAD_GATEWAY:
        raise NetworkError(message)
    raise NetworkError(message)
