"""GeoReport v2 formats without the app: reading POST bodies, validating, rendering JSON and XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from integrations.open311.georeport import (
    CreatedRequest,
    GeoReportError,
    Service,
    parse_new_request,
    parse_query,
    read_fields,
    render_created,
    render_definition,
    render_error,
    render_services,
)

GOOD = {"api_key": "k", "service_code": "noise", "description": "工地夜间施工", "address_string": "幸福小区3栋"}


def refused(form: dict[str, str], status: int = 400) -> str:
    with pytest.raises(GeoReportError) as caught:
        parse_new_request(form, max_description=4000)
    assert caught.value.status == status
    return caught.value.description


def test_a_complete_request_is_accepted() -> None:
    new = parse_new_request({**GOOD, "lat": "29.6", "long": "106.5", "phone": "138 1234 5678"}, 4000)
    assert (new.service_code, new.lat, new.long, new.address_string) == ("noise", 29.6, 106.5, "幸福小区3栋")


def test_without_api_key_it_is_403() -> None:
    refused({**GOOD, "api_key": ""}, status=403)


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"service_code": ""}, "service_code"),
        ({"address_string": ""}, "location"),
        ({"address_string": "", "lat": "29.6"}, "together"),
        ({"lat": "north", "long": "1"}, "lat"),
        ({"lat": "95", "long": "1"}, "lat"),
        ({"lat": "nan", "long": "1"}, "lat"),
        ({"description": ""}, "description"),
        ({"description": "长" * 4001}, "description"),
        ({"email": "not-an-email"}, "email"),
        ({"media_url": "javascript:alert(1)"}, "media_url"),
        ({"first_name": "名" * 201}, "first_name"),
    ],
)
def test_bad_fields_are_400_naming_them(change: dict[str, str], word: str) -> None:
    assert word in refused({**GOOD, **change})


def test_form_json_and_xml_bodies_read_the_same() -> None:
    form = read_fields("application/x-www-form-urlencoded", b"service_code=noise&description=%E5%90%B5")
    as_json = read_fields("application/json", json.dumps({"service_code": "noise", "description": "吵"}).encode())
    as_xml = read_fields(
        "application/xml",
        "<service_request><service_code>noise</service_code><description>吵</description></service_request>".encode(),
    )
    assert form == as_json == as_xml == {"service_code": "noise", "description": "吵"}


@pytest.mark.parametrize(
    "document",
    [
        '<!DOCTYPE r [<!ENTITY x "boom">]><r><description>&x;</description></r>',
        '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r><description>&x;</description></r>',
        '<!DOCTYPE r [<!ENTITY a "aa"><!ENTITY b "&a;&a;">]><r><description>&b;</description></r>',
        '<!DOCTYPE r SYSTEM "http://example.com/r.dtd"><r/>',
    ],
)
def test_xml_with_a_dtd_or_entities_is_rejected(document: str) -> None:
    with pytest.raises(GeoReportError) as caught:
        read_fields("application/xml", document.encode())
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("application/json", b"[1]"), ("application/json", b"{"), ("application/xml", b"<r>"), ("text/xml", b"\xff")],
)
def test_broken_bodies_are_400(content_type: str, body: bytes) -> None:
    with pytest.raises(GeoReportError) as caught:
        read_fields(content_type, body)
    assert caught.value.status == 400


def test_query_filters() -> None:
    q = parse_query({"service_code": "noise,sanitation", "status": "open", "start_date": "2026-11-01T00:00:00Z"})
    assert q.service_codes == ("noise", "sanitation") and q.statuses == ("open",)
    assert q.start is not None and q.start.utcoffset() is not None
    for bad in (
        {"status": "pending"},
        {"start_date": "yesterday"},
        {"end_date": "2026-11-01"},
        {"start_date": "2026-11-02T00:00:00Z", "end_date": "2026-11-01T00:00:00Z"},
    ):
        with pytest.raises(GeoReportError):
            parse_query(bad)


def test_json_and_xml_renderings() -> None:
    service = Service("noise", "噪音扰民", "施工、广场舞")
    body, content_type = render_services("json", [service])
    assert content_type == "application/json"
    assert json.loads(body)[0] == {
        "service_code": "noise",
        "service_name": "噪音扰民",
        "description": "施工、广场舞",
        "group": "",
        "keywords": "",
        "metadata": False,
        "type": "realtime",
    }
    body, content_type = render_services("xml", [service])
    root = ET.fromstring(body)
    assert content_type == "application/xml" and root.tag == "services"
    assert root.find("service/service_name").text == "噪音扰民"  # type: ignore[union-attr]
    assert root.find("service/metadata").text == "false"  # type: ignore[union-attr]

    definition = ET.fromstring(render_definition("xml", service)[0])
    assert definition.tag == "service_definition" and definition.find("attributes") is not None

    created = json.loads(render_created("json", CreatedRequest("WG202611240001"))[0])
    assert created == [{"service_request_id": "WG202611240001", "service_notice": None, "account_id": None}]

    error = GeoReportError(403, "api_key is required")
    assert json.loads(render_error("json", error)[0]) == [{"code": 403, "description": "api_key is required"}]
    errors = ET.fromstring(render_error("xml", error)[0])
    assert errors.tag == "errors" and errors.find("error/code").text == "403"  # type: ignore[union-attr]
