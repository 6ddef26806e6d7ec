"""Error messages for YAML files that point at the line to fix."""

from __future__ import annotations

from pathlib import Path

import yaml


def yaml_error_message(path: Path, exc: yaml.MarkedYAMLError) -> str:
    """ "file:line: invalid YAML: ..." at the line to fix: where an unclosed quote or bracket
    started rather than the end of the file where the parser noticed."""
    problem, context = exc.problem_mark, exc.context_mark
    mark = context if context is not None and (problem is None or "end of stream" in str(exc.problem)) else problem
    line = mark.line + 1 if mark is not None else 0
    detail = str(exc.problem or exc.context)
    if context is not None and exc.context and mark is not context:
        detail += f" ({exc.context} at line {context.line + 1})"
    elif context is not None and exc.context:
        detail = f"{exc.context}: {detail}"
    return f"{path}:{line}: invalid YAML: {detail}"
