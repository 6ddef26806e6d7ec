"""Emergency detection: danger to life or property right now. Favours recall.

Rules, clause by clause (a clause ends at ，。！？；,.!?; or a line break):

1. a danger pattern of some kind matches the clause (fire, gas, electric, rescue, police,
   medical; see _DANGER), after harmless look-alikes are blanked out (打不着火, 特困人员);
2. the clause is an emergency unless it, or a short qualifier right after it ("，经常有"),
   only speaks of a risk, the past or a habit (怕/担心/万一/隐患/容易/昨天/上次/经常/天天 ...:
   _NOT_NOW) - and an explicit "now" cue (现在/正在/刚刚/快来/救命 ...: _NOW) overrides that;
3. smoke alone is not a fire when the message names a usual source of smoke (烧烤, 秸秆,
   烟囱, 工厂 ...): that is pollution. Flames, 着火 and 起火 are always fire.

So "楼道里堆了好多纸箱怕着火" is not an emergency, "楼下着火了冒烟" is, and so is
"昨天的火又烧起来了，快来". The first kind in _DANGER order wins: what the resident must
do first (fire before medical: 119 also sends help). Pure and cheap (~20 us for a chat
message), so every backend, Rasa included, can call it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nlu.types import EMERGENCY_KINDS

_FIRE = re.compile(
    r"着火|起火|失火|火灾|烧起来|烧着了|火很大|火好大|大火|火势|火苗|冒火(?!花)|爆炸|炸了|(电瓶|电动车|电池).{0,4}(自燃|烧)"
)
_SMOKE = re.compile(r"(冒(黑|白|浓)?烟|浓烟|黑烟|烟很大|烟好大|好多烟|全是烟|烟雾)(?![头蒂灰])")
_SMOKE_SOURCES = re.compile(r"烧烤|油烟|秸秆|稻草|树叶|烧垃圾|焚烧|烟囱|工厂|厂子|砖厂|化工|锅炉|烧纸|烧香|抽烟|吸烟")
_DANGER: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("fire", _FIRE),
    ("fire", _SMOKE),
    (
        "gas",
        re.compile(
            r"(煤气|燃气|天然气|液化气|瓦斯)(味|.{0,8}(泄漏|泄露|漏气|漏了|在漏|中毒))|"
            r"闻到.{0,8}(煤气|燃气|天然气|液化气)|漏气了|气罐.{0,4}漏"
        ),
    ),
    (
        "electric",
        re.compile(
            r"(电线|高压线|电缆|线缆)(断了)?.{0,6}(掉|落|垂|耷拉|拖)(在|到|下|了)|(高压线|电线杆)(断了|倒了)|"
            r"(电线|高压线|电缆).{0,4}(刮|吹|砸|撞|压)断|"
            r"(电线|电箱|电表箱|电缆|插座|配电箱).{0,6}(冒火花|打火|着火|起火|冒烟)|漏电|触电|电到人"
        ),
    ),
    (
        "rescue",
        re.compile(
            r"被困|电梯困人|困人了|困在|关在(电梯|里面)|卡在电梯|电梯里出不来|出不来了|"
            r"(掉|摔|跌|落)(进|到|入)?.{0,3}(河|江|湖|水塘|池塘|水库|井|坑|沟)里?|落水|溺水|"
            r"(小孩|孩子|小朋友|娃|小娃).{0,10}(河边|江边|湖边|水边|池塘|水塘|水库|井边|井口|窨井|深坑|玩水)|"
            r"(房子|墙|楼|棚|屋顶).{0,4}(?<![快要])(塌了|倒塌|坍塌)|压在下面|埋在|跳楼|站在楼顶|"
            r"要跳(楼|河|下去)|轻生|自杀|想不开"
        ),
    ),
    (
        "police",
        re.compile(
            r"打架|斗殴|打起来|打人|砍人|持刀|拿刀|拿着刀|动刀|抢劫|抢包|抢东西|行凶|杀人|绑架|"
            r"撬.{0,6}(锁|门)|入室|砸门|家暴|要弄死|要杀|威胁.{0,4}(要|杀)|闯进"
        ),
    ),
    (
        "medical",
        re.compile(
            r"晕倒|昏倒|晕过去|昏过去|昏迷|不省人事|叫不醒|没(有)?(了)?呼吸|心脏病|吐血|"
            r"(流|出)了?(好多|很多)?血|受了?重伤|伤得很重|(有人|好几个人|好多人)受伤|"
            r"摔倒.{0,6}(起不来|爬不起来|不动)|倒在地上|抽搐|中毒|快不行了|割腕|喘不上气|"
            r"(喝|吃|吞)了?.{0,4}(农药|老鼠药|安眠药)|口吐白沫|服毒"
        ),
    ),
)
# harmless phrases that contain a danger word
_BENIGN = re.compile(r"打不着火|点不着火|打着火|点火|火锅|火车|火腿|上火|发火|火化|特困|困难|打架子鼓")
_NOT_NOW = re.compile(
    r"怕|担心|害怕会|万一|隐患|容易|会不会|可能会|以防|防止|预防|以后|将来|一旦|如果|要是|曾经|以前|之前|上次|"
    r"去年|前年|上个月|上周|昨天|前天|前几天|灭了|扑灭|没事了|已经处理|处理完|平时|经常|老是|老有|总是|"
    r"天天|每天|每次|每晚|好几次|好多年|好几年|多年|演练|培训|检查|宣传|咨询|请问|怎么办理|遭了|烧毁|"
    r"烧没了|发生过|因为|为了|就打人|打工|工伤|打药|杀虫"
)
_NOW = re.compile(r"(?<!到)现在|正在|刚刚|刚才|马上|快来|快点|赶紧|赶快|救命|救救|紧急|着急|急死|还在(烧|冒|打|漏)")
_CLAUSE = re.compile(r"[，。！？；,.!?;\n]+")
_QUALIFIER_CHARS = 6  # a following clause this short qualifies the one before ("，经常有")


@dataclass(frozen=True, slots=True)
class Emergency:
    kind: str  # one of nlu.types.EMERGENCY_KINDS
    evidence: str  # the clause that triggered it


def detect_emergency(text: str) -> Emergency | None:
    """The emergency in text, or None. Looks at the first 2,000 characters."""
    text = _BENIGN.sub(lambda m: " " * len(m.group()), text[:2000])
    candidates = [(kind, pattern) for kind, pattern in _DANGER if pattern.search(text)]
    if not candidates:
        return None
    clauses = [c.strip() for c in _CLAUSE.split(text) if c.strip()]
    smoke_source = _SMOKE_SOURCES.search(text) is not None
    for kind, pattern in candidates:
        if pattern is _SMOKE and smoke_source:
            continue
        for i, clause in enumerate(clauses):
            if not pattern.search(clause):
                continue
            following = clauses[i + 1] if i + 1 < len(clauses) else ""
            context = clause + ("，" + following if len(following) <= _QUALIFIER_CHARS else "")
            if _NOT_NOW.search(context) and not _NOW.search(context):
                continue
            return Emergency(kind=kind, evidence=clause)
    return None


assert {k for k, _ in _DANGER} <= set(EMERGENCY_KINDS)
