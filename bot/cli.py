"""`gridbot` command line: serve, chat, and the admin command groups."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import signal
import sys
from collections.abc import Sequence

from bot.config import ConfigError, load_config
from bot.logs import setup_logging


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.app import create_app

    config = load_config(args.config)
    service = dataclasses.replace(config.service, **{k: v for k, v in (("host", args.host), ("port", args.port)) if v})
    config = config.replace(service=service)
    setup_logging(config.service.log_level)
    url = f"http://{service.host}:{service.port}/"
    print(f"gridbot: chat with the bot at {url} (REST channel: {url}webhooks/rest/webhook)", flush=True)
    web.run_app(create_app(config, handle_signals=True), host=service.host, port=service.port, print=None)
    return 0


def _worker(args: argparse.Namespace) -> int:
    """Deliver notifications and fire flow timers, with no HTTP: web processes can then run with
    `outbox.interval_seconds: 0` and `flows.timer_interval_seconds: 0` and spend their CPU on
    answering (the loops themselves are safe to run in any number of processes)."""
    from aiohttp import web

    from bot.app import create_app

    config = load_config(args.config)
    config = config.replace(
        outbox=dataclasses.replace(config.outbox, interval_seconds=config.outbox.interval_seconds or 1.0),
        flows=dataclasses.replace(config.flows, timer_interval_seconds=config.flows.timer_interval_seconds or 1.0),
    )
    setup_logging(config.service.log_level)

    async def run() -> None:
        runner = web.AppRunner(create_app(config, handle_signals=True), handle_signals=False)
        await runner.setup()  # the services, the channels' deliverers and the loops; no listening socket
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        print("gridbot worker: delivering notifications and firing flow timers (Ctrl-C stops)", flush=True)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(run())
    return 0


def _chat(args: argparse.Namespace) -> int:
    from bot.app import build_services
    from integrations.base import IncomingMessage

    config = load_config(args.config)
    setup_logging("WARNING")
    sender = args.sender or f"terminal-{getpass.getuser()}"

    async def loop() -> None:
        services = await build_services(config)
        try:
            print("网格服务小助手（输入内容回车发送，Ctrl-D 退出）", flush=True)
            while True:
                line = await asyncio.to_thread(sys.stdin.readline)
                if not line:
                    break
                replies = await services.dispatcher.handle(
                    IncomingMessage(channel="cli", user_id=sender, text=line.rstrip("\n"))
                )
                for reply in replies:
                    print(f"> {reply.text}\n", flush=True)
        finally:
            await services.close()

    asyncio.run(loop())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from bot import cli_admin, cli_apikeys, cli_flows, cli_nlu, cli_outbox

    parser = argparse.ArgumentParser(prog="gridbot", description="Intake service for grid-based social governance")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default=None, help="listen address (default from config: service.host)")
    serve.add_argument("--port", type=int, default=None, help="listen port (default from config: service.port)")
    serve.add_argument("--config", default=None, help="path to config.yaml")
    serve.set_defaults(func=_serve)
    worker = sub.add_parser("worker", help="deliver notifications and fire flow timers (no HTTP)")
    worker.add_argument("--config", default=None, help="path to config.yaml")
    worker.set_defaults(func=_worker)

    chat = sub.add_parser("chat", help="talk to the bot in the terminal")
    chat.add_argument("--config", default=None, help="path to config.yaml")
    chat.add_argument("--sender", default=None, help="sender id (default: terminal-<user>)")
    chat.set_defaults(func=_chat)

    cli_nlu.register(sub)
    cli_flows.register(sub)
    cli_outbox.register(sub)
    cli_admin.register(sub)
    cli_apikeys.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"gridbot: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
