"""Tests for bot.geo: area import, grid lookup, buildings, address matching, distances."""

from __future__ import annotations

import copy
import csv
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
from shapely.ops import unary_union

import bot
from bot.domain.geo import (
    AreaFeature,
    Building,
    BuildingMatcher,
    GeoImportError,
    GridIndex,
    distance_m,
    normalize_address,
    parse_areas_geojson,
    parse_buildings_csv,
    validate_point,
)

DEMO = Path(bot.__file__).parent / "data" / "demo"


@pytest.fixture(scope="module")
def demo_areas() -> list[AreaFeature]:
    return parse_areas_geojson(json.loads((DEMO / "district.geojson").read_text("utf-8")))


@pytest.fixture(scope="module")
def demo_buildings() -> list[Building]:
    return parse_buildings_csv((DEMO / "buildings.csv").read_text("utf-8"))


def by_level(areas: list[AreaFeature], level: str) -> list[AreaFeature]:
    return [a for a in areas if a.level == level]


# --- the demo district -----------------------------------------------------------------------


def test_demo_district_has_one_street_two_communities_eight_grids(
    demo_areas: list[AreaFeature],
) -> None:
    assert [a.code for a in by_level(demo_areas, "street")] == ["33010600100000"]
    assert [a.code for a in by_level(demo_areas, "community")] == [
        "33010600100100", "33010600100200"]
    assert [a.code for a in by_level(demo_areas, "grid")] == [
        f"330106001001{n:02d}" for n in range(1, 5)] + [
        f"330106001002{n:02d}" for n in range(1, 5)]
    assert all(a.name_en for a in demo_areas)
    grid = next(a for a in demo_areas if a.code == "33010600100101")
    assert (grid.name, grid.parent) == ("翠苑一区第1网格", "33010600100100")


def test_demo_grids_tile_the_street_without_gaps(demo_areas: list[AreaFeature]) -> None:
    street = by_level(demo_areas, "street")[0].geometry
    grids = unary_union([a.geometry for a in by_level(demo_areas, "grid")])
    assert grids.area == pytest.approx(street.area, rel=1e-9)
    assert grids.symmetric_difference(street).area == pytest.approx(0, abs=1e-15)


def test_demo_grids_do_not_overlap(demo_areas: list[AreaFeature]) -> None:
    for a, b in itertools.combinations(by_level(demo_areas, "grid"), 2):
        assert a.geometry.intersection(b.geometry).area == pytest.approx(0, abs=1e-15), (
            a.code, b.code)


def test_demo_communities_are_the_union_of_their_grids(demo_areas: list[AreaFeature]) -> None:
    for community in by_level(demo_areas, "community"):
        grids = [a.geometry for a in by_level(demo_areas, "grid") if a.parent == community.code]
        assert len(grids) == 4
        union = unary_union(grids)
        assert union.symmetric_difference(community.geometry).area == pytest.approx(
            0, abs=1e-15)


def test_demo_grids_are_about_300_metres_across(demo_areas: list[AreaFeature]) -> None:
    for grid in by_level(demo_areas, "grid"):
        minx, miny, maxx, maxy = grid.geometry.bounds
        assert 250 < distance_m(miny, minx, maxy, minx) < 400
        assert 250 < distance_m(miny, minx, miny, maxx) < 400


def test_every_demo_building_locates_to_its_own_grid(
    demo_areas: list[AreaFeature], demo_buildings: list[Building]
) -> None:
    index = GridIndex(demo_areas)
    assert len(demo_buildings) >= 40
    for building in demo_buildings:
        assert building.lat is not None and building.lon is not None
        assert index.locate(building.lat, building.lon) == building.grid_code, building.name


def test_demo_buildings_cover_every_grid_and_include_a_short_name(
    demo_areas: list[AreaFeature], demo_buildings: list[Building]
) -> None:
    grids = {a.code for a in by_level(demo_areas, "grid")}
    assert {b.grid_code for b in demo_buildings} == grids
    assert any(b.name == "3号楼" for b in demo_buildings)


def test_demo_staff_has_one_chief_per_grid(demo_areas: list[AreaFeature]) -> None:
    rows = list(csv.DictReader((DEMO / "staff.csv").read_text("utf-8").splitlines()))
    assert sorted(r["grid_code"] for r in rows) == sorted(
        a.code for a in by_level(demo_areas, "grid"))
    for row in rows:
        assert row["name"] and row["duties"]
        assert len(row["phone"]) == 11 and row["phone"].startswith("1")


def test_demo_matcher_asks_which_building_3_and_finds_a_full_name(
        demo_buildings: list[Building]) -> None:
    matcher = BuildingMatcher(demo_buildings)
    # 3号楼 (古翠路 88 号), 翠苑一区3幢 and 翠苑二区3号楼 all match about equally well.
    assert matcher.match("3号楼门口垃圾堆了三天") is None
    assert sorted(b.name for b in matcher.candidates("3号楼门口垃圾堆了三天")) == [
        "3号楼", "翠苑一区3幢", "翠苑二区3号楼"]
    found = matcher.match("翠苑一区3号楼门口垃圾堆了三天")
    assert found is not None and found.name == "翠苑一区3幢"
    found = matcher.match("古翠路88号3号楼")
    assert found is not None and found.grid_code == "33010600100204"


def test_demo_buildings_are_found_by_their_english_names(
        demo_buildings: list[Building]) -> None:
    matcher = BuildingMatcher(demo_buildings)
    assert sorted(b.name for b in matcher.candidates("the lamp at building 7 is out")) == [
        "翠苑一区7幢", "翠苑二区7号楼"]
    found = matcher.match("Cuiyuan Area 2, Bldg. 7")
    assert found is not None and found.name == "翠苑二区7号楼"
    found = matcher.match("rubbish at 105 Gucui Road")
    assert found is not None and found.name == "翠苑二区8号楼"
    assert all(b.name_en and b.address_en for b in demo_buildings)


def test_english_building_words_normalize_like_chinese_ones() -> None:
    assert normalize_address("Building 3") == normalize_address("3号楼") == "3#"
    assert normalize_address("bldg. 12A") == "12a#"
    assert normalize_address("Area 1 Building 3") == "area 1 3#"  # not building 13
    assert normalize_address("103 Xueyuan Road") == normalize_address("103 xueyuan rd.")


def test_buildings_csv_takes_optional_english_name_and_address() -> None:
    [one, two] = parse_buildings_csv(
        "name,address,grid_code,name_en,address_en\n"
        "3号楼,文三路 123 号,G1,Building 3,123 Wensan Rd\n"
        "综合楼,文三路 125 号,G1,,\n")
    assert (one.name_en, one.address_en) == ("Building 3", "123 Wensan Rd")
    assert (two.name_en, two.address_en) == (None, None)
    assert one.display("en") == "Building 3" and two.display("en") == "综合楼"


# --- locating points ---------------------------------------------------------------------------


def square(x0: float, y0: float, size: float = 0.003) -> list[list[list[float]]]:
    """A GeoJSON polygon ring (lon, lat) with its south-west corner at (x0, y0)."""
    return [[[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]]


def feature(code: str, level: str, parent: str | None, coords: Any,
            gtype: str = "Polygon") -> dict[str, Any]:
    return {"type": "Feature",
            "properties": {"code": code, "name": f"area {code}", "level": level, "parent": parent},
            "geometry": {"type": gtype, "coordinates": coords}}


def small_district() -> dict[str, Any]:
    """A street, a community and two side-by-side grids."""
    return {"type": "FeatureCollection", "features": [
        feature("S", "street", None, [[[120.0, 30.0], [120.006, 30.0], [120.006, 30.003],
                                       [120.0, 30.003], [120.0, 30.0]]]),
        feature("C", "community", "S", [[[120.0, 30.0], [120.006, 30.0], [120.006, 30.003],
                                         [120.0, 30.003], [120.0, 30.0]]]),
        feature("G2", "grid", "C", square(120.003, 30.0)),
        feature("G1", "grid", "C", square(120.0, 30.0)),
    ]}


def test_point_outside_every_grid_is_not_located(demo_areas: list[AreaFeature]) -> None:
    index = GridIndex(demo_areas)
    assert index.locate(30.30, 120.12) is None
    assert index.locate(-30.28, -120.12) is None
    assert len(index) == 8


def test_point_on_a_shared_edge_goes_to_the_smallest_code() -> None:
    index = GridIndex(parse_areas_geojson(small_district()))
    assert index.locate(30.0015, 120.001) == "G1"
    assert index.locate(30.0015, 120.005) == "G2"
    assert index.locate(30.0015, 120.003) == "G1"


def test_empty_index_locates_nothing() -> None:
    assert GridIndex([]).locate(30.0, 120.0) is None


@pytest.mark.parametrize("lat, lon", [(91.0, 120.0), (-90.5, 0.0), (30.0, 180.5),
                                      (math.nan, 120.0), (30.0, math.inf)])
def test_locate_refuses_impossible_coordinates(lat: float, lon: float) -> None:
    with pytest.raises(ValueError):
        GridIndex([]).locate(lat, lon)
    with pytest.raises(ValueError):
        validate_point(lat, lon)


def test_validate_point_accepts_the_extremes() -> None:
    validate_point(90.0, 180.0)
    validate_point(-90.0, -180.0)


# --- refusing broken area files -------------------------------------------------------------


def broken(change: Any) -> dict[str, Any]:
    data = small_district()
    change(data["features"])
    return data


def set_prop(i: int, key: str, value: Any) -> Any:
    return lambda fs: fs[i]["properties"].__setitem__(key, value)


def set_geom(i: int, value: Any) -> Any:
    return lambda fs: fs[i].__setitem__("geometry", value)


BOWTIE = {"type": "Polygon", "coordinates": [[[120.0, 30.0], [120.003, 30.003], [120.003, 30.0],
                                              [120.0, 30.003], [120.0, 30.0]]]}


@pytest.mark.parametrize("change, index, code, reason", [
    (lambda fs: fs.__setitem__(2, "not a feature"), 2, None, "not a GeoJSON Feature"),
    (lambda fs: fs[1].__delitem__("properties"), 1, None, "missing properties"),
    (set_prop(3, "code", ""), 3, None, "missing or empty code"),
    (lambda fs: fs[3]["properties"].__delitem__("code"), 3, None, "missing or empty code"),
    (set_prop(2, "name", " "), 2, "G2", "missing or empty name"),
    (set_prop(2, "level", "village"), 2, "G2", "unknown level 'village'"),
    (set_prop(3, "code", "G2"), 3, "G2", "duplicate code"),
    (set_geom(2, None), 2, "G2", "missing geometry"),
    (set_geom(2, {"type": "Point", "coordinates": [120.0, 30.0]}), 2, "G2",
     "geometry type 'Point' is not Polygon or MultiPolygon"),
    (set_geom(2, {"type": "Polygon", "coordinates": [[[120.0, 30.0], [120.1]]]}), 2, "G2",
     "geometry cannot be read"),
    (set_geom(3, BOWTIE), 3, "G1", "geometry is not a valid polygon: Self-intersection"),
    (set_geom(2, {"type": "Polygon", "coordinates": [[[30.0, 120.0], [30.003, 120.0],
                                                      [30.003, 120.003], [30.0, 120.0]]]}),
     2, "G2", "coordinates outside lon -180..180 / lat -90..90"),
    (set_prop(2, "parent", "NOPE"), 2, "G2", "parent NOPE is neither in the file nor"),
    (set_prop(2, "parent", "S"), 2, "G2",
     "parent S is a street, but a grid's parent must be a community"),
    (set_prop(1, "parent", None), 1, "C", "a community needs a parent street"),
    (set_prop(0, "level", "district"), 1, "C",
     "parent S is a district, but a community's parent must be a street"),
])
def test_broken_area_file_is_refused_naming_feature_and_reason(
    change: Any, index: int, code: str | None, reason: str
) -> None:
    with pytest.raises(GeoImportError) as caught:
        parse_areas_geojson(broken(change))
    assert caught.value.feature == index + 1  # counted from 1, as people count
    assert caught.value.code == code
    assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize("data", [
    None, [], "FeatureCollection", {"type": "Feature"}, {"type": "FeatureCollection"},
    {"type": "FeatureCollection", "features": {}}, {"type": "FeatureCollection", "features": []},
])
def test_something_other_than_a_feature_collection_is_refused(data: object) -> None:
    with pytest.raises(GeoImportError) as caught:
        parse_areas_geojson(data)
    assert caught.value.feature is None


def test_import_error_message_names_feature_code_and_reason() -> None:
    # set_geom(3, ...) spoils the fourth feature of the list: "feature 4" to a person.
    with pytest.raises(GeoImportError) as caught:
        parse_areas_geojson(broken(set_geom(3, BOWTIE)))
    assert str(caught.value).startswith(
        "feature 4 (code G1): geometry is not a valid polygon: Self-intersection[")
    assert isinstance(caught.value, ValueError)


def test_import_is_all_or_nothing_even_when_only_the_last_feature_is_bad() -> None:
    data = small_district()
    data["features"].append(feature("G3", "grid", "C", square(120.0, 31.0)))
    data["features"][-1]["properties"]["level"] = "gird"
    with pytest.raises(GeoImportError) as caught:
        parse_areas_geojson(data)
    assert caught.value.feature == 5 == len(data["features"])  # the last one


def test_areas_come_back_parents_first_whatever_the_file_order() -> None:
    data = small_district()
    data["features"].reverse()
    assert [a.code for a in parse_areas_geojson(data)] == ["S", "C", "G1", "G2"]


def test_known_parents_let_a_file_add_grids_to_a_stored_community() -> None:
    data = {"type": "FeatureCollection",
            "features": [feature("G9", "grid", "C", square(120.0, 30.0))]}
    with pytest.raises(GeoImportError):
        parse_areas_geojson(data)
    assert [a.code for a in parse_areas_geojson(data, known_parents={"C": "community"})] == [
        "G9"]
    with pytest.raises(GeoImportError, match="parent C is a street"):
        parse_areas_geojson(data, known_parents={"C": "street"})


def test_a_district_above_the_street_and_multipolygons_are_accepted() -> None:
    data = small_district()
    data["features"][0]["properties"]["parent"] = "D"
    data["features"].append(feature(
        "D", "district", None, [square(120.0, 30.0, 0.006), square(121.0, 31.0)], "MultiPolygon"))
    areas = parse_areas_geojson(data)
    assert [a.level for a in areas] == ["district", "street", "community", "grid", "grid"]
    assert areas[0].geometry.geom_type == "MultiPolygon"
    assert areas[0].name_en is None


def test_a_district_with_a_parent_is_refused() -> None:
    data = small_district()
    data["features"][0]["properties"]["level"] = "district"
    data["features"][0]["properties"]["parent"] = "C"
    with pytest.raises(GeoImportError, match="a district cannot have a parent"):
        parse_areas_geojson(data)


# --- buildings CSV ----------------------------------------------------------------------------


def test_buildings_csv_is_parsed_with_optional_coordinates() -> None:
    text = ("\ufeffname,address,grid_code,lat,lon\n"
            "3号楼,文三路 123 号,G1,30.28,120.12\n"
            "\n"
            "\"综合楼, 东\",文三路 125 号,G1,,\n")
    assert parse_buildings_csv(text) == [
        Building("3号楼", "文三路 123 号", "G1", 30.28, 120.12),
        Building("综合楼, 东", "文三路 125 号", "G1", None, None),
    ]


def test_buildings_csv_without_coordinate_columns_is_accepted() -> None:
    assert parse_buildings_csv("name,address,grid_code\n1幢,,G1\n") == [
        Building("1幢", "", "G1", None, None)]


HEADER = "name,address,grid_code,lat,lon\n"


@pytest.mark.parametrize("text, message", [
    ("", "line 1: the file is empty"),
    ("name,address\n", "line 1: missing column 'grid_code'"),
    ("name,address,grid_code,latitude,longitude\n", "line 1: unknown column 'latitude'"),
    ("name,address,grid_code,lat\n", "line 1: lat and lon columns go together"),
    (HEADER + "1幢,a,G1,30,120\n2幢,b,G1,30\n", "line 3: expected 5 fields, got 4"),
    (HEADER + "1幢,a,G1,30,120\n,b,G1,30,120\n", "line 3: name is empty"),
    (HEADER + "1幢,a,,30,120\n", "line 2: grid_code is empty"),
    (HEADER + "1幢,a,G1,30,\n", "line 2: give both lat and lon, or neither"),
    (HEADER + "1幢,a,G1,北纬30,120\n", "line 2: lat/lon '北纬30', '120' are not numbers"),
    (HEADER + "1幢,a,G1,120.12,30.28\n", "line 2: latitude 120.12 is outside -90..90"),
    (HEADER + "1幢,a,G1,nan,120\n", "line 2: coordinates must be finite"),
    (HEADER + "1幢,a,G1,30,120\n\n1幢,b,G1,30,120\n", "line 4: building '1幢' appears twice"),
])
def test_broken_buildings_csv_is_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_buildings_csv(text)
    assert str(caught.value).startswith(message)


def test_buildings_csv_lines_are_numbered_as_an_editor_shows_them() -> None:
    # Line 1 is the header; line 3 is blank; line 4's quoted address runs onto line 5;
    # the broken row starts on line 6.
    text = (HEADER + '1幢,a,G1,30,120\n\n2幢,"古翠路\n88号",G1,30,120\n'
            '3幢,c,G1,北纬30,120\n')
    with pytest.raises(ValueError, match="^line 6: lat/lon"):
        parse_buildings_csv(text)
    with pytest.raises(ValueError, match="^line 4: grid G7 is not a known grid"):
        parse_buildings_csv(text.replace(",G1,30,120\n3幢", ",G7,30,120\n3幢"),
                            known_grids={"G1"})


def test_buildings_csv_checks_grid_codes_when_told_the_known_grids() -> None:
    text = HEADER + "1幢,a,G1,30,120\n2幢,b,G7,30,120\n"
    with pytest.raises(ValueError, match="line 3: grid G7 is not a known grid"):
        parse_buildings_csv(text, known_grids={"G1"})
    assert len(parse_buildings_csv(text, known_grids={"G1", "G7"})) == 2


# --- addresses and the building matcher ------------------------------------------------------


@pytest.mark.parametrize("variant", [
    "3号楼", "3栋", "3幢", "3 幢", "３号楼", "3#", "3号", "３＃", " 3 号 楼 "])
def test_building_number_spellings_normalize_alike(variant: str) -> None:
    assert normalize_address(variant) == normalize_address("3号楼")


@pytest.mark.parametrize("variant", [
    "文三路123号", "文三路 123 号", "文三路１２３号", "文三路，123号。", "文三路123#"])
def test_address_spellings_normalize_alike(variant: str) -> None:
    assert normalize_address(variant) == normalize_address("文三路 123 号")


def test_normalize_lowercases_and_keeps_floors_apart_from_buildings() -> None:
    assert normalize_address("Ａ座") == normalize_address("a栋")
    assert normalize_address("3楼") != normalize_address("3号楼")  # 3楼 is the third floor
    assert normalize_address("3号楼") != normalize_address("13号楼")


def b(name: str, address: str = "", grid: str = "G1") -> Building:
    return Building(name, address, grid, None, None)


def test_matcher_finds_a_short_building_name_inside_a_complaint() -> None:
    three = b("3号楼", "文三路 123 号")
    matcher = BuildingMatcher([three, b("5幢", "文三路 127 号"), b("13号楼", "文三路 130 号")])
    assert matcher.match("3号楼门口垃圾堆了三天") == three
    assert matcher.match("３栋门口垃圾堆了三天") == three


def test_matcher_does_not_split_numbers() -> None:
    thirteen = b("13号楼")
    matcher = BuildingMatcher([b("3号楼"), thirteen])
    assert matcher.match("13号楼门口垃圾堆了三天") == thirteen
    assert matcher.match("113号楼") is None


def test_matcher_prefers_exact_and_longest_names() -> None:
    long_name = b("翠苑一区3号楼", grid="G1")
    short_name = b("3号楼", grid="G2")
    matcher = BuildingMatcher([long_name, short_name])
    assert matcher.match("翠苑一区3幢") == long_name
    assert matcher.match("翠苑一区 3 栋门口垃圾堆了三天") == long_name
    # "3号楼" is the short name exactly, and the long name's number: ask which.
    assert matcher.candidates("3号楼") == [long_name, short_name]


def test_matcher_matches_addresses_despite_a_district_and_street_prefix() -> None:
    building = b("综合楼", "文三路 123 号")
    matcher = BuildingMatcher([building, b("5幢", "文三路 12 号")])
    assert matcher.match("文三路123号") == building
    assert matcher.match("杭州市西湖区翠苑街道文三路１２３号旁边路灯不亮") == building


def test_same_short_name_in_two_grids_is_ambiguous_unless_the_address_decides() -> None:
    east = b("3号楼", "古翠路 88 号", grid="G1")
    west = b("3号楼", "学院路 20 号", grid="G2")
    matcher = BuildingMatcher([east, west])
    assert matcher.match("3号楼门口垃圾堆了三天") is None
    assert matcher.candidates("3号楼门口垃圾堆了三天") == [east, west]
    assert matcher.match("学院路20号3号楼门口垃圾堆了三天") == west


def test_matcher_without_a_building_in_the_text_finds_nothing() -> None:
    matcher = BuildingMatcher([b("3号楼", "文三路 123 号")])
    assert matcher.match("路灯不亮了") is None
    assert matcher.candidates("路灯不亮了") == []
    assert matcher.match("") is None


# --- distances --------------------------------------------------------------------------------


def test_haversine_sanity() -> None:
    assert distance_m(30.28, 120.12, 30.28, 120.12) == 0
    assert distance_m(30.280, 120.12, 30.281, 120.12) == pytest.approx(111.2, abs=0.5)
    east = distance_m(30.28, 120.120, 30.28, 120.121)
    assert east == pytest.approx(111.2 * math.cos(math.radians(30.28)), abs=0.5)
    assert distance_m(30.28, 120.12, 30.281, 120.121) == pytest.approx(
        distance_m(30.281, 120.121, 30.28, 120.12))
    assert distance_m(0, 0, 0, 180) == pytest.approx(math.pi * 6_371_008.8)


def test_parsed_geometry_is_independent_of_the_input_dict() -> None:
    data = small_district()
    original = copy.deepcopy(data)
    parse_areas_geojson(data)
    assert data == original


def test_a_map_link_is_a_short_openstreetmap_link_with_a_marker_on_the_point() -> None:
    from osm_shortlink import shortlink_decode

    from bot.domain.geo import map_link

    link = map_link(30.27812, 120.1264)
    assert link.startswith("https://osm.org/go/") and link.endswith("?m=")
    assert len(link) <= 32  # an SMS carries it with the place within two segments
    lon, lat, zoom = shortlink_decode(link.removeprefix("https://osm.org/go/")[:-3])
    assert distance_m(lat, lon, 30.27812, 120.1264) < 2 and zoom == 17
