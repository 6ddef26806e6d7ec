"""Callback XML: a hardened parse in front of wechatpy, and the XML we answer with.

Every XML body, outer envelope and decrypted message alike, goes through `parse_fields`
(defusedxml, DTDs / entities / external references forbidden) before wechatpy sees it, so
billion-laughs and XXE payloads are refused as `MalformedXmlError` (HTTP 400).
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeET
from wechatpy.replies import TextReply

from integrations.wechat.crypto import CallbackError

# characters XML 1.0 does not allow; WeChat rejects a reply that contains them
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class MalformedXmlError(CallbackError):
    """Not well-formed, not a WeChat `<xml>` document, or uses DTDs / entities."""

    status = 400


def parse_root(body: bytes) -> Element:
    """The `<xml>` root element, parsed with DTDs, entities and external references forbidden."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    # ValueError / LookupError: an XML declaration naming a multi-byte or unknown encoding
    except (ParseError, defusedxml.DefusedXmlException, ValueError, LookupError) as exc:
        raise MalformedXmlError(f"refused XML: {type(exc).__name__}") from None
    if root.tag != "xml":
        raise MalformedXmlError("root element is not <xml>")
    return root


def parse_fields(body: bytes) -> dict[str, str]:
    """The text of the root's leaf children, e.g. {"MsgType": "text", "Content": "..."}."""
    return {child.tag: child.text or "" for child in parse_root(body) if len(child) == 0}


def cdata_safe(text: str) -> str:
    """Text that survives inside `<![CDATA[...]]>`: no `]]>` and no XML-illegal characters."""
    return _XML_ILLEGAL.sub("", text).replace("]]>", "]]]]><![CDATA[>")


def text_reply_xml(account: str, user: str, content: str) -> str:
    """A passive text reply from `account` (the callback's ToUserName) to `user`."""
    reply = TextReply(source=cdata_safe(account), target=cdata_safe(user), content=cdata_safe(content))
    return str(reply.render())


def robot_text_reply_xml(content: str) -> str:
    """A group robot's passive text reply: no sender or addressee, it goes to the chat it answers."""
    return f"<xml><MsgType>text</MsgType><Text><Content><![CDATA[{cdata_safe(content)}]]></Content></Text></xml>"


def encrypted_envelope_xml(encrypted: str, signature: str, timestamp: str, nonce: str) -> str:
    # every value here is base64, hex or digits that we produced: nothing to escape
    return (
        f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
        f"<MsgSignature><![CDATA[{signature}]]></MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
    )
