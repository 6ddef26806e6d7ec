"""The report_issue category taxonomy, read from its single source nlu/data/categories.yml."""

from __future__ import annotations

from pathlib import Path

import yaml

from nlu.types import Category
from nlu.yaml_errors import yaml_error_message

DATA_DIR = Path(__file__).parent / "data"
CATEGORIES_FILE = DATA_DIR / "categories.yml"


class TaxonomyError(ValueError):
    """categories.yml is unreadable or inconsistent; the message names the file."""


def load_categories(path: Path = CATEGORIES_FILE) -> tuple[Category, ...]:
    """All categories in display order (the last one is the catch-all "other")."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        raise TaxonomyError(yaml_error_message(path, exc)) from exc
    except OSError as exc:
        raise TaxonomyError(f"{path}: cannot read: {exc.strerror}") from exc
    items = doc.get("categories") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise TaxonomyError(f"{path}: expected a non-empty list under 'categories:'")
    categories: list[Category] = []
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not item.get("id") or not item.get("name_zh"):
            raise TaxonomyError(f"{path}: category #{n} needs 'id' and 'name_zh'")
        categories.append(
            Category(id=str(item["id"]), name_zh=str(item["name_zh"]), description=str(item.get("description", "")))
        )
    ids = [c.id for c in categories]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise TaxonomyError(f"{path}: duplicate category ids: {', '.join(duplicates)}")
    return tuple(categories)


def category_ids(path: Path = CATEGORIES_FILE) -> tuple[str, ...]:
    return tuple(c.id for c in load_categories(path))
