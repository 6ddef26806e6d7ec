"""The OpenAPI 3 document of every endpoint the service offers to machines, served at /openapi.json.

Covered: the Rasa-format REST channel, the SMS webhooks, Open311 GeoReport v2, health,
readiness and metrics. Not covered: the pages people use (chat page, admin and hotline
console), which sit behind a browser session. `tests/test_openapi.py` runs schemathesis
against the running app with this document, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.app import SERVICES
from integrations.open311.georeport import MAX_FIELD_CHARS, MAX_URL_CHARS
from integrations.rest import MAX_MESSAGE_ID_CHARS, MAX_SENDER_CHARS
from integrations.sms.inbound import MAX_TEXT_CHARS
from integrations.sms.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER

JSON = "application/json"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _text(description: str) -> Schema:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def _string(max_length: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", **extra}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def _array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


TOO_LARGE = _text("the request body is larger than service.max_body_bytes")
FORMAT_PARAM: Schema = {
    "name": "format",
    "in": "path",
    "required": True,
    "description": "json or xml",
    "schema": {"type": "string", "enum": ["json", "xml"]},
}


def _open311(schema: Schema, description: str) -> Schema:
    return {
        "description": description,
        "content": {JSON: {"schema": schema}, "application/xml": {"schema": {"type": "string"}}},
    }


def _open311_error(description: str) -> Schema:
    return _open311(_ref("Open311Errors"), description)


SCHEMAS: dict[str, Schema] = {
    "RestMessage": {
        "type": "object",
        "required": ["sender", "message"],
        "properties": {
            "sender": _string(MAX_SENDER_CHARS, minLength=1, description="the conversation's id in the caller's app"),
            "message": _string(description="what the user wrote"),
            "message_id": _string(MAX_MESSAGE_ID_CHARS, description="makes a retried request idempotent"),
            "metadata": {"type": "object"},
        },
    },
    "RestReply": {
        "type": "object",
        "required": ["recipient_id", "text"],
        "properties": {"recipient_id": {"type": "string"}, "text": {"type": "string"}},
    },
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    },
    "FieldError": {
        "type": "object",
        "required": ["error", "field", "message"],
        "properties": {
            "error": {"type": "string"},
            "field": {"type": "string", "description": "the field at fault (signature: the signature headers)"},
            "message": {"type": "string"},
        },
    },
    "InboundSms": {
        "type": "object",
        "required": ["message_id", "from", "text"],
        "properties": {
            "message_id": _string(128, minLength=1, description="the provider's id; a retry repeats it"),
            "from": _string(32, description="the sender's mainland mobile number (+86 accepted)"),
            "to": _string(32, description="the service number it was sent to"),
            "text": _string(MAX_TEXT_CHARS),
            "received_at": _string(format="date-time"),
        },
    },
    "SmsAccepted": {
        "type": "object",
        "required": ["status", "message_id"],
        "properties": {"status": {"type": "string", "enum": ["accepted"]}, "message_id": {"type": "string"}},
    },
    "TencentReply": {
        "type": "object",
        "required": ["mobile", "nationcode", "text", "time"],
        "properties": {
            "extend": {"type": "string"},
            "mobile": {"type": "string"},
            "nationcode": {"type": "string"},
            "sign": {"type": "string"},
            "text": {"type": "string"},
            "time": {"type": "integer"},
        },
    },
    "TencentResult": {
        "type": "object",
        "required": ["result", "errmsg"],
        "properties": {"result": {"type": "integer"}, "errmsg": {"type": "string"}},
    },
    "Open311Service": {
        "type": "object",
        "required": ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"],
        "properties": {
            "service_code": {"type": "string"},
            "service_name": {"type": "string"},
            "description": {"type": "string"},
            "metadata": {"type": "boolean"},
            "type": {"type": "string", "enum": ["realtime", "batch", "blackbox"]},
            "keywords": {"type": "string"},
            "group": {"type": "string"},
        },
    },
    "Open311ServiceDefinition": {
        "type": "object",
        "required": ["service_code", "attributes"],
        "properties": {"service_code": {"type": "string"}, "attributes": {"type": "array", "maxItems": 0}},
    },
    "Open311NewRequest": {
        "type": "object",
        "required": ["api_key", "service_code", "description"],
        "description": "a location is required too: lat and long together, or address_string",
        "properties": {
            "api_key": {"type": "string"},
            "service_code": {"type": "string"},
            "description": _string(4000),
            "lat": {"type": "number", "minimum": -90, "maximum": 90},
            "long": {"type": "number", "minimum": -180, "maximum": 180},
            "address_string": _string(MAX_FIELD_CHARS),
            "email": _string(MAX_FIELD_CHARS),
            "phone": _string(MAX_FIELD_CHARS),
            "first_name": _string(MAX_FIELD_CHARS),
            "last_name": _string(MAX_FIELD_CHARS),
            "device_id": _string(MAX_FIELD_CHARS),
            "account_id": _string(MAX_FIELD_CHARS),
            "media_url": _string(MAX_URL_CHARS, format="uri"),
        },
    },
    "Open311Created": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["service_request_id"],
            "properties": {
                "service_request_id": {"type": "string"},
                "service_notice": _nullable({"type": "string"}),
                "account_id": _nullable({"type": "string"}),
            },
        },
    },
    "Open311Request": {
        "type": "object",
        "required": ["service_request_id", "status", "service_code", "requested_datetime"],
        "properties": {
            "service_request_id": {"type": "string"},
            "status": {"type": "string", "enum": ["open", "closed"]},
            "status_notes": {"type": "string"},
            "service_name": {"type": "string"},
            "service_code": {"type": "string"},
            "description": {"type": "string"},
            "agency_responsible": {"type": "string"},
            "service_notice": _nullable({"type": "string"}),
            "requested_datetime": {"type": "string", "format": "date-time"},
            "updated_datetime": {"type": "string", "format": "date-time"},
            "expected_datetime": _nullable({"type": "string", "format": "date-time"}),
            "address": _nullable({"type": "string"}),
            "address_id": _nullable({"type": "string"}),
            "zipcode": _nullable({"type": "string"}),
            "lat": _nullable({"type": "number"}),
            "long": _nullable({"type": "number"}),
            "media_url": _nullable({"type": "string"}),
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "not_ready"]},
            "checks": {"type": "object", "additionalProperties": {"type": "boolean"}},
            "flow_version": {"type": "string"},
            "nlu": {"type": "string"},
        },
    },
    "Open311Errors": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["code", "description"],
            "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
        },
    },
}

SIGNATURE_PARAMS: list[Schema] = [
    {
        "name": TIMESTAMP_HEADER,
        "in": "header",
        "required": True,
        "description": "Unix time in seconds; must be within sms.max_clock_skew of the service's clock",
        "schema": {"type": "string"},
    },
    {
        "name": SIGNATURE_HEADER,
        "in": "header",
        "required": True,
        "description": "sha256=<hex HMAC-SHA256(sms.signing_secret, timestamp + '.' + body)>",
        "schema": {"type": "string"},
    },
]

PATHS: dict[str, Schema] = {
    "/webhooks/rest/webhook": {
        "post": {
            "summary": "Send a message to the bot (Rasa REST channel format)",
            "tags": ["channels"],
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("RestMessage")}}},
            "responses": {
                "200": _json({"type": "array", "items": _ref("RestReply")}, "the bot's replies"),
                "400": _json(_ref("Error"), "the body is not a valid message"),
                "413": TOO_LARGE,
            },
        }
    },
    "/webhooks/rest/": {
        "get": {
            "summary": "REST channel health",
            "tags": ["channels"],
            "responses": {
                "200": _json({"type": "object", "properties": {"status": {"type": "string"}}}, "the channel is up")
            },
        }
    },
    "/sms/inbound": {
        "post": {
            "summary": "An SMS a resident sent to the unified number (provider-neutral, signed)",
            "tags": ["sms"],
            "parameters": SIGNATURE_PARAMS,
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("InboundSms")}}},
            "responses": {
                "200": _json(_ref("SmsAccepted"), "accepted; replies go out as SMS through the gateway"),
                "400": _json(_ref("FieldError"), "a field is wrong; `field` names it"),
                "403": _json(_ref("FieldError"), "missing, wrong or stale signature"),
                "413": TOO_LARGE,
            },
        }
    },
    "/sms/tencent/reply": {
        "post": {
            "summary": "Tencent Cloud SMS reply callback (回复回调)",
            "tags": ["sms"],
            "parameters": [
                {
                    "name": "token",
                    "in": "query",
                    "required": True,
                    "description": "the secret configured as sms.tencent_token",
                    "schema": {"type": "string"},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": {"anyOf": [_ref("TencentReply"), _array(_ref("TencentReply"))]}}},
            },
            "responses": {
                "200": _json(_ref("TencentResult"), "accepted (result 0)"),
                "400": _json(_ref("TencentResult"), "a field is wrong"),
                "403": _json(_ref("TencentResult"), "wrong token"),
                "413": TOO_LARGE,
            },
        }
    },
    "/open311/v2/services.{format}": {
        "get": {
            "summary": "GeoReport v2: the service list (our report categories)",
            "tags": ["open311"],
            "parameters": [FORMAT_PARAM],
            "responses": {
                "200": _open311({"type": "array", "items": _ref("Open311Service")}, "the services"),
                "404": _open311_error("not a format we serve"),
            },
        }
    },
    "/open311/v2/services/{service_code}.{format}": {
        "get": {
            "summary": "GeoReport v2: a service definition",
            "tags": ["open311"],
            "parameters": [
                {
                    "name": "service_code",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[a-z_]{1,40}$"},
                },
                FORMAT_PARAM,
            ],
            "responses": {
                "200": _open311(_ref("Open311ServiceDefinition"), "the definition (no extra attributes)"),
                "404": _open311_error("no such service"),
            },
        }
    },
    "/open311/v2/requests.{format}": {
        "get": {
            "summary": "GeoReport v2: service requests filed through Open311",
            "tags": ["open311"],
            "parameters": [
                FORMAT_PARAM,
                *[
                    {"name": name, "in": "query", "required": False, "description": text, "schema": {"type": "string"}}
                    for name, text in (
                        ("service_request_id", "comma-separated ids; when given, the other filters are ignored"),
                        ("service_code", "comma-separated service codes"),
                        ("status", "open, closed, or both comma-separated"),
                        ("start_date", "W3C date-time; default end_date minus open311.default_days"),
                        ("end_date", "W3C date-time; default now"),
                    )
                ],
            ],
            "responses": {
                "200": _open311({"type": "array", "items": _ref("Open311Request")}, "matching requests, newest first"),
                "400": _open311_error("a filter is invalid"),
                "404": _open311_error("not a format we serve"),
            },
        },
        "post": {
            "summary": "GeoReport v2: file a service request (needs api_key)",
            "tags": ["open311"],
            "parameters": [FORMAT_PARAM],
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {"schema": _ref("Open311NewRequest")},
                    JSON: {"schema": _ref("Open311NewRequest")},
                },
            },
            "responses": {
                "200": _open311(_ref("Open311Created"), "the new request's id"),
                "400": _open311_error("unknown service_code, no location, description too long, bad field"),
                "403": _open311_error("api_key missing or not valid"),
                "404": _open311_error("not a format we serve"),
                "413": TOO_LARGE,
            },
        },
    },
    "/open311/v2/requests/{service_request_id}.{format}": {
        "get": {
            "summary": "GeoReport v2: one service request",
            "tags": ["open311"],
            "parameters": [
                {
                    "name": "service_request_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{1,32}$"},
                },
                FORMAT_PARAM,
            ],
            "responses": {
                "200": _open311({"type": "array", "items": _ref("Open311Request"), "maxItems": 1}, "the request"),
                "404": _open311_error("no such request (or not filed through Open311)"),
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness",
            "tags": ["operations"],
            "responses": {"200": _json({"type": "object", "properties": {"status": {"type": "string"}}}, "alive")},
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: Redis, the flow and the NLU",
            "tags": ["operations"],
            "responses": {
                "200": _json(_ref("Readiness"), "ready"),
                "503": _json(_ref("Readiness"), "not ready; `checks` shows what failed"),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "tags": ["operations"],
            "responses": {"200": _text("Prometheus text exposition format")},
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "tags": ["operations"],
            "responses": {"200": _json({"type": "object"}, "the OpenAPI document")},
        }
    },
}


def document(server_url: str) -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gridbot",
            "version": "1",
            "description": "Intake for grid-based social governance (网格化服务管理): chat, SMS and Open311 "
            "reports become numbered tickets in one queue.",
        },
        "servers": [{"url": server_url}],
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }


def setup(app: web.Application) -> None:
    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document(request.app[SERVICES].config.service.public_url))

    app.router.add_get("/openapi.json", openapi)
