"""How many SMS segments a text needs: GSM-7 or UCS-2, as carriers and Twilio count them.

A text made only of GSM-7 characters (the basic table; the extension table's characters
such as € { } [ ] count twice) fits 160 characters in one segment and 153 in each part of
a longer one. Any other character (a Chinese character, an emoji) makes the whole text
UCS-2: 70 UTF-16 code units in one segment, 67 in each part. A part never splits an
escape pair or a surrogate pair.

`prepare` is what the SMS sender sends: typographic look-alikes (·, “”, …, —) folded to
GSM-7 when that makes the whole text GSM-7, so an English message is not billed as UCS-2
for one middle dot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE = {"GSM-7": 160, "UCS-2": 70}
PART = {"GSM-7": 153, "UCS-2": 67}

_FOLD = str.maketrans({
    "·": "-", "•": "-", "—": "-", "–": "-", "‐": "-", "−": "-",
    "“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‚": "'", "′": "'",
    "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\t": " ",
    "…": "...",
})

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class SegmentCount:
    """The encoding of a text, its length in that encoding's units, and its segments."""

    encoding: Encoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def is_gsm7(text: str) -> bool:
    """Say whether every character of a text is in the GSM-7 tables."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def fold_to_gsm7(text: str) -> str:
    """Replace typographic look-alikes with their GSM-7 counterparts."""
    return text.translate(_FOLD)


def prepare(text: str) -> str:
    """The text to send: folded to GSM-7 when that makes all of it GSM-7, else unchanged."""
    folded = fold_to_gsm7(text)
    return folded if is_gsm7(folded) else text


def _unit_sizes(text: str, encoding: Encoding) -> list[int]:
    """Each character's size: septets (GSM-7) or UTF-16 code units (UCS-2)."""
    if encoding == "GSM-7":
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def count(text: str) -> SegmentCount:
    """Count the segments of a text as it would be sent (no folding: call `prepare` first)."""
    encoding: Encoding = "GSM-7" if is_gsm7(text) else "UCS-2"
    sizes = _unit_sizes(text, encoding)
    units = sum(sizes)
    if units <= SINGLE[encoding]:
        return SegmentCount(encoding, units, 1 if text else 0)
    segments, used = 1, 0
    for size in sizes:  # greedy: a character that does not fit starts the next part
        if used + size > PART[encoding]:
            segments, used = segments + 1, 0
        used += size
    return SegmentCount(encoding, units, segments)


def segments(text: str) -> int:
    """How many segments a text takes once prepared for sending."""
    return count(prepare(text)).segments
