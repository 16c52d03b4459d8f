"""Signed links to stored media, so staff on any channel can open a resident's photo.

A link is `PUBLIC_URL/media/{id}?sig=...`, where `sig` is an HMAC-SHA256 of the media id
under a server key. The key is derived from the secrets in the settings (the Telegram
token and webhook secret, the Twilio auth token): changing one of them invalidates the
links given out before. With none of them set, a random key is kept in the media folder.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.settings import Settings
from store import media as media_store

KEY_FILE = ".link-key"
_CONTEXT = b"gridbot media links v1"


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


def sign(key: bytes, media_id: int) -> str:
    """The signature of a media id (URL-safe, no padding)."""
    digest = hmac.new(key, f"media:{media_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verify(key: bytes, media_id: int, signature: str) -> bool:
    """Say whether a signature is the one for this media id (constant time)."""
    return hmac.compare_digest(sign(key, media_id).encode(), signature.encode())


def media_url(settings: Settings, media_id: int) -> str:
    """The signed public link to a media file."""
    return f"{settings.public_url}/media/{media_id}?sig={sign(link_key(settings), media_id)}"


async def media_file(request: Request) -> Response:
    """Serve a stored photo to whoever holds its signed link; 403 for a wrong signature."""
    bot = request.app.state.gridbot
    media_id: int = request.path_params["media_id"]
    if not verify(link_key(bot.settings), media_id, request.query_params.get("sig", "")):
        return PlainTextResponse("forbidden", status_code=403)
    row = await media_store.get(bot.db.conn, media_id)
    if row is None or not row.path:
        return PlainTextResponse("not found", status_code=404)
    path = _inside(Path(bot.settings.media_dir), row.path)
    if path is None:
        return PlainTextResponse("not found", status_code=404)
    return FileResponse(path, media_type=row.content_type or "application/octet-stream",
                        headers={"Cache-Control": "private, max-age=86400",
                                 "X-Content-Type-Options": "nosniff"})


def _inside(folder: Path, relative: str) -> Path | None:
    """The file at `relative` below `folder`, if it exists and does not lead outside."""
    root = folder.resolve()
    path = (root / relative).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def routes() -> list[Route]:
    """The media link endpoint."""
    return [Route("/media/{media_id:int}", media_file, methods=["GET"])]
