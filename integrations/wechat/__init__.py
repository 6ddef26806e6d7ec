"""WeChat official account and WeCom: callback adapters, crypto, and async API clients.

Nothing here imports `bot`: the app wires these classes with its handler, a Redis-backed
`Deduplicator`, an `AsyncSender` (customer-service / WeCom messages within quota) and a
Redis-backed `TokenStore`. See docs/wechat-setup.md.
"""

from integrations.wechat.api import (
    AccessTokenRejected,
    ApiUnavailable,
    CustomerServiceRefused,
    InvalidMedia,
    MediaFile,
    MpApiConfig,
    OutOfResponseCount,
    OutOfTimeLimit,
    RateLimited,
    RecipientRefused,
    RetryPolicy,
    TokenStore,
    WeChatApiError,
    WeChatMpApi,
    WecomApi,
    WecomApiConfig,
    WecomRobot,
    WecomSendResult,
)
from integrations.wechat.callback import AsyncSender, Deduplicator
from integrations.wechat.mp import MpCallbackConfig, WeChatMpChannel
from integrations.wechat.robot import RobotCallbackConfig, WecomRobotChannel
from integrations.wechat.work import (
    WecomCallbackConfig,
    WecomChannel,
    WorkerCommand,
    parse_worker_command,
    unspaced_command,
)

__all__ = [
    "AccessTokenRejected",
    "ApiUnavailable",
    "AsyncSender",
    "CustomerServiceRefused",
    "Deduplicator",
    "InvalidMedia",
    "MediaFile",
    "MpApiConfig",
    "MpCallbackConfig",
    "OutOfResponseCount",
    "OutOfTimeLimit",
    "RateLimited",
    "RecipientRefused",
    "RetryPolicy",
    "RobotCallbackConfig",
    "TokenStore",
    "WeChatApiError",
    "WeChatMpApi",
    "WeChatMpChannel",
    "WecomApi",
    "WecomApiConfig",
    "WecomCallbackConfig",
    "WecomChannel",
    "WecomRobot",
    "WecomRobotChannel",
    "WecomSendResult",
    "WorkerCommand",
    "parse_worker_command",
    "unspaced_command",
]
