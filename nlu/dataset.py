"""Reader of the Rasa 3.x NLU YAML training data in nlu/data (the single source of truth).

Supported Rasa elements: ``intent`` (with ``[text](entity)`` / ``[text]{"entity": ..}``
annotations), ``regex``, ``lookup`` and ``synonym`` (read and ignored: no synonyms are
used). Intents are the ids of nlu.types.INTENTS except report_issue, which is written
``report_issue+<category id>``. Every error names the file and the line.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from nlu.taxonomy import CATEGORIES_FILE, DATA_DIR, TaxonomyError, category_ids
from nlu.types import INTENTS, Entity
from nlu.yaml_errors import yaml_error_message

REPORT_PREFIX = "report_issue+"
_ANNOTATION = re.compile(r"\[(?P<text>[^\]\n]+)\](?:\((?P<entity>[^)\n]+)\)|(?P<json>\{[^}\n]*\}))")


class TrainingDataError(ValueError):
    """Malformed training data; str() is "file:line: problem"."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str  # annotations removed
    intent: str  # an id of INTENTS
    category: str | None  # set iff intent == "report_issue"
    entities: tuple[Entity, ...]
    source: str  # "file:line"


@dataclass(frozen=True, slots=True)
class NluData:
    examples: tuple[Example, ...]
    regexes: tuple[tuple[str, tuple[str, ...]], ...]  # (entity name, patterns)
    lookups: tuple[tuple[str, tuple[str, ...]], ...]  # (entity name, values)
    categories: tuple[str, ...]
    fingerprint: str  # sha256 of every file read, for cache keys

    def patterns(self, name: str) -> tuple[str, ...]:
        return next((p for n, p in self.regexes if n == name), ())

    def lookup(self, name: str) -> tuple[str, ...]:
        return next((v for n, v in self.lookups if n == name), ())


def split_intent(name: str) -> tuple[str, str | None]:
    """ "report_issue+noise" -> ("report_issue", "noise"); "greet" -> ("greet", None)."""
    if name.startswith(REPORT_PREFIX):
        return "report_issue", name[len(REPORT_PREFIX) :]
    return name, None


def strip_annotations(raw: str) -> tuple[str, tuple[Entity, ...]]:
    """Remove Rasa entity markup; return the plain text and the annotated entities."""
    out: list[str] = []
    entities: list[Entity] = []
    pos = 0
    length = 0
    for m in _ANNOTATION.finditer(raw):
        before = raw[pos : m.start()]
        out.append(before)
        length += len(before)
        span = m.group("text")
        if m.group("entity"):
            name, _, value = m.group("entity").partition(":")
            value = value or span
        else:
            try:
                spec = json.loads(m.group("json"))
            except json.JSONDecodeError as exc:
                raise ValueError(f"bad entity JSON {m.group('json')!r}") from exc
            if not isinstance(spec, dict) or "entity" not in spec:
                raise ValueError(f"entity JSON without 'entity': {m.group('json')!r}")
            name, value = str(spec["entity"]), str(spec.get("value", span))
        entities.append(Entity(entity=name.strip(), value=value, start=length, end=length + len(span)))
        out.append(span)
        length += len(span)
        pos = m.end()
    out.append(raw[pos:])
    return "".join(out), tuple(entities)


def nlu_files(data_dir: Path = DATA_DIR) -> tuple[Path, ...]:
    """The Rasa NLU files of a data directory (top level only, with an ``nlu:`` key)."""
    files = sorted([*data_dir.glob("*.yml"), *data_dir.glob("*.yaml")])
    return tuple(f for f in files if re.search(r"^nlu\s*:", f.read_text(encoding="utf-8"), re.MULTILINE))


def _where(path: Path, node: yaml.Node) -> str:
    return f"{path}:{node.start_mark.line + 1}"


def _block_items(path: Path, node: yaml.Node) -> list[tuple[str, str]]:
    """The "- item" lines of an ``examples: |`` block, each with its "file:line"."""
    if not isinstance(node, yaml.ScalarNode):
        raise TrainingDataError(f"{_where(path, node)}: 'examples' must be a '|' block of '- ' lines")
    first = node.start_mark.line + (1 if node.style in ("|", ">") else 0)
    items: list[tuple[str, str]] = []
    for offset, line in enumerate(str(node.value).splitlines()):
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("- "):
            raise TrainingDataError(f"{path}:{first + offset + 1}: expected '- example', got {stripped!r}")
        items.append((stripped[2:].strip(), f"{path}:{first + offset + 1}"))
    return items


def _mapping(node: yaml.MappingNode) -> dict[str, yaml.Node]:
    return {str(k.value): v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _read_file(
    path: Path, known: set[str], examples: list[Example], regexes: dict[str, list[str]], lookups: dict[str, list[str]]
) -> None:
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise TrainingDataError(yaml_error_message(path, exc)) from exc
    if not isinstance(root, yaml.MappingNode):
        raise TrainingDataError(f"{path}:1: expected a mapping with 'version' and 'nlu'")
    top = _mapping(root)
    nlu = top.get("nlu")
    if not isinstance(nlu, yaml.SequenceNode):
        where = _where(path, nlu) if nlu is not None else f"{path}:1"
        raise TrainingDataError(f"{where}: 'nlu' must be a list")
    for item in nlu.value:
        if not isinstance(item, yaml.MappingNode):
            raise TrainingDataError(f"{_where(path, item)}: each 'nlu' entry must be a mapping")
        fields = _mapping(item)
        kind = next((k for k in ("intent", "regex", "lookup", "synonym") if k in fields), None)
        if kind is None:
            raise TrainingDataError(f"{_where(path, item)}: entry needs one of intent/regex/lookup/synonym")
        name_node = fields[kind]
        name = str(name_node.value).strip() if isinstance(name_node, yaml.ScalarNode) else ""
        if not name:
            raise TrainingDataError(f"{_where(path, name_node)}: empty {kind} name")
        if "examples" not in fields:
            raise TrainingDataError(f"{_where(path, item)}: {kind} {name!r} has no 'examples'")
        items = _block_items(path, fields["examples"])
        if kind == "synonym":
            continue
        if kind == "regex":
            for pattern, where in items:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise TrainingDataError(f"{where}: bad regex for {name!r}: {exc}") from exc
            regexes.setdefault(name, []).extend(p for p, _ in items)
            continue
        if kind == "lookup":
            lookups.setdefault(name, []).extend(v for v, _ in items)
            continue
        intent, category = split_intent(name)
        if intent not in INTENTS or (intent == "report_issue") != (category is not None):
            raise TrainingDataError(
                f"{_where(path, name_node)}: unknown intent {name!r} (use one of {', '.join(INTENTS[1:])} "
                f"or report_issue+<category id>)"
            )
        if category is not None and category not in known:
            raise TrainingDataError(
                f"{_where(path, name_node)}: unknown category {category!r} (not in {CATEGORIES_FILE.name})"
            )
        for raw, where in items:
            try:
                text, entities = strip_annotations(raw)
            except ValueError as exc:
                raise TrainingDataError(f"{where}: {exc}") from exc
            examples.append(Example(text, intent, category, entities, where))


def load_nlu_data(data_dir: Path = DATA_DIR, categories_file: Path = CATEGORIES_FILE) -> NluData:
    """Read every NLU file of data_dir; raises TrainingDataError with "file:line: ..."."""
    try:
        known = category_ids(categories_file)
    except TaxonomyError as exc:
        raise TrainingDataError(str(exc)) from exc
    files = nlu_files(data_dir)
    if not files:
        raise TrainingDataError(f"{data_dir}: no Rasa NLU YAML file (with an 'nlu:' key) found")
    examples: list[Example] = []
    regexes: dict[str, list[str]] = {}
    lookups: dict[str, list[str]] = {}
    digest = hashlib.sha256()
    for path in (categories_file, *files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for path in files:
        _read_file(path, set(known), examples, regexes, lookups)
    return NluData(
        examples=tuple(examples),
        regexes=tuple((k, tuple(v)) for k, v in regexes.items()),
        lookups=tuple((k, tuple(v)) for k, v in lookups.items()),
        categories=known,
        fingerprint=digest.hexdigest(),
    )
