"""Background workers that keep going: a health registry, and a supervisor that restarts.

Every background worker (each channel's outbox sender, the scheduler's tick, the Telegram
menus, the engine's processing of received payloads) reports to one `Health` registry
through its `Reporter`: `ok()` after each round that worked, `failed(error)` when a round
hit a transient error (a locked or busy database, a full disk), which logs one line and
says how long to back off before the next try. A worker whose coroutine dies anyway is
marked down and started again by the `Supervisor` after a growing delay.

`/healthz` shows the registry: 503 naming each worker that is failing or down, and each
worker's last successful run.

A worker loop looks like this:

    reporter = health.reporter("inbox")
    while True:
        try:
            did = await one_round()
        except TRANSIENT_ERRORS as exc:
            await asyncio.sleep(reporter.failed(exc))
            continue
        reporter.ok()
        ...

and is started with `supervisor.start("inbox", loop)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bot.domain.clock import Clock, iso
from store.db import TRANSIENT_ERRORS

__all__ = ["TRANSIENT_ERRORS", "Health", "Reporter", "Supervisor", "backoff_delay", "describe"]

log = logging.getLogger(__name__)


FIRST_DELAY = 0.5  # seconds before the first retry; doubled per failure in a row
MAX_DELAY = 30.0

State = Literal["starting", "ok", "failing", "down"]
UNHEALTHY: frozenset[str] = frozenset({"failing", "down"})


def backoff_delay(failures: int, first: float = FIRST_DELAY, cap: float = MAX_DELAY) -> float:
    """Seconds to wait after `failures` failures in a row (1: the first)."""
    return float(min(cap, first * 2 ** max(failures - 1, 0)))


def describe(error: BaseException) -> str:
    """An error in one line: its type and message."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass
class WorkerStatus:
    """What the registry knows about one worker."""

    name: str
    state: State = "starting"
    last_ok: datetime | None = None  # the end of its last successful round
    error: str | None = None  # the latest error, while failing or down
    since: datetime | None = None  # when the current trouble began
    failures: int = 0  # failed rounds in a row
    restarts: int = 0  # times the supervisor started it again

    def as_json(self) -> dict[str, Any]:
        """The status as /healthz shows it."""
        return {"state": self.state,
                "last_ok": iso(self.last_ok) if self.last_ok else None,
                "error": self.error,
                "since": iso(self.since) if self.since else None,
                "failures": self.failures, "restarts": self.restarts}


class Reporter:
    """One worker's line to the registry."""

    def __init__(self, health: Health, status: WorkerStatus) -> None:
        self.health = health
        self.status = status

    @property
    def name(self) -> str:
        """The worker's name."""
        return self.status.name

    def ok(self) -> None:
        """A round worked: the worker is healthy, whatever went before."""
        status = self.status
        if status.state in UNHEALTHY:
            log.warning("%s works again after %d failed rounds (%s)", status.name,
                        status.failures, status.error)
        status.state, status.error, status.since, status.failures = "ok", None, None, 0
        status.last_ok = self.health.clock.now()
        self.health.changed()

    def failed(self, error: BaseException, retry_in: float | None = None) -> float:
        """A round failed on a transient error: log one line; return the seconds to back
        off (`retry_in` when the worker retries on a schedule of its own)."""
        status = self.status
        status.failures += 1
        delay = backoff_delay(status.failures) if retry_in is None else retry_in
        if status.state not in UNHEALTHY:
            status.since = self.health.clock.now()
        status.state, status.error = "failing", describe(error)
        log.warning("%s: %s; trying again in %.1f s (failure %d in a row)", status.name,
                    status.error, delay, status.failures)
        self.health.changed()
        return delay

    def down(self, error: BaseException) -> None:
        """The worker died: it does nothing until it is started again."""
        status = self.status
        if status.state not in UNHEALTHY:
            status.since = self.health.clock.now()
        status.state, status.error = "down", describe(error)
        status.failures += 1
        self.health.changed()


class Health:
    """The registry of background workers and how each is doing."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.workers: dict[str, WorkerStatus] = {}
        self._changed: asyncio.Event | None = None

    def reporter(self, name: str) -> Reporter:
        """The reporter of the worker of that name (registered on first use)."""
        status = self.workers.setdefault(name, WorkerStatus(name))
        return Reporter(self, status)

    def unhealthy(self) -> list[str]:
        """The names of the workers failing or down."""
        return [name for name, status in self.workers.items() if status.state in UNHEALTHY]

    def as_json(self) -> dict[str, dict[str, Any]]:
        """Every worker's status, by name."""
        return {name: status.as_json() for name, status in sorted(self.workers.items())}

    def changed(self) -> None:
        """Wake whoever waits for a change (`until`)."""
        if self._changed is not None:
            self._changed.set()

    async def until(self, condition: Callable[[Health], bool]) -> None:
        """Wait until the condition holds (checked at each change): for tests and tools."""
        while not condition(self):
            self._changed = self._changed or asyncio.Event()
            self._changed.clear()
            await self._changed.wait()


Sleeper = Callable[[float], Awaitable[Any]]


class Supervisor:
    """Runs background workers and starts each again when it dies."""

    def __init__(self, health: Health, sleep: Sleeper = asyncio.sleep) -> None:
        self.health = health
        self.sleep = sleep
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run `run()` in the background as `name`, again and again should it die."""
        if name in self.tasks and not self.tasks[name].done():
            raise RuntimeError(f"worker {name!r} is already running")
        task = asyncio.create_task(self._keep(name, run), name=name)
        self.tasks[name] = task
        return task

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        reporter = self.health.reporter(name)
        while True:
            try:
                await run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the point is to go on
                reporter.down(exc)
                delay = backoff_delay(reporter.status.failures)
                log.exception("worker %s died; starting it again in %.1f s", name, delay)
            else:
                # A worker's loop does not end by itself: treat it as dead, too.
                reporter.down(RuntimeError("the worker's loop ended"))
                delay = backoff_delay(reporter.status.failures)
                log.error("worker %s stopped by itself; starting it again in %.1f s",
                          name, delay)
            await self.sleep(delay)
            reporter.status.restarts += 1

    async def stop(self, name: str) -> None:
        """Stop that worker (cancel it and wait until it has ended)."""
        task = self.tasks.pop(name, None)
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def stop_all(self) -> None:
        """Stop every worker, the last started first."""
        for name in reversed(list(self.tasks)):
            await self.stop(name)
