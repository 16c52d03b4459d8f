"""MMS media: the images of an inbound MMS, fetched with the account's credentials.

Twilio lists a message's media as `NumMedia`, `MediaUrlN` and `MediaContentTypeN`. Images
are downloaded (HTTP basic auth with the account SID and auth token, following Twilio's
redirect to its storage; httpx drops the credentials when a redirect leaves the origin)
into the media folder. Only URLs under TWILIO_API_BASE_URL are fetched: the credentials
go nowhere else. Other content types (audio, vCards, video) are refused, not fetched; an
image that Pillow cannot read, or with too many pixels, is refused once fetched
(`bot.services.mediafiles`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bot.domain.messages import Photo
from bot.services.mediafiles import MAX_PHOTO_BYTES, MediaRefused, save_photo

log = logging.getLogger(__name__)

MAX_MEDIA = 10  # Twilio's own limit per message


class _NotFetched(Exception):
    """A media URL we do not fetch (it is not Twilio's)."""


@dataclass
class Fetched:
    """What became of an MMS's media."""

    photos: list[Photo] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # content types we do not keep
    unreadable: int = 0  # images fetched but refused: not readable, too many pixels
    failed: int = 0  # images that could not be downloaded


class MediaFetcher:
    """Downloads an MMS's images into the media folder."""

    def __init__(self, http: httpx.AsyncClient, api_base_url: str, auth: tuple[str, str],
                 media_dir: Path) -> None:
        self.http = http
        self.api_base_url = api_base_url.rstrip("/") + "/"
        self.auth = auth
        self.media_dir = media_dir

    async def fetch(self, form: Mapping[str, str]) -> Fetched:
        """Fetch every image the webhook form lists; refuse the other types."""
        fetched = Fetched()
        try:
            count = min(int(form.get("NumMedia", "0") or 0), MAX_MEDIA)
        except ValueError:
            count = 0
        for index in range(count):
            url = form.get(f"MediaUrl{index}", "")
            content_type = form.get(f"MediaContentType{index}", "").split(";")[0].strip()
            if not content_type.lower().startswith("image/"):
                fetched.refused.append(content_type or "unknown")
                continue
            try:
                fetched.photos.append(await self._download(url, content_type.lower()))
            except MediaRefused as exc:
                log.info("MMS media %s refused: %s", url, exc)
                fetched.unreadable += 1
            except (httpx.HTTPError, _NotFetched) as exc:
                log.warning("MMS media %s not kept: %s", url, exc)
                fetched.failed += 1
        return fetched

    async def _download(self, url: str, content_type: str) -> Photo:
        """Fetch one image and keep it; MediaRefused if it is no image we keep."""
        if not url.startswith(self.api_base_url):
            raise _NotFetched(f"outside {self.api_base_url}")
        data = await self._get(url)
        return await asyncio.to_thread(save_photo, self.media_dir, data, content_type, url)

    async def _get(self, url: str) -> bytes:
        """The body of a media URL, refused beyond the photo size limit."""
        chunks: list[bytes] = []
        size = 0
        async with self.http.stream("GET", url, auth=self.auth, follow_redirects=True) as reply:
            reply.raise_for_status()
            async for chunk in reply.aiter_bytes():
                size += len(chunk)
                if size > MAX_PHOTO_BYTES:
                    raise MediaRefused("bytes",
                                       f"over {MAX_PHOTO_BYTES // (1024 * 1024)} MB")
                chunks.append(chunk)
        return b"".join(chunks)
