"""Image bytes for tests: real ones Pillow writes, and crafted ones that lie."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

from PIL import Image


def jpeg(seed: str, size: tuple[int, int] = (64, 48)) -> bytes:
    """A real JPEG photo whose colour (so its bytes) follows from `seed`."""
    colour = tuple(hashlib.sha256(seed.encode()).digest()[:3])
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG")
    return out.getvalue()


def png(seed: str = "", size: tuple[int, int] = (8, 8)) -> bytes:
    """A real PNG image."""
    colour = tuple(hashlib.sha256(seed.encode()).digest()[:3])
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes of well-formed PNG whose header claims width x height pixels
    (a decompression bomb's opening: the pixel data is a handful of zero rows)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
