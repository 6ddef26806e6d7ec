"""The app factory: the one place where concrete classes are chosen and wired together."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.config import Config
from bot.dialogue import Dialogue, DialogueSettings
from bot.directory_holder import DirectoryStore, LiveDirectory
from bot.dispatcher import Dispatcher
from bot.flow_versions import FlowVersions
from bot.keys import Keys
from bot.logs import log_event
from bot.metrics import Metrics
from bot.outbox import OUTBOX, build_outbox
from bot.replies import Replies
from bot.ticketing import FlowHolder, TicketService
from bot.tickets import TicketStore
from bot.timers import TimerRunner
from flows import FlowError
from nlu.embedded import EmbeddedNlu
from nlu.taxonomy import load_categories
from nlu.types import NluBackend

log = logging.getLogger("gridbot.app")

Clock = Callable[[], datetime]


@dataclass
class Services:
    """Everything a request handler or a CLI command needs, built once per process."""

    config: Config
    redis: Redis
    keys: Keys
    metrics: Metrics
    replies: Replies
    flows: FlowHolder
    flow_versions: FlowVersions
    directory: LiveDirectory | None  # follows imports in any process (bot/directory_holder.py)
    directory_store: DirectoryStore
    tickets: TicketService
    nlu: NluBackend
    dispatcher: Dispatcher
    clock: Clock

    async def close(self) -> None:
        close_nlu = getattr(self.nlu, "close", None)
        if close_nlu is not None:
            await close_nlu()
        await self.redis.aclose()


def template_names(replies: Replies) -> set[str]:
    """Notification templates a flow may name, e.g. "notify/accepted"."""
    return {n.removesuffix(".j2") for n in replies.names() if n.startswith("notify/")}


def build_nlu(config: Config, metrics: Metrics, places: Iterable[str] = ()) -> NluBackend:
    """The configured backend; Rasa always falls back to the embedded one."""
    embedded = EmbeddedNlu(
        cache_dir=config.path(config.nlu.cache_dir),
        places=places,
        category_model=config.path(config.nlu.category_model) if config.nlu.category_model else None,
    )
    if config.nlu.backend == "embedded":
        return embedded
    if config.nlu.backend == "rasa":
        from nlu.rasa_http import RasaHttpNlu

        return RasaHttpNlu(
            url=config.nlu.rasa_url,
            fallback=embedded,
            timeout_ms=config.nlu.rasa_timeout_ms,
            on_fallback=lambda reason: metrics.nlu_fallbacks.labels(reason).inc(),
        )
    raise ValueError(f"nlu.backend must be 'embedded' or 'rasa', not {config.nlu.backend!r}")


async def build_services(config: Config, clock: Clock | None = None, nlu: NluBackend | None = None) -> Services:
    tz = ZoneInfo(config.tickets.timezone)
    clock = clock or (lambda: datetime.now(tz))
    keys = Keys(config.redis.key_prefix)
    metrics = Metrics()
    replies = Replies(config.path(config.templates.override_dir), tz=tz)
    categories = load_categories()
    redis = config.redis.connect()
    directory_store = DirectoryStore(redis, keys)
    directory_file = config.path(config.flows.directory) if config.flows.directory else None
    directory = await directory_store.seed(directory_file, clock()) if directory_file else None
    versions = FlowVersions(redis, keys, [c.id for c in categories], template_names(replies))
    flow_file = config.path(config.flows.file)
    try:
        flow = await versions.seed(flow_file, clock())
    except RedisError:
        # Redis is down: run the configured file; /readyz reports the outage
        log_event(log, "flow_seed_without_redis", logging.WARNING, file=str(flow_file))
        flow = versions.parse(flow_file.read_text(encoding="utf-8"), str(flow_file), today=clock().date())
    store = TicketStore(redis, keys, config.tickets.number_prefix, tz)
    try:
        await store.ensure_grid_index()  # once per Redis: tickets stored before the grid index
    except RedisError:
        log_event(log, "grid_index_deferred", logging.WARNING)  # the first lookup builds it
    holder = FlowHolder(flow)
    tickets = TicketService(store, holder, directory, {c.id: c.name_zh for c in categories}, versions)
    nlu = nlu or build_nlu(config, metrics, directory.place_names() if directory else ())
    if directory is not None:
        # an injected NLU keeps its places at start-up; every later directory brings its own
        directory.on_replace(lambda new: nlu.set_places(new.place_names()))
    dialogue = Dialogue(
        tickets,
        replies,
        DialogueSettings(
            low_confidence=config.dialogue.low_confidence,
            min_intent_confidence=config.dialogue.min_intent_confidence,
            status_list_size=config.dialogue.status_list_size,
        ),
    )
    dispatcher = Dispatcher(redis, keys, nlu, dialogue, replies, metrics, config.dialogue, clock)
    return Services(
        config, redis, keys, metrics, replies, holder, versions, directory, directory_store, tickets, nlu, dispatcher,
        clock,
    )


SERVICES = web.AppKey("services", Services)
BACKGROUND = web.AppKey("background", list[asyncio.Task[None]])  # the loops stopped at shutdown


async def follow_flow_changes(services: Services) -> None:
    """Every process switches to a new current flow version as soon as one is applied anywhere."""
    while True:
        try:
            async with services.redis.pubsub() as pubsub:
                await pubsub.subscribe(services.keys.flow_changed())
                await _switch_to_current(services)  # anything applied while we were not listening
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        await _switch_to_current(services)
        except RedisError:
            log_event(log, "flow_watch_lost", logging.WARNING)
            await asyncio.sleep(2.0)


async def _switch_to_current(services: Services) -> None:
    version = await services.flow_versions.current_version()
    if version is None or version == services.flows.flow.version:
        return
    try:
        flow = await services.flow_versions.load(version)
    except FlowError as exc:
        log_event(log, "flow_refused", logging.ERROR, version=version, problems=str(exc))
        return
    if flow is not None:
        services.flows.set_current(flow)
        log_event(log, "flow_switched", version=version)


async def reload_flow_file(services: Services) -> None:
    """SIGHUP: apply the configured flow file again; an invalid one is refused, the old one stays."""
    path = services.config.path(services.config.flows.file)
    try:
        flow = await services.flow_versions.apply(
            path.read_text(encoding="utf-8"), author="SIGHUP", source=str(path), now=services.clock()
        )
    except (FlowError, OSError) as exc:
        log_event(log, "flow_refused", logging.ERROR, file=str(path), problems=str(exc))
        return
    services.flows.set_current(flow)


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel background loops until they have really stopped.

    On Python 3.11, `asyncio.wait_for` (which redis-py awaits on every command) can swallow a
    cancellation that arrives as its inner await completes; one cancel() then leaves a loop
    running and the shutdown waiting forever. So: cancel again until every task is done.
    """
    while pending := [t for t in tasks if not t.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.5)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("background_task_failed", exc_info=task.exception())


def create_app(
    config: Config, clock: Clock | None = None, nlu: NluBackend | None = None, handle_signals: bool = False
) -> web.Application:
    from bot import web as routes

    app = web.Application(client_max_size=config.service.max_body_bytes)

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        services = await build_services(config, clock=clock, nlu=nlu)
        app[SERVICES] = services
        tasks = [asyncio.create_task(follow_flow_changes(services))]
        if services.directory is not None:
            tasks.append(asyncio.create_task(services.directory_store.follow(services.directory)))
        if config.flows.timer_interval_seconds > 0:
            runner = TimerRunner(services.redis, services.keys, services.tickets, services.clock)
            tasks.append(asyncio.create_task(runner.run_forever(config.flows.timer_interval_seconds)))
        outbox = build_outbox(
            services.redis,
            services.keys,
            services.tickets,
            services.directory,
            services.replies,
            config.outbox,
            config.wecom,
            services.clock,
        )
        app[OUTBOX] = outbox  # channels register their deliverers while the app starts
        if config.outbox.interval_seconds > 0:
            tasks.append(asyncio.create_task(outbox.run_forever(config.outbox.interval_seconds)))
        if handle_signals:
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP, lambda: tasks.append(asyncio.create_task(reload_flow_file(services)))
            )
        app[BACKGROUND] = tasks
        log_event(log, "started", flow_version=services.flows.flow.version, nlu=services.nlu.name)
        yield
        await stop_tasks(tasks)
        await services.close()

    async def stop_background(app: web.Application) -> None:
        # on shutdown, before any cleanup_ctx unwinds: a loop mid-delivery must not find the
        # channels' HTTP sessions already closed
        if BACKGROUND in app:
            await stop_tasks(app[BACKGROUND])

    async def open_outbox(app: web.Application) -> None:
        app[OUTBOX].open()  # after every cleanup_ctx started: all channels have registered

    app.cleanup_ctx.append(services_ctx)
    app.on_startup.append(open_outbox)
    app.on_shutdown.append(stop_background)
    routes.setup(app)
    return app
