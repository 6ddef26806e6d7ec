"""Reply texts: Jinja2 templates (zh-CN) that admins may override without touching code."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from bot.logs import mask_phone

BUILTIN_DIR = Path(__file__).parent / "templates"
_WEEKDAYS = "一二三四五六日"


def cn_datetime(value: datetime | str | None) -> str:
    """11月23日（周一）17:30 — how a deadline reads in plain Chinese."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return f"{value.month}月{value.day}日（周{_WEEKDAYS[value.weekday()]}）{value:%H:%M}"


class _OverridableLoader(jinja2.BaseLoader):
    """Admins' overrides first, then the shipped templates. A template read from the shipped files
    is read again once an override of it appears, whichever process saved it: Jinja2 would
    otherwise keep checking only the shipped file and never look for the override."""

    def __init__(self, override_dir: Path | None) -> None:
        self._override_dir = override_dir
        self._override = jinja2.FileSystemLoader(str(override_dir)) if override_dir is not None else None
        self._builtin = jinja2.FileSystemLoader(str(BUILTIN_DIR))

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str | None, Any]:
        if self._override is not None:
            try:
                return self._override.get_source(environment, template)
            except jinja2.TemplateNotFound:
                pass
        source, filename, uptodate = self._builtin.get_source(environment, template)
        if self._override_dir is None:
            return source, filename, uptodate
        override = self._override_dir.joinpath(*jinja2.loaders.split_template_path(template))
        return source, filename, lambda: uptodate() and not override.exists()

    def list_templates(self) -> list[str]:
        names = set(self._builtin.list_templates())
        if self._override is not None:
            names |= set(self._override.list_templates())
        return sorted(names)


class Replies:
    def __init__(self, override_dir: Path | None = None, tz: Any = None) -> None:
        self._tz = tz
        self.env = jinja2.Environment(
            loader=_OverridableLoader(override_dir),
            autoescape=False,  # plain-text chat replies; HTML pages use their own environment
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.env.filters["mask_phone"] = mask_phone
        self.env.filters["cn_datetime"] = self._cn_local

    def _cn_local(self, value: datetime | str | None) -> str:
        if isinstance(value, str) and value:
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime) and self._tz is not None:
            value = value.astimezone(self._tz)
        return cn_datetime(value)

    def render(self, name: str, /, channel: str = "", **context: Any) -> str:
        """`replies/<channel>/<name>.j2` when a channel has its own wording (SMS), else `replies/<name>.j2`."""
        candidates = [f"replies/{channel}/{name}.j2"] if channel else []
        template = self.env.select_template([*candidates, f"replies/{name}.j2"])
        return template.render(**context).strip()

    def names(self) -> list[str]:
        return sorted(self.env.list_templates(filter_func=lambda n: n.endswith(".j2")))
