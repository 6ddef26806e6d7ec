"""Entity extraction: ticket number, phone, address (place) and rating.

The ticket_number, phone and address patterns are the ``regex:`` entries of the training
data (nlu/data/nlu.yml), shared with Rasa's RegexEntityExtractor; place names are the
``lookup: address`` entries plus the names the application passes in (the grid
directory). Values are normalised:

- ticket_number: upper case, no spaces ("wg 2026 1122 0001" -> "WG202611220001");
- phone: digits only, without the +86 prefix ("138-1234-5678" -> "13812345678");
- address: the span as written, e.g. "锦绣家园3栋", "建设路88号";
- rating (only asked for when the intent is rate): "1".."5". Words map to
  非常满意/五星/满分 5, 满意/好评 4, 一般/还行/基本满意 3, 不满意 2, 非常不满意/差评 1.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from nlu.types import Entity

# Characters that never start a place name: an address match is cut after the last one.
_STOP = set("的在住到是了我你他她们这那个从往给向对说去有就都也还把被离旁边附近条事咱俺啥咋嘞呢吗啊呀吧嘛")
# Joining words: cut only when at least two characters of name remain.
_WEAK_STOP = set("和与及跟")
_GENERIC = set(
    [
        "小区",
        "社区",
        "楼道",
        "家里",
        "村里",
        "这里",
        "那里",
        "哪里",
        "街道",
        "楼下",
        "楼上",
        "门口",
        "马路",
        "路边",
        "公园",
        "学校",
        "医院",
        "道路",
        "一条",
        "这条",
        "那条",
        "城市",
        "农村",
        "乡村",
        "大街",
        "小巷",
        "公路",
    ]
)
_NUMBER_PART = re.compile(r"(?:\s*[\dA-Za-z一二三四五六七八九十百零〇]+\s*(?:号楼|号院|号|栋|幢|单元|楼|层|室|期|组))+")
_SUFFIX = re.compile(r"(?:小区|花园|家园|新村|公寓|大厦|广场|社区|街道|大道|胡同|苑|村|路|街|巷|弄|里)")

_RATING_DIGITS = {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_RATING_NUMBER = re.compile(
    r"(?:(?:评分|打|给|评)\s*([1-5一二两三四五])(?![\d十])|([1-5一二两三四五])\s*(?:分|星|颗星))"
)
_RATING_WORDS: tuple[tuple[str, int], ...] = (
    ("非常不满意", 1),
    ("很不满意", 1),
    ("十分不满意", 1),
    ("差评", 1),
    ("太差", 1),
    ("不太满意", 2),
    ("不满意", 2),
    ("非常满意", 5),
    ("很满意", 5),
    ("十分满意", 5),
    ("满分", 5),
    ("基本满意", 3),
    ("一般", 3),
    ("还行", 3),
    ("满意", 4),
    ("好评", 4),
)
_PRIORITY = {"ticket_number": 0, "phone": 1, "address": 2, "rating": 3}


class EntityExtractor:
    def __init__(self, patterns: Sequence[tuple[str, Sequence[str]]], places: Iterable[str] = ()) -> None:
        self._patterns = [(name, re.compile(p)) for name, ps in patterns for p in ps]
        names = {unicodedata.normalize("NFKC", p).strip() for p in places}
        ordered = sorted((n for n in names if len(n) >= 2), key=len, reverse=True)
        self._places = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def extract(self, text: str, *, rating: bool = False) -> tuple[Entity, ...]:
        found: list[Entity] = []
        for name, regex in self._patterns:
            pos = 0
            while (m := regex.search(text, pos)) is not None:
                entity = self._normalise(name, text, m.start(), m.end())
                if entity is not None:
                    found.append(entity)
                # an address match may swallow a second place ("东风路和建设路"): resume after the first
                pos = entity.end if entity is not None and entity.end > m.start() else m.end()
                pos = max(pos, m.start() + 1)
        if self._places is not None:
            for m in self._places.finditer(text):
                end = m.end()
                if tail := _NUMBER_PART.match(text, end):
                    end = tail.end()
                found.append(Entity("address", text[m.start() : end], m.start(), end))
        if rating:
            found.extend(_ratings(text))
        return _resolve_overlaps(found)

    @staticmethod
    def _normalise(name: str, text: str, start: int, end: int) -> Entity | None:
        span = text[start:end]
        if name == "ticket_number":
            return Entity(name, re.sub(r"\s+", "", span).upper(), start, end)
        if name == "phone":
            digits = re.sub(r"\D", "", span)
            if len(digits) == 13 and digits.startswith("86"):
                digits = digits[2:]
            return Entity(name, digits, start, end)
        if name == "address":
            return _trim_address(text, start, end)
        return Entity(name, span, start, end)


def _trim_address(text: str, start: int, end: int) -> Entity | None:
    span = text[start:end]
    suffix = _SUFFIX.search(span, 1)
    if suffix is None:
        return None
    name = span[: suffix.start()]
    stop = suffix.end()
    while (more := _SUFFIX.match(span, stop)) is not None and len(more.group()) > 1:  # 幸福里 + 小区
        stop = more.end()
    if tail := _NUMBER_PART.match(span, stop):
        stop = tail.end()
    end = start + stop
    cut = max((i + 1 for i, ch in enumerate(name) if ch in _STOP), default=0)
    if len(name) - cut < 2:
        return None
    weak = max((i + 1 for i, ch in enumerate(name) if ch in _WEAK_STOP and i >= cut), default=cut)
    if len(name) - weak >= 2:
        cut = weak
    name = name[cut:]
    if name in _GENERIC or _SUFFIX.fullmatch(name):
        return None
    return Entity("address", text[start + cut : end], start + cut, end)


def _ratings(text: str) -> list[Entity]:
    found = rating(text)
    return [found] if found else []


def rating(text: str) -> Entity | None:
    """The rating `text` gives: the first number ("打3分"), else the strongest phrase; a text that
    is nothing but a digit 1–5 (the answer to "回复 1–5 分") counts too."""
    if m := _RATING_NUMBER.search(text):
        digit = m.group(1) or m.group(2)
        return Entity("rating", str(_RATING_DIGITS[digit]), m.start(), m.end())
    if m := re.fullmatch(r"\s*([1-5])\s*", text):
        return Entity("rating", m.group(1), m.start(1), m.end(1))
    for word, value in _RATING_WORDS:
        if (at := text.find(word)) >= 0:
            return Entity("rating", str(value), at, at + len(word))
    return None


def _resolve_overlaps(found: list[Entity]) -> tuple[Entity, ...]:
    """Keep non-overlapping entities: higher priority first, then longer spans."""
    chosen: list[Entity] = []
    for e in sorted(found, key=lambda e: (_PRIORITY.get(e.entity, 9), -(e.end - e.start), e.start)):
        if all(e.end <= c.start or e.start >= c.end for c in chosen):
            chosen.append(e)
    return tuple(sorted(chosen, key=lambda e: e.start))
