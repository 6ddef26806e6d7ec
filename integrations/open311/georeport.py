"""Open311 GeoReport v2: the request and response formats, in JSON and XML.

Pure formats and validation; which services exist and what a request becomes is the app's.
Spec: http://wiki.open311.org/GeoReport_v2/ . Errors are `[{"code": <status>, "description": ...}]`
(XML: `<errors><error><code/><description/></error></errors>`). Any XML we read is parsed with
defusedxml: a document with a DTD or entities is refused.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring

Format = Literal["json", "xml"]
STATUSES = ("open", "closed")
MAX_FIELD_CHARS = 200
MAX_URL_CHARS = 1000
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class GeoReportError(Exception):
    """An error the spec defines: 400, 403 or 404, with a description for the client."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


@dataclass(frozen=True, slots=True)
class Service:
    service_code: str
    service_name: str
    description: str
    group: str = ""
    keywords: str = ""
    metadata: bool = False
    type: str = "realtime"


@dataclass(frozen=True, slots=True)
class ServiceRequest:
    service_request_id: str
    status: str  # "open" | "closed"
    status_notes: str
    service_name: str
    service_code: str
    description: str
    agency_responsible: str
    requested_datetime: str
    updated_datetime: str
    expected_datetime: str | None
    address: str | None
    lat: float | None
    long: float | None
    media_url: str | None
    service_notice: str | None = None
    address_id: str | None = None
    zipcode: str | None = None


@dataclass(frozen=True, slots=True)
class CreatedRequest:
    service_request_id: str
    service_notice: str | None = None
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewRequest:
    """A validated `POST requests` body."""

    api_key: str
    service_code: str
    description: str
    lat: float | None = None
    long: float | None = None
    address_string: str = ""
    email: str = ""
    phone: str = ""
    first_name: str = ""
    last_name: str = ""
    device_id: str = ""
    account_id: str = ""
    media_url: str = ""


@dataclass(frozen=True, slots=True)
class RequestQuery:
    ids: tuple[str, ...] = ()
    service_codes: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None


# ------------------------------------------------------------------ reading requests


def read_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The submitted fields of a POST: form-encoded (the spec's), JSON object, or XML."""
    if not body:
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise GeoReportError(400, "the request body must be UTF-8") from None
    if content_type in {"application/json", "text/json"}:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise GeoReportError(400, "the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise GeoReportError(400, "the request body must be a JSON object")
        return {str(k): _scalar(k, v) for k, v in data.items()}
    if content_type in {"application/xml", "text/xml"}:
        return _read_xml(text)
    return dict(parse_qsl(text, keep_blank_values=True))


def _scalar(name: object, value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        raise GeoReportError(400, f"{name}: must be a string or a number")
    return str(value)


def _read_xml(text: str) -> dict[str, str]:
    try:
        root = safe_fromstring(text, forbid_dtd=True)
    except DefusedXmlException:
        raise GeoReportError(400, "XML with a DTD or entities is not accepted") from None
    except ET.ParseError:
        raise GeoReportError(400, "the request body is not well-formed XML") from None
    return {child.tag: (child.text or "").strip() for child in root if len(child) == 0}


def _float(form: Mapping[str, str], name: str, low: float, high: float) -> float | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise GeoReportError(400, f"{name}: not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise GeoReportError(400, f"{name}: must be between {low} and {high}")
    return value


def parse_new_request(form: Mapping[str, str], max_description: int) -> NewRequest:
    """Validate a POST. The api_key's presence is checked here, its validity by the caller."""
    api_key = form.get("api_key", "").strip()
    if not api_key:
        raise GeoReportError(403, "api_key is required")
    service_code = form.get("service_code", "").strip()
    if not service_code:
        raise GeoReportError(400, "service_code is required")
    lat, long = _float(form, "lat", -90, 90), _float(form, "long", -180, 180)
    if (lat is None) != (long is None):
        raise GeoReportError(400, "lat and long must be given together")
    address = form.get("address_string", "").strip()
    if lat is None and not address:
        raise GeoReportError(400, "a location is required: lat and long, or address_string")
    description = form.get("description", "").strip()
    if not description:
        raise GeoReportError(400, "description is required")
    if len(description) > max_description:
        raise GeoReportError(400, f"description is longer than {max_description} characters")
    values = {}
    for name in ("address_string", "email", "phone", "first_name", "last_name", "device_id", "account_id"):
        value = form.get(name, "").strip()
        if len(value) > MAX_FIELD_CHARS:
            raise GeoReportError(400, f"{name} is longer than {MAX_FIELD_CHARS} characters")
        values[name] = value
    if values["email"] and not _EMAIL.fullmatch(values["email"]):
        raise GeoReportError(400, "email is not an email address")
    media_url = form.get("media_url", "").strip()
    if media_url:
        parts = urlsplit(media_url)
        if len(media_url) > MAX_URL_CHARS or parts.scheme not in {"http", "https"} or not parts.netloc:
            raise GeoReportError(400, "media_url must be an http(s) URL")
    return NewRequest(
        api_key=api_key,
        service_code=service_code,
        description=description,
        lat=lat,
        long=long,
        media_url=media_url,
        **values,
    )


def _w3c(form: Mapping[str, str], name: str) -> datetime | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise GeoReportError(400, f"{name}: not a W3C date-time (e.g. 2026-11-24T10:00:00+08:00)") from None
    if value.tzinfo is None:
        raise GeoReportError(400, f"{name}: the date-time needs a time zone offset")
    return value


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def parse_query(query: Mapping[str, str]) -> RequestQuery:
    statuses = tuple(s.lower() for s in _csv(query.get("status", "")))
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise GeoReportError(400, f"status must be open or closed, not {', '.join(unknown)}")
    start, end = _w3c(query, "start_date"), _w3c(query, "end_date")
    if start and end and start > end:
        raise GeoReportError(400, "start_date is after end_date")
    return RequestQuery(
        ids=_csv(query.get("service_request_id", "")),
        service_codes=_csv(query.get("service_code", "")),
        statuses=statuses,
        start=start,
        end=end,
    )


# ------------------------------------------------------------------ writing responses


def _plain(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _xml_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _document(top: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(top, encoding="utf-8", xml_declaration=False)


def _xml(root: str, item: str, rows: Sequence[Mapping[str, Any]]) -> bytes:
    top = ET.Element(root)
    for row in rows:
        element = ET.SubElement(top, item)
        for name, value in row.items():
            ET.SubElement(element, name).text = _xml_value(value)
    return _document(top)


def render_list(fmt: Format, root: str, item: str, objects: Sequence[Any]) -> tuple[bytes, str]:
    rows = [_plain(o) for o in objects]
    if fmt == "xml":
        return _xml(root, item, rows), "application/xml"
    return json.dumps(rows, ensure_ascii=False).encode(), "application/json"


def render_services(fmt: Format, services: Sequence[Service]) -> tuple[bytes, str]:
    return render_list(fmt, "services", "service", services)


def render_definition(fmt: Format, service: Service) -> tuple[bytes, str]:
    definition = {"service_code": service.service_code, "attributes": []}
    if fmt == "xml":
        top = ET.Element("service_definition")
        ET.SubElement(top, "service_code").text = service.service_code
        ET.SubElement(top, "attributes")
        return _document(top), "application/xml"
    return json.dumps(definition, ensure_ascii=False).encode(), "application/json"


def render_requests(fmt: Format, requests: Sequence[ServiceRequest]) -> tuple[bytes, str]:
    return render_list(fmt, "service_requests", "request", requests)


def render_created(fmt: Format, created: CreatedRequest) -> tuple[bytes, str]:
    return render_list(fmt, "service_requests", "request", [created])


def render_error(fmt: Format, error: GeoReportError) -> tuple[bytes, str]:
    rows = [{"code": error.status, "description": error.description}]
    if fmt == "xml":
        return _xml("errors", "error", rows), "application/xml"
    return json.dumps(rows, ensure_ascii=False).encode(), "application/json"
