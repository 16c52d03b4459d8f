"""Operations: `/metrics` (Prometheus), `/readyz`, and the process's name in logs.

`/metrics` is gathered at each scrape into a registry of its own, in Prometheus's text
format (prometheus-client). Two kinds of series:

- what the database says, the same whichever process is scraped (`gridbot_inbox_total`
  per channel and status — processed, failed, refused…; `gridbot_outbox_depth` and
  `gridbot_outbox_oldest_age_seconds` per channel and priority; `gridbot_outbox_total`
  per channel and status): take them from one process, or `max` over processes;
- what this process did (`gridbot_sent_total`, `gridbot_provider_errors_total` per
  channel; `gridbot_sweep_seconds` per scheduler step; `gridbot_ticks_skipped_total`, ticks that
  found the previous one still running; `gridbot_leader` per role, 1 where
  this process holds it; `gridbot_worker_up` per background worker): sum over processes.

`/readyz` answers 200 only while the database answers: a load balancer stops sending to a
process that cannot reach it (webhooks then get 503 there anyway, see `unavailable`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.bootstrap import Gridbot
from bot.runtime.engine import CONVERSATION
from store import ops as ops_store
from store.db import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

# Retry-After on a 503 while the database is unreachable: providers deliver again later.
RETRY_AFTER_SECONDS = 5


def process_name() -> str:
    """This process in logs and metrics: GRIDBOT_PROCESS_NAME, else host:pid."""
    return os.environ.get("GRIDBOT_PROCESS_NAME") or f"{socket.gethostname()}:{os.getpid()}"


class _Snapshot(Collector):
    """Metrics gathered before the scrape (collect() cannot await)."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """The gathered metrics."""
        return iter(self.metrics)


async def gather(bot: Gridbot) -> list[Metric]:
    """Every series, read now (the database's raise when it is unreachable)."""
    metrics: list[Metric] = []
    name = process_name()
    inbox = CounterMetricFamily("gridbot_inbox", "Inbound payloads stored, by channel and"
                                " what became of them (failed: processing failures)",
                                labels=["channel", "status"])
    for channel, status, count in await ops_store.inbox_counts(bot.db.conn):
        inbox.add_metric([channel, status], count)
    metrics.append(inbox)
    outbox = CounterMetricFamily("gridbot_outbox", "Outbound messages by channel and status",
                                 labels=["channel", "status"])
    for channel, status, count in await ops_store.outbox_counts(bot.db.conn):
        outbox.add_metric([channel, status], count)
    metrics.append(outbox)
    depth = GaugeMetricFamily("gridbot_outbox_depth", "Messages queued to send",
                              labels=["channel", "priority"])
    age = GaugeMetricFamily("gridbot_outbox_oldest_age_seconds",
                            "Age of the oldest queued message", labels=["channel", "priority"])
    for queue in await ops_store.outbox_depths(bot.db.conn, bot.clock.now()):
        depth.add_metric([queue.channel, str(queue.priority)], queue.depth)
        age.add_metric([queue.channel, str(queue.priority)], queue.oldest_age_seconds)
    metrics += [depth, age]
    sent = CounterMetricFamily("gridbot_sent", "Messages this process handed to a provider",
                               labels=["process", "channel"])
    errors = CounterMetricFamily("gridbot_provider_errors", "Attempts a provider refused or"
                                 " that failed, this process", labels=["process", "channel"])
    for worker in bot.workers:
        sent.add_metric([name, worker.sender.channel], worker.sent_count)
        errors.add_metric([name, worker.sender.channel], worker.error_count)
    metrics += [sent, errors]
    sweeps = GaugeMetricFamily("gridbot_sweep_seconds", "Duration of the scheduler's latest"
                               " run of each step, this process", labels=["process", "step"])
    if bot.scheduler is not None:
        for step, seconds in bot.scheduler.sweep_seconds.items():
            sweeps.add_metric([name, step], seconds)
    metrics.append(sweeps)
    skipped = CounterMetricFamily("gridbot_ticks_skipped", "Scheduler clock ticks skipped"
                                  " because the previous tick still ran, this process",
                                  labels=["process"])
    if bot.scheduler is not None:
        skipped.add_metric([name], bot.scheduler.skipped_ticks)
    metrics.append(skipped)
    leader = GaugeMetricFamily("gridbot_leader", "1 where this process holds the role",
                               labels=["process", "role"])
    held = bot.leadership.held()
    for role in _roles(bot):
        leader.add_metric([name, role], 1 if "*" in held or role in held else 0)
    metrics.append(leader)
    up = GaugeMetricFamily("gridbot_worker_up", "1 while a background worker is well",
                           labels=["process", "worker"])
    troubled = set(bot.health.unhealthy())
    for worker_name in bot.health.as_json():
        up.add_metric([name, worker_name], 0 if worker_name in troubled else 1)
    metrics.append(up)
    return metrics


def _roles(bot: Gridbot) -> Iterable[str]:
    yield "scheduler"
    for worker in bot.workers:
        yield worker.name
    if bot.settings.telegram_enabled:
        yield "telegram-menus"


async def metrics(request: Request) -> Response:
    """The Prometheus scrape; 503 while the database is unreachable."""
    bot: Gridbot = request.app.state.gridbot
    try:
        gathered = await gather(bot)
    except TRANSIENT_ERRORS as exc:
        return unavailable(request, exc)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(gathered))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def readyz(request: Request) -> Response:
    """200 while this process can serve (the database answers), 503 otherwise."""
    bot: Gridbot = request.app.state.gridbot
    try:
        ok = await bot.db.ping()
    except Exception:  # noqa: BLE001 - any failure means not ready
        ok = False
    return JSONResponse({"ready": ok, "process": process_name()},
                        status_code=200 if ok else 503)


def unavailable(request: Request, exc: BaseException) -> Response:
    """503 with Retry-After: the database cannot be reached now (a webhook's provider
    delivers again later; nothing was acknowledged)."""
    log.warning("database unreachable on %s: %s", request.url.path,
                str(exc).strip().splitlines()[-1:] or type(exc).__name__)
    return PlainTextResponse("database unavailable, try again later\n", status_code=503,
                             headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def routes() -> list[Route]:
    """/metrics and /readyz."""
    return [Route("/metrics", metrics), Route("/readyz", readyz)]


class ProcessLogFilter(logging.Filter):
    """Adds `process_name` to every record (the log format shows it)."""

    def __init__(self) -> None:
        super().__init__()
        self.name_of_process = process_name()

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamp the record."""
        record.process_name = self.name_of_process
        record.conversation = CONVERSATION.get()
        return True


def configure_logging() -> None:
    """gridbot's own log lines on stderr, each naming the process and the conversation it
    belongs to (`[telegram:12345]`, a phone masked; `[-]` outside one)."""
    handler = logging.StreamHandler()
    handler.addFilter(ProcessLogFilter())
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(process_name)s [%(conversation)s] %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("bot")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False
