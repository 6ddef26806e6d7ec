"""Boundary types of the NLU: what every backend returns to the application."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

INTENTS: tuple[str, ...] = (
    "report_issue",
    "query_status",
    "rate",
    "withdraw",
    "consult",
    "greet",
    "thanks",
    "human",
    "affirm",
    "deny",
)

# What the resident must do at once: fire 119, gas the gas company (and leave, no switches),
# electric keep away and call the power company 95598 / 110, rescue 119 (trapped, water,
# collapse), police 110, medical 120.
EMERGENCY_KINDS: tuple[str, ...] = ("fire", "gas", "electric", "rescue", "police", "medical")


@dataclass(frozen=True, slots=True)
class Entity:
    entity: str  # "ticket_number" | "phone" | "address" | "rating" ...
    value: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class NluResult:
    text: str
    intent: str
    confidence: float
    category: str | None  # a category id from nlu/data/categories.yml; None unless report_issue
    entities: tuple[Entity, ...] = ()
    emergency: bool = False
    # one of EMERGENCY_KINDS or None: which number the resident must call
    emergency_kind: str | None = None
    # best categories first, (id, probability); lets the dialogue ask "reply 1, 2 or 3"
    category_ranking: tuple[tuple[str, float], ...] = ()
    category_confidence: float = 0.0
    backend: str = "embedded"

    def entity(self, name: str) -> str | None:
        return next((e.value for e in self.entities if e.entity == name), None)


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    name_zh: str
    description: str = ""
    examples: tuple[str, ...] = field(default_factory=tuple)


class NluBackend(Protocol):
    name: str

    @property
    def ready(self) -> bool: ...

    async def parse(self, text: str) -> NluResult: ...

    def set_places(self, names: Iterable[str]) -> None:
        """Replace the caller's place names (the grid directory's) for the address entity, at once."""
        ...
