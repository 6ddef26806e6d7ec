"""HMAC-SHA256 request signatures with a timestamp, for the SMS webhook and the gateway client.

The signed string is the decimal Unix timestamp, a dot, and the raw request body:

    X-Gridbot-Timestamp: 1795000000
    X-Gridbot-Signature: sha256=<hex of HMAC-SHA256(secret, b"1795000000." + body)>

A request is accepted only when the signature matches (compared with `hmac.compare_digest`)
and the timestamp is within `max_skew` seconds of the receiver's clock, so a captured request
cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

TIMESTAMP_HEADER = "X-Gridbot-Timestamp"
SIGNATURE_HEADER = "X-Gridbot-Signature"
SCHEME = "sha256="


class SignatureError(Exception):
    """The signature is missing, malformed, wrong, or its timestamp is outside the window."""


@dataclass(frozen=True, slots=True)
class Signer:
    secret: str
    max_skew: int = 300  # seconds either side of now

    def signature(self, timestamp: int, body: bytes) -> str:
        mac = hmac.new(self.secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
        return SCHEME + mac.hexdigest()

    def headers(self, timestamp: int, body: bytes) -> dict[str, str]:
        return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: self.signature(timestamp, body)}

    def verify(self, timestamp_header: str | None, signature_header: str | None, body: bytes, now: float) -> None:
        """Raise SignatureError unless the request is signed with our secret and fresh."""
        if not self.secret:
            raise SignatureError("no signing secret is configured")
        if not timestamp_header or not signature_header:
            raise SignatureError(f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required")
        if not timestamp_header.isdigit() or len(timestamp_header) > 12:
            raise SignatureError(f"{TIMESTAMP_HEADER} must be a Unix timestamp in seconds")
        timestamp = int(timestamp_header)
        if abs(now - timestamp) > self.max_skew:
            raise SignatureError("the timestamp is outside the allowed window")
        expected = self.signature(timestamp, body)
        if not hmac.compare_digest(expected.encode(), signature_header.strip().encode()):
            raise SignatureError("the signature does not match")
