"""Signatures, encryption and the hardened XML parse, against the published vectors and wechatpy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from wechatpy.crypto import WeChatCrypto as WechatpyMpCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WechatpyWorkCrypto

from integrations.base import Reply
from integrations.wechat.callback import plan_replies, split_utf8
from integrations.wechat.crypto import (
    CallbackCrypto,
    DecryptError,
    ForeignReceiverError,
    MessageCipher,
    SignatureError,
    check_timestamp,
    decode_aes_key,
    sha1_signature,
)
from integrations.wechat.xmlmsg import MalformedXmlError, parse_fields, text_reply_xml

VECTORS = json.loads((Path(__file__).parents[3] / "shared/data/wechat/vectors.json").read_text())
WECOM = ["wecom_official_doc", "wecom_weworkapi_python_sample"]
MP = "official_account_wxbizmsgcrypt_sample"
ALL_MESSAGES = [(name, VECTORS[name]["receive_id"]) for name in WECOM] + [(MP, VECTORS[MP]["app_id"])]


@pytest.mark.parametrize(("name", "receive_id"), ALL_MESSAGES)
def test_every_message_vector_verifies_and_decrypts(name: str, receive_id: str) -> None:
    v = VECTORS[name]
    m = v["message"]
    assert sha1_signature(v["token"], m["timestamp"], m["nonce"], m["encrypt"]) == m["msg_signature"]
    plain = CallbackCrypto(v["token"], v["encoding_aes_key"], receive_id).decrypt(
        m["msg_signature"], m["timestamp"], m["nonce"], m["encrypt"]
    )
    fields = parse_fields(plain)
    assert {k: fields[k] for k in m["expected"]} == m["expected"]


@pytest.mark.parametrize("name", WECOM)
def test_every_url_verification_vector_decrypts_to_the_expected_echo(name: str) -> None:
    v = VECTORS[name]
    u = v["url_verification"]
    crypto = CallbackCrypto(v["token"], v["encoding_aes_key"], v["receive_id"])
    assert crypto.decrypt(u["msg_signature"], u["timestamp"], u["nonce"], u["echostr"]) == u["expected_plain"].encode()


@pytest.mark.parametrize(("name", "receive_id"), ALL_MESSAGES)
def test_a_wrong_signature_is_refused_before_decrypting(name: str, receive_id: str) -> None:
    v = VECTORS[name]
    m = v["message"]
    crypto = CallbackCrypto(v["token"], v["encoding_aes_key"], receive_id)
    bad = ("0" if m["msg_signature"][0] != "0" else "1") + m["msg_signature"][1:]
    with pytest.raises(SignatureError):
        crypto.decrypt(bad, m["timestamp"], m["nonce"], m["encrypt"])
    with pytest.raises(SignatureError):  # any signed part changed
        crypto.decrypt(m["msg_signature"], m["timestamp"], m["nonce"] + "1", m["encrypt"])


@pytest.mark.parametrize(("name", "receive_id"), ALL_MESSAGES)
def test_a_payload_for_another_app_is_a_foreign_receiver_error(name: str, receive_id: str) -> None:
    v = VECTORS[name]
    m = v["message"]
    with pytest.raises(ForeignReceiverError):
        CallbackCrypto(v["token"], v["encoding_aes_key"], "wx_someone_else").decrypt(
            m["msg_signature"], m["timestamp"], m["nonce"], m["encrypt"]
        )


def test_corrupt_payloads_are_decrypt_errors_not_crashes() -> None:
    v = VECTORS[MP]
    cipher = MessageCipher(v["encoding_aes_key"], v["app_id"])
    good = v["message"]["encrypt"]
    flipped = good[:-8] + ("A" if good[-8] != "A" else "B") + good[-7:]
    for payload in ("not base64!", "", "QUJD", flipped):
        with pytest.raises(DecryptError):
            cipher.decrypt(payload)
    wrong_key = MessageCipher("B" * 43, v["app_id"])
    with pytest.raises((DecryptError, ForeignReceiverError)):
        wrong_key.decrypt(good)


def test_our_encryption_and_wechatpys_interoperate_both_ways() -> None:
    v = VECTORS[MP]
    ours = CallbackCrypto(v["token"], v["encoding_aes_key"], v["app_id"])
    theirs = WechatpyMpCrypto(v["token"], v["encoding_aes_key"], v["app_id"])
    xml = "<xml><Content><![CDATA[你好，网格员]]></Content></xml>"
    encrypted, signature = ours.encrypt(xml.encode(), "1700000000", "42")
    envelope = f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    assert theirs.decrypt_message(envelope, signature, "1700000000", "42") == xml
    fields = parse_fields(theirs.encrypt_message(xml, "43", "1700000001").encode())
    assert ours.decrypt(fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"], fields["Encrypt"]) == xml.encode()


def test_wecom_encryption_interoperates_with_wechatpy_enterprise() -> None:
    v = VECTORS["wecom_official_doc"]
    ours = CallbackCrypto(v["token"], v["encoding_aes_key"], v["receive_id"])
    theirs = WechatpyWorkCrypto(v["token"], v["encoding_aes_key"], v["receive_id"])
    echostr, signature = ours.encrypt(b"123456789", "1700000000", "7")
    assert theirs.check_signature(signature, "1700000000", "7", echostr) == "123456789"


def test_replay_protection_is_off_at_skew_zero_and_refuses_stale_or_garbled_timestamps() -> None:
    check_timestamp("1409659813", 0)  # the vectors' old timestamps
    check_timestamp("1000", 300, now=1200)
    with pytest.raises(SignatureError):
        check_timestamp("1000", 300, now=1301)
    with pytest.raises(SignatureError):
        check_timestamp("1601", 300, now=1300)  # from the future too
    with pytest.raises(SignatureError):
        check_timestamp("soon", 300)


def test_an_encoding_aes_key_of_the_wrong_shape_is_refused_at_configuration() -> None:
    for key in ("short", "!" * 43, "A" * 44):
        with pytest.raises(ValueError):
            decode_aes_key(key)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><Content>&lol3;</Content></xml>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><Content>&x;</Content></xml>"""
DTD_ONLY = b"""<?xml version="1.0"?><!DOCTYPE xml [<!ELEMENT xml ANY>]><xml><Content>a</Content></xml>"""


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, XXE, DTD_ONLY, b"<xml><Content>unclosed</xml>", b"", b"plain text", b"<html></html>"],
    ids=["billion-laughs", "xxe", "dtd", "unclosed", "empty", "text", "wrong-root"],
)
def test_hostile_or_malformed_xml_is_refused(body: bytes) -> None:
    with pytest.raises(MalformedXmlError):
        parse_fields(body)


def test_reply_text_with_cdata_terminators_and_control_characters_stays_well_formed() -> None:
    content = "工单 ]]> <b>&amp;\x01 完"
    fields = parse_fields(text_reply_xml("gh_account", "user]]>x", content).encode())
    assert fields["Content"] == "工单 ]]> <b>&amp; 完"
    assert fields["ToUserName"] == "user]]>x"
    assert fields["MsgType"] == "text"


def test_split_utf8_keeps_pieces_under_the_limit_and_characters_whole() -> None:
    text = "网格化服务管理" * 500  # 3 bytes a character, 10,500 bytes
    pieces = split_utf8(text)
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= 2048 for p in pieces)
    assert len(pieces) == 6
    assert split_utf8("") == [""]
    assert split_utf8("short") == ["short"]


def test_split_utf8_cuts_at_a_late_newline() -> None:
    text = "甲" * 600 + "\n" + "乙" * 600
    first, second = split_utf8(text)
    assert first == "甲" * 600 + "\n"
    assert second == "乙" * 600


def test_plan_replies_sends_the_first_piece_passively_and_the_rest_later() -> None:
    long = "长" * 1000
    passive, later = plan_replies(
        [Reply("someone_else", "fyi"), Reply("u1", long), Reply("u1", "second"), Reply("u1", "")], "u1"
    )
    assert passive is not None and len(passive.encode()) <= 2048
    assert [r.recipient_id for r in later] == ["someone_else", "u1", "u1"]
    assert passive + later[1].text == long
    assert later[2].text == "second"
