"""The engine: one inbound message at a time per conversation, all-or-nothing.

Webhooks (and Telegram's polling) make one call, `take`: it stores the raw payload in the
inbox (its own commit, before the provider gets its answer) and then processes it in the
background: loads the person and their conversation, runs the flow, saves the new state,
renders the replies into outbox rows and marks the payload processed — in one
transaction, under a lock per conversation so one person's messages are handled in order
while other people's run alongside. The engine owns those background tasks: `settle`
waits for them, `stop` lets them finish briefly and leaves the rest to `recover`.

Callers that wait for the outcome (simulators, tests, benchmark) use `handle`, which does
the storing and the handling in one transaction and commits the messages that arrived
meanwhile together (group commit). Either way a payload whose handling fails is marked
failed with the error, and the person gets an apology instead of silence.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from bot.domain.channels import join_texts, spec_for
from bot.domain.clock import Clock
from bot.domain.messages import Inbound, Kind, Reply, Unreadable
from bot.runtime.supervisor import TRANSIENT_ERRORS, Health, Reporter
from bot.services.notify import open_menu, render_personal
from bot.services.reference import ReferenceData
from bot.services.render import Renderer, mask_phone
from handlers.base import Context
from handlers.router import RAW_OPTIONS, reprompt, route
from store import conversations as conversation_store
from store import inbox as inbox_store
from store import outbox as outbox_store
from store import people as people_store
from store.db import Connection, Database
from store.outbox import PRIORITY_REPLY, PRIORITY_STOP_CONFIRMATION, OutboundRow

log = logging.getLogger(__name__)

# Messages committed in one transaction at most; a batch is what arrived meanwhile.
MAX_BATCH = 64
# How long a graceful stop waits for payloads being processed; the rest stay 'received'
# in the inbox and are processed by `recover` at the next start.
STOP_GRACE = 10.0

# Several processes on PostgreSQL: how long a payload waits for an earlier one of the same
# sender that another process holds, and how often it looks.
ORDER_WAIT = 10.0
ORDER_POLL = 0.02

# The conversation a log line belongs to ("telegram:12345", a phone masked), set while a
# payload is processed; the log format of `gridbot serve` shows it.
CONVERSATION: ContextVar[str] = ContextVar("conversation", default="-")

InboundParser = Callable[[inbox_store.InboxRow], Awaitable[Inbound | None]]


async def parse_stored_inbound(row: inbox_store.InboxRow) -> Inbound | None:
    """The simulators store the `Inbound` itself as the payload."""
    return Inbound.from_payload(row.payload)


class HeldBack(Exception):
    """A payload that must wait: an earlier one of the same sender is still to be
    processed on another process (PostgreSQL)."""


# Not the message's fault: its caller waits (the database, or its turn) and tries again.
WAIT_AND_RETRY: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, HeldBack)


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        """Hold the lock of a key for the block."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass
class _Pending:
    """A message waiting for the next batch, and where its caller waits for the result."""

    inbound: Inbound
    provider_id: str
    result: asyncio.Future[int | None]
    inbox_id: int | None = None  # set when the payload is in the inbox already
    in_turn: bool = False  # claim it without the order check (it waited long enough)


@dataclass(frozen=True)
class _Turns:
    """A batch's stored payloads claimed in one statement (None: each is claimed as it is
    handled), and those held back for an earlier payload of their sender."""

    claimed: set[int] | None
    held: set[int]


class Engine:
    """Turns stored inbound payloads into state changes and queued replies."""

    def __init__(self, db: Database, reference: ReferenceData, renderer: Renderer, clock: Clock,
                 parsers: dict[str, InboundParser] | None = None) -> None:
        self.db = db
        self.reference = reference
        self.renderer = renderer
        self.clock = clock
        self.parsers = parsers or {}
        self.locks = KeyedLocks()
        self.on_queued: list[Callable[[], None]] = []  # told after replies were committed
        self._queue: list[_Pending] = []
        self._received: list[tuple[inbox_store.InboxRow, str | None,
                                   asyncio.Future[int | None]]] = []
        self._receiver: asyncio.Task[None] | None = None
        self._fresh: dict[int, inbox_store.InboxRow] = {}
        self._drainer: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._stopping = False
        # A payload 'received' for longer than this has lost its process (PostgreSQL).
        self.lease = timedelta(seconds=60)
        # How background processing is doing; bootstrap hands in the registry /healthz reads.
        self.health: Reporter = Health(clock).reporter("inbox")

    async def take(self, channel: str, provider_id: str, address: str,
                   payload: dict[str, Any], raw: str | None = None) -> int | None:
        """A webhook's one call: store the payload, then process it in the background.

        Returns the inbox id once the row is committed (None when this provider id was
        stored before: a redelivery, answered and not processed again). Raises when it
        could not be stored, so the webhook answers 500 and the provider delivers again.
        """
        inbox_id = await self.receive(channel, provider_id, address, payload, raw)
        if inbox_id is not None:
            self.process_later(inbox_id)
        return inbox_id

    def process_later(self, inbox_id: int) -> None:
        """Process a stored payload in the background, waiting out a busy database."""
        if self._stopping:
            return  # stays 'received': the next start processes it
        task = asyncio.create_task(self._process_until_done(inbox_id), name=f"inbox-{inbox_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _process_until_done(self, inbox_id: int) -> None:
        """`process`, again after a pause for as long as the database is locked or busy.

        Such an error is no fault of the payload: it is neither recorded as failed nor
        answered with an apology (both would need the database too), but reported as the
        `inbox` worker's trouble (/healthz) until a payload goes through again.
        """
        while True:
            try:
                await self.process(inbox_id)
            except TRANSIENT_ERRORS as exc:
                delay = self.health.failed(exc)
                if self._stopping:
                    return
                await asyncio.sleep(delay)
                continue
            self.health.ok()
            return

    async def settle(self) -> None:
        """Wait until every payload taken so far is processed (tests, benchmarks)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop processing in the background: what is under way gets `grace` seconds.

        Payloads taken after this are only stored, and what is cancelled stays 'received':
        the next start processes both (`recover`).
        """
        self._stopping = True
        if self._background:
            _, late = await asyncio.wait(set(self._background), timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def receive(self, channel: str, provider_id: str, address: str,
                      payload: dict[str, Any], raw: str | None = None) -> int | None:
        """Store a raw payload (`raw`: its JSON as received, if it came as JSON); return
        its inbox id, or None if it was stored before.

        Returns once the row is committed. Payloads arriving meanwhile are stored in one
        transaction together; if that fails, every caller gets the error (a webhook then
        answers 500 and the provider delivers again), so nothing is acknowledged unstored.
        """
        result: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._received.append((inbox_store.InboxRow(0, channel, provider_id, address, payload,
                                                    "received"), raw, result))
        if self._receiver is None or self._receiver.done():
            self._receiver = asyncio.create_task(self._store_received())
        return await result

    async def _store_received(self) -> None:
        """Insert waiting payloads, one transaction per batch."""
        while self._received:
            batch = self._received[:MAX_BATCH]
            del self._received[:MAX_BATCH]
            try:
                async with self.db.transaction(starts_with_write=True) as conn:
                    ids = [await inbox_store.insert(conn, row.channel, row.provider_id,
                                                    row.address, row.payload, self.clock.now(),
                                                    raw=raw)
                           for row, raw, _ in batch]
            except Exception as exc:  # noqa: BLE001 - each caller hears of it
                for _, _, result in batch:
                    if not result.done():
                        result.set_exception(exc)
                continue
            for (row, _, result), inbox_id in zip(batch, ids, strict=True):
                if inbox_id is not None:
                    # process() will not need to read back what was just written.
                    self._fresh[inbox_id] = replace(row, id=inbox_id)
                if not result.done():
                    result.set_result(inbox_id)

    async def handle(self, inbound: Inbound, provider_id: str | None = None) -> int | None:
        """Store and process one inbound message; return its inbox id, None if seen before.

        For callers that wait for the outcome (the simulators, tests, the benchmark): the
        caller hears back only after the commit, so storing and handling in the same
        transaction loses nothing, and when handling fails the payload is stored as failed.
        Messages waiting at the same moment are committed together (group commit); each
        is still all-or-nothing, and one person's messages keep their order.
        """
        return await self._enqueue(_Pending(inbound, provider_id or uuid.uuid4().hex,
                                            asyncio.get_running_loop().create_future()))

    async def _enqueue(self, pending: _Pending) -> int | None:
        self._queue.append(pending)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await pending.result

    async def _drain(self) -> None:
        """Handle queued messages in batches, one transaction per batch."""
        while self._queue:
            batch = self._queue[:MAX_BATCH]
            del self._queue[:MAX_BATCH]
            results: list[int | None | BaseException]
            try:
                results = list(await self._handle_batch(batch))
            except Exception:  # noqa: BLE001 - find the culprit: one transaction each
                log.warning("a batch of %d failed; handling its messages one by one",
                            len(batch))
                results = []
                for item in batch:
                    try:
                        results.append(await self._handle_alone(item))
                    except WAIT_AND_RETRY as exc:  # its caller waits and tries again
                        results.append(exc)
            self._tell_queued()
            for item, result in zip(batch, results, strict=True):
                if item.result.done():
                    continue
                if isinstance(result, BaseException):
                    item.result.set_exception(result)
                else:
                    item.result.set_result(result)

    def _tell_queued(self) -> None:
        for callback in self.on_queued:
            callback()

    async def _handle_batch(self, batch: list[_Pending]) -> list[int | None | BaseException]:
        outgoing: list[OutboundRow] = []
        async with self.db.transaction(starts_with_write=True) as conn:
            # The turns first, then the locks of only those in their turn: a held-back
            # payload must not hold its conversation's lock, which the process with the
            # earlier payload needs to process that one.
            turns = await self._claim_turns(conn, batch)
            await conversation_store.lock_all(
                conn, [(item.inbound.channel, item.inbound.address) for item in batch
                       if item.inbox_id not in turns.held])
            results: list[int | None | BaseException] = []
            for item in batch:
                if item.inbox_id in turns.held:
                    results.append(HeldBack(item.inbox_id))
                else:
                    results.append(await self._store_and_handle(conn, item, outgoing, turns))
            await outbox_store.enqueue(conn, outgoing, self.clock.now())
        return results

    async def _claim_turns(self, conn: Connection, batch: list[_Pending]) -> _Turns:
        """PostgreSQL: claim the batch's stored payloads, and find those that must wait
        for an earlier one of their sender, in one statement. It needs no conversation
        lock: an earlier payload once processed stays so, and the claim only marks this
        process's own payloads (the locks, taken next, keep two processes from handling
        one conversation at once). SQLite's one process keeps the order with its locks
        alone: each is claimed as it is handled."""
        ids = [item.inbox_id for item in batch
               if item.inbox_id is not None and not item.in_turn]
        if not self.db.postgres or not ids:
            return _Turns(None, set())
        claimed, held = await inbox_store.claim_in_turn(conn, ids, self.clock.now())
        return _Turns(claimed, held)

    async def _handle_alone(self, item: _Pending) -> int | None:
        try:
            outgoing: list[OutboundRow] = []
            async with self.db.transaction(starts_with_write=True) as conn:
                turns = await self._claim_turns(conn, [item])
                if item.inbox_id in turns.held:
                    raise HeldBack(item.inbox_id)
                await conversation_store.lock_all(conn, [(item.inbound.channel,
                                                          item.inbound.address)])
                result = await self._store_and_handle(conn, item, outgoing, turns)
                await outbox_store.enqueue(conn, outgoing, self.clock.now())
            return result
        except WAIT_AND_RETRY:
            raise  # the database or its turn, not the message: nothing to record
        except Exception as exc:  # noqa: BLE001 - any failure is recorded, not lost
            log.exception("inbound %s/%s failed", item.inbound.channel, item.provider_id)
            return await self._record_failure(
                item.inbound.channel, item.inbound.address, exc, inbox_id=item.inbox_id,
                stored=(item.provider_id, item.inbound.to_payload()))

    async def _store_and_handle(self, conn: Connection, item: _Pending,
                                outgoing: list[OutboundRow], turns: _Turns) -> int | None:
        """Insert (or claim, if stored before) the inbox row as processed, then handle it."""
        now = self.clock.now()
        if item.inbox_id is None:
            inbox_id = await inbox_store.insert(
                conn, item.inbound.channel, item.provider_id, item.inbound.address,
                item.inbound.to_payload(), now, status="processed")
        elif turns.claimed is not None and not item.in_turn:
            inbox_id = item.inbox_id if item.inbox_id in turns.claimed else None
        else:
            claimed = await inbox_store.claim(conn, item.inbox_id, now)
            inbox_id = item.inbox_id if claimed else None
        if inbox_id is not None:
            outgoing += await self._handle(conn, inbox_id, item.inbound)
        return inbox_id

    async def recover(self) -> int:
        """Process payloads that were stored but not processed (a crash in between).

        With several processes on PostgreSQL only those older than the lease: younger
        ones may be another live process's, under way.
        """
        if self.db.postgres:
            pending = await inbox_store.stale(self.db.conn, self.clock.now() - self.lease)
        else:
            pending = await inbox_store.pending(self.db.conn)
        for inbox_id in pending:
            await self.process(inbox_id)
        return len(pending)

    async def _wait_turn(self, row: inbox_store.InboxRow) -> bool:
        """A payload held back (PostgreSQL, several processes): wait while an earlier
        payload of the same sender is still to be processed elsewhere, so one person's
        messages keep their order. False after `ORDER_WAIT` (that process is gone): this
        one goes ahead; the earlier one is taken over after the lease (`recover`)."""
        deadline = asyncio.get_running_loop().time() + ORDER_WAIT
        while await inbox_store.waiting_before(self.db.conn, row.channel, row.address, row.id):
            # An earlier one whose process died (older than the lease) is processed here and
            # now, holding this conversation's lock, rather than waited for.
            for orphan_id in await inbox_store.stale(self.db.conn, self.clock.now() - self.lease,
                                                     channel=row.channel, address=row.address,
                                                     before_id=row.id):
                orphan = await inbox_store.get(self.db.conn, orphan_id)
                if orphan is not None and orphan.status == "received":
                    await self._process_held(orphan)
            if asyncio.get_running_loop().time() > deadline:
                log.warning("inbox %s goes ahead of an earlier payload of %s/%s", row.id,
                            row.channel, row.address)
                return False
            await asyncio.sleep(ORDER_POLL)
        return True

    async def process(self, inbox_id: int) -> None:
        """Handle one stored payload, once (the second half of `take`).

        The channel's parser may do I/O (download a photo) before the transaction; a lock
        per conversation keeps one person's messages in the order they were stored.
        """
        row = self._fresh.pop(inbox_id, None) or await inbox_store.get(self.db.conn, inbox_id)
        if row is None or row.status != "received":
            return
        shown = mask_phone(row.address) if row.address.startswith("+") else row.address
        CONVERSATION.set(f"{row.channel}:{shown}")
        async with self.locks.hold((row.channel, row.address)):
            await self._process_held(row)

    async def _process_held(self, row: inbox_store.InboxRow) -> None:
        """`process` with the conversation's lock held."""
        inbox_id = row.id
        parser = self.parsers.get(row.channel, parse_stored_inbound)
        try:
            inbound = await parser(row)
        except Unreadable as exc:  # nobody to answer, or nothing to act on
            log.info("inbox %s refused: %s", inbox_id, exc)
            async with self.db.transaction() as conn:
                await inbox_store.mark(conn, inbox_id, "refused", self.clock.now(),
                                       str(exc))
            return
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is recorded, not lost
            log.exception("inbox %s could not be read", inbox_id)
            await self._record_failure(row.channel, row.address, exc, inbox_id=inbox_id)
            return
        if inbound is None:
            async with self.db.transaction() as conn:
                await inbox_store.mark(conn, inbox_id, "ignored", self.clock.now())
            return
        in_turn = False
        while True:
            try:
                await self._enqueue(_Pending(inbound, row.provider_id,
                                             asyncio.get_running_loop().create_future(),
                                             inbox_id=inbox_id, in_turn=in_turn))
                return
            except HeldBack:
                in_turn = not await self._wait_turn(row)

    async def _handle(self, conn: Connection, inbox_id: int,
                      msg: Inbound) -> list[OutboundRow]:
        """Run the flow for one message; save the conversation; return the replies."""
        now = self.clock.now()
        known = await conversation_store.load_by_address(conn, msg.channel, msg.address)
        if known is None:
            contact = await people_store.get_or_create_contact(
                conn, msg.channel, msg.address, now, msg.name)
            conv = conversation_store.Conversation(contact.id)
        else:
            contact, conv = known
        spec = spec_for(msg.channel)
        if contact.opted_out and spec.resume_on_write:
            await people_store.set_opted_out(conn, msg.channel, msg.address, False)
        ctx = Context(conn=conn, msg=msg, contact=contact, conv=conv, reference=self.reference,
                      now=now, locale=contact.locale or self.reference.default_locale,
                      labeler=self.renderer.label)
        if self._resolve_option(ctx):
            await route(ctx)
        else:
            ctx.say("menu_stale")
            await reprompt(ctx)

        menu_reply = next((r for r in reversed(ctx.replies) if r.choices), None)
        menu_id = None
        if menu_reply is not None:
            menu_id = open_menu(conv, [c.value for c in menu_reply.choices])
        elif not ctx.keep_menu:
            conv.data.pop("_menu", None)

        messages = []
        for reply in ctx.replies:
            if reply.choices and reply is not menu_reply:
                reply = replace(reply, choices=())
            messages += self.renderer.render_all(reply, ctx.locale, spec, menu_id)
        rows = [OutboundRow(msg.channel, msg.address, contact.person_id, body, payload,
                            priority=PRIORITY_STOP_CONFIRMATION if ctx.opting_out
                            else PRIORITY_REPLY, inbox_id=inbox_id)
                for body, payload in join_texts(messages, spec)]
        await conversation_store.save(conn, conv, now)
        # After saving the sender's conversation: a notice may open a menu in another one,
        # or (a staff member acting on their own case) in this one, saved again.
        rows += await render_personal(conn, self.renderer, self.reference.default_locale,
                                     ctx.notices, now, inbox_id=inbox_id)
        return rows

    def _resolve_option(self, ctx: Context) -> bool:
        """Turn a pressed button or a typed menu number into `ctx.option`; False if stale."""
        menu = ctx.conv.data.get("_menu")
        msg = ctx.msg
        if msg.kind == Kind.OPTION:
            menu_part, _, index_part = (msg.option or "").partition(":")
            if menu_part in RAW_OPTIONS:  # a bulk message's own button ("ack:12")
                ctx.option = msg.option
                return True
            if (menu and menu_part == str(menu["id"]) and index_part.isdigit()
                    and int(index_part) < len(menu["values"])):
                ctx.option = menu["values"][int(index_part)]
                return True
            return False
        if msg.kind == Kind.TEXT and menu:
            typed = msg.text.strip()
            if typed.isdigit() and 1 <= int(typed) <= len(menu["values"]):
                ctx.option = menu["values"][int(typed) - 1]
        return True

    async def _record_failure(self, channel: str, address: str, exc: Exception, *,
                              inbox_id: int | None = None,
                              stored: tuple[str, dict[str, Any]] | None = None) -> int | None:
        """Keep the payload as failed, with the error, and apologize to the sender."""
        now = self.clock.now()
        error = f"{type(exc).__name__}: {exc}"
        try:
            body, payload = self.renderer.render(
                Reply("error_generic"), self.reference.default_locale, spec_for(channel), None)
            async with self.db.transaction() as conn:
                if inbox_id is None and stored is not None:
                    inbox_id = await inbox_store.insert(conn, channel, stored[0], address,
                                                        stored[1], now, status="failed")
                if inbox_id is None:
                    return None
                await inbox_store.mark(conn, inbox_id, "failed", now, error)
                await outbox_store.enqueue(
                    conn, [OutboundRow(channel, address, None, body, payload, inbox_id=inbox_id)],
                    now)
            return inbox_id
        except Exception:  # noqa: BLE001 - a stored payload stays 'received' for recover()
            log.exception("could not record the failure of %s/%s", channel, address)
            return None
