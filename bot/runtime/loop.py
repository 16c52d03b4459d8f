"""The event loop gridbot runs on: uvloop where it is installed, asyncio's own otherwise.

`gridbot serve` gets it from uvicorn (its `loop="auto"` picks uvloop, as its `http="auto"`
picks httptools); the other commands and the benchmarks use `run` so that every figure is
measured on the loop the server runs on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop where it is installed (not on Windows), else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def loop_name() -> str:
    """Which loop `run` uses, for benchmark headers."""
    return "uvloop" if loop_factory() is not asyncio.new_event_loop else "asyncio"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a new loop of the kind the server uses."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
