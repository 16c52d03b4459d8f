"""SMS length: the segment counter, and every SMS template within two segments.

`test_every_sms_template_fits_two_segments` renders each SMS variant in zh_CN and en with
realistic, long-ish values and the menus the flows really attach (the 12 categories, a
grid chief's seven case actions...), prints the table of segment counts (`pytest -s`)
and fails when one needs more than two segments.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.domain.categories import Catalog
from bot.domain.channels import SMS
from bot.domain.departments import load_departments
from bot.domain.messages import Choice, Reply
from bot.domain.sms_segments import count, fold_to_gsm7, is_gsm7, prepare, segments
from bot.services.render import TEMPLATES, Renderer
from bot.settings import PACKAGE_DATA

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
LOCALES = ("zh_CN", "en")
MAX_SEGMENTS = 2
# Templates SMS users never get (Telegram's edited messages and unsupported kinds).
TELEGRAM_ONLY = frozenset({"edited_ignored", "unsupported_message", "phone_linked",
                           "phone_not_linked", "phone_not_own", "photo_refused"})

catalog = Catalog.load(PACKAGE_DATA / "categories.toml")
renderer = Renderer(ZoneInfo("Asia/Shanghai"))


def _category_name(code: str, locale: str) -> str:
    try:
        return catalog.get(code).name(locale)
    except KeyError:
        return code


renderer.globals["category_name"] = _category_name


# --- the counter --------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("", (0, "GSM-7")),
    ("a" * 160, (1, "GSM-7")),
    ("a" * 161, (2, "GSM-7")),
    ("a" * 306, (2, "GSM-7")),
    ("a" * 307, (3, "GSM-7")),
    ("中" * 70, (1, "UCS-2")),
    ("中" * 71, (2, "UCS-2")),
    ("中" * 134, (2, "UCS-2")),
    ("中" * 135, (3, "UCS-2")),
    ("a" * 159 + "中", (3, "UCS-2")),  # one Chinese character makes all of it UCS-2
])
def test_segments_follow_gsm7_and_ucs2_limits(text: str, expected: tuple[int, str]) -> None:
    counted = count(text)
    assert (counted.segments, counted.encoding) == expected


def test_extension_characters_count_twice_and_are_not_split() -> None:
    assert count("€" * 80).units == 160 and count("€" * 80).segments == 1
    assert count("€" * 81).segments == 2
    # 152 septets then an escape pair: the pair moves whole to the second part.
    assert count("a" * 152 + "€" + "a" * 150).segments == 2
    assert count("a" * 152 + "€" + "a" * 152).segments == 3


def test_emoji_take_two_ucs2_units() -> None:
    assert count("🗑" * 35).units == 70 and count("🗑" * 35).segments == 1
    assert count("🗑" * 36).segments == 2


def test_lookalikes_are_folded_only_when_that_makes_the_text_gsm7() -> None:
    assert prepare("Sanitation · Garbage… “ok”") == 'Sanitation - Garbage... "ok"'
    assert prepare("市容环卫 · 垃圾") == "市容环卫 · 垃圾"  # UCS-2 anyway: unchanged
    assert is_gsm7(fold_to_gsm7("Reply 1 — Submit"))
    assert segments("a" * 150 + "…") == 1  # 153 septets after folding, not UCS-2


# --- every SMS template ---------------------------------------------------------------------

def _sample(locale: str) -> dict[str, Any]:
    """Realistic, long-ish values for every key the SMS templates use."""
    zh = locale == "zh_CN"
    return {
        "locale": locale,
        "number": "261123-012",
        "category": catalog.get("sanitation").name(locale) + " · "
        + catalog.get("sanitation").subcategories[0].name(locale),
        "description": ("3号楼东门口的垃圾已经堆了三天没人清运，味道很大，晚上还有老鼠，"
                        "老人孩子出门都要绕着走" if zh else
                        "Garbage has piled up at the east gate of building 3 for three days;"
                        " it smells and there are rats at night"),
        "place": ("翠苑二区3幢 (翠苑二区第4网格)" if zh
                  else "Bldg 3, Cuiyuan Area 2 (Cuiyuan Area 2 Grid 4)"),
        "area": "翠苑二区第4网格" if zh else "Cuiyuan Area 2 Grid 4",
        "grid": "翠苑二区第4网格" if zh else "Cuiyuan Area 2 Grid 4",
        "handler": "王丽华" if zh else "Wang Lihua",
        "chief": {"name": "王丽华" if zh else "Wang Lihua", "phone": "13800001001",
                  "duties": "巡查走访、信息采集、垃圾清运督促"},
        "deadline": NOW + timedelta(days=3), "requested": NOW + timedelta(days=8),
        "followers": 3, "photos": 2, "count": 3, "limit": 5, "got": 1350,
        "street_level": False, "urgency": "U2", "rating": 5, "rework": 2,
        "timeline": [{"at": NOW, "event": "立案" if zh else "registered", "note": ""},
                     {"at": NOW + timedelta(hours=2), "event": "签收" if zh else "signed",
                      "note": ""},
                     {"at": NOW + timedelta(hours=5), "event": "补充说明" if zh else "comment",
                      "note": "已联系物业公司，明天上午前清运完毕并消杀" if zh else
                      "The property company will clear it and disinfect tomorrow morning"}],
        "note": ("已联系物业公司，明天上午前清运完毕并消杀" if zh else
                 "The property company will clear it and disinfect tomorrow morning"),
        "reason": ("不属于本网格管辖范围，请街道重新派遣" if zh else
                   "not in this grid's area; the street should dispatch it again"),
        "merged_into": "261123-009", "department": "sanitation_office",
        # the console's sign-in link, as long as a real one behind a real domain
        "url": "https://gridbot.example.org/console/login?t=" + "x" * 43, "minutes": 10,
        "per_hour": 5, "open": True,
        "action": "退回" if zh else "return",
        "state": "处理中" if zh else "in progress",
        "state_label": "处理中" if zh else "in progress",
        "level_label": "网格" if zh else "grid",
        "reporter": "老李 139****5678" if zh else "Li 139****5678", "overdue": True,
        "actions": True, "role": "网格长" if zh else "grid chief",
        "scope": "翠苑一区第1网格" if zh else "Cuiyuan Area 1 Grid 1",
        "name": "王丽华" if zh else "Wang Lihua", "phone": "13800001001",
        "duties": "巡查走访、信息采集、垃圾清运督促" if zh else
        "patrols, resident records, garbage collection",
        "photo": True, "visible": True, "month": "2026-11", "due": 128, "closed": 117,
        "rates": {"closing_rate": "91.4%", "on_time_closing_rate": "86.7%",
                  "on_time_signing_rate": "97.2%", "rework_rate": "4.3%",
                  "self_handling_rate": "62.5%", "satisfaction": "96.1%",
                  "average_handling_hours": "17.5"},
        "chiefs": [{"name": n, "handled": 23, "target": 20} for n in (
            ("王丽华", "陈建国", "李秀英") if zh
            else ("Wang Lihua", "Chen Jianguo", "Li Xiuying"))],
        "cases": [{"number": f"261123-0{n}", "category": "sanitation",
                   "state": "处理中" if zh else "in progress", "created": NOW,
                   "deadline": NOW, "overdue": n == 12,
                   "description": ("3号楼东门口的垃圾已经堆了三天没人清运，味道很大" if zh else
                                   "Garbage has piled up at the east gate of building 3 for")}
                  for n in (12, 15, 21)],
        "command": "frobnicate", "kinds": "audio/amr", "failed": False, "unreadable": False,
        "suggestion": _suggested(locale)[0],
        # notices, meetings, digests (issue 6)
        "org": "翠苑一区社区" if zh else "Cuiyuan Area 1 Community",
        "text": ("本周六上午8点至12点翠苑一区3至8幢停水检修，请提前储水。"
                 "如有困难请联系网格长王丽华，电话13800001001。" if zh else
                 "Water will be off in buildings 3-8 on"
                 " Saturday from 8:00 to 12:00 for repairs; please store water beforehand."),
        "total": 1280, "text_only": 240, "has_photo": True,
        "send_at": NOW, "audience": "居民" if zh else "Residents", "id": 127,
        "acked": 1034, "more": 0, "status": "已发送" if zh else "sent",
        "channels": [{"channel": "Telegram", "count": 1040},
                     {"channel": "短信" if zh else "SMS", "count": 240}],
        "grids": [{"area": f"翠苑一区第{n}网格" if zh else f"Cuiyuan Area 1 Grid {n}",
                   "total": 320, "acked": 260} for n in (1, 2, 3, 4)],
        "title": "本周网格工作例会" if zh else "This week's grid work meeting",
        "starts_at": NOW, "soon": True, "attend": True, "invited": 12,
        "yes": ["王丽华", "陈建国"], "no": ["李秀英"], "unanswered": ["张伟"],
        "home": "翠苑一区3幢（翠苑一区第1网格）" if zh else "Bldg 3 (Cuiyuan Area 1 Grid 1)",
        "current": "翠苑一区3幢" if zh else "Bldg 3",
        "given": "2611230121",  # /case with something that is no case number
        # the first SMS of a case handed to staff: its place and a map link (place_map)
        "place_short": "翠苑二区3号楼附近" if zh else "near Cuiyuan Area 2 Building 3",
        "address": ("文三路 105 号, 翠苑二区第1网格 33010600100201" if zh else
                    "105 Wensan Rd, Cuiyuan Area 2 Grid 1 33010600100201"),
        "map_url": "https://osm.org/go/5mcpiwJ4P-?m=",
        # a grid chief's help: every command of the Telegram staff menu beyond a resident's
        "commands": [{"name": n, "label": n} for n in ("tasks", "patrol", "visit", "notice",
                                                         "meeting", "stats", "contact")],
        # phone-in and households (issue 17): a relayed closing, a long household
        "sms": True, "inner": "case_closed", "caller": "13900000101",
        "building": "翠苑一区13幢" if zh else "Cuiyuan Area 1 Building 13",
        "door": "2-1301", "head": "欧阳秀英" if zh else "Ouyang Xiuying", "next_due": NOW,
        "follow_up": True, "people": 4,
        "tags": ["独居老人", "低保", "残疾"] if zh else ["Elderly living alone", "Disability"],
        "last_visit": NOW, "next_visit": NOW, "visit_count": 12,
        "case_numbers": ["261123-012", "261123-015"], "contact_channels": ["sms"],
        "reported": ["261123-012", "261123-015"], "followed": 1,
        "household": {"building": "翠苑一区13幢" if zh else "Cuiyuan Area 1 Building 13",
                      "door": "2-1301", "head_name": "欧阳秀英" if zh else "Ouyang Xiuying",
                      "people": 4, "tags": ["独居老人", "低保"] if zh
                      else ["Elderly living alone", "Disability"], "visits": 12, "reads": 30},
        "households": [{"label": ("翠苑一区13幢 2-1301 欧** 独居老人" if zh else
                                  "Cuiyuan Area 1 Building 13 2-1301 Ouyang ** Elderly"),
                        "overdue_days": 3, "due_at": NOW} for _ in range(4)],
    }


def _suggested(locale: str) -> list[str]:
    """The categories suggested for a one-message report, as the flow labels them."""
    text = "3号楼门口垃圾堆了三天" if locale == "zh_CN" else "garbage piled up at building 3"
    return [s.category.name(locale) + (f" · {s.subcategory.name(locale)}" if s.subcategory
                                       else "")
            for s in catalog.suggest(text, limit=3)]


def _staff_overrides(locale: str) -> dict[str, Any]:
    """Notices to staff carry the category code and the place of the case (in SMS texts
    the short one: the building; the full one goes first, with a map link: place_map)."""
    zh = locale == "zh_CN"
    return {"category": "sanitation",
            "place": ("翠苑二区3号楼附近, 文三路 105 号 (翠苑二区第1网格 33010600100201)" if zh
                      else "near Cuiyuan Area 2 Building 3, 105 Wensan Rd"
                      " (Cuiyuan Area 2 Grid 1 33010600100201)"),
            "place_short": "翠苑二区3号楼附近" if zh else "near Cuiyuan Area 2 Building 3"}


STAFF_NOTICES = frozenset({
    "approval_denied", "approval_director_review", "approval_granted", "approval_requested",
    "approval_street_approval", "case_assigned", "case_comment", "case_dispatched",
    "case_escalated", "case_force_closed", "case_new", "case_overdue", "case_rated",
    "case_reopened", "case_resolved", "case_resumed", "case_returned", "case_rework",
    "case_supervision", "case_suspended", "case_urgent", "deadline_warning",
    "extension_approved", "extension_denied", "extension_requested", "staff_case",
})
CHIEF_ACTIONS = ("sign", "report_done", "dispatch", "escalate", "request_approval", "merge",
                 "request_extension")  # a grid chief on a newly registered case


def _choices(name: str, locale: str) -> list[str]:
    """The labels of the menu a template really goes out with."""
    def label(key: str, **values: Any) -> str:
        return renderer.label(locale, key, **values)

    categories = [c.name(locale) for c in catalog.categories]
    suggested = _suggested(locale)
    follow = [label("btn.follow", number=n) for n in ("261123-003", "261122-017")]
    menus: dict[str, list[str]] = {
        "report_category": categories,
        "report_category_unclear": categories,
        "report_suggest": [*suggested, label("btn.other_category")],
        "report_location_unknown": [label("btn.use_as_typed"), label("btn.try_again")],
        "report_photos": [label("btn.no_photos")],
        "report_photo_added": [label("btn.done")],
        "report_summary": [label("btn.confirm"), label("btn.edit"), label("btn.cancel")],
        "report_edit": [label(f"btn.edit_{k}") for k in ("category", "description",
                                                          "location", "photos")],
        "report_duplicates": [*follow, label("btn.file_new")],
        "report_duplicates_again": [*follow, label("btn.file_new")],
        "lang_choose": ["中文", "English"],
        "mycases": ["261123-012", "261123-015", "261123-021"],
        "tasks": ["261123-012", "261123-015", "261123-021"],
        "case_detail": [label("btn.add_to_case")],
        "case_closed": [label("btn.fixed_yes"), label("btn.fixed_no")],
        "feedback_rate": ["★" * n for n in range(1, 6)],
        "rate_reminder": ["★" * n for n in range(1, 6)],
        "notice": [label("bulk.received")],
        "notice_reminder": [label("bulk.received")],
        "weekly_meeting": [label("bulk.received")],
        "meeting_invitation": [label("bulk.attend_yes"), label("bulk.attend_no")],
        "meeting_reminder": [label("bulk.attend_yes"), label("bulk.attend_no")],
        "notice_scope": ["翠苑街道" if locale == "zh_CN" else "Cuiyuan Street",
                         *(f"翠苑{n}区社区" if locale == "zh_CN" else f"Cuiyuan Area {n}"
                           for n in ("一", "二")), label("bulk.notice_sent", id=127)],
        "notice_audience": [label(f"audience.{a}") for a in ("residents", "chiefs", "staff")],
        "meeting_audience": [label(f"audience.{a}") for a in ("residents", "chiefs", "staff")],
        "notice_photo": [label("btn.no_photos")],
        "notice_when": [label("bulk.send_now")],
        "notice_preview": [label("bulk.send"), label("btn.cancel")],
        "meeting_preview": [label("bulk.send"), label("btn.cancel")],
        "notice_queued": [label("bulk.notice_status")],
        "notice_status": [label("bulk.remind")],
        "meeting_queued": [label("bulk.answers")],
        "action_ask_department": ["翠苑一区第1网格" if locale == "zh_CN" else
                                  "Cuiyuan Area 1 Grid 1",
                                  "翠苑一区社区" if locale == "zh_CN" else
                                  "Cuiyuan Area 1 Community",
                                  *(d.name(locale) for d in load_departments())],
    }
    zh = locale == "zh_CN"
    menus.update({  # phone-in and households (issue 17)
        "phonein_sms": [label("btn.sms_yes"), label("btn.sms_no")],
        "phonein_relay": [label("btn.fixed_yes"), label("btn.fixed_no")],
        "phonein_household": ["翠苑一区13幢 2-1301 欧** 独居老人" if zh else
                              "Cuiyuan Area 1 Building 13 2-1301 Ouyang ** Elderly",
                              label("btn.household_none")],
        "visit_building": [f"翠苑一区{n}幢" if zh else f"Cuiyuan Area 1 Building {n}"
                           for n in (11, 12, 13, 14, 15)],
        "visit_household": [*(f"{n}-1301 欧** 独居老人" if zh else f"{n}-1301 Ouyang **"
                              for n in range(1, 4)), label("btn.household_unregistered")],
        "visit_follow": [label("btn.no_follow_up")],
        "household_card": [label("btn.log_visit"), label("btn.delete_household")],
        "household_delete_confirm": [label("btn.delete_household"), label("btn.cancel")],
    })
    if name in STAFF_NOTICES:
        return [label(f"act.{a}") for a in CHIEF_ACTIONS]
    return menus.get(name, [])


def _sms_templates(locale: str) -> list[str]:
    return sorted(p.stem for p in (TEMPLATES / locale / "sms").glob("*.j2"))


def _measure(name: str, locale: str) -> tuple[int, str, int]:
    """(segments, encoding, units) of a template as the SMS sender would send it."""
    context = _sample(locale) | (_staff_overrides(locale) if name in STAFF_NOTICES else {})
    choices = tuple(Choice(f"v{i}", label) for i, label in enumerate(_choices(name, locale)))
    text, _ = renderer.render(Reply(name, context, choices), locale, SMS, 1)
    counted = count(prepare(text))
    return counted.segments, counted.encoding, counted.units


def test_every_template_has_an_sms_variant_in_both_locales() -> None:
    for locale in LOCALES:
        missing = sorted(set(renderer.template_names(locale)) - set(_sms_templates(locale))
                         - TELEGRAM_ONLY)
        assert not missing, (
            f"{locale}: no SMS variant for {missing}: write templates/{locale}/sms/NAME.j2"
            " (at most two segments), or list the template in TELEGRAM_ONLY here if SMS"
            " users never receive it")
    assert _sms_templates("zh_CN") == _sms_templates("en")


def test_every_sms_template_fits_two_segments() -> None:
    rows = []
    too_long = []
    for name in _sms_templates("zh_CN"):
        cells = []
        for locale in LOCALES:
            used, encoding, units = _measure(name, locale)
            cells.append(f"{used} ({encoding}, {units})")
            if used > MAX_SEGMENTS:
                too_long.append(f"{locale}/sms/{name}: {used} segments ({encoding}, {units})")
        rows.append(f"| {name} | {cells[0]} | {cells[1]} |")
    print("\nSMS segments per template (encoding, units), with realistic values and menus:")
    print("| template | zh_CN | en |\n|---|---|---|")
    print("\n".join(rows))
    assert not too_long, "\n".join(too_long)
    documented = (Path(__file__).resolve().parent.parent / "docs" / "sms.md").read_text()
    stale = [row for row in rows if row not in documented.splitlines()]
    assert not stale, "docs/sms.md's table needs these rows:\n" + "\n".join(stale)
