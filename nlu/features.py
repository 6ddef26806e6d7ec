"""Text features shared by training (through scikit-learn) and inference (pure numpy).

The analyzer turns a message into string features: the character n-grams of the
normalised text. Training hands this very function to TfidfVectorizer, so the run-time
scorer in nlu.linear sees exactly the same features without importing scikit-learn
(~90 MB of RSS). Word features (jieba) were measured on the complaints data and did not
beat character n-grams, while costing ~80 MB of RSS for jieba's dictionary, so there are none.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

_DIGIT = re.compile(r"\d")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    char_min: int = 1
    char_max: int = 3
    max_chars: int = 512  # only the first max_chars characters are looked at
    # NFKC (full-width to half-width) and every digit to 0: right for chat messages (ticket and
    # phone numbers typed on a phone keyboard), ~0.5 point of macro-F1 worse on the complaints data
    fold: bool = True

    def to_json(self) -> dict[str, int | bool]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(int(data["char_min"]), int(data["char_max"]), int(data["max_chars"]), bool(data["fold"]))

    def describe(self) -> str:
        return f"char {self.char_min}-{self.char_max}grams of {self.max_chars} chars"


def normalise(text: str, max_chars: int = 512, fold: bool = True) -> str:
    """Lower case, one space; with fold also NFKC (full-width to half-width) and every digit to 0."""
    if fold:
        text = _DIGIT.sub("0", unicodedata.normalize("NFKC", text[: max_chars * 2])[:max_chars])
    return _SPACE.sub(" ", text[:max_chars].lower()).strip()


def analyze(text: str, spec: FeatureSpec) -> list[str]:
    norm = normalise(text, spec.max_chars, spec.fold)
    out: list[str] = []
    length = len(norm)
    for n in range(spec.char_min, spec.char_max + 1):
        if n == 1:
            out += [ch for ch in norm if ch != " "]  # normalise() leaves single spaces only
        else:
            out += [norm[i : i + n] for i in range(length - n + 1)]
    return out
