"""Who leads among several processes on one PostgreSQL: session advisory locks.

Some work must run in one process at a time: the scheduler's sweeps, and each channel's
sender (so that the provider's limits — Telegram's 30 a second per bot, 1 a second per
chat, 20 a minute per group; TWILIO_MPS — are kept by one pacer that sees every message).
A role is a session-level advisory lock (`pg_try_advisory_lock`) on a connection of its
own: held while that connection lives, released by the server the moment the process
dies or its connection drops, so another process takes the role at its next try — within
one tick of the scheduler, one poll of a sender.

On SQLite (one process on one file) every role is always this process's.
"""

from __future__ import annotations

import hashlib

from store.pg import PgConnection, is_postgres_url


def lock_key(name: str) -> int:
    """A stable non-negative 63-bit key for a role's name (or any name to lock by)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


class Leadership:
    """The roles this process holds; `holds(name)` tries to take one it does not."""

    def __init__(self, target: object) -> None:
        self.url: str | None = str(target) if is_postgres_url(target) else None
        self._conn: PgConnection | None = None
        self._held: set[str] = set()

    @property
    def shared(self) -> bool:
        """Whether roles are shared with other processes (PostgreSQL)."""
        return self.url is not None

    def held(self) -> set[str]:
        """The roles held now, as last checked."""
        return set(self._held) if self.shared else {"*"}

    async def holds(self, name: str) -> bool:
        """Whether this process holds the role now, taking it if nobody does.

        A dropped connection loses every role (the server released the locks); the next
        call connects again and tries afresh. Raises the driver's OperationalError while
        the server cannot be reached: then this process leads nothing.
        """
        if self.url is None:
            return True
        if self._conn is None:
            self._conn = PgConnection(self.url)
        try:
            # A role believed held is checked in pg_locks for this very session: had the
            # connection been opened again meanwhile (the old session and its locks gone),
            # it is taken afresh, and is ours only if nobody else took it.
            if name in self._held:
                rows = (await self._conn.execute_raw(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                    " AND pid = pg_backend_pid() AND granted AND objsubid = 1"
                    " AND classid::bigint * 4294967296 + objid::bigint = %s)",
                    (lock_key(name),))).rows
                if rows and rows[0][0]:
                    return True
                self._held.discard(name)
            rows = (await self._conn.execute_raw("SELECT pg_try_advisory_lock(%s)",
                                                 (lock_key(name),))).rows
        except Exception:
            self._held.clear()
            raise
        if rows and rows[0][0]:
            self._held.add(name)
            return True
        self._held.discard(name)
        return False

    async def release(self, name: str) -> None:
        """Give a role up (a graceful stop), so another process takes it at once."""
        if self._conn is None or name not in self._held:
            return
        self._held.discard(name)
        raw = self._conn.raw
        if raw is not None and not raw.broken:
            await self._conn.execute_raw("SELECT pg_advisory_unlock(%s)", (lock_key(name),))

    async def close(self) -> None:
        """Give every role up."""
        self._held.clear()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
