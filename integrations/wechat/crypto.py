"""WeChat / WeCom callback signatures and message encryption (the WXBizMsgCrypt scheme).

- signature: SHA1 over the sorted, concatenated strings (token, timestamp, nonce[, Encrypt]);
  compared in constant time (wechatpy 1.8.18 compares with `!=`).
- encryption: AES-256-CBC, key = base64(EncodingAESKey + "="), IV = key[:16], PKCS#7 padding to
  32 bytes over `16 random bytes | 4-byte big-endian length | message | receive id`, base64.
  The receive id is the official account's AppID or the WeCom CorpID.

Written on `cryptography` rather than through wechatpy's PrpCrypto because that one trusts the
padding byte and the length field and decodes the receive id without checking them, so a
corrupt payload surfaces as an arbitrary exception instead of a `DecryptError`. The tests check
both directions against wechatpy and the published vectors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # the scheme pads to 32 bytes, not to the AES block size
_RANDOM_PREFIX = 16


class CallbackError(Exception):
    """A callback request that must be refused; `status` is the HTTP status to answer."""

    status = 400


class SignatureError(CallbackError):
    """Wrong or missing signature, or a timestamp outside the allowed clock skew."""

    status = 403


class ForeignReceiverError(CallbackError):
    """The payload decrypted, but it was encrypted for another AppID / CorpID."""

    status = 403


class DecryptError(CallbackError):
    """The encrypted payload is not valid base64 / AES / padding / framing."""

    status = 400


def sha1_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def verify_signature(given: str, *parts: str) -> None:
    if not hmac.compare_digest(given.encode(), sha1_signature(*parts).encode()):
        raise SignatureError("signature mismatch")


def check_timestamp(timestamp: str, max_skew: int, now: float | None = None) -> None:
    """Replay protection: refuse timestamps further than `max_skew` seconds from now (0: off)."""
    if max_skew <= 0:
        return
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError("timestamp is not an integer") from None
    if abs(int(time.time() if now is None else now) - ts) > max_skew:  # whole seconds, as WeChat sends
        raise SignatureError("timestamp outside the allowed clock skew")


def decode_aes_key(encoding_aes_key: str) -> bytes:
    """The 43-character EncodingAESKey from the admin console → the 32-byte AES key."""
    if len(encoding_aes_key) != 43:
        raise ValueError("EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise ValueError("EncodingAESKey is not base64") from None
    if len(key) != 32:
        raise ValueError("EncodingAESKey does not decode to 32 bytes")
    return key


class MessageCipher:
    """Encrypts and decrypts callback payloads for one receive id (AppID or CorpID)."""

    def __init__(self, encoding_aes_key: str, receive_id: str) -> None:
        self._key = decode_aes_key(encoding_aes_key)
        self._receive_id = receive_id.encode()

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, message: bytes) -> str:
        plain = os.urandom(_RANDOM_PREFIX) + struct.pack(">I", len(message)) + message + self._receive_id
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        enc = self._cipher().encryptor()
        return base64.b64encode(enc.update(plain) + enc.finalize()).decode()

    def decrypt(self, encrypted: str) -> bytes:
        try:
            data = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise DecryptError("payload is not base64") from None
        if not data or len(data) % 16:
            raise DecryptError("payload is not a whole number of AES blocks")
        dec = self._cipher().decryptor()
        plain = dec.update(data) + dec.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise DecryptError("bad padding")
        body = plain[_RANDOM_PREFIX:-pad]
        if len(body) < 4:
            raise DecryptError("payload too short")
        (length,) = struct.unpack(">I", body[:4])
        if length > len(body) - 4:
            raise DecryptError("length field exceeds the payload")
        message, receive_id = body[4 : 4 + length], body[4 + length :]
        if not hmac.compare_digest(receive_id, self._receive_id):
            raise ForeignReceiverError("payload was encrypted for another receive id")
        return message


class CallbackCrypto:
    """Token + cipher: verifies `msg_signature`, decrypts, and builds encrypted reply envelopes."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self.token = token
        self._cipher = MessageCipher(encoding_aes_key, receive_id)

    def decrypt(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> bytes:
        verify_signature(msg_signature, self.token, timestamp, nonce, encrypted)
        return self._cipher.decrypt(encrypted)

    def encrypt(self, message: bytes, timestamp: str, nonce: str) -> tuple[str, str]:
        """→ (Encrypt, MsgSignature) for a reply envelope."""
        encrypted = self._cipher.encrypt(message)
        return encrypted, sha1_signature(self.token, timestamp, nonce, encrypted)
