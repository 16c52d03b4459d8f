"""Signed, expiring links to stored media, so people on SMS can open a case's photo.

A link is `PUBLIC_URL/media/{id}?e=DAY&sig=...`: `e` is the last day (days since
1970-01-01, UTC) the link works, `LINK_DAYS` after it was given, and `sig` an HMAC-SHA256
of the media id and that day under a server key, cut to 128 bits to keep SMS short. The
key is derived from the secrets in the settings (the Telegram token and webhook secret,
the Twilio auth token): changing one of them invalidates the links given out before. With
none of them set, a random key is kept in the media folder.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.settings import Settings
from store import media as media_store

KEY_FILE = ".link-key"
_CONTEXT = b"gridbot media links v1"
LINK_DAYS = 30  # long enough for a case's life and its appraisal, short enough to age out
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = re.compile(r"[0-9]{1,9}")  # ASCII digits only, and few: int() must not choke on it


def link_key(settings: Settings) -> bytes:
    """The server's key for signing media links."""
    material = tuple(s for s in (settings.telegram_token, settings.telegram_webhook_secret,
                                 settings.twilio_auth_token) if s)
    return _key(material, settings.media_dir / KEY_FILE)


@lru_cache(maxsize=8)
def _key(material: tuple[str, ...], key_file: Path) -> bytes:
    if material:
        return hmac.new(_CONTEXT, "\0".join(material).encode(), hashlib.sha256).digest()
    return _stored_key(key_file)


def _stored_key(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_bytes(secrets.token_bytes(32))
        partial.chmod(0o600)
        partial.replace(path)
    return path.read_bytes()


def day_number(moment: datetime) -> int:
    """The UTC day of a moment, counted from 1970-01-01."""
    return (moment.astimezone(UTC) - _EPOCH).days


def sign(key: bytes, media_id: int, last_day: int) -> str:
    """The signature of a media id valid through a day (URL-safe, no padding)."""
    digest = hmac.new(key, f"media:{media_id}:{last_day}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def verify(key: bytes, media_id: int, last_day: int, signature: str) -> bool:
    """Say whether a signature is the one for this media id and day (constant time)."""
    return hmac.compare_digest(sign(key, media_id, last_day).encode(), signature.encode())


def media_url(settings: Settings, media_id: int, now: datetime) -> str:
    """The signed public link to a media file, working for `LINK_DAYS` from now."""
    last_day = day_number(now) + LINK_DAYS
    signature = sign(link_key(settings), media_id, last_day)
    return f"{settings.public_url}/media/{media_id}?e={last_day}&sig={signature}"


async def media_file(request: Request) -> Response:
    """Serve a stored photo to whoever holds its signed link: 403 for a wrong signature,
    410 once the link has expired."""
    bot = request.app.state.gridbot
    media_id: int = request.path_params["media_id"]
    given = request.query_params.get("e", "")
    last_day = int(given) if DAY.fullmatch(given) else -1
    if last_day < 0 or not verify(link_key(bot.settings), media_id, last_day,
                                  request.query_params.get("sig", "")):
        return PlainTextResponse("链接无效 / this link is not valid", status_code=403)
    now = bot.clock.now()
    if day_number(now) > last_day:
        return PlainTextResponse("链接已过期，请在对话中发送 /case 事件编号 重新获取。\n"
                                 "This link has expired: send /case NUMBER in the chat"
                                 " for a new one.", status_code=410)
    row = await media_store.get(bot.db.conn, media_id)
    if row is None or not row.path:
        return PlainTextResponse("not found", status_code=404)
    path = _inside(Path(bot.settings.media_dir), row.path)
    if path is None:
        return PlainTextResponse("not found", status_code=404)
    # Caches may keep the photo for a day at most, and never past the link's last day.
    left = (_EPOCH + timedelta(days=last_day + 1) - now).total_seconds()
    return FileResponse(path, media_type=row.content_type or "application/octet-stream",
                        headers={"Cache-Control": f"private, max-age={min(86400, int(left))}",
                                 "X-Content-Type-Options": "nosniff"})


def _inside(folder: Path, relative: str) -> Path | None:
    """The file at `relative` below `folder`, if it exists and does not lead outside."""
    root = folder.resolve()
    path = (root / relative).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def routes() -> list[Route]:
    """The media link endpoint."""
    return [Route("/media/{media_id:int}", media_file, methods=["GET"])]
