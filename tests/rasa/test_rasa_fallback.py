"""RasaHttpNlu when Rasa cannot answer: the embedded backend answers instead, on_fallback is told why.

These need no Rasa install: the failing "servers" are loopback aiohttp apps (or a closed port), and
the fallback is the real embedded backend. The mapping of a Rasa answer is checked on a literal
/model/parse response here and against the real server in test_rasa_server.py.
"""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import pytest
from aiohttp import web

from nlu.rasa_http import RasaHttpNlu, result_from_rasa
from nlu.types import NluBackend

TEXT = "小区门口的垃圾三天没人收了，臭得很"


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


class Calls:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)


def app_with(handler) -> web.Application:
    app = web.Application()
    app.router.add_post("/model/parse", handler)
    app.router.add_get("/status", handler)
    return app


async def test_timeout_falls_back_within_budget(aiohttp_server, nlu: NluBackend) -> None:
    hits = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        await asyncio.sleep(2.0)  # far past the 200 ms budget
        return web.json_response({"intent": {"name": "greet", "confidence": 1.0}})

    server = await aiohttp_server(app_with(slow))
    calls = Calls()
    async with RasaHttpNlu(str(server.make_url("")), fallback=nlu, timeout_ms=200, on_fallback=calls) as rasa:
        t0 = time.perf_counter()
        result = await rasa.parse(TEXT)
        elapsed = time.perf_counter() - t0
        assert calls.reasons == ["timeout"]
        assert elapsed < 1.0, elapsed
        assert result == await nlu.parse(TEXT)  # exactly the embedded answer
        assert result.backend == nlu.name
        assert not rasa.ready
        assert rasa.fallback_count == 1 and rasa.last_fallback_reason == "timeout"

        # within the cooldown the hung server is not asked again: no second 200 ms wait
        t0 = time.perf_counter()
        again = await rasa.parse(TEXT)
        assert time.perf_counter() - t0 < 0.15
        assert again == result
        assert calls.reasons == ["timeout", "circuit_open"]
        assert hits == 1


async def test_closed_port_falls_back(nlu: NluBackend) -> None:
    calls = Calls()
    async with RasaHttpNlu(closed_port_url(), fallback=nlu, on_fallback=calls, cooldown_s=0) as rasa:
        assert await rasa.check() is False
        assert not rasa.ready
        for _ in range(2):  # cooldown off: each message tries Rasa and falls back again
            result = await rasa.parse(TEXT)
            assert result == await nlu.parse(TEXT)
        assert calls.reasons == ["connection", "connection"]


async def test_emergency_survives_rasa_being_down(nlu: NluBackend) -> None:
    text = "楼下着火了！好大的烟，快来人"
    async with RasaHttpNlu(closed_port_url(), fallback=nlu) as rasa:
        result = await rasa.parse(text)
    assert result.emergency
    assert result.emergency_kind == "fire"


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, "Internal Server Error", "http_status"),
        (200, "<html>not json</html>", "bad_response"),
        (200, '["a", "list"]', "bad_response"),
        (200, '{"intent": {"name": "greet", "confidence": "high"}}', "bad_response"),
        # what Rasa answers when there is nothing to classify
        (200, '{"text": "", "intent": {"name": null, "confidence": 0.0}, "entities": []}', "no_intent"),
    ],
)
async def test_bad_answers_fall_back(aiohttp_server, nlu: NluBackend, status: int, body: str, reason: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type="application/json")

    server = await aiohttp_server(app_with(handler))
    calls = Calls()
    async with RasaHttpNlu(str(server.make_url("")), fallback=nlu, on_fallback=calls) as rasa:
        result = await rasa.parse(TEXT)
    assert calls.reasons == [reason]
    assert result == await nlu.parse(TEXT)


async def test_failing_counter_callback_does_not_break_parsing(nlu: NluBackend) -> None:
    def broken(reason: str) -> None:
        raise RuntimeError("metrics are down")

    async with RasaHttpNlu(closed_port_url(), fallback=nlu, on_fallback=broken) as rasa:
        assert (await rasa.parse(TEXT)).intent == (await nlu.parse(TEXT)).intent


async def test_empty_text_goes_to_the_fallback_without_counting(nlu: NluBackend) -> None:
    calls = Calls()
    async with RasaHttpNlu(closed_port_url(), fallback=nlu, on_fallback=calls) as rasa:
        for text in ("", "   \n"):
            assert await rasa.parse(text) == await nlu.parse(text)
    assert calls.reasons == []


async def test_close_only_closes_its_own_session(nlu: NluBackend) -> None:
    async with aiohttp.ClientSession() as session:
        rasa = RasaHttpNlu(closed_port_url(), fallback=nlu, session=session)
        await rasa.parse(TEXT)
        await rasa.close()
        assert not session.closed
    own = RasaHttpNlu(closed_port_url(), fallback=nlu)
    await own.parse(TEXT)
    own_session = own._session
    assert own_session is not None
    await own.close()
    assert own_session.closed
    await own.close()  # idempotent


def test_mapping_of_a_rasa_answer() -> None:
    text = "幸福里小区楼上天天半夜装修，吵死了，我电话13812345678"
    p = text.index("138")
    answer = {
        "text": text,
        "intent": {"name": "report_issue+noise", "confidence": 0.5},
        "entities": [
            {"entity": "phone", "start": p - 1, "end": p + 11, "value": "话13812345678", "extractor": "DIETClassifier"},
            {"entity": "phone", "start": p, "end": p + 11, "value": "13812345678", "extractor": "RegexEntityExtractor"},
            {"entity": "address", "start": 0, "end": 5, "value": "幸福里小区", "extractor": "DIETClassifier"},
            {"entity": "address", "start": 40, "end": 45, "value": "out of range", "extractor": "DIETClassifier"},
        ],
        "intent_ranking": [
            {"name": "report_issue+noise", "confidence": 0.5},
            {"name": "greet", "confidence": 0.3},
            {"name": "report_issue+illegal_construction", "confidence": 0.2},
        ],
    }
    r = result_from_rasa(text, answer)
    assert (r.intent, r.category, r.backend) == ("report_issue", "noise", "rasa")
    assert r.confidence == pytest.approx(0.7)  # P(report_issue) sums over its categories
    assert r.category_ranking == (
        ("noise", pytest.approx(0.5 / 0.7, abs=1e-5)),
        ("illegal_construction", pytest.approx(0.2 / 0.7, abs=1e-5)),
    )
    assert r.category_confidence == pytest.approx(0.5 / 0.7, abs=1e-5)
    assert [(e.entity, e.value, e.start, e.end) for e in r.entities] == [
        ("address", "幸福里小区", 0, 5),
        ("phone", "13812345678", p, p + 11),  # the regex match wins over DIET's overlapping guess
    ]
    assert r.emergency is False  # Rasa has no emergency flag; RasaHttpNlu takes it from the fallback


def test_mapping_sums_categories_against_a_single_other_intent() -> None:
    # no single category beats "consult", but together the reports do
    answer = {
        "intent": {"name": "consult", "confidence": 0.4},
        "intent_ranking": [
            {"name": "consult", "confidence": 0.4},
            {"name": "report_issue+utilities", "confidence": 0.35},
            {"name": "report_issue+property_management", "confidence": 0.25},
        ],
    }
    r = result_from_rasa("停水了找谁", answer)
    assert (r.intent, r.category) == ("report_issue", "utilities")
    other = result_from_rasa("你好", {"intent": {"name": "greet", "confidence": 0.9}})
    assert (other.intent, other.category, other.category_ranking) == ("greet", None, ())
