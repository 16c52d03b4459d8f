"""Pure geography: area outlines (GeoJSON), point-in-grid lookup, buildings and addresses.

Nothing here touches the database or the file system: callers hand in decoded JSON or
CSV text and get plain values back. Coordinates are WGS84; GeoJSON orders them
(lon, lat), while every function here takes (lat, lon) as people say them.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import shapely
from osm_shortlink import shortlink_encode
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

LEVELS = ("district", "street", "community", "grid")

# The level an area's parent must have; a district has no parent, a street may lack one.
PARENT_LEVEL = {"street": "district", "community": "street", "grid": "community"}

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius


# --- Areas -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AreaFeature:
    """One area (district, street, community or grid) with its outline."""

    code: str
    name: str
    level: str
    parent: str | None
    geometry: BaseGeometry  # Polygon or MultiPolygon, WGS84 (x = lon, y = lat)
    name_en: str | None = None


class GeoImportError(ValueError):
    """An area file is refused; names the feature, its code and the reason.

    `feature` counts as people do: 1 is the first feature of the file's `features` list.
    """

    def __init__(self, reason: str, feature: int | None = None, code: str | None = None) -> None:
        self.reason = reason
        self.feature = feature
        self.code = code
        where = ""
        if feature is not None:
            where = f"feature {feature}" + (f" (code {code})" if code is not None else "")
        elif code is not None:
            where = f"code {code}"
        super().__init__(f"{where}: {reason}" if where else reason)


def parse_areas_geojson(
    data: object, known_parents: Mapping[str, str] | None = None
) -> list[AreaFeature]:
    """Check a decoded GeoJSON FeatureCollection of areas and return them parents-first.

    `known_parents` maps codes of areas already stored to their level, so a file may add
    grids under an existing community. Everything is checked before anything is returned;
    the first problem raises GeoImportError.
    """
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise GeoImportError("not a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list):
        raise GeoImportError("the FeatureCollection has no list of features")
    if not features:
        raise GeoImportError("the FeatureCollection has no features")

    areas: list[AreaFeature] = []
    seen: set[str] = set()
    for number, feature in enumerate(features, start=1):
        area = _parse_feature(number, feature)
        if area.code in seen:
            raise GeoImportError("duplicate code", number, area.code)
        seen.add(area.code)
        areas.append(area)

    levels = dict(known_parents or {})
    levels.update({a.code: a.level for a in areas})
    for number, area in enumerate(areas, start=1):
        _check_parent(number, area, levels)

    return sorted(areas, key=lambda a: (LEVELS.index(a.level), a.code))


def _parse_feature(number: int, feature: object) -> AreaFeature:
    """Check one feature on its own (everything except its parent's existence)."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise GeoImportError("not a GeoJSON Feature object", number)
    props = feature.get("properties")
    if not isinstance(props, dict):
        raise GeoImportError("missing properties", number)

    code = _code(props.get("code"))
    if code is None:
        raise GeoImportError("missing or empty code", number)
    name = props.get("name")
    if not isinstance(name, str) or not name.strip():
        raise GeoImportError("missing or empty name", number, code)
    name_en = props.get("name_en")
    if name_en is not None and not isinstance(name_en, str):
        raise GeoImportError("name_en must be a string", number, code)
    level = props.get("level")
    if level not in LEVELS:
        raise GeoImportError(
            f"unknown level {level!r} (expected one of {', '.join(LEVELS)})", number, code)
    raw_parent = props.get("parent")
    parent = _code(raw_parent)
    if raw_parent is not None and parent is None:
        raise GeoImportError(f"parent {raw_parent!r} is not a code", number, code)

    geometry = _parse_geometry(number, code, feature.get("geometry"))
    return AreaFeature(code=code, name=name.strip(), level=level, parent=parent,
                       geometry=geometry, name_en=(name_en or "").strip() or None)


def _code(value: object) -> str | None:
    """An area code as a non-empty string (a JSON integer is accepted too), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _parse_geometry(number: int, code: str, raw: object) -> BaseGeometry:
    """A valid Polygon or MultiPolygon within WGS84 bounds, or GeoImportError."""
    if not isinstance(raw, dict):
        raise GeoImportError("missing geometry", number, code)
    if raw.get("type") not in ("Polygon", "MultiPolygon"):
        raise GeoImportError(
            f"geometry type {raw.get('type')!r} is not Polygon or MultiPolygon", number, code)
    try:
        geometry = shape(raw)
    except Exception as exc:  # shapely raises several kinds for malformed coordinates
        raise GeoImportError(f"geometry cannot be read: {exc}", number, code) from exc
    if geometry.is_empty:
        raise GeoImportError("geometry is empty", number, code)
    coords = shapely.get_coordinates(geometry)
    lons, lats = coords[:, 0], coords[:, 1]
    if not (((lons >= -180) & (lons <= 180)).all() and ((lats >= -90) & (lats <= 90)).all()):
        raise GeoImportError(
            "coordinates outside lon -180..180 / lat -90..90 (GeoJSON order is lon, lat)",
            number, code)
    if not geometry.is_valid:
        raise GeoImportError(
            f"geometry is not a valid polygon: {explain_validity(geometry)}", number, code)
    return geometry


def _check_parent(number: int, area: AreaFeature, levels: Mapping[str, str]) -> None:
    """The parent exists (in the file or the database) and sits one level up."""
    wanted = PARENT_LEVEL.get(area.level)
    if area.parent is None:
        if area.level in ("district", "street"):
            return
        raise GeoImportError(f"a {area.level} needs a parent {wanted}", number, area.code)
    if wanted is None:
        raise GeoImportError("a district cannot have a parent", number, area.code)
    parent_level = levels.get(area.parent)
    if parent_level is None:
        raise GeoImportError(
            f"parent {area.parent} is neither in the file nor already known", number, area.code)
    if parent_level != wanted:
        raise GeoImportError(
            f"parent {area.parent} is a {parent_level}, but a {area.level}'s parent must be"
            f" a {wanted}", number, area.code)


# --- Points --------------------------------------------------------------------------------


def validate_point(lat: float, lon: float) -> None:
    """Raise ValueError unless lat is in -90..90 and lon in -180..180 (NaN refused)."""
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise ValueError(f"coordinates must be finite numbers, got lat={lat}, lon={lon}")
    if not -90 <= lat <= 90:
        raise ValueError(f"latitude {lat} is outside -90..90")
    if not -180 <= lon <= 180:
        raise ValueError(f"longitude {lon} is outside -180..180")


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres between two WGS84 points."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


MAP_ZOOM = 17  # streets and building outlines


def map_link(lat: float, lon: float) -> str:
    """A short OpenStreetMap link with a marker on the point (about 30 characters, no
    tracking service): https://osm.org/go/CODE?m="""
    validate_point(lat, lon)
    return f"https://osm.org/go/{shortlink_encode(lon, lat, MAP_ZOOM)}?m="


class GridIndex:
    """Finds the grid a point falls in (only areas of level "grid" are indexed)."""

    def __init__(self, areas: Iterable[AreaFeature]) -> None:
        grids = sorted((a for a in areas if a.level == "grid"), key=lambda a: a.code)
        self._codes = [a.code for a in grids]
        self._tree = shapely.STRtree([a.geometry for a in grids])

    def __len__(self) -> int:
        return len(self._codes)

    def locate(self, lat: float, lon: float) -> str | None:
        """The code of the grid containing the point (smallest code on a shared edge), or None."""
        validate_point(lat, lon)
        hits = self._tree.query(Point(lon, lat), predicate="intersects")
        return min((self._codes[i] for i in hits), default=None)


# --- Buildings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Building:
    """A building in a grid; lat/lon and the English name and address are optional."""

    name: str
    address: str
    grid_code: str
    lat: float | None
    lon: float | None
    name_en: str | None = None
    address_en: str | None = None

    def display(self, locale: str) -> str:
        """The building's name in a locale (English falls back to the Chinese name)."""
        return self.name_en or self.name if locale.startswith("en") else self.name

    def display_address(self, locale: str) -> str:
        """The building's address in a locale (English falls back to the Chinese one)."""
        return self.address_en or self.address if locale.startswith("en") else self.address


BUILDING_COLUMNS = ("name", "address", "grid_code", "lat", "lon", "name_en", "address_en")


def parse_buildings_csv(text: str, known_grids: Container[str] | None = None) -> list[Building]:
    """Parse `name,address,grid_code[,lat,lon][,name_en,address_en]` CSV; ValueError names
    the line and problem.

    lat and lon are optional columns and optional values (both or neither); so are the
    English name and address. When `known_grids` is given, every grid_code must be in it.
    All rows or none. Lines are numbered as an editor shows them: the header is line 1,
    blank lines count, and a row whose quoted field runs over several lines is named by
    the line it starts on.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise ValueError("line 1: the file is empty (expected a header name,address,grid_code)")
    columns = [c.strip().lower() for c in header]
    for column in columns:
        if column not in BUILDING_COLUMNS:
            raise ValueError(f"line 1: unknown column {column!r}"
                             f" (expected {','.join(BUILDING_COLUMNS)})")
    for column in ("name", "address", "grid_code"):
        if column not in columns:
            raise ValueError(f"line 1: missing column {column!r}")
    if ("lat" in columns) != ("lon" in columns):
        raise ValueError("line 1: lat and lon columns go together")
    if len(set(columns)) != len(columns):
        raise ValueError("line 1: a column appears twice")

    buildings: list[Building] = []
    seen: set[tuple[str, str]] = set()
    ended = reader.line_num  # the last line of the header
    for row in reader:
        line, ended = ended + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            raise ValueError(f"line {line}: expected {len(columns)} fields, got {len(row)}")
        values: dict[str, Any] = {c: cell.strip() for c, cell in zip(columns, row, strict=True)}
        for column in ("name", "grid_code"):
            if not values[column]:
                raise ValueError(f"line {line}: {column} is empty")
        if known_grids is not None and values["grid_code"] not in known_grids:
            raise ValueError(f"line {line}: grid {values['grid_code']} is not a known grid"
                             " (import the grids first)")
        key = (values["grid_code"], values["name"])
        if key in seen:
            raise ValueError(f"line {line}: building {key[1]!r} appears twice in grid {key[0]}")
        seen.add(key)
        lat, lon = _parse_lat_lon(line, values.get("lat", ""), values.get("lon", ""))
        buildings.append(Building(values["name"], values["address"], values["grid_code"],
                                  lat, lon, values.get("name_en") or None,
                                  values.get("address_en") or None))
    return buildings


def _parse_lat_lon(line: int, lat_text: str, lon_text: str) -> tuple[float | None, float | None]:
    """Both empty, or two numbers in range; ValueError naming the line otherwise."""
    if not lat_text and not lon_text:
        return None, None
    if not lat_text or not lon_text:
        raise ValueError(f"line {line}: give both lat and lon, or neither")
    try:
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise ValueError(f"line {line}: lat/lon {lat_text!r}, {lon_text!r} are not numbers"
                         ) from None
    try:
        validate_point(lat, lon)
    except ValueError as exc:
        raise ValueError(f"line {line}: {exc}") from None
    return lat, lon


# --- Addresses -----------------------------------------------------------------------------

# "3号楼", "3栋", "3幢", "3号", "3#", "A座" all name building 3 / A: one token "#".
_UNIT = re.compile(r"([0-9a-z])(?:号楼|号|栋|幢|座|#)")
# In English: "building 3", "Bldg. 3", "block 3a", "tower #3" name it too.
_UNIT_EN = re.compile(r"\b(?:building|bldg|block|blk|tower)\b\.?\s*#?\s*([0-9]+[a-z]?)\b")
_STREET_EN = {"road": "rd", "street": "st", "avenue": "ave", "lane": "ln"}
_STREET_EN_WORD = re.compile(r"\b(?:road|street|avenue|lane)\b")


def normalize_address(text: str) -> str:
    """A tolerant matching key: NFKC, lowercase, no punctuation, 号楼/栋/幢/座/# and the
    English "building 3" as "3#", "road" as "rd"; spaces go, except one between two
    ASCII words or numbers ("area 1 3#" is not "area 13#")."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _UNIT_EN.sub(r"\1#", text)
    text = _STREET_EN_WORD.sub(lambda m: _STREET_EN[m.group(0)], text)
    kept = "".join(ch for ch in text
                   if ch == "#" or ch.isspace() or unicodedata.category(ch)[0] not in "PSZC")
    words = kept.split()
    joined = words[0] if words else ""
    for word in words[1:]:
        between = _is_ascii_alnum(joined[-1]) and _is_ascii_alnum(word[0])
        joined += (" " if between else "") + word
    return _UNIT.sub(r"\1#", joined)


def _contains(text: str, key: str) -> bool:
    """Whether key occurs in text without splitting a number ("3#" is not in "13#")."""
    start = text.find(key)
    while start >= 0:
        end = start + len(key)
        before_ok = start == 0 or not (_is_ascii_alnum(text[start - 1])
                                       and _is_ascii_alnum(key[0]))
        after_ok = end == len(text) or not (_is_ascii_alnum(text[end])
                                            and _is_ascii_alnum(key[-1]))
        if before_ok and after_ok:
            return True
        start = text.find(key, start + 1)
    return False


def _number_match(text: str, key: str) -> int:
    """The length of the key's ending building number ("3#", "12a#", "area 1 3#" → "3#")
    when the text names it, else 0."""
    if not key.endswith("#"):
        return 0
    start = len(key) - 1
    while start > 0 and _is_ascii_alnum(key[start - 1]):
        start -= 1
    number = key[start:]
    return len(number) if len(number) > 1 and _contains(text, number) else 0


def _is_ascii_alnum(ch: str) -> bool:
    """0-9 or a-z (after normalisation)."""
    return ch.isascii() and ch.isalnum()


class BuildingMatcher:
    """Recognises a building in free text by its normalised name or address, in Chinese
    or English."""

    MIN_KEY_LENGTH = 2  # a one-character key would match almost anything

    def __init__(self, buildings: Iterable[Building]) -> None:
        self._entries: list[tuple[str, Building]] = []
        for building in buildings:
            names = (building.name, building.address, building.name_en, building.address_en)
            for key in {normalize_address(n) for n in names if n}:
                if len(key) >= self.MIN_KEY_LENGTH:
                    self._entries.append((key, building))

    def candidates(self, text: str) -> list[Building]:
        """The best-matching buildings: those whose key matches the longest part of the text.

        A key found whole in the text counts its length ("翠苑一区3#" in "翠苑一区3幢门口").
        So does its building number alone ("3#" of "翠苑一区3#" in "3号楼门口"): a text
        naming only the number matches every building with that number about equally
        well. Several results mean the text is ambiguous (e.g. "3号楼" in two estates);
        an empty list means no building is named.
        """
        target = normalize_address(text)
        best: dict[Building, int] = {}
        for key, building in self._entries:
            score = len(key) if _contains(target, key) else _number_match(target, key)
            if score >= self.MIN_KEY_LENGTH:
                best[building] = max(best.get(building, 0), score)
        if not best:
            return []
        top = max(best.values())
        return sorted((b for b, n in best.items() if n == top),
                      key=lambda b: (b.grid_code, b.name))

    def match(self, text: str) -> Building | None:
        """The one building the text names, or None when there is none or it is ambiguous."""
        found = self.candidates(text)
        return found[0] if len(found) == 1 else None
