"""A fake Telegram Bot API on localhost that checks every call against the published spec.

`FakeTelegram` serves `/bot<token>/<method>` and `/file/bot<token>/<path>` with uvicorn in
a thread of its own, on a port the OS picks; gridbot reaches it through
TELEGRAM_API_BASE_URL. Each call is checked against tests/data/telegram-bot-api.json
(Bot API 10.1, vendored with its MIT license beside it): the method exists, required
fields are present, no field is unknown, every value has a type the spec allows (objects
checked field by field, recursively), text is at most 4,096 characters and valid for parse
mode HTML, callback data at most 64 bytes. A call that fails is answered 400 and kept in
`violations`, which the test fixture asserts empty.

It records calls, serves getFile and file downloads, queues updates for getUpdates, and
can answer the next calls with 429 (retry_after), 403, 500 or 400. `Updates` builds
realistic updates, checked against the same spec.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SPEC_PATH = Path(__file__).resolve().parent / "data" / "telegram-bot-api.json"
TOKEN = "123456789:AAFakeTokenForGridbotTests_0123456789"
BOT_USER = {"id": 123456789, "is_bot": True, "first_name": "Gridbot",
            "username": "gridbot_test_bot", "can_join_groups": True,
            "can_read_all_group_messages": False, "supports_inline_queries": False}

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
_HTML_TAG = re.compile(
    r'</?(?:b|strong|i|em|u|ins|s|strike|del|code|pre|blockquote|tg-spoiler)>'
    r'|<a href="[^"<>]*">|</a>|<span class="tg-spoiler">|</span>'
    r'|<tg-emoji emoji-id="\d+">|</tg-emoji>|<blockquote expandable>'
    r'|<code class="language-[\w+#-]+">')
_HTML_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


@dataclass(frozen=True)
class Upload:
    """A file sent as multipart data (an InputFile)."""

    filename: str
    data: bytes


@dataclass
class Call:
    """One Bot API call the fake received, its decoded parameters and its answer."""

    method: str
    params: dict[str, Any]
    status: int = 200
    at: float = field(default_factory=time.monotonic, compare=False)  # when it arrived

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """The inline keyboard's (label, callback_data) pairs, row after row."""
        markup = self.params.get("reply_markup") or {}
        return [(b["text"], b.get("callback_data", ""))
                for row in markup.get("inline_keyboard", []) for b in row]

    def button(self, label_part: str) -> str:
        """The callback data of the first button whose label contains `label_part`."""
        for label, data in self.buttons:
            if label_part in label:
                return data
        raise AssertionError(f"no button with {label_part!r} in {self.buttons}")


@dataclass
class Failure:
    """An error the fake answers instead of success, for the next matching calls."""

    status: int
    times: int
    method: str | None
    description: str
    retry_after: int | None
    skip: int = 0  # matching calls that succeed before the failures begin


@dataclass
class StoredFile:
    """A file Telegram holds for getFile and download."""

    file_id: str
    unique_id: str
    data: bytes
    path: str


class SpecChecker:
    """Checks Bot API calls and objects against the machine-readable spec."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.methods: dict[str, Any] = spec["methods"]
        self.types: dict[str, Any] = spec["types"]
        self.version: str = spec["version"]

    @classmethod
    def load(cls, path: Path = SPEC_PATH) -> SpecChecker:
        """Read the spec file (vendored in tests/data)."""
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def fields_of(self, method: str) -> dict[str, dict[str, Any]]:
        """The declared fields of a method, by name."""
        return {f["name"]: f for f in self.methods[method].get("fields", [])}

    def check_call(self, method: str, params: dict[str, Any]) -> list[str]:
        """What is wrong with a call (nothing: an empty list)."""
        if method not in self.methods:
            return [f"{method}: no such method in {self.version}"]
        declared = self.fields_of(method)
        problems = [f"{method}: unknown field {name!r}" for name in params
                    if name not in declared]
        problems += [f"{method}: required field {name!r} missing"
                     for name, spec in declared.items() if spec["required"] and name not in params]
        for name, value in params.items():
            if name in declared:
                problems += self.check_value(declared[name]["types"], value, f"{method}.{name}")
        return problems + self._rules(method, params)

    def check_object(self, type_name: str, value: Any, where: str | None = None) -> list[str]:
        """What is wrong with an object said to be of a spec type."""
        return self._check_type(type_name, value, where or type_name)

    def check_value(self, types: list[str], value: Any, where: str) -> list[str]:
        """Problems of a value that may be any of `types` (none if one of them fits)."""
        attempts = [self._check_type(t, value, where) for t in types]
        if any(not problems for problems in attempts):
            return []
        return min(attempts, key=len)

    def _check_type(self, type_name: str, value: Any, where: str) -> list[str]:
        if type_name.startswith("Array of "):
            if not isinstance(value, list):
                return [f"{where}: expected {type_name}, got {type(value).__name__}"]
            inner = type_name.removeprefix("Array of ")
            return [p for i, item in enumerate(value)
                    for p in self._check_type(inner, item, f"{where}[{i}]")]
        primitive = _PRIMITIVES.get(type_name)
        if primitive is not None:
            return [] if primitive(value) else [
                f"{where}: expected {type_name}, got {value!r:.60}"]
        spec = self.types.get(type_name)
        if spec is None:
            return [f"{where}: type {type_name} is not in the spec"]
        if "subtypes" in spec:
            return self.check_value(spec["subtypes"], value, where)
        if not isinstance(value, dict):
            return [f"{where}: expected a {type_name} object, got {value!r:.60}"]
        declared = {f["name"]: f for f in spec.get("fields", [])}
        problems = [f"{where}: unknown field {k!r} for {type_name}" for k in value
                    if k not in declared]
        problems += [f"{where}: {type_name} requires {k!r}" for k, f in declared.items()
                     if f["required"] and k not in value]
        for key, item in value.items():
            if key in declared:
                problems += self.check_value(declared[key]["types"], item, f"{where}.{key}")
        return problems + _OBJECT_RULES.get(type_name, _no_rules)(value, where)

    def _rules(self, method: str, params: dict[str, Any]) -> list[str]:
        problems = []
        text = params.get("text")
        if method == "sendMessage" and isinstance(text, str):
            if not text.strip():
                problems.append("sendMessage: text is empty")
            if len(text) > MAX_TEXT:
                problems.append(f"sendMessage: text of {len(text)} characters > {MAX_TEXT}")
        caption = params.get("caption")
        if isinstance(caption, str) and len(caption) > MAX_CAPTION:
            problems.append(f"{method}: caption of {len(caption)} characters > {MAX_CAPTION}")
        if params.get("parse_mode") == "HTML":
            for name in ("text", "caption"):
                if isinstance(params.get(name), str):
                    problems += html_problems(params[name], f"{method}.{name}")
        if method == "answerCallbackQuery" and len(str(params.get("text", ""))) > 200:
            problems.append("answerCallbackQuery: text over 200 characters")
        if method == "setWebhook":
            if not str(params.get("url", "")).startswith("https://"):
                problems.append("setWebhook: url must be https")
            secret = params.get("secret_token")
            if secret is not None and not _SECRET.fullmatch(str(secret)):
                problems.append("setWebhook: secret_token must be 1-256 of A-Z a-z 0-9 _ -")
        return problems


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_PRIMITIVES = {
    "Integer": _is_int,
    "Int": _is_int,
    "Float": lambda v: _is_int(v) or isinstance(v, float),
    "Float number": lambda v: _is_int(v) or isinstance(v, float),
    "Boolean": lambda v: isinstance(v, bool),
    "True": lambda v: v is True,
    "String": lambda v: isinstance(v, str),
    "InputFile": lambda v: isinstance(v, Upload) or (isinstance(v, str)
                                                       and v.startswith("attach://")),
}


def _no_rules(value: dict[str, Any], where: str) -> list[str]:
    return []


def _button_rules(value: dict[str, Any], where: str) -> list[str]:
    data = value.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
        return [f"{where}: callback_data must be 1-{MAX_CALLBACK_DATA} bytes, got {data!r}"]
    return []


def _command_rules(value: dict[str, Any], where: str) -> list[str]:
    problems = []
    if not _COMMAND.fullmatch(str(value.get("command", ""))):
        problems.append(f"{where}: command must be 1-32 of a-z 0-9 _")
    if not 1 <= len(str(value.get("description", ""))) <= 256:
        problems.append(f"{where}: description must be 1-256 characters")
    return problems


_OBJECT_RULES = {"InlineKeyboardButton": _button_rules, "BotCommand": _command_rules}


def html_problems(text: str, where: str) -> list[str]:
    """Telegram's HTML parse mode: only its tags, and every & an entity."""
    problems = []
    for index, char in enumerate(text):
        if char == "<" and not _HTML_TAG.match(text, index):
            problems.append(f"{where}: unescaped '<' at {index}: {text[index:index + 20]!r}")
        elif char == "&" and not _HTML_ENTITY.match(text, index):
            problems.append(f"{where}: unescaped '&' at {index}: {text[index:index + 20]!r}")
    return problems[:3]


def listening_socket() -> socket.socket:
    """A TCP socket on 127.0.0.1, on a port the OS picked, listening: connections wait in
    its backlog until uvicorn accepts them, so nobody waits for the server to be up.

    IPPROTO_TCP must be given: asyncio sets TCP_NODELAY only on sockets that say so, and
    without it every keep-alive answer waits 40 ms for a delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


class FakeTelegram:
    """The fake Bot API server: start(), point gridbot at `base_url`, stop()."""

    def __init__(self, token: str = TOKEN, checker: SpecChecker | None = None) -> None:
        self.token = token
        self.checker = checker or SpecChecker.load()
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.downloads: list[str] = []
        self.files: dict[str, StoredFile] = {}
        self._failures: list[Failure] = []
        self._updates: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._ids = itertools.count(1)
        # Seconds before a sendMessage is answered (recorded as accepted on arrival): a
        # slow network, so that messages are in flight when a test kills the sender.
        self.answer_delay = 0.0
        # While cleared, sendMessage calls are recorded but not answered (a test sets it).
        self.answering = threading.Event()
        self.answering.set()
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=[
            Route("/bot{token}/{method}", self._api, methods=["GET", "POST"]),
            Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
        ])

    @property
    def base_url(self) -> str:
        """What TELEGRAM_API_BASE_URL should be."""
        return f"http://127.0.0.1:{self.port}"

    # --- running ------------------------------------------------------------------------

    def start(self) -> None:
        """Listen on a free port and serve from a background thread."""
        sock = listening_socket()
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, lifespan="off", log_level="warning",
                                access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="fake-telegram", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            with self._changed:
                self._changed.notify_all()
            self._thread.join(timeout=10)

    # --- what tests set up and read -----------------------------------------------------

    def reset(self) -> None:
        """Forget calls, files, failures and queued updates (between tests)."""
        with self._changed:
            self.calls.clear()
            self.violations.clear()
            self.downloads.clear()
            self.files.clear()
            self._failures.clear()
            self._updates.clear()
            self.answer_delay = 0.0
            self.answering.set()

    def add_file(self, data: bytes, suffix: str = ".jpg") -> str:
        """Hold a file as Telegram would; return its file_id."""
        number = next(self._ids)
        file_id = f"AgACAgUAAxkBAAI{number:06d}"
        self.files[file_id] = StoredFile(file_id, f"AQAD{number:06d}", data,
                                         f"photos/file_{number}{suffix}")
        return file_id

    def fail_next(self, status: int, times: int = 1, method: str | None = None,
                  retry_after: int | None = None, description: str | None = None,
                  after: int = 0) -> None:
        """Answer the next `times` calls (of `method`, if given) with an error, once
        `after` of them have succeeded."""
        default = {429: f"Too Many Requests: retry after {retry_after}",
                   403: "Forbidden: bot was blocked by the user",
                   400: "Bad Request: chat not found"}.get(status, "Internal Server Error")
        with self._changed:
            self._failures.append(Failure(status, times, method, description or default,
                                          retry_after, after))

    def push_update(self, update: dict[str, Any]) -> None:
        """Queue an update for getUpdates."""
        with self._changed:
            self._updates.append(update)
            self._changed.notify_all()

    def calls_to(self, method: str) -> list[Call]:
        """The calls of one method, in order."""
        with self._changed:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, wanted: Callable[[Call], bool], timeout: float = 10.0) -> Call:
        """Block until a call that `wanted` accepts has arrived (made by a background
        loop); fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [c for c in self.calls if wanted(c)]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such call within {timeout} s")
                self._changed.wait(left)

    @contextmanager
    def checking(self) -> Iterator[FakeTelegram]:
        """Run for the block; fail if any call broke the spec."""
        self.start()
        try:
            yield self
        finally:
            self.stop()
        assert not self.violations, "calls that break the Bot API spec:\n" + "\n".join(
            self.violations)

    # --- the API --------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.path_params["method"]
        raw = await _parameters(request)
        if method not in self.checker.methods:
            self._record(Call(method, raw, 404), [f"{method}: no such method"])
            return _error(404, "Not Found: method not found")
        params = _decode(self.checker.fields_of(method), raw)
        problems = self.checker.check_call(method, params)
        call = Call(method, params)
        if problems:
            call.status = 400
            self._record(call, problems)
            return _error(400, "Bad Request: " + "; ".join(problems))
        failure = self._take_failure(method)
        if failure is not None:
            call.status = failure.status
            self._record(call, [])
            parameters = ({"retry_after": failure.retry_after}
                          if failure.retry_after is not None else None)
            return _error(failure.status, failure.description, parameters)
        if method == "getUpdates":  # recorded on arrival: the answer may wait for updates
            self._record(call, [])
            return JSONResponse({"ok": True, "result": await asyncio.to_thread(
                self._get_updates, params)})
        result = self._result(method, params)
        if isinstance(result, Response):
            call.status = result.status_code
            self._record(call, [])
            return result
        self._record(call, [])
        if method == "sendMessage" and self.answer_delay:  # accepted, answered late
            await asyncio.sleep(self.answer_delay)
        if method == "sendMessage" and not self.answering.is_set():  # answered when let go
            await asyncio.to_thread(self.answering.wait)
        return JSONResponse({"ok": True, "result": result})

    def _record(self, call: Call, problems: list[str]) -> None:
        with self._changed:
            self.calls.append(call)
            self.violations += problems
            self._changed.notify_all()

    def _take_failure(self, method: str) -> Failure | None:
        with self._changed:
            for failure in self._failures:
                if failure.method in (None, method):
                    if failure.skip > 0:
                        failure.skip -= 1
                        return None
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure
        return None

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT_USER
        if method == "getFile":
            stored = self.files.get(str(params["file_id"]))
            if stored is None:
                return _error(400, "Bad Request: invalid file_id")
            return {"file_id": stored.file_id, "file_unique_id": stored.unique_id,
                    "file_size": len(stored.data), "file_path": stored.path}
        if method in ("sendMessage", "sendPhoto", "sendVenue", "sendLocation"):
            return self._message(params)
        if method in ("setWebhook", "deleteWebhook", "setMyCommands", "answerCallbackQuery"):
            return True
        return True

    def _message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        chat = ({"id": chat_id, "type": "private", "first_name": "Resident"} if chat_id > 0
                else {"id": chat_id, "type": "group", "title": "Group"})
        message: dict[str, Any] = {"message_id": next(self._ids), "date": int(time.time()),
                                   "chat": chat, "from": BOT_USER}
        if "text" in params:
            message["text"] = params["text"]
        if "latitude" in params:
            message["location"] = {"latitude": params["latitude"],
                                   "longitude": params["longitude"]}
            if "title" in params:
                message["venue"] = {"location": message["location"], "title": params["title"],
                                    "address": params["address"]}
        if "photo" in params:
            message["photo"] = [{"file_id": f"sent-{message['message_id']}",
                                 "file_unique_id": f"u{message['message_id']}",
                                 "width": 800, "height": 600}]
        return message

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Long polling: wait (up to the timeout, at most 2 s here) for updates."""
        offset = params.get("offset")
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 2.0)
        with self._changed:
            while True:
                if offset is not None:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                if self._updates or time.monotonic() >= deadline:
                    return list(self._updates[: int(params.get("limit") or 100)])
                if self._server is not None and self._server.should_exit:
                    return []
                self._changed.wait(deadline - time.monotonic())

    async def _download(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return Response(status_code=401)
        path = request.path_params["path"]
        with self._changed:
            self.downloads.append(path)
        for stored in self.files.values():
            if stored.path == path:
                return Response(stored.data, media_type="application/octet-stream")
        return Response(status_code=404)


def _error(status: int, description: str,
           parameters: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return JSONResponse(body, status_code=status)


async def _parameters(request: Request) -> dict[str, Any]:
    """The call's parameters: query string, form (urlencoded or multipart) or JSON body."""
    params: dict[str, Any] = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        params.update(await request.json())
    elif content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        async with request.form() as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    params[name] = Upload(value.filename or name, await value.read())
                else:
                    params[name] = value
    return params


def _decode(declared: dict[str, dict[str, Any]], raw: dict[str, Any]) -> dict[str, Any]:
    """Form values are text; JSON-typed ones (numbers, objects, arrays) are JSON inside."""
    decoded = {}
    for name, value in raw.items():
        types = declared.get(name, {}).get("types", ["String"])
        if isinstance(value, str) and types != ["String"]:
            # A plain string (a file_id, a chat @username) is not JSON: the type check decides.
            with contextlib.suppress(ValueError):
                value = json.loads(value)
            if isinstance(value, int | float) and "String" in types and not (
                    {"Integer", "Float"} & set(types)):
                value = raw[name]
        decoded[name] = value
    return decoded


# --- updates as Telegram sends them ------------------------------------------------------

@dataclass
class Updates:
    """Builds updates as Telegram sends them, each checked against the spec."""

    checker: SpecChecker = field(default_factory=SpecChecker.load)
    next_id: int = 500_000
    _message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def _update(self, **content: Any) -> dict[str, Any]:
        self.next_id += 1
        update = {"update_id": self.next_id, **content}
        problems = self.checker.check_object("Update", update)
        assert not problems, problems
        return update

    @staticmethod
    def user(user_id: int, name: str = "李明") -> dict[str, Any]:
        """A person's User object."""
        return {"id": user_id, "is_bot": False, "first_name": name, "language_code": "zh-hans"}

    @staticmethod
    def chat(chat_id: int) -> dict[str, Any]:
        """A private chat (positive id) or a group (negative id)."""
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": "李明"}
        return {"id": chat_id, "type": "group", "title": "翠苑一区居民群"}

    def _message(self, chat_id: int, user_id: int | None = None,
                 **content: Any) -> dict[str, Any]:
        return {"message_id": next(self._message_ids), "date": 1795000000,
                "chat": self.chat(chat_id), "from": self.user(user_id or abs(chat_id)),
                **content}

    def text(self, chat_id: int, text: str, user_id: int | None = None,
             entities: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """A text message (a command gets its bot_command entity)."""
        if entities is None and text.startswith("/"):
            entities = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        extra = {"entities": entities} if entities else {}
        return self._update(message=self._message(chat_id, user_id, text=text, **extra))

    def mention(self, chat_id: int, text: str, user_id: int) -> dict[str, Any]:
        """A group message mentioning the bot at its start: "@gridbot_test_bot text"."""
        handle = "@" + str(BOT_USER["username"])
        return self.text(chat_id, f"{handle} {text}", user_id,
                         [{"type": "mention", "offset": 0, "length": len(handle)}])

    def callback(self, chat_id: int, data: str, user_id: int | None = None) -> dict[str, Any]:
        """A button press on a message the bot sent to the chat."""
        bot_message = {"message_id": next(self._message_ids), "date": 1795000000,
                       "chat": self.chat(chat_id), "from": BOT_USER, "text": "…"}
        return self._update(callback_query={
            "id": f"cq{self.next_id + 1}", "from": self.user(user_id or abs(chat_id)),
            "chat_instance": f"ci{chat_id}", "message": bot_message, "data": data})

    def location(self, chat_id: int, lat: float, lon: float) -> dict[str, Any]:
        """A shared GPS pin."""
        return self._update(message=self._message(
            chat_id, location={"latitude": lat, "longitude": lon}))

    def venue(self, chat_id: int, lat: float, lon: float, title: str) -> dict[str, Any]:
        """A place picked from the map (a venue carries its location too)."""
        location = {"latitude": lat, "longitude": lon}
        return self._update(message=self._message(
            chat_id, location=location,
            venue={"location": location, "title": title, "address": title}))

    def photo(self, chat_id: int, file_ids: list[str], media_group_id: str | None = None,
              caption: str | None = None) -> dict[str, Any]:
        """A photo in several sizes, smallest first (as Telegram sends them)."""
        sizes = [{"file_id": fid, "file_unique_id": f"u-{fid}", "width": 90 * (i + 1),
                  "height": 60 * (i + 1), "file_size": 1000 * (i + 1)}
                 for i, fid in enumerate(file_ids)]
        extra: dict[str, Any] = {}
        if media_group_id:
            extra["media_group_id"] = media_group_id
        if caption:
            extra["caption"] = caption
        return self._update(message=self._message(chat_id, photo=sizes, **extra))

    def document(self, chat_id: int, file_id: str, mime_type: str,
                 size: int = 2000) -> dict[str, Any]:
        """A file (an image sent "as file", or anything else)."""
        return self._update(message=self._message(chat_id, document={
            "file_id": file_id, "file_unique_id": f"u-{file_id}", "file_name": "IMG_0001",
            "mime_type": mime_type, "file_size": size}))

    def sticker(self, chat_id: int) -> dict[str, Any]:
        """A sticker: a kind of message gridbot does not read."""
        return self._update(message=self._message(chat_id, sticker={
            "file_id": "CAACAgIAAxkBAAEB", "file_unique_id": "AgADsticker", "type": "regular",
            "width": 512, "height": 512, "is_animated": False, "is_video": False}))

    def edited(self, chat_id: int, text: str) -> dict[str, Any]:
        """A text message the person edited afterwards."""
        return self._update(edited_message=self._message(chat_id, text=text,
                                                         edit_date=1795000100))

    def edited_location(self, chat_id: int, lat: float, lon: float) -> dict[str, Any]:
        """A live location moving (Telegram sends it as an edited message)."""
        return self._update(edited_message=self._message(
            chat_id, location={"latitude": lat, "longitude": lon, "live_period": 900},
            edit_date=1795000100))

    def poll_answer(self, user_id: int) -> dict[str, Any]:
        """An update kind gridbot does not handle."""
        return self._update(poll_answer={"poll_id": "1", "user": self.user(user_id),
                                         "option_ids": [0], "option_persistent_ids": ["a"]})
