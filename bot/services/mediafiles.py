"""Media files on disk, named by their sha256 so the same photo is stored once."""

from __future__ import annotations

import hashlib
from pathlib import Path

from bot.domain.messages import Photo

MAX_PHOTO_BYTES = 20 * 1024 * 1024
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
              "image/webp": ".webp", "image/heic": ".heic"}


class MediaRefused(ValueError):
    """A file we do not keep: not an image, empty, or too large."""


def save_photo(media_dir: Path, data: bytes, content_type: str,
               provider_ref: str | None = None) -> Photo:
    """Store an image's bytes under the media folder and describe it."""
    if content_type not in EXTENSIONS:
        raise MediaRefused(f"not an image we keep: {content_type or 'unknown type'}")
    if not data:
        raise MediaRefused("the file is empty")
    if len(data) > MAX_PHOTO_BYTES:
        raise MediaRefused(f"the file is over {MAX_PHOTO_BYTES // (1024 * 1024)} MB")
    digest = hashlib.sha256(data).hexdigest()
    relative = f"{digest[:2]}/{digest}{EXTENSIONS[content_type]}"
    target = media_dir / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(target)
    return Photo(provider_ref=provider_ref, path=relative, sha256=digest,
                 content_type=content_type)
