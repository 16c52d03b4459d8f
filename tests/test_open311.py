"""Open311 GeoReport v2 at /open311/v2/, over real HTTP (Starlette's TestClient on the real
app and database): every JSON answer is validated against the GeoReport v2 schemas in
tests/data/open311, every XML answer parsed and checked against the spec's element names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import anyio
import jsonschema
import pytest
from starlette.testclient import TestClient

from bot.bootstrap import Gridbot, build
from bot.domain.clock import FakeClock
from bot.domain.workflow import Actor, Event, EventKind, Level, Role
from bot.entrypoints.http import create_app
from bot.services import casework
from bot.services.open311 import create_api_key
from bot.settings import Settings
from store import cases as case_store
from store import open311 as open311_store
from store import outbox as outbox_store
from store import people as people_store
from tests.helpers import GRID_1, GRID_1_POINT, STREET, gridbot

SCHEMAS = Path(__file__).parent / "data" / "open311"
API = "/open311/v2"

# The element names of each answer, from the spec's tables (and FixMyStreet's for updates).
XML = {
    "services": ("services", "service", {"service_code", "service_name", "description",
                                         "metadata", "type", "keywords", "group"}),
    "requests": ("service_requests", "request", {
        "service_request_id", "status", "status_notes", "service_name", "service_code",
        "description", "agency_responsible", "service_notice", "requested_datetime",
        "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat",
        "long", "media_url"}),
    "post_requests": ("service_requests", "request", {"service_request_id", "service_notice",
                                                      "account_id"}),
    "errors": ("errors", "error", {"code", "description"}),
    "servicerequestupdates": ("service_request_updates", "request_update", {
        "update_id", "service_request_id", "status", "updated_datetime", "description",
        "media_url"}),
}


def valid(name: str, data: Any) -> Any:
    """Validate an answer against our GeoReport v2 schema of that name; return it."""
    schema = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, schema, format_checker=jsonschema.FormatChecker())
    return data


def xml_items(body: bytes, name: str) -> list[dict[str, str]]:
    """Parse an XML answer, check its element names against the spec's, return the items."""
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root_name, item_name, fields = XML[name]
    root = ElementTree.fromstring(body)
    assert root.tag == root_name
    items = []
    for item in root:
        assert item.tag == item_name
        names = {child.tag for child in item}
        assert names <= fields, names - fields
        items.append({child.tag: child.text or "" for child in item})
    return items


@dataclass
class Client:
    """An Open311 client of the running app."""

    http: TestClient

    @property
    def bot(self) -> Gridbot:
        bot: Gridbot = self.http.app.state.gridbot  # type: ignore[attr-defined]
        return bot

    def key(self, name: str = "FixMyStreet", **bound: Any) -> str:
        """Make an API key as `gridbot api-key create` does."""
        _, key = self.http.portal.call(  # type: ignore[union-attr]
            lambda: create_api_key(self.bot.db, self.bot.reference, name,
                                   self.bot.clock.now(), **bound))
        return key

    def run(self, coro: Any) -> Any:
        """Run a coroutine function on the app's loop."""
        return self.http.portal.call(coro)  # type: ignore[union-attr]

    def get(self, key: str, url: str, params: dict[str, Any] | None = None) -> Any:
        """GET with an API key (reading cases needs one)."""
        return self.http.get(url, params={"api_key": key, **(params or {})})

    def file(self, key: str, **fields: Any) -> Any:
        """POST requests.json; return the response."""
        data = {"api_key": key, "service_code": "sanitation-garbage",
                "lat": GRID_1_POINT[0], "long": GRID_1_POINT[1],
                "description": "3号楼门口垃圾满了", **fields}
        return self.http.post(f"{API}/requests.json", data=data)


@pytest.fixture
def client(settings: Settings, clock: FakeClock) -> Iterator[Client]:
    """The app over a gridbot on the test's clock, started as the app's lifespan does; the
    TestClient runs its requests on the bot's own event loop (the portal)."""
    with anyio.from_thread.start_blocking_portal() as portal:
        bot = portal.call(build, settings, clock)
        app = create_app(settings, bot)
        app.state.gridbot = bot
        portal.call(bot.start)
        http = TestClient(app)
        http.portal = portal
        try:
            yield Client(http)
        finally:
            portal.call(bot.stop)
            portal.call(bot.close)


def error_of(response: Any, status: int) -> str:
    """The one error of a JSON error answer, checked against the schema."""
    assert response.status_code == status, response.text
    errors = valid("errors", response.json())
    assert errors[0]["code"] == status
    return str(errors[0]["description"])


# --- discovery and services ---------------------------------------------------------------

def test_discovery_names_the_endpoint_and_both_formats(client: Client) -> None:
    data = valid("discovery", client.http.get(f"{API}/discovery.json").json())
    assert data["endpoints"][0]["url"].endswith("/open311/v2/")
    root = ElementTree.fromstring(client.http.get(f"{API}/discovery.xml").content)
    assert root.tag == "discovery"
    assert [f.text for f in root.iter("format")] == ["text/xml", "application/json"]
    assert root.find("endpoints/endpoint/specification") is not None


def test_services_are_the_subcategories_grouped_by_category(client: Client) -> None:
    services = valid("services", client.http.get(f"{API}/services.json").json())
    by_code = {s["service_code"]: s for s in services}
    garbage = by_code["sanitation-garbage"]
    assert garbage["group"] == "Sanitation" and "垃圾" in garbage["keywords"]
    assert garbage["metadata"] is False
    assert by_code["housing-lift_trapped"]["metadata"] is True
    assert "other" in by_code  # a category without subcategories is a service itself
    xml = xml_items(client.http.get(f"{API}/services.xml").content, "services")
    assert [s["service_code"] for s in xml] == list(by_code)
    assert {s["metadata"] for s in xml} == {"true", "false"}


def test_a_service_definition_lists_its_attributes(client: Client) -> None:
    data = valid("service_definition",
                 client.http.get(f"{API}/services/housing-lift_trapped.json").json())
    trapped = next(a for a in data["attributes"] if a["code"] == "people_trapped")
    assert trapped["required"] and [v["key"] for v in trapped["values"]] == ["yes", "no"]
    root = ElementTree.fromstring(
        client.http.get(f"{API}/services/housing-lift_trapped.xml").content)
    assert root.tag == "service_definition"
    assert {e.tag for e in root.find("attributes/attribute")} >= {  # type: ignore[union-attr]
        "variable", "code", "datatype", "required", "datatype_description", "order",
        "description", "values"}
    assert root.find("attributes/attribute/values/value/key") is not None


def test_an_unknown_service_definition_is_404(client: Client) -> None:
    assert "nope" in error_of(client.http.get(f"{API}/services/nope.json"), 404)


# --- filing -------------------------------------------------------------------------------

def test_a_filed_request_is_a_case_routed_like_the_bots(client: Client) -> None:
    key = client.key()
    response = client.file(key, first_name="丽华", last_name="王", email="w@example.org")
    assert response.status_code == 201, response.text
    number = valid("post_requests", response.json())[0]["service_request_id"]
    stored = client.run(lambda: case_store.get_by_number(client.bot.db.conn, number))
    assert stored.case.grid_code == GRID_1 and stored.case.level == Level.GRID
    assert stored.details.source_channel == "open311"
    assert stored.case.assignee_id is not None  # the grid chief has it, as from the chat
    reporter = client.run(lambda: people_store.get_person(client.bot.db.conn,
                                                          stored.case.reporter_id))
    assert reporter.name == "王丽华"
    # the grid chief is told, as for a report from the chat
    told = client.run(lambda: outbox_store.for_address(client.bot.db.conn, "sim-telegram",
                                                       "web:chief-0101"))
    assert any(number in m.body for m in told)


def test_the_request_is_seen_with_its_status_in_json_and_xml(client: Client) -> None:
    key = client.key()
    number = client.file(key).json()[0]["service_request_id"]
    [one] = valid("requests", client.get(key, f"{API}/requests/{number}.json").json())
    assert one["status"] == "open" and one["service_code"] == "sanitation-garbage"
    assert "翠苑一区第1网格" in one["agency_responsible"]
    assert one["expected_datetime"] and one["updated_datetime"]
    [xml] = xml_items(client.get(key, f"{API}/requests/{number}.xml").content, "requests")
    assert xml["service_request_id"] == number and xml["status"] == "open"


def test_an_address_string_is_matched_like_a_typed_address(client: Client) -> None:
    key = client.key()
    building = next(iter(client.bot.reference.district.buildings.values()))
    response = client.file(key, lat="", long="", address_string=building.name)
    number = response.json()[0]["service_request_id"]
    [one] = client.get(key, f"{API}/requests/{number}.json").json()
    assert one["address_id"] == str(building.id)
    response = client.file(key, lat="", long="", address_id=str(building.id))
    [two] = client.get(
        key, f"{API}/requests/{response.json()[0]['service_request_id']}.json").json()
    assert two["address"] == building.address
    unmatched = client.file(key, lat="", long="", address_string="不存在的路 99 号")
    [three] = client.get(
        key, f"{API}/requests/{unmatched.json()[0]['service_request_id']}.json").json()
    assert three["address"] == "不存在的路 99 号" and "street" in three["status_notes"]


def test_required_attributes_are_asked_and_kept(client: Client) -> None:
    key = client.key()
    missing = client.file(key, service_code="housing-lift_trapped")
    assert "people_trapped" in error_of(missing, 400)
    wrong = client.file(key, service_code="housing-lift_trapped",
                        **{"attribute[people_trapped]": "maybe"})
    assert "yes" in error_of(wrong, 400)
    ok = client.file(key, service_code="housing-lift_trapped",
                     **{"attribute[people_trapped]": "yes", "attribute[unit]": "3幢2单元"})
    number = valid("post_requests", ok.json())[0]["service_request_id"]
    [one] = client.get(key, f"{API}/requests/{number}.json").json()
    assert "3幢2单元" in one["description"]


def test_media_url_is_stored_as_a_link_and_not_fetched(client: Client) -> None:
    key = client.key()
    # Nothing listens on this port: a fetch would fail; the link is kept all the same.
    url = "http://127.0.0.1:9/photo.jpg"
    number = client.file(key, media_url=url).json()[0]["service_request_id"]
    [one] = client.get(key, f"{API}/requests/{number}.json").json()
    assert one["media_url"] == url
    stored = client.run(lambda: case_store.get_by_number(client.bot.db.conn, number))
    media = client.run(lambda: client.bot.db.fetchall(
        "SELECT count(*) FROM media WHERE case_id = ?", (stored.case.id,)))
    assert media[0][0] == 0


def test_a_known_phone_is_the_same_person(client: Client) -> None:
    key = client.key()
    first = client.file(key, phone="13800001001").json()[0]["service_request_id"]
    second = client.file(key, phone="+86 138 0000 1001").json()[0]["service_request_id"]
    cases = [client.run(lambda n=n: case_store.get_by_number(client.bot.db.conn, n))
             for n in (first, second)]
    assert cases[0].case.reporter_id == cases[1].case.reporter_id


def test_a_key_files_only_what_it_is_bound_to(client: Client) -> None:
    key = client.key(services=["roads"])
    assert "sanitation-garbage" in error_of(client.file(key), 403)
    ok = client.file(key, service_code="roads-pothole")
    assert ok.status_code == 201, ok.text


def test_reading_cases_needs_a_key_and_shows_phone_numbers_masked(client: Client) -> None:
    key = client.key()
    number = client.file(key, description="垃圾满了，联系我13800005678或0571-88886666"
                         ).json()[0]["service_request_id"]
    client.http.post(f"{API}/servicerequestupdates.json", data={
        "api_key": key, "service_request_id": number,
        "description": "还没清，打 +86 139 0000 1234"})
    for path in (f"requests/{number}.json", "requests.json", "servicerequestupdates.json"):
        assert "api_key" in error_of(client.http.get(f"{API}/{path}"), 403)
        assert "api_key" in error_of(client.http.get(f"{API}/{path}",
                                                     params={"api_key": "o311_x"}), 403)
    [one] = client.get(key, f"{API}/requests/{number}.json").json()
    assert "138****5678" in one["description"] and "13800005678" not in one["description"]
    assert "88886666" not in one["description"]
    [listed] = client.get(key, f"{API}/requests.json").json()
    assert listed["description"] == one["description"]
    updates = client.get(key, f"{API}/servicerequestupdates.json").json()
    assert updates[-1]["description"] == "Comment: 还没清，打 139****1234"


# --- searching ------------------------------------------------------------------------------

def test_requests_are_searched_by_ids_service_status_and_page(client: Client) -> None:
    key = client.key()
    numbers = [client.file(key).json()[0]["service_request_id"] for _ in range(3)]
    pothole = client.file(key, service_code="roads-pothole").json()[0]["service_request_id"]
    got = valid("requests", client.get(
        key, f"{API}/requests.json", params={"service_request_id": f"{numbers[2]},{numbers[0]}"}
    ).json())
    assert [r["service_request_id"] for r in got] == [numbers[2], numbers[0]]
    roads = valid("requests", client.get(
        key, f"{API}/requests.json", params={"service_code": "roads-pothole"}).json())
    assert [r["service_request_id"] for r in roads] == [pothole]
    assert valid("requests", client.get(key, f"{API}/requests.json",
                                             params={"status": "closed"}).json()) == []
    page = valid("requests", client.get(
        key, f"{API}/requests.json", params={"status": "open", "page_size": 2, "page": 2}
    ).json())
    assert [r["service_request_id"] for r in page] == [numbers[2], pothole]
    xml = xml_items(client.get(key, f"{API}/requests.xml").content, "requests")
    assert len(xml) == 4


def test_a_date_window_over_90_days_or_malformed_is_refused(client: Client) -> None:
    key = client.key()
    now = client.bot.clock.now()
    too_long = {"start_date": (now - timedelta(days=91)).isoformat(),
                "end_date": now.isoformat()}
    assert "90 days" in error_of(client.get(key, f"{API}/requests.json", params=too_long), 400)
    bad = client.get(key, f"{API}/requests.json", params={"start_date": "yesterday"})
    assert "start_date" in error_of(bad, 400)
    ok = client.get(key, f"{API}/requests.json", params={
        "start_date": (now - timedelta(days=1)).isoformat(), "end_date": now.isoformat()})
    valid("requests", ok.json())


def test_dates_and_the_default_window_follow_the_servers_clock(
        client: Client, clock: FakeClock) -> None:
    key = client.key()
    number = client.file(key).json()[0]["service_request_id"]
    [one] = client.get(key, f"{API}/requests/{number}.json").json()
    assert one["requested_datetime"] == clock.now().astimezone(
        client.bot.reference.tz).isoformat(timespec="seconds")
    assert [r["service_request_id"] for r in client.get(key, f"{API}/requests.json").json()
            ] == [number]
    clock.advance(timedelta(days=91))  # out of the default window: the last 90 days
    assert client.get(key, f"{API}/requests.json").json() == []


# --- bad input ------------------------------------------------------------------------------

def test_a_missing_or_revoked_key_is_403(client: Client) -> None:
    assert "api_key" in error_of(client.file(""), 403)
    assert "api_key" in error_of(client.file("o311_made_up"), 403)
    key = client.key()
    assert client.file(key).status_code == 201
    keys = client.run(lambda: open311_store.list_keys(client.bot.db.conn))

    async def revoke() -> None:
        async with client.bot.db.transaction() as conn:
            await open311_store.revoke_key(conn, keys[-1].id, client.bot.clock.now())

    client.run(revoke)
    assert "revoked" in error_of(client.file(key), 403)
    xml = xml_items(client.http.post(
        f"{API}/requests.xml", data={"api_key": key}).content, "errors")
    assert xml == [{"code": "403", "description": "api_key is missing, unknown or revoked"}]


def test_bad_input_is_refused_with_the_specs_errors(client: Client) -> None:
    key = client.key()
    assert "nope" in error_of(client.file(key, service_code="nope"), 400)
    assert "outside every area" in error_of(client.file(key, lat="31.9", long="118.7"), 400)
    assert "numbers" in error_of(client.file(key, lat="north", long="1"), 400)
    assert "location" in error_of(client.file(key, lat="", long=""), 400)
    assert "4000" in error_of(client.file(key, description="垃" * 4001), 400)
    huge = client.file(key, description="x" * (5 * 1024 * 1024))
    assert "4000 characters" in error_of(huge, 413)
    assert "phone" in error_of(client.file(key, phone="12"), 400)
    assert "media_url" in error_of(client.file(key, media_url="file:///etc/passwd"), 400)


def test_non_ascii_digits_and_far_dates_are_refused_not_500(client: Client) -> None:
    key = client.key()
    for name in ("page", "page_size"):  # "²".isdigit() is True, int("²") fails
        got = client.get(key, f"{API}/requests.json", params={name: "²"})
        assert name in error_of(got, 400)
    assert "address_id" in error_of(client.file(key, lat="", long="", address_id="²"), 400)
    for resource in ("requests", "servicerequestupdates"):
        for start in ("0001-01-01T00:00:00", "9999-12-31T00:00:00"):
            got = client.get(key, f"{API}/{resource}.json", params={"start_date": start})
            assert "start_date" in error_of(got, 400)


def test_a_multipart_form_with_a_file_or_no_boundary_gets_the_specs_error(
        client: Client) -> None:
    key = client.key()
    fields = {"api_key": key, "service_code": "sanitation-garbage",
              "address_string": "翠苑一区", "description": "垃圾满了"}
    ok = client.http.post(f"{API}/requests.json", data=fields, files={"x": (None, "y")})
    assert ok.status_code == 201, ok.text  # a multipart form without files is fine
    with_file = client.http.post(f"{API}/requests.json", data=fields,
                                 files={"photo": ("a.jpg", b"\xff\xd8", "image/jpeg")})
    assert "media_url" in error_of(with_file, 400)
    no_boundary = client.http.post(f"{API}/requests.xml", content=b"api_key=x",
                                   headers={"content-type": "multipart/form-data"})
    assert no_boundary.status_code == 400
    [error] = xml_items(no_boundary.content, "errors")
    assert error["code"] == "400" and "multipart" in error["description"]


def test_an_unknown_format_suffix_is_refused(client: Client) -> None:
    for path in ("services.html", "services", "requests.csv"):
        response = client.http.get(f"{API}/{path}")
        assert response.status_code == 400
        assert xml_items(response.content, "errors")[0]["code"] == "400"
    assert client.http.get(f"{API}/nothing.json").status_code == 404


def test_the_configured_jurisdiction_only(settings: Settings) -> None:
    with TestClient(create_app(replace(settings, open311_jurisdiction="cuiyuan.example"))) as c:
        assert c.get(f"{API}/services.json",
                     params={"jurisdiction_id": "cuiyuan.example"}).status_code == 200
        refused = c.get(f"{API}/services.json", params={"jurisdiction_id": "elsewhere"})
        assert "elsewhere" in error_of(refused, 404)
    with TestClient(create_app(settings)) as c:  # default: the street's area code
        assert c.get(f"{API}/services.json",
                     params={"jurisdiction_id": STREET}).status_code == 200


# --- status and updates ------------------------------------------------------------------------

def test_updates_follow_the_audit_trail_with_extended_statuses(client: Client) -> None:
    key = client.key()
    number = client.file(key).json()[0]["service_request_id"]
    bot = client.bot

    async def chief_fixes_it() -> None:
        async with bot.db.transaction() as conn:
            stored = await case_store.get_by_number(conn, number)
            assert stored is not None
            chief = Actor(stored.case.assignee_id, Role.GRID_CHIEF, GRID_1)
            for kind in (EventKind.SIGN, EventKind.REPORT_DONE):
                await casework.apply_event(conn, bot.reference, stored, Event(kind), chief,
                                           bot.clock.now())
                stored = await case_store.get_by_number(conn, number)
                assert stored is not None
            await casework.apply_event(conn, bot.reference, stored,
                                       Event(EventKind.CHECK_PASS, note="清理干净了"), chief,
                                       bot.clock.now())

    client.run(chief_fixes_it)
    updates = valid("servicerequestupdates",
                    client.get(key, f"{API}/servicerequestupdates.json").json())
    mine = [u for u in updates if u["service_request_id"] == number]
    assert [u["status"] for u in mine] == ["OPEN", "OPEN", "IN_PROGRESS", "IN_PROGRESS",
                                           "FIXED"]
    assert mine[-1]["description"] == "Checked and closed: 清理干净了"
    [closed] = client.get(key, f"{API}/requests/{number}.json").json()
    assert closed["status"] == "closed" and "fixed" in closed["status_notes"]
    xml = xml_items(client.get(key, f"{API}/servicerequestupdates.xml").content,
                    "servicerequestupdates")
    assert xml[-1]["status"] == "FIXED"


def test_a_posted_update_is_a_comment_checked_by_the_workflow(client: Client) -> None:
    key = client.key()
    number = client.file(key).json()[0]["service_request_id"]
    posted = client.http.post(f"{API}/servicerequestupdates.json", data={
        "api_key": key, "service_request_id": number, "status": "OPEN",
        "description": "The bins are overflowing again", "update_id": "fms-1",
        "updated_datetime": client.bot.clock.now().isoformat()})
    assert posted.status_code == 201, posted.text
    valid("post_servicerequestupdates", posted.json())
    again = client.http.post(f"{API}/servicerequestupdates.json", data={
        "api_key": key, "service_request_id": number, "description": "x",
        "update_id": "fms-1"})
    assert "posted already" in error_of(again, 400)
    closing = client.http.post(f"{API}/servicerequestupdates.json", data={
        "api_key": key, "service_request_id": number, "status": "FIXED"})
    assert "comment" in error_of(closing, 403)
    updates = client.get(key, f"{API}/servicerequestupdates.json").json()
    assert updates[-1]["description"] == "Comment: The bins are overflowing again"


def test_a_key_posts_updates_only_on_the_cases_it_filed_within_its_services(
        client: Client) -> None:
    filer, stranger = client.key(), client.key("12345 hotline")
    number = client.file(filer).json()[0]["service_request_id"]
    comment = {"service_request_id": number, "description": "有人管吗"}
    refused = client.http.post(f"{API}/servicerequestupdates.json",
                               data={**comment, "api_key": stranger})
    assert "did not file" in error_of(refused, 403)
    xml = xml_items(client.http.post(f"{API}/servicerequestupdates.xml",
                                     data={**comment, "api_key": stranger}).content, "errors")
    assert xml[0]["code"] == "403"
    ok = client.http.post(f"{API}/servicerequestupdates.json",
                          data={**comment, "api_key": filer})
    assert ok.status_code == 201, ok.text

    async def narrow_to_roads() -> None:  # the street office rebinds the filer's key
        async with client.bot.db.transaction() as conn:
            await conn.execute("UPDATE api_keys SET services = '[\"roads\"]' WHERE id ="
                               " (SELECT api_key_id FROM open311_requests)")

    client.run(narrow_to_roads)
    narrowed = client.http.post(f"{API}/servicerequestupdates.json",
                                data={**comment, "api_key": filer})
    assert "sanitation-garbage" in error_of(narrowed, 403)
    events = client.run(lambda: client.bot.db.fetchall(
        "SELECT count(*) FROM case_events WHERE event = 'comment'"))
    assert events[0][0] == 1  # only the filer's comment, once


def test_a_department_key_acts_as_that_department(client: Client) -> None:
    key = client.key("Sanitation CRM", department="sanitation")
    resident = client.key()
    number = client.file(resident).json()[0]["service_request_id"]
    post = {"api_key": key, "service_request_id": number, "status": "IN_PROGRESS"}
    # Not the department's case yet: refused.
    assert "not dispatched" in error_of(
        client.http.post(f"{API}/servicerequestupdates.json",
                         data={**post, "description": "on it"}), 403)
    bot = client.bot

    async def dispatch() -> None:
        async with bot.db.transaction() as conn:
            stored = await case_store.get_by_number(conn, number)
            assert stored is not None
            chief = Actor(stored.case.assignee_id, Role.GRID_CHIEF, GRID_1)
            await casework.apply_event(conn, bot.reference, stored, Event(
                EventKind.DISPATCH, level=Level.DEPARTMENT, department="sanitation"), chief,
                bot.clock.now())

    client.run(dispatch)
    other = client.key("Utilities CRM", department="utilities")
    assert "not dispatched" in error_of(client.http.post(
        f"{API}/servicerequestupdates.json", data={**post, "api_key": other}), 403)
    assert client.http.post(f"{API}/servicerequestupdates.json", data=post).status_code == 201
    done = client.http.post(f"{API}/servicerequestupdates.json",
                            data={**post, "status": "FIXED", "description": "cleared"})
    assert done.status_code == 201, done.text
    [one] = client.get(key, f"{API}/requests/{number}.json").json()
    assert one["status"] == "open" and "checked" in one["status_notes"]


# --- the CLI ------------------------------------------------------------------------------------

def test_api_keys_are_made_listed_and_revoked_by_the_cli(tmp_path: Path) -> None:
    made = gridbot(tmp_path, "api-key", "create", "FixMyStreet", "--services", "roads")
    assert made.returncode == 0, made.stderr
    key = made.stdout.split(": ", 1)[1].split()[0]
    listed = gridbot(tmp_path, "api-key", "list")
    assert "FixMyStreet" in listed.stdout and "roads" in listed.stdout
    assert key not in listed.stdout  # only a prefix is shown; only the hash is stored
    settings = Settings.from_mapping({"GRIDBOT_DATABASE": str(tmp_path / "g.db"),
                                      "GRIDBOT_MEDIA_DIR": str(tmp_path / "media")})
    with TestClient(create_app(settings)) as http:
        client = Client(http)
        assert client.file(key, service_code="roads-pothole").status_code == 201
        stored = http.portal.call(  # type: ignore[union-attr]
            lambda: client.bot.db.fetchall("SELECT key_hash FROM api_keys"))
        assert stored[0][0] == open311_store.hash_key(key) and key not in stored[0][0]
    revoked = gridbot(tmp_path, "api-key", "revoke", "1")
    assert revoked.returncode == 0, revoked.stderr
    with TestClient(create_app(settings)) as http:
        assert Client(http).file(key, service_code="roads-pothole").status_code == 403
    unknown = gridbot(tmp_path, "api-key", "create", "X", "--services", "nothing")
    assert unknown.returncode == 2 and "nothing" in unknown.stderr
