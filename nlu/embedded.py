"""The embedded NLU backend: two linear models trained in seconds from nlu/data.

- intent model: every example, labels = intents (report_issue+<id> counted as report_issue);
- category model: the report_issue examples, labels = category ids (or a bring-your-own
  category model from ``gridbot nlu train``, see nlu.byo);
- entities: nlu.entities (the data's regexes and lookups plus the caller's place names, which
  ``set_places`` replaces while running: the app calls it when a new grid directory is imported);
- emergencies: nlu.emergency (rules, recall first).

Cache: with a cache_dir the trained arrays are stored in ``<cache_dir>/<key>/`` where key =
sha256(training files + CODE_VERSION + feature spec). The files are numpy .npz (loaded with
allow_pickle=False) and JSON written by us; nothing is pickled. A changed data file or
code version gives a new key, so a stale cache is never used.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from pathlib import Path

from nlu.dataset import NluData, load_nlu_data
from nlu.emergency import detect_emergency
from nlu.entities import EntityExtractor
from nlu.features import FeatureSpec
from nlu.linear import LinearTextModel, ModelFileError, train_logreg
from nlu.taxonomy import CATEGORIES_FILE, DATA_DIR
from nlu.types import NluResult

log = logging.getLogger(__name__)

CODE_VERSION = "2"  # bump when featurisation or training changes the models
INTENT_SPECS = (FeatureSpec(char_min=1, char_max=2, max_chars=200),)
CATEGORY_SPECS = (FeatureSpec(char_min=1, char_max=2, max_chars=300),)
RANKING_SIZE = 5
FAMILIAR = 0.2  # below this familiarity (nlu.linear) the intent confidence is scaled down
MAX_ENTITY_CHARS = 1000  # entities and emergencies are looked for in the first 1,000 chars


class EmbeddedNlu:
    """NluBackend without a server. Construction trains or loads the models (1-3 s)."""

    name = "embedded"

    def __init__(
        self,
        *,
        data_dir: Path = DATA_DIR,
        categories_file: Path = CATEGORIES_FILE,
        cache_dir: Path | None = None,
        places: Iterable[str] = (),
        category_model: Path | None = None,
    ) -> None:
        """
        data_dir: Rasa NLU YAML files (default nlu/data); raises dataset.TrainingDataError.
        cache_dir: where trained models are kept between runs (e.g. var/nlu-cache); None = memory only.
        places: extra place names for the address entity (e.g. the grid directory's names).
        category_model: a directory written by ``gridbot nlu train`` to classify reports with.
        """
        data = load_nlu_data(data_dir, categories_file)
        self.data: NluData = data
        self.intent_model, self.category_model = self._models(data, cache_dir)
        if category_model is not None:
            self.category_model = LinearTextModel.load(category_model, "category")
        self.set_places(places)

    @property
    def ready(self) -> bool:
        return True

    def set_places(self, names: Iterable[str]) -> None:
        """Replace the caller's place names (the grid directory's); the data's own lookup stays.

        The new extractor is built first and swapped in with one assignment, so a parse running
        meanwhile (in this or another thread) uses the old names or the new, never a mixture.
        """
        self._entities = EntityExtractor(self.data.regexes, (*self.data.lookup("address"), *names))

    async def parse(self, text: str) -> NluResult:
        return self.parse_sync(text)  # ~0.3 ms of CPU: cheaper inline than in a thread

    def parse_sync(self, text: str) -> NluResult:
        head = text[:MAX_ENTITY_CHARS]
        if not any(ch.isalnum() for ch in head):
            # empty, emoji or punctuation only: nothing to classify; a greeting is the safe reading
            return NluResult(text=text, intent="greet", confidence=0.0, category=None, backend=self.name)
        intent, confidence = self.intent_model.ranking(head)[0]
        # unfamiliar text (gibberish, another language) gets a low confidence: "not understood"
        confidence *= min(1.0, self.intent_model.familiarity(head) / FAMILIAR)
        emergency = detect_emergency(head)
        if emergency is not None and intent != "report_issue":
            intent = "report_issue"  # an emergency is always reported, whatever else it says
        category: str | None = None
        ranking: tuple[tuple[str, float], ...] = ()
        if intent == "report_issue":
            ranking = tuple((c, round(p, 4)) for c, p in self.category_model.ranking(head)[:RANKING_SIZE])
            category = ranking[0][0]
        return NluResult(
            text=text,
            intent=intent,
            confidence=round(confidence, 4),
            category=category,
            entities=self._entities.extract(head, rating=intent == "rate"),
            emergency=emergency is not None,
            emergency_kind=emergency.kind if emergency else None,
            category_ranking=ranking,
            category_confidence=ranking[0][1] if ranking else 0.0,
            backend=self.name,
        )

    @staticmethod
    def _models(data: NluData, cache_dir: Path | None) -> tuple[LinearTextModel, LinearTextModel]:
        key = hashlib.sha256(f"{data.fingerprint}|{CODE_VERSION}|{INTENT_SPECS}|{CATEGORY_SPECS}".encode()).hexdigest()[
            :16
        ]
        target = cache_dir / key if cache_dir is not None else None
        if target is not None and target.is_dir():
            try:
                return LinearTextModel.load(target, "intent"), LinearTextModel.load(target, "category")
            except ModelFileError as exc:
                log.warning("nlu cache %s unusable, retraining: %s", target, exc)
        started = time.perf_counter()
        intent_model, category_model = train_embedded(data)
        log.info("embedded nlu trained on %d examples in %.1f s", len(data.examples), time.perf_counter() - started)
        if target is not None:
            intent_model.save(target, "intent")
            category_model.save(target, "category")
        return intent_model, category_model


def train_embedded(data: NluData) -> tuple[LinearTextModel, LinearTextModel]:
    """(intent model, category model) from the training data."""
    intent_model = train_logreg([e.text for e in data.examples], [e.intent for e in data.examples], INTENT_SPECS)
    reports = [e for e in data.examples if e.category is not None]
    category_model = train_logreg([e.text for e in reports], [str(e.category) for e in reports], CATEGORY_SPECS)
    return intent_model, category_model
