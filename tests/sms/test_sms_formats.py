"""The SMS wire formats without the app: signatures, the neutral body, Tencent's callback, segments."""

from __future__ import annotations

import json

import pytest

from integrations.sms.inbound import InboundError, parse_inbound
from integrations.sms.phone import normalize_mobile, normalize_phone
from integrations.sms.signing import SignatureError, Signer
from integrations.sms.tencent import parse_reply

NOW = 1_795_000_000


def body(**fields: object) -> bytes:
    data = {"message_id": "m1", "from": "13812345678", "text": "你好", **fields}
    return json.dumps({k: v for k, v in data.items() if v is not None}, ensure_ascii=False).encode()


def test_a_signature_made_with_the_secret_verifies() -> None:
    signer = Signer("s3cret")
    headers = signer.headers(NOW, b"{}")
    signer.verify(headers["X-Gridbot-Timestamp"], headers["X-Gridbot-Signature"], b"{}", NOW + 10)


@pytest.mark.parametrize(
    ("timestamp", "signature", "body_sent", "now"),
    [
        (str(NOW), Signer("other").signature(NOW, b"{}"), b"{}", NOW),  # wrong secret
        (str(NOW), Signer("s3cret").signature(NOW, b"{}"), b'{"x":1}', NOW),  # body changed
        (str(NOW), Signer("s3cret").signature(NOW, b"{}"), b"{}", NOW + 301),  # stale
        (str(NOW + 400), Signer("s3cret").signature(NOW + 400, b"{}"), b"{}", NOW),  # from the future
        ("", Signer("s3cret").signature(NOW, b"{}"), b"{}", NOW),  # no timestamp
        (str(NOW), "", b"{}", NOW),  # no signature
        ("12ab", "sha256=00", b"{}", NOW),  # not a number
    ],
)
def test_wrong_or_stale_signatures_are_refused(timestamp: str, signature: str, body_sent: bytes, now: int) -> None:
    with pytest.raises(SignatureError):
        Signer("s3cret").verify(timestamp, signature, body_sent, now)


def test_no_secret_configured_refuses_everything() -> None:
    unsigned = Signer("")
    with pytest.raises(SignatureError):
        unsigned.verify(str(NOW), unsigned.signature(NOW, b"{}"), b"{}", NOW)


@pytest.mark.parametrize(
    ("raw", "mobile"),
    [
        ("13812345678", "13812345678"),
        ("+86 138-1234-5678", "13812345678"),
        ("008613812345678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("12812345678", None),
        ("1381234567", None),
        ("hello", None),
        ("023-88889999", None),
    ],
)
def test_mobile_numbers_are_normalised(raw: str, mobile: str | None) -> None:
    assert normalize_mobile(raw) == mobile


def test_a_landline_is_a_phone_but_not_a_mobile() -> None:
    assert normalize_phone("023-8888 9999") == "02388889999"
    assert normalize_phone("110") is None


def test_the_neutral_body_becomes_an_incoming_sms_message() -> None:
    sms = parse_inbound(body(**{"from": "+8613812345678"}, received_at="2026-11-24T10:00:00+08:00"))
    msg = sms.to_incoming()
    assert (msg.channel, msg.user_id, msg.phone, msg.provider_message_id) == ("sms", "13812345678", "13812345678", "m1")
    assert msg.text == "你好"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"not json", "body"),
        (b"[]", "body"),
        (body(message_id=None), "message_id"),
        (body(message_id=""), "message_id"),
        (body(**{"from": None}), "from"),
        (body(**{"from": "not-a-phone"}), "from"),
        (body(**{"from": "110"}), "from"),
        (body(text=None), "text"),
        (body(text=5), "text"),
        (body(text="长" * 2001), "text"),
        (body(received_at="yesterday"), "received_at"),
        (body(received_at="2026-11-24T10:00:00"), "received_at"),
        (body(to=["x"]), "to"),
    ],
)
def test_a_bad_body_names_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(InboundError) as caught:
        parse_inbound(raw)
    assert caught.value.field == field


def test_a_tencent_reply_maps_to_the_neutral_fields() -> None:
    item = {"extend": "", "mobile": "13812345678", "nationcode": "86", "sign": "某街道", "text": "TD", "time": NOW}
    sms = parse_reply(item)
    assert (sms.sender, sms.text) == ("13812345678", "TD")
    assert sms.received_at is not None and int(sms.received_at.timestamp()) == NOW
    assert sms.message_id == parse_reply(dict(item)).message_id  # a retried callback is the same message
    assert sms.message_id != parse_reply({**item, "time": NOW + 1}).message_id


@pytest.mark.parametrize(
    ("change", "field"),
    [({"nationcode": "852"}, "nationcode"), ({"mobile": "12345"}, "mobile"), ({"time": "x"}, "time")],
)
def test_a_bad_tencent_reply_names_the_field(change: dict[str, object], field: str) -> None:
    item = {"mobile": "13812345678", "nationcode": "86", "text": "hi", "time": NOW, **change}
    with pytest.raises(InboundError) as caught:
        parse_reply(item)
    assert caught.value.field == field
