"""The SMS webhooks: `POST /sms/twilio` (messages) and `POST /sms/twilio/status` (delivery).

Both check `X-Twilio-Signature` with twilio's `RequestValidator` against the URL Twilio
called: GRIDBOT_PUBLIC_URL + path (+ query). Behind a reverse proxy, with
GRIDBOT_TRUST_PROXY set, the scheme and host come from X-Forwarded-Proto and
X-Forwarded-Host instead. A missing or wrong signature gets 403 and nothing is stored.

A message is stored under its MessageSid before the answer, an empty TwiML `<Response/>`
(replies go out through the REST API from the outbox); a MessageSid seen before is
answered the same way and not handled again.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.twiml.messaging_response import MessagingResponse

from bot.channels.http_input import BadInput, int_param, read_body
from bot.channels.sms.channel import CHANNEL, INBOUND_PATH, STATUS_PATH, TwilioChannel
from bot.settings import Settings

log = logging.getLogger(__name__)

MAX_FIELDS = 200  # an MMS with ten media has about 60
# Twilio's form: 1,600 characters of body and ten media URLs are a few kB. The signature
# covers the fields, so the form is read before it can be checked: bounded, not buffered.
MAX_FORM_BYTES = 64 * 1024


def called_url(request: Request, settings: Settings) -> str:
    """The URL Twilio signed: the public URL with this request's path and query."""
    public = urlsplit(settings.public_url)
    scheme, host = public.scheme, public.netloc
    if settings.trust_proxy:
        scheme = _first(request.headers.get("x-forwarded-proto")) or scheme
        host = _first(request.headers.get("x-forwarded-host")) or host
    return urlunsplit((scheme, host, public.path.rstrip("/") + request.url.path,
                       request.url.query, ""))


def _first(header: str | None) -> str | None:
    """The client-side value of a forwarded header ("https, http" → "https")."""
    return header.split(",")[0].strip() or None if header else None


def _channel(request: Request) -> TwilioChannel:
    channel = request.app.state.gridbot.channel(CHANNEL)  # set by the app's lifespan
    assert isinstance(channel, TwilioChannel)
    return channel


async def _signed_form(request: Request, channel: TwilioChannel) -> dict[str, str] | Response:
    """The posted form if Twilio signed it for this URL; else the answer to give (403, or
    413 for a body past the bound)."""
    signature = request.headers.get("x-twilio-signature")
    if not signature:
        return _forbidden()
    try:
        body = await read_body(request, MAX_FORM_BYTES)
        fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True,
                                max_num_fields=MAX_FIELDS))
    except BadInput as exc:
        return PlainTextResponse(str(exc), status_code=exc.status)
    except ValueError:
        return PlainTextResponse(f"more than {MAX_FIELDS} form fields", status_code=400)
    url = called_url(request, channel.settings)
    if not channel.validator.validate(url, fields, signature):
        log.warning("SMS webhook with a wrong signature for %s", url)
        return _forbidden()
    return fields


def _forbidden() -> Response:
    return PlainTextResponse("invalid signature", status_code=403)


async def inbound(request: Request) -> Response:
    """A message from Twilio: check, store, answer with empty TwiML, handle after."""
    channel = _channel(request)
    form = await _signed_form(request, channel)
    if isinstance(form, Response):
        return form
    if not (form.get("MessageSid") or form.get("SmsSid")) or not form.get("From"):
        return PlainTextResponse("MessageSid and From are required", status_code=400)
    await channel.take(form)
    return Response(str(MessagingResponse()), media_type="text/xml")


async def status(request: Request) -> Response:
    """A delivery report: move the message's status forward (never back)."""
    channel = _channel(request)
    form = await _signed_form(request, channel)
    if isinstance(form, Response):
        return form
    try:  # the outbox id we put in the callback URL
        message_id = int_param(request.query_params, "id", low=1)
    except BadInput as exc:
        return PlainTextResponse(str(exc), status_code=exc.status)
    await channel.record_status(form, message_id)
    return Response(status_code=204)


def routes() -> list[Route]:
    """The SMS webhook endpoints."""
    return [Route(INBOUND_PATH, inbound, methods=["POST"]),
            Route(STATUS_PATH, status, methods=["POST"])]
