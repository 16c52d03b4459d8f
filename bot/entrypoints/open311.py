"""Open311 GeoReport v2 on HTTP at /open311/v2/: XML (the spec's required format) or JSON,
chosen by the `.xml` or `.json` suffix of each resource.

This module only reads the HTTP request (query string or form, with a size cap), calls
`bot.services.open311.GeoReport`, and writes its answer or its `Open311Error` in the
format asked (errors as the spec's list of code and description).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree

from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.bootstrap import Gridbot
from bot.channels.http_input import BadInput, int_param, read_body
from bot.domain.open311 import Open311Error
from bot.services.open311 import INTEGERS, GeoReport, Params, one

PREFIX = "/open311/v2"
FORMATS = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
# A form within this: 4,000 characters of Chinese percent-encoded is 36 kB, plus the rest.
MAX_BODY = 128 * 1024
# XML element names of the items of each list, by the list's name.
ITEMS = {"attributes": "attribute", "values": "value", "endpoints": "endpoint",
         "formats": "format", "services": "service", "service_requests": "request",
         "service_request_updates": "request_update", "errors": "error"}

Answer = list[dict[str, Any]] | dict[str, Any]


def routes() -> list[BaseRoute]:
    """The GeoReport v2 routes, to mount in the app."""
    return [Route(PREFIX + "/{resource:path}", endpoint, methods=["GET", "POST"])]


def _geo(request: Request) -> GeoReport:
    state = request.app.state
    geo: GeoReport | None = getattr(state, "open311", None)
    if geo is None:
        bot: Gridbot = state.gridbot
        geo = state.open311 = GeoReport(bot.db, bot.reference, bot.renderer, bot.settings,
                                        bot.clock, bot.engine.on_queued)
    return geo


async def endpoint(request: Request) -> Response:
    """Every GeoReport resource: find it, read its parameters, answer in its format."""
    resource, dot, fmt = request.path_params["resource"].rpartition(".")
    if not dot or fmt not in FORMATS:
        return _write("errors", [{"code": 400, "description": "add .xml or .json to the"
                                  " resource (GeoReport v2 formats)"}], "xml", 400)
    try:
        params = await _params(request)
        _check_integers(params)
        handler, root = _resolve(request.method, resource)
        answer = await handler(_geo(request), params, request)
    except Open311Error as error:
        return _write("errors", [{"code": error.status, "description": error.description}],
                      fmt, error.status)
    return _write(root, answer, fmt, 201 if request.method == "POST" else 200)


Handler = Callable[[GeoReport, Params, Request], Awaitable[Answer]]


def _resolve(method: str, resource: str) -> tuple[Handler, str]:
    if method == "GET":
        if resource == "discovery":
            return _discovery, "discovery"
        if resource == "services":
            return _services, "services"
        if resource.startswith("services/"):
            return _definition, "service_definition"
        if resource == "requests":
            return (lambda geo, params, _: geo.requests(params)), "service_requests"
        if resource.startswith("requests/"):
            return _one_request, "service_requests"
        if resource == "servicerequestupdates":
            return (lambda geo, params, _: geo.updates(params)), "service_request_updates"
    elif resource == "requests":
        return (lambda geo, params, _: geo.file(params)), "service_requests"
    elif resource == "servicerequestupdates":
        return (lambda geo, params, _: geo.post_update(params)), "service_request_updates"
    raise Open311Error(404, f"no resource {method} {resource[:60]!r} here")


async def _discovery(geo: GeoReport, params: Params, request: Request) -> Answer:
    geo.check_jurisdiction(params)
    return geo.discovery(geo.settings.public_url + PREFIX + "/")


async def _services(geo: GeoReport, params: Params, request: Request) -> Answer:
    geo.check_jurisdiction(params)
    return geo.service_list()


async def _definition(geo: GeoReport, params: Params, request: Request) -> Answer:
    geo.check_jurisdiction(params)
    return geo.definition(request.path_params["resource"].rpartition(".")[0][len("services/"):])


async def _one_request(geo: GeoReport, params: Params, request: Request) -> Answer:
    number = request.path_params["resource"].rpartition(".")[0][len("requests/"):]
    return await geo.request(params, number)


async def _params(request: Request) -> Params:
    """The query string, and for a POST its form, within MAX_BODY (413 past it)."""
    params: dict[str, list[str]] = parse_qs(request.url.query, keep_blank_values=True)
    if request.method != "POST":
        return params
    try:
        body = await read_body(request, MAX_BODY)
    except BadInput as bad:  # 413, the spec's error list
        raise Open311Error(bad.status, f"{bad}: a description may be at most 4000"
                                       " characters") from None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        request._body = body  # the form parser reads the body kept here
        try:
            async with request.form(max_files=0, max_fields=200) as form:
                for name, value in form.multi_items():
                    if isinstance(value, str):
                        params.setdefault(name, []).append(value)
        except (HTTPException, MultiPartException) as bad:  # a file, no boundary, ...
            detail = bad.detail if isinstance(bad, HTTPException) else bad.message
            raise Open311Error(400, f"the multipart form cannot be read: {detail}"
                                    " (files are not taken; send media_url)") from None
        return params
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Open311Error(400, "the form must be UTF-8") from None
    for name, values in parse_qs(text, keep_blank_values=True).items():
        params.setdefault(name, []).extend(values)
    return params


def _check_integers(params: Params) -> None:
    """Refuse (400) an integer parameter that is not ASCII digits within its bounds."""
    for name, (low, high) in INTEGERS.items():
        raw = one(params, name)
        try:
            int_param({name: raw} if raw is not None else {}, name, low=low, high=high)
        except BadInput as bad:
            raise Open311Error(400, str(bad)) from None


def _write(root: str, answer: Answer, fmt: str, status: int) -> Response:
    if fmt == "json":
        return Response(json.dumps(answer, ensure_ascii=False), status,
                        media_type=FORMATS["json"])
    element = ElementTree.Element(root)
    if isinstance(answer, dict):
        _fill(element, answer)
    else:
        for item in answer:
            _fill(ElementTree.SubElement(element, ITEMS[root]), item)
    body = ElementTree.tostring(element, encoding="utf-8", xml_declaration=True)
    return Response(body.replace(b"<?xml version='1.0' encoding='utf-8'?>",
                                 b'<?xml version="1.0" encoding="UTF-8"?>'),
                    status, media_type=FORMATS["xml"])


def _fill(element: ElementTree.Element, data: dict[str, Any]) -> None:
    for name, value in data.items():
        child = ElementTree.SubElement(element, name)
        if isinstance(value, list):
            for item in value:
                sub = ElementTree.SubElement(child, ITEMS.get(name, "item"))
                if isinstance(item, dict):
                    _fill(sub, item)
                else:
                    sub.text = _text(item)
        elif value is not None:
            child.text = _text(value)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
