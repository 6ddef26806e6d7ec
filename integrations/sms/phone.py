"""Phone numbers as residents and providers write them, reduced to one canonical form."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-()]")
_COUNTRY = re.compile(r"^(?:\+86|0086|86)(?=1\d{10}$)")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}\d{7,8}$")


def normalize_mobile(raw: str) -> str | None:
    """`13812345678` for "+86 138-1234-5678", "008613812345678"...; None if it is not a mainland mobile."""
    digits = _COUNTRY.sub("", _SEPARATORS.sub("", raw))
    return digits if _MOBILE.fullmatch(digits) else None


def normalize_phone(raw: str) -> str | None:
    """A mobile (as above) or a landline with its area code (`02388889999`); None otherwise."""
    mobile = normalize_mobile(raw)
    if mobile:
        return mobile
    digits = _SEPARATORS.sub("", raw)
    return digits if _LANDLINE.fullmatch(digits) else None
