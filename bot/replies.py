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


class Replies:
    def __init__(self, override_dir: Path | None = None, tz: Any = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(override_dir)))
        loaders.append(jinja2.FileSystemLoader(str(BUILTIN_DIR)))
        self._tz = tz
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
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
