"""The held-out evaluation set of our own data (nlu/data/eval/heldout.tsv) and its scores.

Any NluBackend can be scored, so the Rasa comparison uses the same cases and figures:
intent accuracy, category accuracy (on report_issue cases whose intent was right or not:
the category of the result, whatever its intent), emergency recall and false-alarm rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nlu.dataset import split_intent
from nlu.taxonomy import DATA_DIR
from nlu.types import EMERGENCY_KINDS, INTENTS, NluBackend

HELDOUT_FILE = DATA_DIR / "eval" / "heldout.tsv"


@dataclass(frozen=True, slots=True)
class HeldoutCase:
    text: str
    intent: str
    category: str | None
    emergency_kind: str | None
    source: str  # "file:line"


@dataclass(frozen=True, slots=True)
class HeldoutMiss:
    case: HeldoutCase
    intent: str
    category: str | None
    emergency_kind: str | None


@dataclass(frozen=True, slots=True)
class HeldoutScore:
    cases: int
    intent_accuracy: float
    category_accuracy: float  # over report_issue cases
    emergency_recall: float  # emergencies flagged, over real emergencies
    emergency_kind_accuracy: float  # right kind, over real emergencies
    false_alarm_rate: float  # emergencies flagged, over cases that are none
    misses: tuple[HeldoutMiss, ...]


def load_heldout(path: Path = HELDOUT_FILE) -> tuple[HeldoutCase, ...]:
    """Rows ``text<TAB>label<TAB>emergency``: label as in the Rasa data (report_issue+noise, greet),
    emergency an emergency kind or "-"; lines starting with # are comments."""
    cases: list[HeldoutCase] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 3:
            raise ValueError(f"{path}:{n}: expected text<TAB>label<TAB>emergency, got {len(cols)} columns")
        text, label, kind = cols
        intent, category = split_intent(label)
        if intent not in INTENTS or (kind != "-" and kind not in EMERGENCY_KINDS):
            raise ValueError(f"{path}:{n}: unknown label {label!r} or emergency kind {kind!r}")
        cases.append(HeldoutCase(text, intent, category, None if kind == "-" else kind, f"{path}:{n}"))
    return tuple(cases)


async def score_heldout(backend: NluBackend, cases: tuple[HeldoutCase, ...]) -> HeldoutScore:
    intent_ok = category_ok = reports = 0
    emergencies = flagged = kind_ok = calm = false_alarms = 0
    misses: list[HeldoutMiss] = []
    for case in cases:
        r = await backend.parse(case.text)
        good = r.intent == case.intent
        intent_ok += good
        if case.category is not None:
            reports += 1
            category_ok += r.category == case.category
            good = good and r.category == case.category
        if case.emergency_kind is not None:
            emergencies += 1
            flagged += r.emergency
            kind_ok += r.emergency_kind == case.emergency_kind
        else:
            calm += 1
            false_alarms += r.emergency
        good = good and r.emergency == (case.emergency_kind is not None)
        if not good:
            misses.append(HeldoutMiss(case, r.intent, r.category, r.emergency_kind))
    return HeldoutScore(
        cases=len(cases),
        intent_accuracy=intent_ok / max(len(cases), 1),
        category_accuracy=category_ok / max(reports, 1),
        emergency_recall=flagged / max(emergencies, 1),
        emergency_kind_accuracy=kind_ok / max(emergencies, 1),
        false_alarm_rate=false_alarms / max(calm, 1),
        misses=tuple(misses),
    )
