"""The grid directory: which grid a report belongs to, and who works there.

One YAML file per district: streets → communities → grids; each grid has its workers
(WeCom user id, name, phone), its compound and building names (aliases), an optional
group-robot key and its polygon as [lon, lat] points. The district, each street and each
community may list its staff, people of the same shape as workers: they take the tickets
above the grid (`staff`) and work them as workers do theirs (`post`). Coordinates must be in
the system the locations arrive in — WeChat in mainland China reports GCJ-02.

Routing: a point → the grid whose polygon covers it (an STRtree finds candidates); an
address in text → the grid whose alias (or name) it mentions, the longest match winning; a
community name alone is enough when the community has one grid. Nothing certain → None, and
the report goes to the dispatcher's queue.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import cast

import jsonschema
import shapely
from shapely.geometry import Point, Polygon
from shapely.strtree import STRtree
from shapely.validation import explain_validity

from flows.source import Data, Document, PathItem, Problem, YamlSyntaxError, parse_yaml

SCHEMA_FILE = Path(__file__).parent / "schema" / "directory.schema.json"
LEVELS = ("grid", "community", "street", "district")
# Mainland China, roughly: a point outside is a typo or swapped [lat, lon].
_LON = (73.0, 136.0)
_LAT = (3.0, 54.0)
# Grids may touch; overlapping by more than this share of the smaller one is an error.
_OVERLAP = 0.01


class DirectoryError(ValueError):
    """The directory file was refused; `problems` say where (file:line:column) and which grid."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class Worker:
    wecom_user_id: str
    name: str
    phone: str
    role: str = ""


@dataclass(frozen=True, slots=True)
class Area:
    """A unit above the grid: the district, a street or a community, and its staff."""

    level: str  # community | street | district
    code: str
    name: str
    staff: tuple[Worker, ...] = ()


@dataclass(frozen=True, slots=True)
class Post:
    """Where someone in the directory works tickets: a grid's worker, the grid's at grid level;
    an area's staff member, those of the area's grids at the area's level (the district's staff
    also those without a grid, which `GridDirectory.staff` gives them too)."""

    person: Worker
    level: str  # grid | community | street | district
    code: str  # the grid's or the area's
    name: str
    grids: frozenset[str]

    def covers(self, grid_code: str | None) -> bool:
        """A ticket of this grid (None: without one) is in the post's area."""
        return grid_code in self.grids if grid_code else self.level == "district"

    def holds(self, level: str, grid_code: str | None) -> bool:
        """The post works a ticket that is at `level` now, of this grid."""
        return level == self.level and self.covers(grid_code)


@dataclass(frozen=True, slots=True)
class Grid:
    code: str
    name: str
    community: str
    community_code: str
    street: str
    street_code: str
    district: str
    district_code: str
    workers: tuple[Worker, ...]
    aliases: tuple[str, ...] = ()
    robot_key: str | None = None
    polygon: tuple[tuple[float, float], ...] = ()  # (lon, lat)

    def area_code(self, level: str) -> str:
        """The code of this grid's unit at a level: grid, community, street or district."""
        return {
            "grid": self.code,
            "community": self.community_code,
            "street": self.street_code,
            "district": self.district_code,
        }[level]


def _normal(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


class GridDirectory:
    def __init__(
        self,
        grids: Iterable[Grid],
        names: dict[str, str],
        community_aliases: dict[str, tuple[str, ...]],
        areas: Iterable[Area],
    ):
        """Use `load` / `from_text`; this trusts its input (`areas`: the district first)."""
        self.grids = tuple(grids)
        self._by_code = {g.code: g for g in self.grids}
        self._areas = tuple(areas)
        self._area_by_code = {a.code: a for a in self._areas}
        self._names = names  # every code (grid, community, street, district) -> name
        self._shapes = [Polygon(g.polygon) for g in self.grids]
        for shape in self._shapes:
            shapely.prepare(shape)
        self._tree = STRtree(self._shapes)
        self._posts = {w.wecom_user_id: Post(w, "grid", g.code, g.name, frozenset({g.code}))
                       for g in self.grids for w in g.workers}
        for area in self._areas:
            covered = frozenset(g.code for g in self.grids if g.area_code(area.level) == area.code)
            self._posts.update((w.wecom_user_id, Post(w, area.level, area.code, area.name, covered))
                               for w in area.staff)
        grid_names: dict[str, set[str]] = {}
        for g in self.grids:
            for alias in (g.name, *g.aliases):
                grid_names.setdefault(_normal(alias), set()).add(g.code)
        community_names: dict[str, set[str]] = {}
        for g in self.grids:
            for alias in (g.community, *community_aliases.get(g.community_code, ())):
                community_names.setdefault(_normal(alias), set()).add(g.code)
        # longest first: "龙湖花园二期" beats "龙湖花园"
        self._grid_names = sorted(grid_names.items(), key=lambda item: -len(item[0]))
        self._community_names = sorted(community_names.items(), key=lambda item: -len(item[0]))
        self._places = tuple(sorted({*names.values(), *(a for g in self.grids for a in g.aliases),
                                     *(a for aliases in community_aliases.values() for a in aliases)}))

    # -- loading ----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> GridDirectory:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DirectoryError([Problem(str(path), 1, 1, f"cannot read the grid directory: {exc}")]) from exc
        return cls.from_text(text, str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "<text>") -> GridDirectory:
        """Parse and check; raises DirectoryError listing every problem."""
        try:
            doc = parse_yaml(text, source)
        except YamlSyntaxError as exc:
            raise DirectoryError(exc.problems) from exc
        errors = sorted(_validator().iter_errors(doc.data), key=lambda e: tuple(map(str, e.absolute_path)))
        if errors:
            raise DirectoryError(
                doc.problem(tuple(e.absolute_path), f"{_dotted(e.absolute_path)}: {e.message}") for e in errors
            )
        return _Reader(doc).read()

    # -- lookups ----------------------------------------------------------------------------

    def grid(self, code: str) -> Grid | None:
        return self._by_code.get(code)

    def route_point(self, lat: float, lon: float) -> Grid | None:
        """The grid whose polygon covers the point (on a shared border: the lower code)."""
        point = Point(lon, lat)
        hits = [self.grids[i] for i in self._tree.query(point) if self._shapes[i].covers(point)]
        return min(hits, key=lambda g: g.code) if hits else None

    def route_address(self, text: str) -> Grid | None:
        """The grid an address names: a compound, building or grid name; a one-grid community."""
        normal = _normal(text)
        for names in (self._grid_names, self._community_names):
            found = [(alias, codes) for alias, codes in names if alias in normal]
            if not found:
                continue
            longest = len(found[0][0])
            codes = set().union(*(c for alias, c in found if len(alias) == longest))
            return self._by_code[next(iter(codes))] if len(codes) == 1 else None
        return None

    def place_names(self) -> tuple[str, ...]:
        """Every district, street, community, grid and alias name: the NLU's lookup table."""
        return self._places

    def post(self, wecom_user_id: str) -> Post | None:
        """Where a grid worker or an area's staff member works tickets (a WeCom id is listed once)."""
        return self._posts.get(wecom_user_id)

    def areas(self) -> tuple[Area, ...]:
        """The district, then each street followed by its communities, as in the file."""
        return self._areas

    def staff(self, level: str, grid_code: str | None) -> tuple[Worker, ...]:
        """Who takes a ticket of this grid at a level above it: its community's or its street's
        staff, or the district's (known without a grid too: a directory is one district)."""
        if level == "district":
            return self._areas[0].staff
        grid = self._by_code.get(grid_code) if grid_code else None
        if grid is None or level not in ("community", "street"):
            return ()
        return self._area_by_code[grid.area_code(level)].staff

    def unit_name(self, unit_id: str) -> str | None:
        """The name of a grid, community, street or district, by its code."""
        return self._names.get(unit_id)

    def area_name(self, grid_code: str, level: str) -> str | None:
        """The name of a grid's unit at a level (grid, community, street, district)."""
        grid = self._by_code.get(grid_code)
        return self._names.get(grid.area_code(level)) if grid is not None and level in LEVELS else None


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def _dotted(path: Iterable[PathItem]) -> str:
    out = ""
    for item in path:
        out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else str(item))
    return out or "(top level)"


def _m(value: Data) -> dict[str, Data]:
    return cast(dict[str, Data], value)


def _ls(value: Data) -> list[Data]:
    return cast(list[Data], value)


class _Reader:
    """Builds the directory from a schema-valid document, collecting every problem."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Problem] = []
        self.names: dict[str, str] = {}
        self.code_paths: dict[str, tuple[PathItem, ...]] = {}
        # every grid worker and area staff member: (its path, level, code of its grid or area, it)
        self.people: list[tuple[tuple[PathItem, ...], str, str, Worker]] = []

    def error(self, path: tuple[PathItem, ...], message: str) -> None:
        self.problems.append(self.doc.problem(path, message))

    def code(self, path: tuple[PathItem, ...], raw: dict[str, Data]) -> str:
        code, name = cast(str, raw["code"]), cast(str, raw["name"])
        if code in self.code_paths:
            line = self.doc.where((*self.code_paths[code], "code"))[0]
            self.error((*path, "code"), f"duplicate code {code!r} (first on line {line})")
        self.code_paths.setdefault(code, path)
        self.names.setdefault(code, name)
        return code

    def read(self) -> GridDirectory:
        data = _m(self.doc.data)
        district = _m(data["district"])
        district_code = self.code(("district",), district)
        areas = [self.area("district", ("district",), district)]
        grids: list[Grid] = []
        community_aliases: dict[str, tuple[str, ...]] = {}
        for s, street_raw in enumerate(_ls(data["streets"])):
            street = _m(street_raw)
            street_path: tuple[PathItem, ...] = ("streets", s)
            street_code = self.code(street_path, street)
            areas.append(self.area("street", street_path, street))
            for c, community_raw in enumerate(_ls(street["communities"])):
                community = _m(community_raw)
                community_path = (*street_path, "communities", c)
                community_code = self.code(community_path, community)
                areas.append(self.area("community", community_path, community))
                community_aliases[community_code] = tuple(cast(list[str], community.get("aliases", [])))
                for g, grid_raw in enumerate(_ls(community["grids"])):
                    raw = _m(grid_raw)
                    path = (*community_path, "grids", g)
                    polygon = self.polygon(path, raw)
                    grids.append(
                        Grid(
                            code=self.code(path, raw),
                            name=cast(str, raw["name"]),
                            community=cast(str, community["name"]),
                            community_code=community_code,
                            street=cast(str, street["name"]),
                            street_code=street_code,
                            district=cast(str, district["name"]),
                            district_code=district_code,
                            workers=self.listed(path, "grid", "workers", raw),
                            aliases=tuple(cast(list[str], raw.get("aliases", []))),
                            robot_key=cast(str | None, raw.get("robot_key")),
                            polygon=polygon,
                        )
                    )
        self.across(grids)
        if self.problems:
            raise DirectoryError(sorted(self.problems, key=lambda p: (p.line, p.column)))
        return GridDirectory(grids, self.names, community_aliases, areas)

    def area(self, level: str, path: tuple[PathItem, ...], raw: dict[str, Data]) -> Area:
        """The district, a street or a community, with its staff."""
        return Area(level, cast(str, raw["code"]), cast(str, raw["name"]), self.listed(path, level, "staff", raw))

    def listed(self, path: tuple[PathItem, ...], level: str, field: str, raw: dict[str, Data]) -> tuple[Worker, ...]:
        """A grid's workers or an area's staff, remembered for the checks across the file."""
        people = tuple(
            Worker(cast(str, p["wecom_user_id"]), cast(str, p["name"]), cast(str, p["phone"]),
                   cast(str, p.get("role", "")))
            for p in map(_m, _ls(raw.get(field, [])))
        )
        code = cast(str, raw["code"])
        self.people.extend(((*path, field, i), level, code, person) for i, person in enumerate(people))
        return people

    def polygon(self, path: tuple[PathItem, ...], raw: dict[str, Data]) -> tuple[tuple[float, float], ...]:
        label = f"grid {raw['code']} ({raw['name']})"
        points = [(float(cast(float, p[0])), float(cast(float, p[1]))) for p in map(_ls, _ls(raw["polygon"]))]
        for i, (lon, lat) in enumerate(points):
            if not (_LON[0] <= lon <= _LON[1] and _LAT[0] <= lat <= _LAT[1]):
                hint = " — it looks like [lat, lon]; write [lon, lat]" if _LON[0] <= lat <= _LON[1] else ""
                self.error((*path, "polygon", i), f"{label}: point [{lon}, {lat}] is outside China{hint}")
                return ()
        if points[0] == points[-1]:
            points = points[:-1]
        if len(set(points)) < 3:
            self.error((*path, "polygon"), f"{label}: a polygon needs at least 3 distinct points")
            return ()
        shape = Polygon(points)
        if not shape.is_valid:
            self.error((*path, "polygon"), f"{label}: invalid polygon: {explain_validity(shape)}")
            return ()
        if shape.area == 0:
            self.error((*path, "polygon"), f"{label}: the polygon has no area")
            return ()
        return tuple(points)

    def across(self, grids: list[Grid]) -> None:
        """Checks between grids and areas: one place per WeCom id (a grid's worker or an area's
        staff: the service must know whose ticket a message is about), one grid per alias, and
        no overlapping polygons."""
        seen_people: dict[str, tuple[str, str]] = {}  # WeCom id -> (level, code) where first listed
        for path, level, code, person in sorted(self.people, key=lambda p: self.doc.where(p[0])):
            first = seen_people.setdefault(person.wecom_user_id, (level, code))
            if first == (level, code):
                continue
            where = (f"grids {first[1]} and {code}" if first[0] == level == "grid"
                     else f"{first[0]} {first[1]} and {level} {code}")
            who = "worker" if level == "grid" else "staff member"
            self.error((*path, "wecom_user_id"), f"{who} {person.wecom_user_id} is listed in {where}; keep one")
        seen_aliases: dict[str, str] = {}
        for grid in grids:
            path = self.code_paths[grid.code]
            for i, alias in enumerate(grid.aliases):
                other = seen_aliases.setdefault(_normal(alias), grid.code)
                if other != grid.code:
                    self.error((*path, "aliases", i),
                               f"alias {alias!r} names grids {other} and {grid.code}: an address could not be routed")
        shaped = [g for g in grids if g.polygon]
        if len(shaped) < 2:
            return
        shapes = [Polygon(g.polygon) for g in shaped]
        tree = STRtree(shapes)
        for i, j in zip(*tree.query(shapes, predicate="intersects"), strict=True):
            if i >= j:
                continue
            shared = shapes[i].intersection(shapes[j]).area
            if shared > _OVERLAP * min(shapes[i].area, shapes[j].area):
                a, b = shaped[i], shaped[j]
                self.error((*self.code_paths[b.code], "polygon"),
                           f"grid {b.code} ({b.name}) overlaps grid {a.code} ({a.name}): a point there has two grids")
