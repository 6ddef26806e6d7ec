"""`gridbot flows …`: check, simulate and draw flow files; check a grid directory.

    gridbot flows check flows/default.yaml
    gridbot flows simulate flows/default.yaml --category noise --start 2026-09-30T16:00+08:00 \\
        --events "accepted@+1h,resolved@+3d,rated:1@+4d" [--json]
    gridbot flows diagram flows/default.yaml --out flow.svg
    gridbot flows directory flows/directory/sample.yaml
    gridbot flows apply flows/default.yaml [--author NAME]   # every running service switches now
    gridbot flows history | rollback VERSION | migrate (--all-open | TICKET...)

Category ids come from nlu/data/categories.yml and notification template names from the
shipped templates plus the config's override directory, exactly as the service sees them.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Collection
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from flows import Action, DirectoryError, Flow, FlowError, GridDirectory, check_flow_file, load_flow, simulate
from flows.diagram import render_svg
from flows.simulate import SimStep

_WEEKDAYS = "一二三四五六日"


def _known(config_path: str | None) -> tuple[tuple[str, ...], set[str]]:
    """(category ids, notification template names) the service would check a flow against."""
    from bot.app import template_names
    from bot.config import load_config
    from bot.replies import Replies
    from nlu.taxonomy import category_ids

    config = load_config(config_path)
    return category_ids(), template_names(Replies(config.path(config.templates.override_dir)))


def _load(path: str, categories: Collection[str], templates: Collection[str]) -> Flow | None:
    try:
        return load_flow(path, known_categories=categories, known_templates=templates, today=date.today())
    except FlowError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _check(args: argparse.Namespace) -> int:
    categories, templates = _known(args.config)
    failed = False
    for path in args.files:
        problems = check_flow_file(path, categories, templates, today=date.today())
        for problem in problems:
            print(problem)
        errors = sum(p.severity == "error" for p in problems)
        failed = failed or errors > 0
        if errors:
            print(f"{path}: {errors} error(s)")
        else:
            flow = load_flow(path, known_categories=categories, known_templates=templates)
            print(f"{path}: ok — {flow.name}, version {flow.version}")
    return 1 if failed else 0


def _local(flow: Flow, moment: datetime | str | None) -> str:
    if moment is None:
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    local = moment.astimezone(flow.calendar.tz)
    return f"{local:%Y-%m-%d %H:%M} 周{_WEEKDAYS[local.weekday()]}"


def _describe(flow: Flow, action: Action) -> str:
    p = dict(action.params)

    def where(level_key: str = "level", unit_key: str = "unit") -> str:
        level, unit = p.get(level_key), p.get(unit_key)
        return " ".join(x for x in (flow.level_name(level) if level else "", flow.unit_name(unit) if unit else "") if x)

    kind = action.kind
    if kind == "notify":
        return f"通知 {p.get('to')}：{p.get('template')}"
    if kind == "assign":
        worker = f"（{p['worker']}）" if p.get("worker") else ""
        return f"派给 {where()}{worker}"
    if kind == "set_deadline":
        return f"时限 {_local(flow, p.get('deadline'))}（{p.get('span')}）"
    if kind == "set_colour":
        return f"颜色 → {flow.colour_name(p.get('colour', ''))}"
    if kind == "card":
        return f"{'红牌' if p.get('card') == 'red' else '黄牌'}（{where()}）"
    if kind == "escalate":
        return f"上报 {flow.level_name(p.get('from_level', ''))} → {p.get('label')}（{where()}）"
    if kind == "reopen":
        return f"重新打开 → {where()}"
    if kind == "close":
        return f"结案（{p.get('reason')}）"
    if kind == "schedule":
        return f"定时 {_local(flow, p.get('due'))}"
    if kind == "cancel_timers":
        return "取消原有定时"
    return ", ".join(f"{k}={v}" for k, v in action.params)


def _print_timeline(flow: Flow, steps: list[SimStep]) -> None:
    for s in steps:
        state = s.state
        card = {"yellow": "黄牌", "red": "红牌"}.get(state.card or "", "")
        head = (
            f"{_local(flow, s.at)}  {s.event:<28} {flow.status_name(state.status)}  {flow.level_name(state.level)}"
            f"  {flow.colour_name(state.colour)}  {card or '-'}  截止 {_local(flow, state.deadline)}"
        )
        print(head)
        if s.refused is not None:
            print(f"    ✗ 拒绝：{s.refused}")
        for action in s.actions:
            print(f"    {action.kind:<13} {_describe(flow, action)}  [{action.rule}]")


def _simulate(args: argparse.Namespace) -> int:
    categories, templates = _known(args.config)
    flow = _load(args.file, categories, templates)
    if flow is None:
        return 1
    if args.category not in categories:
        print(f"gridbot: unknown category {args.category!r} (known: {', '.join(categories)})", file=sys.stderr)
        return 2
    try:
        start = datetime.fromisoformat(args.start)
    except ValueError:
        print(f"gridbot: --start {args.start!r} is not an ISO time (e.g. 2026-09-30T16:00+08:00)", file=sys.stderr)
        return 2
    if start.tzinfo is None:
        start = start.replace(tzinfo=flow.calendar.tz)
    try:
        steps = simulate(
            flow,
            args.category,
            start,
            args.events,
            grid_code=None if args.no_grid else args.grid,
            colour=args.colour,
            horizon=timedelta(days=args.horizon),
        )
    except ValueError as exc:
        print(f"gridbot: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([s.to_json() for s in steps], ensure_ascii=False, indent=2))
    else:
        rule = flow.category_rule(args.category)
        print(
            f"{flow.name} · version {flow.version} · {args.category}: {flow.colour_name(rule.colour)}"
            f" {flow.colour_rhythm(rule.colour)} · {flow.level_name(rule.level)} {flow.unit_name(rule.unit)}"
        )
        _print_timeline(flow, steps)
    return 0


def _diagram(args: argparse.Namespace) -> int:
    categories, templates = _known(args.config)
    flow = _load(args.file, categories, templates)
    if flow is None:
        return 1
    Path(args.out).write_text(render_svg(flow), encoding="utf-8")
    print(f"{args.out}: {flow.name}, version {flow.version}")
    return 0


def _directory(args: argparse.Namespace) -> int:
    failed = False
    for path in args.files:
        try:
            directory = GridDirectory.load(path)
        except DirectoryError as exc:
            for problem in exc.problems:
                print(problem)
            failed = True
            continue
        grids = directory.grids
        print(
            f"{path}: ok — {len({g.street_code for g in grids})} streets, "
            f"{len({g.community_code for g in grids})} communities, {len(grids)} grids, "
            f"{sum(len(g.workers) for g in grids)} workers, {sum(len(a.staff) for a in directory.areas())} staff"
        )
    return 1 if failed else 0


def _with_versions(config_path: str | None, work: Callable[[Any, datetime], Awaitable[int]]) -> int:
    """Run `work(versions, now)` against the configured Redis; FlowError → its problems, exit 1."""
    from zoneinfo import ZoneInfo

    from bot.config import load_config
    from bot.flow_versions import FlowVersions
    from bot.keys import Keys

    config = load_config(config_path)
    categories, templates = _known(config_path)

    async def run() -> int:
        redis = config.redis.connect()
        versions = FlowVersions(redis, Keys(config.redis.key_prefix), categories, templates)
        try:
            return await work(versions, datetime.now(ZoneInfo(config.tickets.timezone)))
        except FlowError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            print("refused; the running flow stays", file=sys.stderr)
            return 1
        finally:
            await redis.aclose()

    return asyncio.run(run())


def _apply(args: argparse.Namespace) -> int:
    async def work(versions: Any, now: datetime) -> int:
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except OSError as exc:
            print(f"{args.file}: cannot read: {exc.strerror}", file=sys.stderr)
            return 1
        flow = await versions.apply(text, author=args.author, source=args.file, now=now)
        print(f"applied version {flow.version}; running services switch to it now")
        return 0

    return _with_versions(args.config, work)


def _history(args: argparse.Namespace) -> int:
    async def work(versions: Any, now: datetime) -> int:
        for info in await versions.history(args.limit):
            print(f"{'*' if info.active else ' '} {info.version}  {info.at}  {info.author}  {info.source}")
        return 0

    return _with_versions(args.config, work)


def _rollback(args: argparse.Namespace) -> int:
    async def work(versions: Any, now: datetime) -> int:
        try:
            flow = await versions.activate(args.version, author=args.author, now=now)
        except KeyError:
            print(f"no stored flow version {args.version!r} (see: gridbot flows history)", file=sys.stderr)
            return 1
        print(f"version {flow.version} is current again")
        return 0

    return _with_versions(args.config, work)


def _migrate(args: argparse.Namespace) -> int:
    from bot.app import build_services
    from bot.config import load_config
    from bot.tickets import TicketNotFound
    from flows import TransitionRefused

    async def run() -> int:
        services = await build_services(load_config(args.config))
        failed = 0
        try:
            numbers = list(args.tickets)
            if args.all_open:
                every = await services.redis.zrange(services.keys.all_tickets(), 0, -1)
                tickets = await services.tickets.store.get_many(every)
                numbers = [
                    t.number
                    for t in tickets
                    if not services.flows.flow.is_final(t.status) and t.flow.flow_version != services.flows.flow.version
                ]
            for number in numbers:
                try:
                    moved = await services.tickets.migrate(number, services.clock(), author=args.author)
                except (TransitionRefused, TicketNotFound) as exc:
                    failed += 1
                    print(f"{number}: not migrated: {exc}", file=sys.stderr)
                    continue
                print(f"{number}: now under {moved.flow.flow_version}, deadline {moved.flow.deadline.isoformat()}")
        finally:
            await services.close()
        return 1 if failed else 0

    return asyncio.run(run())


def register(subparsers: argparse._SubParsersAction) -> None:
    flows = subparsers.add_parser("flows", help="check, simulate and draw flow files")
    sub = flows.add_subparsers(dest="flows_command", required=True)

    check = sub.add_parser("check", help="check flow files: schema and meaning, file:line:column")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--config", default=None, help="path to config.yaml (for the template override directory)")
    check.set_defaults(func=_check)

    sim = sub.add_parser("simulate", help="run one ticket through a flow without Redis")
    sim.add_argument("file", metavar="FILE")
    sim.add_argument("--category", required=True, help="a category id from nlu/data/categories.yml")
    sim.add_argument("--start", required=True, metavar="ISO_TIME", help="when the report comes in")
    sim.add_argument("--events", default="", help='e.g. "accepted@+1h,resolved@+3d,rated:1@+4d"')
    sim.add_argument("--grid", default="SIM-GRID", help="grid code of the report (default: SIM-GRID)")
    sim.add_argument("--no-grid", action="store_true", help="a report without a grid: the dispatcher's queue")
    sim.add_argument("--colour", default=None, help="override the category's colour")
    sim.add_argument(
        "--horizon",
        type=int,
        default=30,
        metavar="DAYS",
        help="keep firing timers this many days after the last event (default 30)",
    )
    sim.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of {at, event, state, level, colour, card, deadline, actions}",
    )
    sim.add_argument("--config", default=None, help="path to config.yaml")
    sim.set_defaults(func=_simulate)

    diagram = sub.add_parser("diagram", help="draw the statuses, transitions and ladders as SVG")
    diagram.add_argument("file", metavar="FILE")
    diagram.add_argument("--out", required=True, metavar="FILE.svg")
    diagram.add_argument("--config", default=None, help="path to config.yaml")
    diagram.set_defaults(func=_diagram)

    directory = sub.add_parser("directory", help="check grid directory files (polygons, workers, aliases)")
    directory.add_argument("files", nargs="+", metavar="FILE")
    directory.set_defaults(func=_directory)

    apply = sub.add_parser("apply", help="check a flow file and make it current in every running service")
    apply.add_argument("file", metavar="FILE")
    apply.add_argument("--author", default=getpass.getuser(), help="recorded in the version history")
    apply.add_argument("--config", default=None, help="path to config.yaml")
    apply.set_defaults(func=_apply)

    history = sub.add_parser("history", help="the applied flow versions, newest first (* = current)")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--config", default=None, help="path to config.yaml")
    history.set_defaults(func=_history)

    rollback = sub.add_parser("rollback", help="make a stored version current again")
    rollback.add_argument("version", metavar="VERSION")
    rollback.add_argument("--author", default=getpass.getuser())
    rollback.add_argument("--config", default=None, help="path to config.yaml")
    rollback.set_defaults(func=_rollback)

    migrate = sub.add_parser(
        "migrate", help="put open tickets under the current version (new deadlines); by default they keep theirs"
    )
    which = migrate.add_mutually_exclusive_group(required=True)
    which.add_argument("tickets", nargs="*", default=[], metavar="TICKET")
    which.add_argument("--all-open", action="store_true", help="every open ticket under an older version")
    migrate.add_argument("--author", default=getpass.getuser())
    migrate.add_argument("--config", default=None, help="path to config.yaml")
    migrate.set_defaults(func=_migrate)
