"""`gridbot serve` as a real process: a taken port (issue 12 item 8), the line about the
simulator at start (issue 18 item 1), the secret link it prints, and an access log that
the simulator's polling does not flood (issue 12 item 9)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fake_telegram import FakeTelegram, listening_socket

ROOT = Path(__file__).resolve().parent.parent


def environment(folder: Path, port: int, **extra: str) -> dict[str, str]:
    """The process environment for one server: its own database, media and port."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GRIDBOT_", "TELEGRAM_", "TWILIO_"))}
    return {**env, "GRIDBOT_DATABASE": str(folder / "g.db"),
            "GRIDBOT_MEDIA_DIR": str(folder / "media"), "GRIDBOT_PORT": str(port),
            "GRIDBOT_DIGEST_MORNING": "off", "GRIDBOT_DIGEST_EVENING": "off",
            "GRIDBOT_MEETING_CRON": "off", **extra}


def free_port() -> int:
    sock = listening_socket()
    port: int = sock.getsockname()[1]
    sock.close()
    return port


class Server:
    """A `gridbot serve` subprocess whose output is collected in a file."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.log_path = folder / "serve.log"
        self.port = int(env["GRIDBOT_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "bot", "serve"], env=env,
                                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Poll the real process's /healthz (not a clock) until it answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"gridbot serve did not become healthy:\n{self.output()}")

    def stop(self) -> str:
        """SIGTERM, wait for the exit, and return everything it printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        return self.output()

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A local demo server, stopped after the test."""
    running = Server(environment(tmp_path, free_port()), tmp_path)
    try:
        running.wait_healthy()
        yield running
    finally:
        running.stop()


def test_a_second_serve_on_a_taken_port_says_so_in_one_line_and_touches_nothing(
        tmp_path: Path) -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        done = subprocess.run([sys.executable, "-m", "bot", "serve"],
                              env=environment(tmp_path, port), cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
    finally:
        holder.close()
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"gridbot: port {port} on 127.0.0.1 is already in use (another gridbot serve?);"
        " stop that one or choose another port with --port or GRIDBOT_PORT"]
    assert not (tmp_path / "g.db").exists()  # no database opened, no scheduler run on it
    assert not (tmp_path / "media").exists()


def test_serve_says_at_start_that_the_local_demo_has_the_simulator(server: Server) -> None:
    lines = server.stop().splitlines()
    assert f"gridbot: simulator: on at {server.url}/sim (a local demo: no real channel," \
           " listening on 127.0.0.1 only)" in lines


def test_the_simulators_polling_stays_out_of_the_access_log(server: Server) -> None:
    with httpx.Client(base_url=server.url) as http:
        for _ in range(30):
            polled = http.get("/sim/api/messages",
                              params={"channel": "sim-telegram", "address": "web:x"})
            assert polled.status_code == 200
        assert http.get("/healthz").status_code == 200
        assert http.get("/sim/api/messages", params={"channel": "nope",
                                                      "address": "x"}).status_code == 400
    log = server.stop()
    assert '"GET /healthz HTTP/1.1" 200' in log  # the access log is on...
    assert "GET /sim/api/messages" in log and log.count("/sim/api/messages") == 1  # the 400
    assert re.search(r"GET /sim/api/messages\S* HTTP/1.1\" 200", log) is None


def test_with_telegram_on_serve_says_the_simulator_is_off_and_why(tmp_path: Path) -> None:
    with FakeTelegram().checking() as fake:
        env = environment(tmp_path, free_port(), TELEGRAM_BOT_TOKEN=fake.token,
                          TELEGRAM_API_BASE_URL=fake.base_url, TELEGRAM_MODE="polling")
        server = Server(env, tmp_path)
        try:
            server.wait_healthy()
            assert httpx.get(server.url + "/sim").status_code == 404
        finally:
            lines = server.stop().splitlines()
    assert ("gridbot: simulator: off (Telegram configured; GRIDBOT_SIMULATORS=true turns it"
            " on behind a secret link)") in lines


def test_turned_on_beside_telegram_the_printed_link_is_the_way_in(tmp_path: Path) -> None:
    with FakeTelegram().checking() as fake:
        env = environment(tmp_path, free_port(), TELEGRAM_BOT_TOKEN=fake.token,
                          TELEGRAM_API_BASE_URL=fake.base_url, TELEGRAM_MODE="polling",
                          GRIDBOT_SIMULATORS="true")
        server = Server(env, tmp_path)
        try:
            server.wait_healthy()
            link = re.search(r"open (http://\S+/sim\?key=\S+)$", server.output(), re.M)
            assert link is not None, server.output()
            assert httpx.get(server.url + "/sim").status_code == 401
            with httpx.Client(follow_redirects=True) as browser:
                opened = browser.get(link.group(1))  # follows the redirect to /sim
                assert opened.status_code == 200 and "sim.js" in opened.text
                assert "key=" not in str(opened.url)
                cast = browser.get(server.url + "/sim/api/cast").json()
                assert cast["residents_only"] is True
        finally:
            server.stop()
