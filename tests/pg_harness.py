"""A real PostgreSQL server for tests and benchmarks, started in a temp folder.

Debian's `postgresql` package (any version under /usr/lib/postgresql) is used. The server
refuses to run as root, so when the tests run as root (CI) it is started as the `postgres`
user, in a folder that user owns. It listens on 127.0.0.1 on a free port, with fsync off
(a test server holds nothing worth a disk flush). One server serves a whole test session;
each test gets a fresh database copied from a migrated template (CREATE DATABASE …
TEMPLATE), which takes a few milliseconds instead of running the migrations again.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg

from store.db import Database

INSTALL_HINT = ("PostgreSQL is not installed: apt-get install postgresql"
                " (Debian's package; the tests start their own server)")
TEMPLATE = "gridbot_template"
_counter = itertools.count(1)


def pg_bin() -> Path | None:
    """The folder of Debian's PostgreSQL programs (the newest version), or None."""
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True,
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0):
        if (folder / "pg_ctl").exists() and (folder / "initdb").exists():
            return folder
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgServer:
    """One running PostgreSQL server; `url(name)` is a database on it."""

    def __init__(self, folder: Path, port: int, bin_dir: Path, user: str | None,
                 kept: bool = False) -> None:
        self.folder = folder
        self.port = port
        self.bin_dir = bin_dir
        self.user = user  # the OS user the server runs as (None: the current one)
        self.kept = kept  # the folder outlives the server (`start_server(folder=...)`)
        self.options: list[str] = []

    def pause(self) -> None:
        """Stop the server (an outage), keeping its data."""
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start the server again after `pause`."""
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-l", str(self.folder / "log"),
                  "-o", " ".join(self.options), "-w", "-t", "60", "start")

    def url(self, database: str = "postgres") -> str:
        """A postgresql:// URL of a database on this server."""
        return f"postgresql://gridbot@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection:
        """An autocommit connection to the maintenance database."""
        return psycopg.connect(self.url(), autocommit=True)

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """A fresh, empty (or copied from `template`) database; return its URL."""
        name = name or f"t{os.getpid()}_{next(_counter)}"
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"'
                         + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, ending any connection left to it."""
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        """Stop the server at once (no checkpoint wait) and remove its folder; a kept
        folder's server stops cleanly (its data is for the next start) and stays."""
        if self.kept:
            self.pause()
            return
        try:
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w",
                      "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def start_server(*, durable: bool = False, folder: Path | None = None) -> PgServer:
    """Start a server in a temp folder, or in `folder`, which is kept after the stop and
    whose data a later start reuses (benchmarks filling millions of rows); `durable`
    keeps fsync on (benchmarks)."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise RuntimeError(INSTALL_HINT)
    user = None
    kept = folder is not None
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="gridbot-pg-"))
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        user = "postgres"
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    server = PgServer(folder, _free_port(), bin_dir, user, kept)
    if not (folder / "data" / "PG_VERSION").exists():
        server._run("initdb", "-D", str(folder / "data"), "-U", "gridbot", "-A", "trust",
                    "-E", "UTF8", "--locale=C", "--no-sync")
    options = [f"-p {server.port}", "-c listen_addresses=127.0.0.1",
               f"-c unix_socket_directories={folder}", "-c max_connections=200",
               "-c shared_buffers=64MB"]
    if not durable:
        options += ["-c fsync=off", "-c full_page_writes=off", "-c synchronous_commit=off"]
    server.options = options
    try:
        server.resume()
    except subprocess.CalledProcessError as exc:
        log = (folder / "log").read_text(errors="replace") if (folder / "log").exists() else ""
        if not kept:
            shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr!r} {log[-2000:]}") from exc
    deadline = time.monotonic() + 30
    while True:
        try:
            server.admin().close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return server


@contextmanager
def running_server(*, durable: bool = False, folder: Path | None = None
                   ) -> Iterator[PgServer]:
    """A server for the block (in `folder`, kept, when given: see `start_server`)."""
    server = start_server(durable=durable, folder=folder)
    try:
        yield server
    finally:
        server.stop()


class PgDatabases:
    """Fresh databases on one server, each a copy of a template migrated once."""

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self._template_ready = False
        self._made: list[str] = []

    def fresh(self) -> str:
        """The URL of a new database with the schema migrated (and nothing else)."""
        if not self._template_ready:
            url = self.server.create_database(TEMPLATE)
            _migrate(url)
            self._template_ready = True
        name = f"t{os.getpid()}_{next(_counter)}"
        self._made.append(name)
        return self.server.create_database(name, template=TEMPLATE)

    def drop(self, url: str) -> None:
        """Drop a database made by `fresh`."""
        self.server.drop_database(url.rsplit("/", 1)[1])


def _migrate(url: str) -> None:
    """Migrate a database (in a thread of its own: a test's event loop may be running)."""

    async def run() -> None:
        db = await Database.open(url)
        await db.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()
