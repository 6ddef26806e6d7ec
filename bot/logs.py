"""Structured logs: one JSON line per event, phone numbers masked in every field."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

# Chinese mobile numbers (optionally +86), not glued to other digits.
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?!\d)")
# Landlines: area code (0 + 2 or 3 digits, maybe in brackets) and a 7- or 8-digit number, e.g.
# 023-68881234, (023)68881234, 023 6888 1234. Not after a letter, a digit or a point, so ticket
# numbers (WG2026…) and decimals (0.0123…) stay as they are.
_LANDLINE = re.compile(r"(?<![\dA-Za-z.])(\(?0\d{2,3}\)?)([- ]?)(\d{3,4})[- ]?(\d{4})(?!\d)")


def mask_phone(text: str) -> str:
    """138****5678 for every mobile number inside `text`, 023-****1234 for every landline."""
    text = _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    return _LANDLINE.sub(lambda m: f"{m.group(1)}{m.group(2)}****{m.group(4)}", text)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_phone(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(_masked(line), ensure_ascii=False, default=str)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"fields": fields})
