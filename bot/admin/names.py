"""Display names for ids on console pages, from the current flow (an id it no longer knows shows as is)."""

from __future__ import annotations

from collections.abc import Callable

from bot.app import Services
from flows.model import ACTORS, CARDS, EVENT_NAMES

ACTION_NAMES = {
    "created": "居民上报",
    "new": "居民上报",
    "assign": "指派",
    "notify": "发送通知",
    "set_deadline": "设定期限",
    "set_colour": "调整颜色",
    "card": "亮牌",
    "escalate": "上报",
    "reopen": "重新打开",
    "close": "结案",
    "note": "备注",
    "media_failed": "照片下载失败",
    "timer": "定时检查",
}
CHANNEL_NAMES = {
    "rest": "网页/接口",
    "wechat_mp": "微信公众号",
    "wecom": "企业微信",
    "sms": "短信",
    "hotline": "热线",
    "open311": "Open311",
    "cli": "命令行",
}


class Names:
    def __init__(self, services: Services) -> None:
        self._services = services

    def _try(self, fn: Callable[[str], str], key: str | None) -> str:
        if not key:
            return "—"
        try:
            return fn(key)
        except (KeyError, StopIteration):
            return key

    def colour(self, key: str | None) -> str:
        return self._try(self._services.flows.flow.colour_name, key)

    def status(self, key: str | None) -> str:
        return self._try(self._services.flows.flow.status_name, key)

    def level(self, key: str | None) -> str:
        return self._try(self._services.flows.flow.level_name, key)

    def unit(self, key: str | None) -> str:
        return self._try(self._services.flows.flow.unit_name, key)

    def category(self, key: str | None) -> str:
        return self._services.tickets.category_name(key) if key else "—"

    def channel(self, key: str) -> str:
        return CHANNEL_NAMES.get(key, key)

    def card(self, key: str | None) -> str:
        return CARDS.get(key or "", "")

    def kind(self, key: str) -> str:
        if key.startswith("timer:"):
            rule = self._services.flows.flow.rule(key.removeprefix("timer:"))
            return f"定时规则「{rule.name if rule else key.removeprefix('timer:')}」"
        return EVENT_NAMES.get(key) or ACTION_NAMES.get(key, key)

    def actor(self, key: str) -> str:
        base, _, who = key.partition(":")
        name = ACTORS.get(base, base)
        return f"{name} {who}" if who else name
