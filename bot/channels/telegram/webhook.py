"""`POST /telegram/webhook`: check the caller, store the update, answer, then process.

The secret token is compared in constant time before the body is read (403, nothing
stored); a body over 1 MB is refused (413) whether it says so in Content-Length or not;
a body that is not a JSON update, or nests deeper than any update does, is 400
(`bot.channels.http_input`). The update is in the inbox before the 200, so a
crash after it loses nothing, and a redelivered `update_id` is answered 200 and not
processed again. A pressed button is answered in the 200 itself (answerCallbackQuery).
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.channels.http_input import MAX_BODY, BadInput, parse_json, read_body
from bot.channels.telegram.channel import WEBHOOK_PATH, TelegramChannel

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def _answer(status: int) -> Response:
    return Response(status_code=status)


def _allowed(request: Request, channel: TelegramChannel) -> bool:
    expected = channel.webhook_secret
    given = request.headers.get(SECRET_HEADER)
    if not expected or given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def _update(body: bytes) -> tuple[dict[str, Any], str]:
    """The update and its JSON text (stored as it came); BadInput if it is not an update."""
    update, text = parse_json(body)  # Telegram sends UTF-8
    if not isinstance(update, dict) or type(update.get("update_id")) is not int:
        raise BadInput("not a Telegram update: an object with an integer update_id")
    return update, text


async def telegram_webhook(request: Request) -> Response:
    """Take one update from Telegram."""
    channel = request.app.state.gridbot.channel("telegram")
    assert isinstance(channel, TelegramChannel)
    if not _allowed(request, channel):
        return _answer(403)
    try:
        update, text = _update(await read_body(request, MAX_BODY))
    except BadInput as exc:
        return PlainTextResponse(str(exc), status_code=exc.status)
    await channel.take(update, text)
    return _reply(update)


def _reply(update: dict[str, Any]) -> Response:
    """200; for a pressed button, with the answerCallbackQuery Telegram waits for.

    Telegram runs a method given in the webhook's answer, which saves a call of our own
    and stops the button's spinner at once, before the update is processed (and again,
    harmlessly, for a redelivered one). In polling mode the parser answers instead.
    """
    query = update.get("callback_query")
    if isinstance(query, dict) and isinstance(query.get("id"), str):
        return JSONResponse({"method": "answerCallbackQuery", "callback_query_id": query["id"]})
    return _answer(200)


def routes() -> list[Route]:
    """The webhook endpoint."""
    return [Route(WEBHOOK_PATH, telegram_webhook, methods=["POST"])]
