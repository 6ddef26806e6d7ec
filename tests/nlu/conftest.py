"""Fixtures of the NLU tests: the embedded backend trained once per session (its own cache),
and the complaints data set that CI checks out beside the repository (../shared/data/complaints)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.embedded import EmbeddedNlu

REPO = Path(__file__).resolve().parents[2]
COMPLAINTS = REPO.parent / "shared" / "data" / "complaints"


@pytest.fixture(scope="session")
def nlu_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nlu-cache")


@pytest.fixture(scope="session")
def embedded(nlu_cache: Path) -> EmbeddedNlu:
    return EmbeddedNlu(cache_dir=nlu_cache, places=("光明小区", "清水河社区"))


@pytest.fixture(scope="session")
def complaints_dir() -> Path:
    """The real complaints data; it is not shipped in the repository, so it must be beside it."""
    if not (COMPLAINTS / "train_titles.tsv").is_file():
        pytest.fail(
            f"complaints data not found at {COMPLAINTS} (train_titles.tsv): the NLU tests need the shared "
            "data checked out beside the repository (../shared/data/complaints)",
            pytrace=False,
        )
    return COMPLAINTS
