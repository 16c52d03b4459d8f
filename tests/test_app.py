"""The HTTP side: health check and the web simulator, through Starlette's TestClient."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from starlette.testclient import TestClient

from bot.entrypoints.http import create_app
from bot.settings import Settings
from tests.images import png

PNG = png("a 1 x 1 photo", (1, 1))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


class SimUser:
    """A person using the web simulator's JSON API."""

    def __init__(self, client: TestClient, address: str = "web:tester") -> None:
        self.client = client
        self.target = {"channel": "sim-telegram", "address": address}
        self.after = 0

    def inbox(self) -> list[dict[str, Any]]:
        """Messages that arrived since the last look."""
        got = self.client.get("/sim/api/messages", params={**self.target, "after": self.after})
        messages: list[dict[str, Any]] = got.json()["messages"]
        if messages:
            self.after = messages[-1]["id"]
        return messages

    def send(self, **body: object) -> list[dict[str, Any]]:
        """Send a text, option or location; return the replies."""
        response = self.client.post("/sim/api/send", json={**self.target, **body})
        assert response.status_code == 200, response.text
        return self.inbox()

    def press(self, messages: list[dict[str, Any]], label: str) -> list[dict[str, Any]]:
        """Press a button of the last message by its label."""
        option = next(data for text, data in messages[-1]["buttons"] if text == label)
        return self.send(option=option)


def test_healthz_answers_with_the_database_reachable(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_sim_page_is_served(client: TestClient) -> None:
    response = client.get("/sim")
    assert response.status_code == 200
    assert "gridbot" in response.text and "/sim/api/send" in response.text


def test_the_servers_own_address_leads_to_the_simulator(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code in (302, 307) and response.headers["location"] == "/sim"


def test_without_simulators_the_servers_address_says_it_is_running(
        settings: Settings) -> None:
    with TestClient(create_app(replace(settings, simulators=False))) as client:
        response = client.get("/")
        assert response.status_code == 200 and "/healthz" in response.text
        assert client.get("/sim").status_code == 404


def test_a_report_through_the_web_simulator(client: TestClient) -> None:
    user = SimUser(client)
    menu = user.send(text="/report")
    user.press(menu, "市政设施")
    user.send(text="路灯坏了")
    user.send(lat=30.2801, lon=120.11661)
    photo = client.post("/sim/api/photo", data=user.target,
                        files={"file": ("a.png", PNG, "image/png")})
    assert photo.status_code == 200
    summary = user.press(user.inbox(), "完成")
    assert "照片：1张" in summary[-1]["text"]
    created = user.press(summary, "确认提交")
    assert re.search(r"\d{6}-\d{3}", created[-1]["text"])


def test_sim_refuses_bad_requests_clearly(client: TestClient) -> None:
    bad_channel = client.post("/sim/api/send", json={"channel": "sms", "address": "x"})
    assert bad_channel.status_code == 400 and "channel" in bad_channel.json()["error"]
    no_address = client.post("/sim/api/send", json={"channel": "sim-sms"})
    assert no_address.status_code == 400
    not_json = client.post("/sim/api/send", content=b"{nope",
                           headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    bad_loc = client.post("/sim/api/send", json={"channel": "sim-sms", "address": "a",
                                                 "lat": "north", "lon": 1})
    assert bad_loc.status_code == 400
    not_image = client.post("/sim/api/photo", data={"channel": "sim-sms", "address": "a"},
                            files={"file": ("a.txt", b"hello", "text/plain")})
    assert not_image.status_code == 415 and "image" in not_image.json()["error"]
