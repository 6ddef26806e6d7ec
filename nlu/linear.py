"""A linear text classifier stored as plain arrays: blocks of TF-IDF features -> softmax.

A model has one or more feature blocks (e.g. character n-grams of the whole message and of
its first 30 characters); each block is L2-normalised on its own, then the blocks are
concatenated and multiplied by one weight matrix. Training uses scikit-learn (imported
lazily, only when training). The stored model is numpy arrays (``<name>.npz``, loaded with
allow_pickle=False) plus JSON (``<name>.json``: feature specs, classes, vocabularies).
Nothing is pickled, so a model directory can be shared without the risk of running code
on load.

Scoring one message is a dictionary lookup per feature and a small dense product:
~0.1-0.3 ms for the embedded models.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nlu.features import FeatureSpec, analyze

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

FORMAT_VERSION = 3


class ModelFileError(ValueError):
    """A model directory is missing files or holds something else."""


@dataclass(frozen=True, slots=True)
class FeatureBlock:
    spec: FeatureSpec
    vocab: dict[str, int]  # feature -> column within the block
    idf: np.ndarray  # (len(vocab),) float32

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(columns, L2-normalised sublinear tf-idf values) of the known features of text."""
        columns: list[int] = []
        counts: list[int] = []
        get = self.vocab.get
        for feature, count in Counter(analyze(text, self.spec)).items():
            if (column := get(feature)) is not None:
                columns.append(column)
                counts.append(count)
        if not columns:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        idx = np.array(columns, dtype=np.int64)
        vals = (1.0 + np.log(np.array(counts, dtype=np.float64))) * self.idf[idx]
        return idx, vals / np.sqrt(vals @ vals)


@dataclass(frozen=True, slots=True)
class LinearTextModel:
    blocks: tuple[FeatureBlock, ...]
    classes: tuple[str, ...]
    weights: np.ndarray  # (sum of block vocab sizes, n_classes) float32, blocks in order
    bias: np.ndarray  # (n_classes,)
    temperature: float = 1.0  # probabilities = softmax(scores / temperature)

    def scores(self, text: str) -> np.ndarray:
        total = self.bias.astype(np.float64)
        offset = 0
        for block in self.blocks:
            idx, vals = block.vector(text)
            if len(idx):
                total = total + vals @ self.weights[idx + offset]
            offset += len(block.vocab)
        return total

    def familiarity(self, text: str) -> float:
        """Share of the text's distinct character n-grams of two or more characters (for one or
        two characters: of all its n-grams) that the first feature block knows. Real messages,
        even with new words, score >= ~0.3 on the embedded data; gibberish and repeats ~0."""
        features = set(analyze(text, self.blocks[0].spec))
        longer = {f for f in features if len(f) >= 2}
        pool = longer if longer and len(text.strip()) >= 3 else features
        if not pool:
            return 0.0
        return sum(f in self.blocks[0].vocab for f in pool) / len(pool)

    def proba(self, text: str) -> np.ndarray:
        return softmax(self.scores(text) / self.temperature)

    def ranking(self, text: str) -> list[tuple[str, float]]:
        p = self.proba(text)
        return [(self.classes[i], float(p[i])) for i in np.argsort(-p)]

    def predict(self, text: str) -> str:
        return self.classes[int(np.argmax(self.scores(text)))]

    def save(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "classes": list(self.classes),
            "temperature": self.temperature,
            "blocks": [
                {"spec": b.spec.to_json(), "vocab": sorted(b.vocab, key=b.vocab.__getitem__)} for b in self.blocks
            ],
        }
        arrays: dict[str, np.ndarray] = {f"idf{i}": b.idf for i, b in enumerate(self.blocks)}
        arrays.update(weights=self.weights, bias=self.bias)
        # unique temporary names: two processes filling the same cache must not write into one file
        tmp_npz, tmp_json = (directory / f".{name}.{os.getpid()}.{ext}.tmp" for ext in ("npz", "json"))
        with tmp_npz.open("wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # the stub takes any key for allow_pickle
        tmp_json.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        tmp_npz.replace(directory / f"{name}.npz")
        tmp_json.replace(directory / f"{name}.json")

    @classmethod
    def load(cls, directory: Path, name: str) -> LinearTextModel:
        json_path, npz_path = directory / f"{name}.json", directory / f"{name}.npz"
        if not json_path.is_file() or not npz_path.is_file():
            raise ModelFileError(f"{directory}: no model {name!r} ({json_path.name} and {npz_path.name} expected)")
        try:
            meta = json.loads(json_path.read_text(encoding="utf-8"))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
                raise ModelFileError(f"{json_path}: not a gridbot model of format {FORMAT_VERSION}")
            with np.load(npz_path, allow_pickle=False) as arrays:
                blocks = tuple(
                    FeatureBlock(
                        FeatureSpec.from_json(b["spec"]),
                        {f: i for i, f in enumerate(b["vocab"])},
                        arrays[f"idf{n}"],
                    )
                    for n, b in enumerate(meta["blocks"])
                )
                weights, bias = arrays["weights"], arrays["bias"]
            classes = tuple(str(c) for c in meta["classes"])
            temperature = float(meta["temperature"])
        except (ValueError, KeyError, TypeError, OSError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"{directory}: model {name!r} is unreadable: {exc}") from exc
        n_features = sum(len(b.vocab) for b in blocks)
        if weights.shape != (n_features, len(classes)) or any(b.idf.shape != (len(b.vocab),) for b in blocks):
            raise ModelFileError(f"{directory}: model {name!r} has inconsistent array shapes")
        return cls(blocks, classes, weights, bias, temperature)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def fit_blocks(
    texts: Sequence[str],
    specs: Sequence[FeatureSpec],
    *,
    min_df: int = 1,
    max_features: int | None = None,
    progress: Callable[[Iterable[str], str], Iterable[str]] | None = None,
) -> tuple[tuple[FeatureBlock, ...], csr_matrix]:
    """Fit one TF-IDF vocabulary per spec; return the blocks and the stacked training matrix.

    progress(iterable, description) may wrap the texts (e.g. in a tqdm bar)."""
    from scipy.sparse import hstack  # training only: ~90 MB with scikit-learn
    from sklearn.feature_extraction.text import TfidfVectorizer

    blocks: list[FeatureBlock] = []
    matrices = []
    for spec in specs:
        vectorizer = TfidfVectorizer(
            analyzer=lambda t, spec=spec: analyze(t, spec),
            sublinear_tf=True,
            min_df=min_df,
            max_features=max_features if spec.max_chars > 100 else None,
        )
        docs = progress(texts, f"features {spec.describe()}") if progress else texts
        matrices.append(vectorizer.fit_transform(docs))
        vocab = {f: int(i) for f, i in vectorizer.vocabulary_.items()}
        blocks.append(FeatureBlock(spec, vocab, vectorizer.idf_.astype(np.float32)))
    return tuple(blocks), hstack(matrices).tocsr()


def train_logreg(
    texts: Sequence[str], labels: Sequence[str], specs: Sequence[FeatureSpec], *, c: float = 10.0
) -> LinearTextModel:
    """Multinomial logistic regression with balanced class weights (small training sets)."""
    from sklearn.linear_model import LogisticRegression

    blocks, matrix = fit_blocks(texts, specs)
    clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced", solver="saga", random_state=0)
    clf.fit(matrix, list(labels))
    coef, intercept = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:  # binary: scikit-learn keeps one row, for classes_[1]
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    return LinearTextModel(
        blocks=blocks,
        classes=tuple(str(c) for c in clf.classes_),
        weights=np.ascontiguousarray(coef.T, dtype=np.float32),
        bias=intercept.astype(np.float32),
    )
