"""The web simulator is no way into a real deployment (issue 18, items 1 and 2).

With Telegram on, gridbot is served by uvicorn on localhost against the fake Bot API, and
the simulator is probed over real HTTP as an outsider would: anonymously, and with the
secret link. The grid chief of 翠苑一区第2网格 is real (on Telegram); the demo chief of
翠苑一区第1网格 exists only as the simulator's `web:chief-0101`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from bot.domain.clock import FakeClock
from bot.entrypoints.sim import sim_access
from bot.settings import Settings, SettingsError
from store import people as people_store
from tests.fake_telegram import FakeTelegram, Updates
from tests.helpers import CHECKER
from tests.telegram_harness import Harness, running_gridbot, telegram_settings

KEY = "sim-secret-0123456789abcdef"
REAL_CHIEF = 700_102  # Telegram chat of 陈建国, grid chief of 33010600100102
REAL_RESIDENT = 700_777
FORGED = {"channel": "sim-telegram", "address": "web:rob-sim-1"}
CASE_NUMBER = re.compile(r"\d{6}-\d{3}")


async def serve(tmp_path: Path, fake: FakeTelegram, clock: FakeClock,
                **extra: str) -> AsyncIterator[Harness]:
    """gridbot with Telegram on; the demo's chief of grid 0102 has joined on Telegram."""
    async with running_gridbot(telegram_settings(tmp_path, fake, **extra), clock,
                               fake) as tg:
        async with tg.bot.db.transaction() as conn:
            chief = await people_store.holder_of(conn, "grid_chief", "33010600100102")
            assert chief is not None
            await people_store.add_contact(conn, chief.id, "telegram", str(REAL_CHIEF),
                                           clock.now())
        await tg.send(Updates(CHECKER, next_id=900_000).text(REAL_CHIEF, "/help"))
        yield tg


@pytest.fixture
async def default_tg(tmp_path: Path, fake: FakeTelegram,
                     clock: FakeClock) -> AsyncIterator[Harness]:
    """Telegram on, the simulator left to its default."""
    async for tg in serve(tmp_path, fake, clock):
        yield tg


@pytest.fixture
async def keyed_tg(tmp_path: Path, fake: FakeTelegram,
                   clock: FakeClock) -> AsyncIterator[Harness]:
    """Telegram on, the simulator turned on explicitly, with a known secret."""
    async for tg in serve(tmp_path, fake, clock, GRIDBOT_SIMULATORS="true",
                          GRIDBOT_SIM_TOKEN=KEY):
        yield tg


def anonymous(tg: Harness, cookies: dict[str, str] | None = None) -> httpx.AsyncClient:
    """A client with no cookie (or a made-up one): someone who found the server's address."""
    return httpx.AsyncClient(base_url=str(tg.http.base_url), cookies=cookies)


@asynccontextmanager
async def with_key(tg: Harness) -> AsyncIterator[httpx.AsyncClient]:
    """A client that opened the secret link (the cookie it set is kept)."""
    async with anonymous(tg) as client:
        opened = await client.get("/sim", params={"key": KEY})
        assert opened.status_code == 303 and opened.headers["location"] == "/sim"
        cookie = opened.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/sim" in cookie
        yield client


async def file_forged_case(client: httpx.AsyncClient) -> list[httpx.Response]:
    """The probe's report: a text naming a building of grid 0102, then confirm."""
    steps = [{"text": "（伪造）翠苑一区7幢门口大量垃圾，请立即处理"}, {"option": "1:0"},
             {"option": "2:0"}, {"option": "3:0"}]
    return [await client.post("/sim/api/send", json={**FORGED, **step}) for step in steps]


async def real_resident_reports_in_grid_0101(tg: Harness, updates: Updates) -> str:
    """A real Telegram resident files a case in 翠苑一区第1网格; returns its number."""
    asked = await tg.send(updates.text(REAL_RESIDENT, "翠苑一区3幢门口垃圾堆了三天"))
    asked = await tg.send(updates.callback(REAL_RESIDENT, asked[-1].button("垃圾")))
    asked = await tg.send(updates.callback(REAL_RESIDENT, asked[-1].button("没有照片")))
    created = await tg.send(updates.callback(REAL_RESIDENT, asked[-1].button("确认提交")))
    number = CASE_NUMBER.search(created[0].params["text"])
    assert number is not None
    return number.group()


async def case_history(tg: Harness, number: str) -> tuple[str, int]:
    """A case's state and how many events its audit trail has."""
    rows = await tg.bot.db.fetchall(
        "SELECT c.state, (SELECT count(*) FROM case_events e WHERE e.case_id = c.id)"
        " FROM cases c WHERE c.number = ?", (number,))
    return str(rows[0][0]), int(rows[0][1])


def sent_to(fake: FakeTelegram, chat: int) -> list[str]:
    return [str(c.params.get("text") or c.params.get("caption") or "")
            for c in fake.calls if c.method in ("sendMessage", "sendPhoto")
            and c.params.get("chat_id") == chat]


# --- finding 1: an anonymous POST filed a case that reached the real chief ---------------

async def test_with_telegram_on_the_simulator_is_off_by_default_and_files_nothing(
        default_tg: Harness, fake: FakeTelegram) -> None:
    before = sent_to(fake, REAL_CHIEF)
    async with anonymous(default_tg) as outsider:
        answers = await file_forged_case(outsider)
        assert {r.status_code for r in answers} == {404}
        read = await outsider.get("/sim/api/messages", params=FORGED)
        assert read.status_code == 404
        assert (await outsider.get("/")).text.startswith("gridbot is running")
    await default_tg.deliver()
    assert sent_to(fake, REAL_CHIEF) == before
    assert await default_tg.bot.db.fetchall("SELECT id FROM cases") == []
    assert await default_tg.bot.db.fetchall(
        "SELECT id FROM inbox WHERE channel LIKE 'sim-%'") == []


async def test_turned_on_with_telegram_anonymous_requests_get_401_and_reach_nobody(
        keyed_tg: Harness, fake: FakeTelegram) -> None:
    before = sent_to(fake, REAL_CHIEF)
    async with anonymous(keyed_tg) as outsider:
        answers = await file_forged_case(outsider)
        assert {r.status_code for r in answers} == {401}
        assert "secret" in answers[0].json()["error"] and "/sim?key=" in answers[0].json()[
            "error"]
        page = await outsider.get("/sim")
        assert page.status_code == 401 and "gridbot serve" in page.text
        async with anonymous(keyed_tg, {"gridbot_sim": "guessed-wrong"}) as guesser:
            forged = await guesser.post("/sim/api/send", json={**FORGED, "text": "hi"})
            assert forged.status_code == 401
        wrong_key = await outsider.get("/sim", params={"key": "guessed-wrong"})
        assert wrong_key.status_code == 403 and "set-cookie" not in wrong_key.headers
    await keyed_tg.deliver()
    assert sent_to(fake, REAL_CHIEF) == before
    assert await keyed_tg.bot.db.fetchall("SELECT id FROM cases") == []


async def test_with_the_secret_link_a_simulated_resident_can_report(
        keyed_tg: Harness, fake: FakeTelegram) -> None:
    async with with_key(keyed_tg) as operator:
        assert (await operator.get("/sim")).status_code == 200
        answers = await file_forged_case(operator)
        assert [r.status_code for r in answers] == [200] * 4
        replies = (await operator.get("/sim/api/messages", params=FORGED)).json()["messages"]
    assert CASE_NUMBER.search(replies[-1]["text"])
    await keyed_tg.deliver()
    assert any("伪造" in text for text in sent_to(fake, REAL_CHIEF))


# --- finding 1b: anyone could read another person's messages ------------------------------

async def test_another_persons_messages_cannot_be_read_without_the_secret(
        keyed_tg: Harness) -> None:
    async with with_key(keyed_tg) as operator:
        await operator.post("/sim/api/send", json={**FORGED, "text": "/help"})
        assert (await operator.get("/sim/api/messages", params=FORGED)).json()["messages"]
    async with anonymous(keyed_tg) as outsider:
        read = await outsider.get("/sim/api/messages", params=FORGED)
        assert read.status_code == 401 and "messages" not in read.json()


# --- finding 2: anyone could act as the demo's grid chief on a real resident's case -------

async def test_the_demo_chief_cannot_read_or_sign_a_real_residents_case(
        keyed_tg: Harness, updates: Updates, fake: FakeTelegram) -> None:
    number = await real_resident_reports_in_grid_0101(keyed_tg, updates)
    filed = await case_history(keyed_tg, number)
    demo_chief = {"channel": "sim-telegram", "address": "web:chief-0101"}
    async with with_key(keyed_tg) as operator:
        read = await operator.get("/sim/api/messages", params=demo_chief)
        assert read.status_code == 403 and "residents only" in read.json()["error"]
        sign = await operator.post("/sim/api/send", json={**demo_chief, "option": "1:0"})
        assert sign.status_code == 403
        as_sms = await operator.post("/sim/api/send", json={
            "channel": "sim-sms", "address": "web:chief-0101", "text": f"签收 {number}"})
        assert as_sms.status_code == 403
        cast = (await operator.get("/sim/api/cast")).json()
        assert cast["residents_only"] is True and cast["staff"] == []
    async with anonymous(keyed_tg) as outsider:
        assert (await outsider.get("/sim/api/messages", params=demo_chief)).status_code == 401
    await keyed_tg.deliver()
    assert await case_history(keyed_tg, number) == filed
    assert not any("已签收" in text for text in sent_to(fake, REAL_RESIDENT))


async def test_by_default_the_demo_chief_is_not_reachable_at_all(
        default_tg: Harness, updates: Updates, fake: FakeTelegram) -> None:
    number = await real_resident_reports_in_grid_0101(default_tg, updates)
    filed = await case_history(default_tg, number)
    demo_chief = {"channel": "sim-telegram", "address": "web:chief-0101"}
    async with anonymous(default_tg) as outsider:
        assert (await outsider.get("/sim/api/messages", params=demo_chief)).status_code == 404
        sign = await outsider.post("/sim/api/send", json={**demo_chief, "option": "1:0"})
        assert sign.status_code == 404
    await default_tg.deliver()
    assert await case_history(default_tg, number) == filed
    assert not any("已签收" in text for text in sent_to(fake, REAL_RESIDENT))


# --- when it is on, and why ---------------------------------------------------------------

def settings_of(**env: str) -> Settings:
    return Settings.from_mapping(env)


def test_a_local_demo_has_the_simulator_without_a_secret() -> None:
    access = sim_access(settings_of())
    assert access.on and access.token is None and not access.residents_only
    assert access.start_line(settings_of()) == (
        "simulator: on at http://127.0.0.1:8080/sim (a local demo: no real channel,"
        " listening on 127.0.0.1 only)")


@pytest.mark.parametrize(("env", "why"), [
    ({"TELEGRAM_BOT_TOKEN": "1:x"}, "Telegram configured"),
    ({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM_NUMBER": "+1500"},
     "SMS (Twilio) configured"),
    ({"GRIDBOT_HOST": "0.0.0.0"}, "listening on 0.0.0.0, beyond this machine"),
    ({"GRIDBOT_HOST": "192.168.1.20"}, "listening on 192.168.1.20"),
    ({"GRIDBOT_SIMULATORS": "false"}, "GRIDBOT_SIMULATORS=false"),
])
def test_the_simulator_is_off_by_default_beyond_a_local_demo(env: dict[str, str],
                                                              why: str) -> None:
    settings = settings_of(**env)
    access = sim_access(settings)
    assert not access.on
    line = access.start_line(settings)
    assert line.startswith("simulator: off (") and why in line


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_addresses_keep_the_local_demo(host: str) -> None:
    assert sim_access(settings_of(GRIDBOT_HOST=host)).token is None


def test_turned_on_beside_a_real_channel_it_needs_a_secret_and_plays_residents_only() -> None:
    settings = settings_of(TELEGRAM_BOT_TOKEN="1:x", GRIDBOT_SIMULATORS="true")
    access = sim_access(settings)
    assert access.on and access.residents_only
    assert access.token is not None and len(access.token) >= 24
    assert sim_access(settings).token != access.token  # made fresh at each start
    line = access.start_line(settings)
    assert "secret" in line and f"/sim?key={access.token}" in line and "residents only" in line


def test_turned_on_for_other_machines_it_needs_a_secret_but_may_play_staff() -> None:
    settings = settings_of(GRIDBOT_HOST="0.0.0.0", GRIDBOT_SIMULATORS="true",
                           GRIDBOT_SIM_TOKEN=KEY)
    access = sim_access(settings)
    assert access.on and access.token == KEY and not access.residents_only
    assert f"http://127.0.0.1:8080/sim?key={KEY}" in access.start_line(settings)


def test_a_set_secret_is_asked_for_even_in_a_local_demo() -> None:
    assert sim_access(settings_of(GRIDBOT_SIM_TOKEN=KEY)).token == KEY


@pytest.mark.parametrize("token", ["short", "has spaces in it 0123", "ü" * 20])
def test_a_weak_or_odd_secret_is_refused_at_start(token: str) -> None:
    with pytest.raises(SettingsError, match="GRIDBOT_SIM_TOKEN"):
        settings_of(GRIDBOT_SIM_TOKEN=token)


def test_an_unknown_simulators_value_is_refused() -> None:
    with pytest.raises(SettingsError, match="GRIDBOT_SIMULATORS"):
        settings_of(GRIDBOT_SIMULATORS="sometimes")


async def test_the_secret_cookie_is_secure_behind_a_trusted_https_proxy(
        tmp_path: Path, fake: FakeTelegram, clock: FakeClock) -> None:
    async for tg in serve(tmp_path, fake, clock, GRIDBOT_SIMULATORS="true",
                          GRIDBOT_SIM_TOKEN=KEY, GRIDBOT_TRUST_PROXY="true"):
        async with anonymous(tg) as client:
            proxied = await client.get("/sim", params={"key": KEY},
                                       headers={"X-Forwarded-Proto": "https"})
            assert proxied.status_code == 303 and "Secure" in proxied.headers["set-cookie"]
            direct = await client.get("/sim", params={"key": KEY})
            assert "Secure" not in direct.headers["set-cookie"]  # plain http on localhost
