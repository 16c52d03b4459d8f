"""Replies rendered per locale and channel with jinja2 (StrictUndefined).

Templates live in `templates/<locale>/<name>.j2`, with channel variants in
`templates/<locale>/<variant>/<name>.j2` (SMS keeps its own short texts). Short labels
(buttons, state names, category prompts) are in `templates/<locale>/labels.toml`.
What a person typed only ever reaches a template as data in its context.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from bot.domain.channels import ChannelSpec
from bot.domain.geo import map_link
from bot.domain.messages import Localized, Reply

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def mask_phone(phone: str | None) -> str:
    """Hide the middle of a phone number: +8613800001001 → 138****1001."""
    if not phone:
        return ""
    digits = phone[3:] if phone.startswith("+86") else phone
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def _text(value: str | Localized, locale: str) -> str:
    return value.text(locale) if isinstance(value, Localized) else value


class Renderer:
    """Turns replies into message text and buttons for a locale and a channel."""

    def __init__(self, tz: ZoneInfo, root: Path = TEMPLATES) -> None:
        self.tz = tz
        self.root = root
        loader = jinja2.FileSystemLoader(str(root))
        common: dict[str, Any] = {
            "loader": loader, "undefined": jinja2.StrictUndefined,
            "trim_blocks": True, "lstrip_blocks": True, "keep_trailing_newline": False,
            "auto_reload": False,
        }
        self._chosen: dict[tuple[str, str, str | None, bool], jinja2.Template] = {}
        # A media id's signed link, for channels that cannot show photos (set at bootstrap).
        self.media_link: Callable[[int], str] | None = None
        self._plain = jinja2.Environment(autoescape=False, **common)
        self._html = jinja2.Environment(autoescape=True, **common)
        for env in (self._plain, self._html):
            env.filters["localtime"] = self.localtime
            env.filters["mask_phone"] = mask_phone
        self.globals = self._plain.globals  # shared below: both environments see them
        self._html.globals = self.globals
        self._labels = {
            path.parent.name: tomllib.loads(path.read_text(encoding="utf-8"))
            for path in root.glob("*/labels.toml")
        }

    @property
    def locales(self) -> list[str]:
        """The locales that have templates."""
        return sorted(self._labels)

    def localtime(self, moment: datetime | None) -> str:
        """Format a moment in local time, e.g. 11-23 17:30."""
        if moment is None:
            return "-"
        return moment.astimezone(self.tz).strftime("%m-%d %H:%M")

    def label(self, locale: str, key: str, **values: Any) -> str:
        """A short localized text by key ("btn.confirm", "state.closed")."""
        table: Any = self._labels.get(locale) or self._labels["zh_CN"]
        for part in key.split("."):
            table = table[part]
        return str(table).format(**values) if values else str(table)

    def choice_label(self, locale: str, label: str) -> str:
        """A button label: literal text, or "@key" for a label from labels.toml."""
        return self.label(locale, label[1:]) if label.startswith("@") else label

    def template_names(self, locale: str) -> list[str]:
        """Every message template of a locale (plain variant), for tests and checks."""
        return sorted(p.stem for p in (self.root / locale).glob("*.j2"))

    def render_text(
        self, locale: str, name: str, context: Mapping[str, Any], spec: ChannelSpec
    ) -> str:
        """Render one template for a locale and channel, preferring the channel's variant."""
        key = (locale, name, spec.variant, spec.html)
        template = self._chosen.get(key)
        if template is None:
            env = self._html if spec.html else self._plain
            candidates = [f"{locale}/{name}.j2"]
            if spec.variant:
                candidates.insert(0, f"{locale}/{spec.variant}/{name}.j2")
            template = self._chosen[key] = env.select_template(candidates)
        return template.render(**context).strip()

    def render(
        self, reply: Reply, locale: str, spec: ChannelSpec, menu_id: int | None
    ) -> tuple[str, dict[str, Any]]:
        """Render a reply into (text, payload) for a channel; payload holds buttons."""
        context = {key: value.text(locale) if isinstance(value, Localized) else value
                   for key, value in reply.context.items()}
        text = self.render_text(locale, reply.template, {**context, "locale": locale}, spec)
        payload: dict[str, Any] = {}
        if reply.choices:
            labels = [self.choice_label(locale, choice.label) for choice in reply.choices]
            if spec.buttons:
                payload["buttons"] = [[label, f"{menu_id}:{index}"]
                                      for index, label in enumerate(labels)]
            else:
                lines = [self.label(locale, "reply_n", n=index + 1, label=label)
                         for index, label in enumerate(labels)]
                text = text + "\n" + "\n".join(lines)
        if reply.request_location and spec.location_button:
            payload["request_location"] = self.label(locale, "btn.send_location")
        if reply.location is not None and spec.location_out:
            where = reply.location
            payload["location"] = {"lat": where.lat, "lon": where.lon,
                                   "title": _text(where.title, locale),
                                   "address": _text(where.address, locale)}
        if reply.photos and spec.photos_out:
            payload["photos"] = list(reply.photos)
        elif reply.photos and self.media_link is not None:
            text += "\n" + "\n".join(self.label(locale, "photo_link", url=self.media_link(m))
                                      for m in reply.photos)
        return text, payload

    def render_all(
        self, reply: Reply, locale: str, spec: ChannelSpec, menu_id: int | None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Render a reply into the messages that carry it: one, or on a channel without
        maps a first message with the place and a map link (each text keeps its own
        length: an SMS assignment stays within two segments)."""
        main = self.render(reply, locale, spec, menu_id)
        where = reply.location
        if where is None or spec.location_out:
            return [main]
        place = self.render_text(locale, "place_map", {
            "locale": locale, "number": reply.context.get("number", ""),
            "place": _text(where.title, locale), "address": _text(where.address, locale),
            "map_url": map_link(where.lat, where.lon)}, spec)
        return [(place, {}), main]
