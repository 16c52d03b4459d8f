"""Media files on disk, named by their sha256 so the same photo is stored once.

A file is kept only if Pillow reads it as a JPEG, PNG, GIF or WebP image within the pixel
limit: what it says it is (a Content-Type, a file name) decides nothing, so a text sent as
image/jpeg, or a few bytes of PNG declaring 20000 x 20000 pixels, is refused when it
arrives instead of breaking whatever shows it later (Telegram's sendPhoto, a staff phone).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Literal

from PIL import Image

from bot.domain.messages import Photo

MAX_PHOTO_BYTES = 20 * 1024 * 1024
# A decompression bomb guard: a PNG or GIF of a few kilobytes can declare 400 megapixels,
# and whatever decodes it (a thumbnail, Telegram's servers, a staff member's phone) needs
# width x height x 4 bytes, 1.6 GB for that one. 40 megapixels (160 MB decoded) is over
# three times the 12 MP that phone cameras save by default; only their opt-in 48-200 MP
# modes go beyond it.
MAX_PIXELS = 40_000_000
# Pillow's name for each format we keep, and the type and extension it is stored under.
FORMATS = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png"),
           "GIF": ("image/gif", ".gif"), "WEBP": ("image/webp", ".webp")}
EXTENSIONS = dict(FORMATS.values())  # content type -> file name extension

Why = Literal["empty", "bytes", "unreadable", "pixels"]


class MediaRefused(ValueError):
    """A file we do not keep: empty, too large, not an image we can read, too many pixels."""

    def __init__(self, why: Why, detail: str) -> None:
        super().__init__(detail)
        self.why = why  # for the person's answer: templates say it in their language


def read_image(data: bytes) -> tuple[str, int, int]:
    """The content type, width and height of an image, read from its header by Pillow;
    MediaRefused if it is not one we keep or has more than MAX_PIXELS."""
    if not data:
        raise MediaRefused("empty", "the file is empty")
    if len(data) > MAX_PHOTO_BYTES:
        raise MediaRefused("bytes", f"the file is over {MAX_PHOTO_BYTES // (1024 * 1024)} MB")
    try:
        with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
            kind, (width, height) = image.format, image.size
            image.verify()  # the structure after the header (PNG: every chunk's CRC)
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours
        raise MediaRefused("pixels", "the image has too many pixels") from None
    except Exception:  # noqa: BLE001 - a malformed file fails in many ways
        raise MediaRefused("unreadable", "not a JPEG, PNG, GIF or WebP image") from None
    if kind not in FORMATS:
        raise MediaRefused("unreadable", f"not an image we keep: {kind}")
    if width * height > MAX_PIXELS:
        raise MediaRefused("pixels", f"{width} x {height} pixels is over "
                                     f"{MAX_PIXELS // 1_000_000} megapixels")
    return FORMATS[kind][0], width, height


def save_photo(media_dir: Path, data: bytes, content_type: str,
               provider_ref: str | None = None) -> Photo:
    """Store an image's bytes under the media folder and describe it (its type as Pillow
    reads it; `content_type`, what the sender declared, must be an image type)."""
    if not content_type.startswith("image/"):
        raise MediaRefused("unreadable", f"not an image: {content_type or 'unknown type'}")
    actual, _, _ = read_image(data)
    digest = hashlib.sha256(data).hexdigest()
    relative = f"{digest[:2]}/{digest}{EXTENSIONS[actual]}"
    target = media_dir / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(target)
    return Photo(provider_ref=provider_ref, path=relative, sha256=digest,
                 content_type=actual)
