"""The category catalog: the shipped taxonomy, suggestions from free text, broken files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain.categories import Catalog, CatalogError, TimeLimit, UnknownCategoryError

CODES = [
    "sanitation", "utilities", "roads", "greenery", "street_order", "construction",
    "pollution", "safety", "housing", "disputes", "emergency", "other",
]

MINIMAL = """\
[urgency.U1]
time_limit = "2h natural"
[urgency.U2]
time_limit = "4h working"
[urgency.U3]
time_limit = "3d working"
[urgency.U4]
time_limit = "15d working"

[[category]]
code = "roads"
name_zh = "道路交通"
name_en = "Roads and traffic"
urgency = "U3"
keywords_zh = ["道路"]

  [[category.subcategory]]
  code = "pothole"
  name_zh = "坑洼"
  name_en = "Pothole"
  keywords_en = ["pothole"]

[[category]]
code = "other"
name_zh = "其他"
name_en = "Other"
urgency = "U4"
"""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.default()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "categories.toml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as info:
        Catalog.load(path)
    message = str(info.value)
    assert str(path) in message
    return message


# --- the shipped catalog -------------------------------------------------------------------


def test_default_catalog_has_the_twelve_categories_in_file_order(catalog: Catalog) -> None:
    assert [category.code for category in catalog.categories] == CODES


def test_every_default_category_has_chinese_and_english_names(catalog: Catalog) -> None:
    for category in catalog.categories:
        assert category.name("zh_CN") == category.name_zh != ""
        assert category.name("en") == category.name_en != ""
        assert category.name("en_GB") == category.name_en
        for sub in category.subcategories:
            assert sub.name("zh_CN") and sub.name("en")


def test_default_urgencies_follow_the_domain_table(catalog: Catalog) -> None:
    assert catalog.urgency_of("sanitation") == "U2"
    assert catalog.urgency_of("utilities") == "U3"
    assert catalog.urgency_of("emergency") == "U1"
    assert catalog.urgency_of("other") == "U4"
    assert catalog.urgency_of("utilities", "manhole") == "U1"
    assert catalog.urgency_of("greenery", "fallen_tree") == "U1"
    assert catalog.urgency_of("safety", "gas_smell") == "U1"
    assert catalog.urgency_of("housing", "lift_trapped") == "U1"
    assert catalog.urgency_of("construction", "illegal_structure") == "U4"
    assert catalog.urgency_of("disputes", "neighbour_dispute") == "U4"


def test_default_urgency_levels_have_their_time_limits(catalog: Catalog) -> None:
    assert str(catalog.urgencies["U1"].time_limit) == "2h natural"
    assert str(catalog.urgencies["U1"].acknowledge) == "15m natural"
    assert str(catalog.urgencies["U2"].time_limit) == "4h working"
    assert str(catalog.urgencies["U3"].time_limit) == "3d working"
    assert str(catalog.urgencies["U4"].time_limit) == "15d working"


def test_subcategory_without_own_time_limit_inherits_the_category_one(catalog: Catalog) -> None:
    assert catalog.time_limit_of("utilities", "street_lamp") == TimeLimit(3, "days", True)
    assert catalog.time_limit_of("construction", "illegal_structure") == TimeLimit(15, "days", True)
    assert catalog.time_limit_of("sanitation") == TimeLimit(4, "hours", True)


def test_unknown_code_raises_a_key_error_naming_it(catalog: Catalog) -> None:
    with pytest.raises(KeyError) as info:
        catalog.get("parking_lots")
    assert isinstance(info.value, UnknownCategoryError)
    assert "parking_lots" in str(info.value) and "sanitation" in str(info.value)
    with pytest.raises(UnknownCategoryError, match="street_lamp"):
        catalog.urgency_of("roads", "street_lamp")


def test_fallback_is_the_other_category(catalog: Catalog) -> None:
    assert catalog.fallback.code == "other"


# --- suggestions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "category", "subcategory"),
    [
        ("3号楼门口垃圾堆了三天", "sanitation", "garbage"),
        ("路灯不亮了", "utilities", "street_lamp"),
        ("井盖丢了", "utilities", "manhole"),
        ("楼道里有人给电瓶车充电", "safety", "wires_ebike"),
        ("electric bike charging in the corridor", "safety", "wires_ebike"),
        ("the street lamp is broken", "utilities", "street_lamp"),
        ("有人被困电梯了", "housing", "lift_trapped"),
        ("I smell gas in the kitchen", "safety", "gas_smell"),
    ],
)
def test_suggest_puts_the_expected_category_first(
    catalog: Catalog, text: str, category: str, subcategory: str
) -> None:
    best = catalog.suggest(text)[0]
    assert best.category.code == category
    assert best.subcategory is not None and best.subcategory.code == subcategory


def test_suggested_missing_manhole_cover_is_urgent(catalog: Catalog) -> None:
    assert catalog.suggest("井盖丢了")[0].urgency == "U1"


def test_upstairs_renovation_noise_suggests_pollution_or_construction(catalog: Catalog) -> None:
    codes = [suggestion.category.code for suggestion in catalog.suggest("楼上装修噪音太大")]
    assert codes[0] in ("pollution", "construction")
    assert {"pollution", "construction"} <= set(codes)


def test_suggest_folds_full_width_and_upper_case(catalog: Catalog) -> None:
    assert catalog.suggest("ＳＴＲＥＥＴ ＬＡＭＰ is out")[0].category.code == "utilities"


def test_suggest_matches_english_plurals_but_not_parts_of_words(catalog: Catalog) -> None:
    assert catalog.suggest("potholes everywhere")[0].category.code == "roads"
    assert catalog.suggest("the cabinet is nice") == []


def test_suggest_returns_nothing_when_no_keyword_matches(catalog: Catalog) -> None:
    assert catalog.suggest("今天天气不错") == []
    assert catalog.suggest("") == []


def test_suggest_never_offers_other(catalog: Catalog) -> None:
    for text in ["建议增加健身器材", "表扬网格员", "thanks, a suggestion", "垃圾"]:
        assert all(s.category.code != "other" for s in catalog.suggest(text, limit=20))


def test_suggest_respects_the_limit_and_orders_by_score(catalog: Catalog) -> None:
    suggestions = catalog.suggest("垃圾 噪音 路灯 井盖 电瓶车", limit=2)
    assert len(suggestions) == 2
    assert suggestions[0].score >= suggestions[1].score


def test_subcategory_keywords_weigh_more_than_category_keywords(tmp_path: Path) -> None:
    catalog = Catalog.load(write(tmp_path, MINIMAL))
    on_category = catalog.suggest("道路")[0]
    on_subcategory = catalog.suggest("pothole")[0]
    assert on_category.subcategory is None
    assert on_subcategory.subcategory is not None
    assert on_subcategory.score > on_category.score


# --- time limits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4h working", TimeLimit(4, "hours", True)),
        ("2h natural", TimeLimit(2, "hours", False)),
        ("30m natural", TimeLimit(30, "minutes", False)),
        ("15d working", TimeLimit(15, "days", True)),
        (" 3 days  Working ", TimeLimit(3, "days", True)),
        ("４ｈ ｗｏｒｋｉｎｇ", TimeLimit(4, "hours", True)),
    ],
)
def test_time_limit_parses_the_written_forms(text: str, expected: TimeLimit) -> None:
    assert TimeLimit.parse(text) == expected


@pytest.mark.parametrize("text", ["4h working", "2h natural", "30m natural", "15d working"])
def test_time_limit_str_round_trips(text: str) -> None:
    assert str(TimeLimit.parse(text)) == text


@pytest.mark.parametrize("text", ["4h", "working", "0h working", "4 weeks working", "-1d natural",
                                  "4.5h working", ""])
def test_time_limit_refuses_malformed_text(text: str) -> None:
    with pytest.raises(ValueError, match="4h working"):
        TimeLimit.parse(text)


@pytest.mark.parametrize(
    ("text", "zh", "en"),
    [
        ("4h working", "4个工作小时", "4 working hours"),
        ("2h natural", "2小时", "2 hours"),
        ("15d working", "15个工作日", "15 working days"),
        ("1d working", "1个工作日", "1 working day"),
        ("3d natural", "3天", "3 days"),
        ("30m natural", "30分钟", "30 minutes"),
        ("1h natural", "1小时", "1 hour"),
    ],
)
def test_time_limit_label_in_both_locales(text: str, zh: str, en: str) -> None:
    limit = TimeLimit.parse(text)
    assert limit.label("zh_CN") == zh
    assert limit.label("en") == en


# --- broken files --------------------------------------------------------------------------


def test_minimal_file_loads(tmp_path: Path) -> None:
    catalog = Catalog.load(write(tmp_path, MINIMAL))
    assert [category.code for category in catalog.categories] == ["roads", "other"]
    assert catalog.time_limit_of("roads", "pothole") == TimeLimit(3, "days", True)


def test_missing_field_is_refused_naming_entry_and_field(tmp_path: Path) -> None:
    message = refused(tmp_path, MINIMAL.replace('name_en = "Roads and traffic"\n', ""))
    assert "category 'roads'" in message and "name_en" in message


def test_missing_subcategory_code_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, MINIMAL.replace('  code = "pothole"\n', ""))
    assert "subcategory #1" in message and "'code'" in message


def test_unknown_urgency_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, MINIMAL.replace('urgency = "U3"', 'urgency = "U5"'))
    assert "category 'roads'" in message and "U5" in message and "U1" in message


def test_bad_time_limit_is_refused(tmp_path: Path) -> None:
    text = MINIMAL.replace('  name_en = "Pothole"\n', '  name_en = "Pothole"\n'
                                                      '  time_limit = "4 hrs"\n')
    message = refused(tmp_path, text)
    assert "subcategory 'pothole'" in message and "'4 hrs'" in message
    assert "time_limit" in message


def test_duplicate_category_code_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, MINIMAL.replace('code = "other"', 'code = "roads"'))
    assert "duplicate" in message and "'roads'" in message


def test_duplicate_subcategory_code_is_refused(tmp_path: Path) -> None:
    sub = '\n  [[category.subcategory]]\n  code = "pothole"\n  name_zh = "坑"\n  name_en = "Hole"\n'
    text = MINIMAL.replace('keywords_en = ["pothole"]\n', f'keywords_en = ["pothole"]\n{sub}')
    message = refused(tmp_path, text)
    assert "category 'roads'" in message and "duplicate" in message and "'pothole'" in message


def test_toml_syntax_error_is_refused_with_its_line(tmp_path: Path) -> None:
    message = refused(tmp_path, MINIMAL.replace('name_zh = "道路交通"', 'name_zh = "道路交通'))
    assert "not valid TOML" in message and "line 12" in message


def test_misspelt_field_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, MINIMAL.replace("keywords_zh", "keyword_zh"))
    assert "unknown field 'keyword_zh'" in message


def test_missing_urgency_level_is_refused(tmp_path: Path) -> None:
    text = MINIMAL.replace('[urgency.U4]\ntime_limit = "15d working"\n', "")
    assert "[urgency.U4]" in refused(tmp_path, text)


def test_file_without_other_is_refused(tmp_path: Path) -> None:
    text = MINIMAL[:MINIMAL.index('[[category]]\ncode = "other"')]
    assert "'other'" in refused(tmp_path, text)


def test_bad_code_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, MINIMAL.replace('code = "roads"', 'code = "Roads Traffic"'))
    assert "category #1" in message and "lower-case" in message


def test_keywords_that_are_not_a_list_are_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, MINIMAL.replace('keywords_zh = ["道路"]', 'keywords_zh = "道路"'))
    assert "keywords_zh must be a list" in message


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        Catalog.load(tmp_path / "nope.toml")
