"""YAML that remembers where every value came from, and the `Problem` every check reports.

Admins edit the flow and directory files by hand, so every message must say
`file:line:column`. The loader composes the YAML node tree, rejects duplicate keys (PyYAML
silently keeps the last one) and records the position of every key and value by path.

Scalars follow YAML 1.2's core schema rather than PyYAML's YAML 1.1 defaults: `13:30` stays
a string (YAML 1.1 reads it as the sexagesimal number 810), `no`/`on` stay strings, `010`
is ten, and dates stay strings that the checks parse themselves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import yaml

PathItem = str | int
YPath = tuple[PathItem, ...]
# A value read from YAML: mappings have string keys.
Data = dict[str, "Data"] | list["Data"] | str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding of a check, pointing at a place in a file (line and column from 1)."""

    file: str
    line: int
    column: int
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars (see the module docstring)."""


_DROPPED = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    return int(str(loader.construct_scalar(node)))


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    return float(str(loader.construct_scalar(node)))


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


class YamlSyntaxError(ValueError):
    """The text is not YAML we accept; `problems` say where."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class Document:
    """Parsed YAML plus the position of every key and value, addressed by path."""

    file: str
    data: Data
    values: dict[YPath, tuple[int, int]]
    keys: dict[YPath, tuple[int, int]]

    def where(self, path: Sequence[PathItem], key: bool = False) -> tuple[int, int]:
        """(line, column) of the value at `path` (or of its key), else of its nearest ancestor."""
        p = tuple(path)
        while True:
            if key and p in self.keys:
                return self.keys[p]
            if p in self.values:
                return self.values[p]
            if not p:
                return (1, 1)
            p = p[:-1]

    def problem(self, path: Sequence[PathItem], message: str, key: bool = False, severity: str = "error") -> Problem:
        line, column = self.where(path, key=key)
        return Problem(self.file, line, column, message, severity)


def _pos(mark: yaml.Mark | None) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def parse_yaml(text: str, file: str) -> Document:
    """Parse one YAML document; raises YamlSyntaxError with every syntax error and duplicate key."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        line, column = _pos(exc.problem_mark)
        what = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        loader.dispose()
        raise YamlSyntaxError([Problem(file, line, column, f"YAML syntax: {what}{context}")]) from exc
    except yaml.YAMLError as exc:
        loader.dispose()
        raise YamlSyntaxError([Problem(file, 1, 1, f"YAML syntax: {exc}")]) from exc
    values: dict[YPath, tuple[int, int]] = {}
    keys: dict[YPath, tuple[int, int]] = {}
    problems: list[Problem] = []

    def build(node: yaml.Node, path: YPath, depth: int) -> Data:
        values[path] = _pos(node.start_mark)
        if depth > 64:
            problems.append(Problem(file, *values[path], "YAML nested too deeply (or a recursive alias)"))
            return None
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Data] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    problems.append(Problem(file, *_pos(key_node.start_mark), "a key must be a plain name"))
                    continue
                if key_node.tag == "tag:yaml.org,2002:merge":
                    problems.append(Problem(file, *_pos(key_node.start_mark), "merge keys (<<) are not supported"))
                    continue
                key = str(loader.construct_object(key_node))
                child = (*path, key)
                if key in out:
                    first_line = keys[child][0]
                    problems.append(
                        Problem(file, *_pos(key_node.start_mark), f"duplicate key {key!r} (first on line {first_line})")
                    )
                    continue
                keys[child] = _pos(key_node.start_mark)
                out[key] = build(value_node, child, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        value = loader.construct_object(node)
        if value is None or isinstance(value, str | int | float | bool):
            return value
        problems.append(Problem(file, *values[path], f"unsupported YAML value of type {type(value).__name__}"))
        return None

    try:
        data = build(root, (), 0) if root is not None else None
    except yaml.constructor.ConstructorError as exc:
        line, column = _pos(exc.problem_mark)
        raise YamlSyntaxError([Problem(file, line, column, f"YAML: {exc.problem}")]) from exc
    finally:
        loader.dispose()
    if problems:
        raise YamlSyntaxError(problems)
    return Document(file, data, values, keys)
