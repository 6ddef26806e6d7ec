"""What a resident notices: the right intent and category, emergencies flagged (and hazards
not), ticket numbers, phones and places picked up, odd input handled."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nlu.embedded import EmbeddedNlu
from nlu.heldout import load_heldout, score_heldout
from nlu.taxonomy import category_ids
from nlu.types import EMERGENCY_KINDS, INTENTS, NluBackend


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("楼上天天半夜跺脚拖桌子，吵得孩子睡不着", "noise"),
        ("工地晚上十二点还在打桩", "noise"),
        ("小区门口垃圾好几天没人收了，臭烘烘的", "sanitation"),
        ("路口好几个卖水果的三轮车摆摊，车都过不去", "street_vending"),
        ("顶楼住户在天台上加盖了一间房", "illegal_construction"),
        ("人民路上有个井盖不见了，晚上很危险", "public_facilities"),
        ("我们小区又停水了，也没有通知", "utilities"),
        ("电梯坏了一个礼拜物业也不修", "property_management"),
        ("有辆车堵在消防通道上好几天了", "traffic_parking"),
        ("楼道里好几辆电动车拉着线在充电", "fire_safety"),
        ("最近小区里老丢电瓶车，监控也是坏的", "public_security"),
        ("楼上卫生间漏水到我家，邻居不肯修", "dispute"),
        ("包工头欠我们三个月工资不给", "wage_arrears"),
        ("楼下饭馆的油烟直接往我家窗户里灌", "pollution"),
        ("小区里那棵大树歪了，感觉要倒", "greening"),
        ("小区里流浪狗太多了，晚上追着人叫", "animals"),
        ("隔壁独居的老奶奶好几天没出门了", "social_assistance"),
    ],
)
def test_typical_reports_get_their_category(embedded: EmbeddedNlu, text: str, category: str) -> None:
    r = embedded.parse_sync(text)
    assert (r.intent, r.category) == ("report_issue", category)
    assert r.category_ranking[0] == (category, r.category_confidence)
    assert len(r.category_ranking) >= 3 and r.category_ranking[0][1] >= r.category_ranking[1][1]


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("你好，在吗", "greet"),
        ("我上周报的事情处理得怎么样了", "query_status"),
        ("满意，给5分", "rate"),
        ("问题已经解决了，帮我撤销工单", "withdraw"),
        ("请问低保怎么申请", "consult"),
        ("谢谢你们", "thanks"),
        ("转人工", "human"),
        ("对的", "affirm"),
        ("不是", "deny"),
    ],
)
def test_intents(embedded: EmbeddedNlu, text: str, intent: str) -> None:
    r = embedded.parse_sync(text)
    assert r.intent == intent
    assert r.category is None and r.category_ranking == ()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("楼下着火了冒烟", "fire"),
        ("救命！厨房起火了", "fire"),
        ("家里好大一股煤气味，是不是漏气了", "gas"),
        ("楼下有人打架，有人拿刀", "police"),
        ("电梯坏了，有人被困在里面", "rescue"),
        ("有个小孩在河边玩水，旁边没有大人", "rescue"),
        ("路边电线断了掉在地上，还在冒火花", "electric"),
        ("有个老人晕倒在路边了", "medical"),
        ("大风把电线刮断了，掉在人行道上", "electric"),
        ("邻居喝了农药，口吐白沫", "medical"),
    ],
)
def test_emergencies_are_flagged_with_their_kind(embedded: EmbeddedNlu, text: str, kind: str) -> None:
    r = embedded.parse_sync(text)
    assert r.emergency and r.emergency_kind == kind
    assert kind in EMERGENCY_KINDS
    assert r.intent == "report_issue"  # an emergency still opens a (red) ticket


@pytest.mark.parametrize(
    "text",
    [
        "楼道里堆了好多纸箱怕着火",
        "去年楼下着过火，现在楼道又堆满了东西",
        "担心燃气管道老化以后会漏气",
        "上周有人在楼下打架，现在还老有人在那聚集",
        "河边没有护栏，小孩子容易掉下去",
        "烟囱天天冒黑烟，污染太严重了",
        "公交站边上全是烟头",
        "燃气灶打不着火了",
        "老鼠把电线咬断了",
    ],
)
def test_hazards_and_past_events_are_not_emergencies(embedded: EmbeddedNlu, text: str) -> None:
    r = embedded.parse_sync(text)
    assert not r.emergency and r.emergency_kind is None
    assert r.intent == "report_issue"


def test_fire_hazard_is_fire_safety_but_not_an_emergency(embedded: EmbeddedNlu) -> None:
    calm = embedded.parse_sync("楼道里堆了好多纸箱怕着火")
    burning = embedded.parse_sync("楼下着火了冒烟")
    assert calm.category == burning.category == "fire_safety"
    assert (calm.emergency, burning.emergency) == (False, True)


def test_ticket_number_in_lower_case_with_spaces_is_normalised(embedded: EmbeddedNlu) -> None:
    text = "帮我查下 wg 2026 1122 0001 到哪一步了"
    r = embedded.parse_sync(text)
    assert r.intent == "query_status"
    assert r.entity("ticket_number") == "WG202611220001"
    e = next(e for e in r.entities if e.entity == "ticket_number")
    assert text[e.start : e.end] == "wg 2026 1122 0001"


def test_phone_numbers_mobile_with_separators_and_landline(embedded: EmbeddedNlu) -> None:
    r = embedded.parse_sync("路灯坏了，联系我138-1234-5678或者座机023-88886666")
    phones = [e.value for e in r.entities if e.entity == "phone"]
    assert phones == ["13812345678", "02388886666"]
    assert embedded.parse_sync("我电话+86 139 0755 1234").entity("phone") == "13907551234"
    # a ticket number's digits are not a phone number
    assert embedded.parse_sync("WG202613912345678").entity("phone") is None


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("我家住在幸福里小区3栋，楼下天天有人烧烤", "幸福里小区3栋"),
        ("建设路88号门口的井盖坏了", "建设路88号"),
        ("西湖花园二期12栋3单元停水了", "西湖花园二期12栋3单元"),
        ("光明小区门口有人摆摊", "光明小区"),  # a place name given by the caller (grid directory)
        ("清水河社区的路灯不亮", "清水河社区"),
        ("我住在光明村五组，村口垃圾没人管", "光明村五组"),
    ],
)
def test_address_spans(embedded: EmbeddedNlu, text: str, address: str) -> None:
    r = embedded.parse_sync(text)
    assert r.entity("address") == address
    e = next(e for e in r.entities if e.entity == "address")
    assert text[e.start : e.end] == address


@pytest.mark.parametrize("text", ["小区里流浪狗太多了", "我们这条巷子到处是垃圾", "河里的水发黑", "在家里等着呢"])
def test_no_address_invented(embedded: EmbeddedNlu, text: str) -> None:
    assert embedded.parse_sync(text).entity("address") is None


@pytest.mark.parametrize(("text", "rating"), [("5分", "5"), ("打3分吧", "3"), ("非常满意", "5"), ("不满意", "2")])
def test_rating_only_when_rating(embedded: EmbeddedNlu, text: str, rating: str) -> None:
    r = embedded.parse_sync(text)
    assert r.intent == "rate"
    assert r.entity("rating") == rating
    assert embedded.parse_sync("5栋楼下的路灯坏了").entity("rating") is None


@pytest.mark.parametrize("text", ["", "   ", "😀😀😀", "？？？！！！", "……", "\n\t"])
def test_no_content_is_a_zero_confidence_greeting(embedded: EmbeddedNlu, text: str) -> None:
    r = embedded.parse_sync(text)
    assert (r.intent, r.confidence, r.category, r.emergency, r.entities) == ("greet", 0.0, None, False, ())


def test_ten_thousand_characters_stay_fast(embedded: EmbeddedNlu) -> None:
    text = "楼下广场舞太吵了，每天晚上放到十点。" * 560  # ~10,000 characters
    embedded.parse_sync(text)
    started = time.perf_counter()
    r = embedded.parse_sync(text)
    assert time.perf_counter() - started < 0.05
    assert r.category == "noise" and r.text == text


def test_mixed_scripts(embedded: EmbeddedNlu) -> None:
    r = embedded.parse_sync("Hello 网格员, the 路灯 at 建设路 is broken 坏了 😡 WG202611220001")
    assert r.intent in INTENTS
    assert r.entity("ticket_number") == "WG202611220001"
    full_width = embedded.parse_sync("ＷＧ２０２６１１２２０００１　进度咋样")
    assert full_width.intent == "query_status"


async def test_async_parse_and_protocol(embedded: EmbeddedNlu) -> None:
    backend: NluBackend = embedded
    assert backend.name == "embedded" and backend.ready
    r = await backend.parse("路灯坏了")
    assert r.backend == "embedded" and r.category == "public_facilities"


def test_every_category_is_reachable(embedded: EmbeddedNlu) -> None:
    assert set(embedded.category_model.classes) == set(category_ids())


def test_cache_is_reused_and_keyed_by_data(nlu_cache: Path, embedded: EmbeddedNlu) -> None:
    started = time.perf_counter()
    again = EmbeddedNlu(cache_dir=nlu_cache)
    assert time.perf_counter() - started < 1.0  # loaded, not trained
    assert again.parse_sync("路灯坏了") == embedded.parse_sync("路灯坏了")
    assert len([p for p in nlu_cache.iterdir() if p.is_dir()]) == 1


async def test_heldout_scores_do_not_regress(embedded: EmbeddedNlu) -> None:
    score = await score_heldout(embedded, load_heldout())
    assert score.intent_accuracy >= 0.95
    assert score.category_accuracy >= 0.85
    assert score.emergency_recall >= 0.95 and score.emergency_kind_accuracy >= 0.9
    assert score.false_alarm_rate <= 0.05


@pytest.mark.parametrize("text", ["asdfgh qwerty", "xyz", "的的的", "啊啊啊啊"])
def test_gibberish_is_not_understood(embedded: EmbeddedNlu, text: str) -> None:
    assert embedded.parse_sync(text).confidence < 0.3


@pytest.mark.parametrize("text", ["行吧", "好的", "嗯嗯嗯", "hello", "3q"])
def test_short_familiar_replies_keep_their_confidence(embedded: EmbeddedNlu, text: str) -> None:
    assert embedded.parse_sync(text).confidence >= 0.5
