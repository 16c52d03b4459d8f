"""Reading what an HTTP request carries, within bounds: its body, JSON, integer parameters.

Every endpoint that reads JSON or a number from a request goes through here, so bad input
of any shape is one `BadInput` (a 4xx with a plain reason), never an exception from deep
inside (RecursionError from JSON nested 10,000 levels, OverflowError from an id SQLite
cannot hold).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, overload

from starlette.requests import Request

MAX_BODY = 1024 * 1024
# Far deeper than any Bot API update or simulator message (a dozen levels at most), and far
# below Python's recursion limit, which json.loads would otherwise run into.
MAX_JSON_DEPTH = 64
SQLITE_MAX_INT = 2**63 - 1  # the largest integer SQLite stores

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
# ASCII digits only (int() also takes "١٢" and "1_000"), and few enough for int() to read.
_INTEGER = re.compile(r"-?[0-9]{1,19}")


class BadInput(ValueError):
    """A request we refuse, with the HTTP status and the reason to tell the caller."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body; BadInput (413) as soon as it is over `limit`, declared or not."""
    declared = request.headers.get("content-length")
    if declared is not None and (not _INTEGER.fullmatch(declared) or int(declared) > limit):
        raise BadInput(f"the body is over {limit} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadInput(f"the body is over {limit} bytes", 413)
    return bytes(body)


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a JSON text nests arrays and objects more than `limit` levels deep."""
    if text.count("[") + text.count("{") <= limit:  # the usual case: cannot be that deep
        return False
    depth = 0
    for bracket in _BRACKET.finditer(_STRING.sub("", text)):
        if bracket.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def parse_json(body: bytes, limit: int = MAX_JSON_DEPTH) -> tuple[Any, str]:
    """The value of a UTF-8 JSON body and its text; BadInput (400) if it is not JSON or
    nests deeper than `limit` (checked before decoding, which recurses)."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise BadInput("the body is not UTF-8") from None
    if too_deep(text, limit):
        raise BadInput(f"the JSON nests deeper than {limit} levels")
    try:
        return json.loads(text), text
    except (ValueError, RecursionError):
        raise BadInput("the body is not JSON") from None


async def read_json(request: Request, limit: int = MAX_BODY) -> Any:
    """The JSON value a request carries, bounded in size and depth."""
    value, _ = parse_json(await read_body(request, limit))
    return value


@overload
def int_param(params: Mapping[str, str], name: str, default: int, *, low: int = 0,
              high: int = SQLITE_MAX_INT) -> int: ...
@overload
def int_param(params: Mapping[str, str], name: str, default: None = None, *, low: int = 0,
              high: int = SQLITE_MAX_INT) -> int | None: ...
def int_param(params: Mapping[str, str], name: str, default: int | None = None, *,
              low: int = 0, high: int = SQLITE_MAX_INT) -> int | None:
    """An integer query parameter within [low, high]; `default` when it is absent."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadInput(f"{name} must be a whole number from {low} to {high}")
    return int(raw)
