"""Configuration: one YAML file an operator edits, every key overridable from the environment.

`GRIDBOT_<SECTION>__<KEY>` overrides `<section>.<key>` (e.g. `GRIDBOT_REDIS__URL`). Secrets
(tokens, keys, app secrets) are accepted only from the environment: a secret written into
the YAML file is refused, so it never ends up in version control.
"""

from __future__ import annotations

import dataclasses
import os
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml
from redis.asyncio import BlockingConnectionPool, Redis

ENV_PREFIX = "GRIDBOT_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A configuration value is missing, of the wrong type, or in the wrong place."""


def _secret(default: str = "") -> Any:
    return field(default=default, metadata={"secret": True})


def _between(default: float, low: float, high: float) -> Any:
    """A number that must lie strictly between `low` and `high` (checked when loading)."""
    return field(default=default, metadata={"between": (low, high)})


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    # the address residents' and workers' links point at (task pages, chat page)
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = 65536
    log_level: str = "INFO"
    # HMAC key of the workers' task-page links (bot/worker_tasks.py); empty: task pages refuse
    link_secret: str = _secret()
    task_link_ttl_seconds: int = 7 * 86400
    media_dir: str = "var/media"  # photos workers upload on the task page


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "gridbot:"
    # connections per process; when all are busy a command waits (up to pool_timeout_seconds)
    max_connections: int = 64
    pool_timeout_seconds: float = 10.0

    def connect(self) -> Redis:
        """The one way the service and its commands open Redis: JSON text in, text out."""
        pool = BlockingConnectionPool.from_url(
            self.url, max_connections=self.max_connections, timeout=self.pool_timeout_seconds, decode_responses=True
        )
        return Redis(connection_pool=pool)


@dataclass(frozen=True, slots=True)
class TicketsConfig:
    number_prefix: str = "WG"
    timezone: str = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class DialogueConfig:
    state_ttl_seconds: int = 1800
    max_message_chars: int = 2000
    # below this category confidence the resident is asked to pick a category
    low_confidence: float = 0.35
    # below this intent confidence the message counts as not understood (unless an emergency)
    min_intent_confidence: float = 0.5
    # how many of the sender's tickets a status query lists
    status_list_size: int = 5
    dedup_ttl_seconds: int = 86400


@dataclass(frozen=True, slots=True)
class NluConfig:
    backend: str = "embedded"  # "embedded" | "rasa"
    cache_dir: str = "var/nlu-cache"
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_timeout_ms: int = 800
    # a category model trained with `gridbot nlu train` on a city's own work orders ("" = built-in)
    category_model: str = ""


@dataclass(frozen=True, slots=True)
class FlowsConfig:
    file: str = "flows/default.yaml"
    directory: str = "flows/directory/sample.yaml"
    # how often this process looks for due timers; 0 leaves timers to other processes
    timer_interval_seconds: float = 1.0


@dataclass(frozen=True, slots=True)
class TemplatesConfig:
    # admins' edited templates; a file here overrides the shipped one of the same name
    override_dir: str = "var/templates"


@dataclass(frozen=True, slots=True)
class WechatConfig:
    token: str = _secret()
    encoding_aes_key: str = _secret()
    app_id: str = ""
    app_secret: str = _secret()
    api_base: str = "https://api.weixin.qq.com"
    max_clock_skew: int = 300
    reply_budget_seconds: float = _between(3.0, 0, 5)  # WeChat gives up on the answer after 5 s
    # template message for status changes once the 48-hour customer-service window is closed;
    # its keys: first, keyword1 (ticket number), keyword2 (status), remark. Empty: none sent.
    status_template_id: str = ""


@dataclass(frozen=True, slots=True)
class WecomConfig:
    corp_id: str = ""
    agent_id: int | None = None  # a number: a typo is a config error at start-up, naming the key
    secret: str = _secret()
    token: str = _secret()
    encoding_aes_key: str = _secret()
    api_base: str = "https://qyapi.weixin.qq.com"
    # WeCom user ids (comma-separated) told of notifications for the dispatcher / the duty desk
    dispatcher_user_ids: str = ""
    duty_user_ids: str = ""  # empty: the dispatchers
    bot_name: str = "网格助手"  # a group message that @-mentions this name starts a report
    # the grid groups' robot callback (/wechat/robot); every grid robot can share one URL and pair
    robot_token: str = _secret()
    robot_encoding_aes_key: str = _secret()


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """The notification delivery worker (bot/outbox.py)."""

    interval_seconds: float = 1.0  # 0: this process delivers nothing (another one does)
    max_attempts: int = 6  # then the delivery goes to the dead-letter list
    backoff_base_seconds: float = 5.0  # doubles each try
    backoff_max_seconds: float = 900.0
    idempotency_window_seconds: int = 7 * 86400  # a delivery is never sent twice within it
    robot_per_minute: int = 20  # per WeCom group robot; beyond it messages queue and merge
    wecom_per_minute: int = 600  # WeCom app messages, all recipients together
    digest_hour: int = 9  # the daily overdue digest to each grid robot; -1: none


@dataclass(frozen=True, slots=True)
class SmsConfig:
    # HMAC-SHA256 secret of POST /sms/inbound (see integrations/sms/signing.py)
    signing_secret: str = _secret()
    max_clock_skew: int = 300
    # the secret in the Tencent Cloud reply-callback URL: /sms/tencent/reply?token=...
    tencent_token: str = _secret()
    # outbound: the SMS gateway; empty means SMS replies are logged and dropped
    gateway_url: str = ""
    gateway_secret: str = _secret()
    sender: str = "12345"  # the service number SMS are sent from
    timeout_seconds: float = 5.0
    attempts: int = 3
    retry_delay_seconds: float = 0.5
    segment_chars: int = 70
    per_minute: int = 300  # notifications handed to the gateway per minute (the outbox's limit)


@dataclass(frozen=True, slots=True)
class Open311Config:
    max_description_chars: int = 4000  # GeoReport v2's limit
    max_results: int = 1000
    default_days: int = 90  # GET requests.json without dates covers this many days


@dataclass(frozen=True, slots=True)
class Config:
    service: ServiceConfig = field(default_factory=ServiceConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    tickets: TicketsConfig = field(default_factory=TicketsConfig)
    dialogue: DialogueConfig = field(default_factory=DialogueConfig)
    nlu: NluConfig = field(default_factory=NluConfig)
    flows: FlowsConfig = field(default_factory=FlowsConfig)
    templates: TemplatesConfig = field(default_factory=TemplatesConfig)
    wechat: WechatConfig = field(default_factory=WechatConfig)
    wecom: WecomConfig = field(default_factory=WecomConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    sms: SmsConfig = field(default_factory=SmsConfig)
    open311: Open311Config = field(default_factory=Open311Config)

    def path(self, relative: str) -> Path:
        """Resolve a configured path against the project root unless it is absolute."""
        p = Path(relative)
        return p if p.is_absolute() else PROJECT_ROOT / p

    def replace(self, **sections: Any) -> Config:
        return dataclasses.replace(self, **sections)


def _coerce(value: Any, typ: Any, where: str) -> Any:
    origin = get_origin(typ)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(typ) if a is not type(None)]
        if value is None or value == "":
            return None
        return _coerce(value, inner[0], where)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if typ in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return typ(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if typ is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected text, got {type(value).__name__}")
        return "" if value is None else str(value)
    return value


def _build_section(cls: type, raw: Mapping[str, Any], env: Mapping[str, str], section: str, source: str):
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) in [{section}]: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for f in fields(cls):
        env_name = f"{ENV_PREFIX}{section.upper()}__{f.name.upper()}"
        if f.name in raw:
            if f.metadata.get("secret") and raw[f.name] not in (None, ""):
                raise ConfigError(f"{source}: {section}.{f.name} is a secret; set it in the environment as {env_name}")
            values[f.name] = _coerce(raw[f.name], hints[f.name], f"{source}: {section}.{f.name}")
        if env_name in env:
            values[f.name] = _coerce(env[env_name], hints[f.name], env_name)
        if "between" in f.metadata and f.name in values:
            low, high = f.metadata["between"]
            if not low < values[f.name] < high:
                where = env_name if env_name in env else f"{source}: {section}.{f.name}"
                raise ConfigError(f"{where}: must be between {low} and {high}, got {values[f.name]}")
    return cls(**values)


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read `config.yaml` (or `path`), then apply `GRIDBOT_<SECTION>__<KEY>` overrides."""
    env = os.environ if env is None else env
    path = Path(path) if path else PROJECT_ROOT / "config.yaml"
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        raw = loaded or {}
    sections = {f.name: f for f in fields(Config)}
    unknown = set(raw) - set(sections)
    if unknown:
        raise ConfigError(f"{path}: unknown section(s): {', '.join(sorted(unknown))}")
    hints = get_type_hints(Config)
    built = {}
    for name in sections:
        section_raw = raw.get(name) or {}
        if not isinstance(section_raw, dict):
            raise ConfigError(f"{path}: section [{name}] must be a mapping")
        built[name] = _build_section(hints[name], section_raw, env, name, str(path))
    return Config(**built)
