"""RasaHttpNlu against the real Rasa server (``make rasa-setup rasa-train`` first; CI does)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from nlu.rasa_http import RasaHttpNlu
from nlu.types import NluBackend

pytestmark = pytest.mark.rasa


class Calls(list[str]):
    def __call__(self, reason: str) -> None:
        self.append(reason)


# messages written for this test (not in nlu/data), the way residents type them
REPORTS = [
    ("楼上那家天天半夜两点还在剁东西，咚咚咚的根本睡不着", "noise"),
    ("小区东门那堆垃圾都放一个礼拜了没人清，苍蝇乱飞", "sanitation"),
    ("楼道里好几辆电瓶车在拉电线充电，太危险了", "fire_safety"),
    ("我们这停水两天了，也没个通知", "utilities"),
]
OTHERS = [
    ("你好，在吗", "greet"),
    ("好的谢谢你们", "thanks"),
    ("我要找人工客服", "human"),
]


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
async def rasa(rasa_url: str, nlu: NluBackend, calls: Calls) -> AsyncIterator[RasaHttpNlu]:
    # a generous budget: a loaded CI machine must not turn these into fallback tests
    backend = RasaHttpNlu(rasa_url, fallback=nlu, on_fallback=calls, timeout_ms=2000)
    yield backend
    await backend.close()


async def test_ready_after_status(rasa: RasaHttpNlu) -> None:
    assert not rasa.ready
    assert await rasa.check()
    assert rasa.ready


@pytest.mark.parametrize(("text", "category"), REPORTS)
async def test_reports_get_intent_and_category_from_rasa(
    rasa: RasaHttpNlu, calls: Calls, text: str, category: str
) -> None:
    result = await rasa.parse(text)
    assert result.backend == "rasa", calls
    assert (result.intent, result.category) == ("report_issue", category), result
    assert 0 < result.category_confidence <= 1
    assert result.category_ranking[0] == (category, result.category_confidence)
    assert rasa.ready
    assert calls == []


@pytest.mark.parametrize(("text", "intent"), OTHERS)
async def test_other_intents(rasa: RasaHttpNlu, text: str, intent: str) -> None:
    result = await rasa.parse(text)
    assert (result.backend, result.intent, result.category) == ("rasa", intent, None), result
    assert result.category_ranking == ()


async def test_ticket_and_phone_entities_with_offsets(rasa: RasaHttpNlu) -> None:
    text = "帮我查下工单 wg 2026 1120 0042 的进度，我电话139 1234 5678"
    result = await rasa.parse(text)
    assert result.backend == "rasa"
    assert result.intent == "query_status", result
    by_name = {e.entity: e for e in result.entities}
    for name in ("ticket_number", "phone"):
        e = by_name[name]
        assert text[e.start : e.end] == e.value, e
    assert "2026" in text[by_name["ticket_number"].start : by_name["ticket_number"].end]
    assert text[by_name["phone"].start : by_name["phone"].end].replace(" ", "") == "13912345678"


async def test_emergency_comes_from_the_embedded_backend(rasa: RasaHttpNlu, nlu: NluBackend) -> None:
    text = "三楼厨房着火了，烟很大，有人在里面"
    result = await rasa.parse(text)
    local = await nlu.parse(text)
    assert result.backend == "rasa"
    assert result.emergency and local.emergency
    assert result.emergency_kind == local.emergency_kind == "fire"
    assert result.intent == "report_issue"


async def test_nothing_to_classify_and_very_long_messages(rasa: RasaHttpNlu, nlu: NluBackend, calls: Calls) -> None:
    for text in ("", "🙂🙂🙂", "？？？"):
        assert await rasa.parse(text) == await nlu.parse(text)
    long = "楼下烧烤店油烟太大了，熏得窗户都不敢开。" * 500  # 10,000 characters
    t0 = time.perf_counter()
    result = await rasa.parse(long)
    assert time.perf_counter() - t0 < 3.0
    assert result.text == long
    assert result.intent == "report_issue"
    assert calls == []


async def test_tight_budget_against_the_real_server_falls_back(rasa_url: str, nlu: NluBackend) -> None:
    # 1 ms is less than any real parse takes: the real server is "too slow", the embedded one answers
    calls = Calls()
    async with RasaHttpNlu(rasa_url, fallback=nlu, timeout_ms=1, on_fallback=calls) as tight:
        text = REPORTS[0][0]
        assert await tight.parse(text) == await nlu.parse(text)
    assert calls == ["timeout"]
