"""A grid directory imported in the console takes effect at once, in every process sharing the Redis.

Routing, the console and the NLU's place names follow without a restart; an invalid upload
changes nothing anywhere; a process started later picks the right copy (Redis or its file).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from aiohttp import FormData
from redis.asyncio import Redis

from bot.admin.audit import AuditLog
from bot.app import build_nlu, create_app
from bot.config import Config, load_config
from bot.directory_holder import DirectoryStore, LiveDirectory, directory_version
from bot.keys import Keys
from bot.metrics import Metrics
from bot.ticketing import ReportDraft
from flows import GridDirectory
from nlu.embedded import EmbeddedNlu
from nlu.rasa_http import RasaHttpNlu
from nlu.types import NluBackend
from tests.admin.helpers import logged_in
from tests.admin.tickets import services_of
from tests.conftest import say

NUMBER = re.compile(r"WG\d{12}")
NEW_GRID = "500199004001-01"
NEW_STREET = """\
  - code: "500199004"
    name: 星河街道
    staff:
      - {wecom_user_id: YinRui96, name: 尹睿, phone: "13800960000", role: 街道社会治理分中心主任}
    communities:
      - code: "500199004001"
        name: 星河社区
        grids:
          - code: "500199004001-01"
            name: 星河社区第一网格
            aliases: [星河湾, 星河湾小区]
            workers:
              - {wecom_user_id: QianLei12, name: 钱磊, phone: "13800120000", role: 网格长}
            polygon: [[106.640000, 29.710000], [106.645000, 29.710000], [106.645000, 29.714000], [106.640, 29.714]]
"""
REPORT = "星河湾门口的垃圾好几天没人清理了，臭得很"  # 星河湾: only a place name once the new directory is in


def _fresh_nlu() -> NluBackend:
    # its own NLU: an import changes the place names, which must not leak into the session's shared one
    return build_nlu(load_config(env={}), Metrics())


@pytest.fixture
def nlu() -> NluBackend:
    return _fresh_nlu()


def _with_directory_copy(config: Config, path: Path) -> Config:
    shutil.copy(config.path(config.flows.directory), path)
    return config.replace(flows=dataclasses.replace(config.flows, directory=str(path)))


@pytest.fixture
def config(config: Config, tmp_path: Path) -> Config:
    """This machine's directory file: a temporary copy of the sample."""
    return _with_directory_copy(config, tmp_path / "directory.yaml")


@pytest.fixture
def other_config(config: Config, tmp_path: Path) -> Config:
    """Another machine: same Redis and key prefix, its own copy of the directory file."""
    (tmp_path / "other").mkdir()
    return _with_directory_copy(config, tmp_path / "other" / "directory.yaml")


@pytest.fixture
def extended(config: Config) -> str:
    """The sample with a new street, community and grid (星河湾)."""
    return config.path(config.flows.directory).read_text(encoding="utf-8") + NEW_STREET


def _upload(csrf: str, content: bytes) -> FormData:
    form = FormData()
    form.add_field("csrf", csrf)
    form.add_field("file", content, filename="directory.yaml", content_type="application/x-yaml")
    return form


async def _resident_report(client, sender: str) -> str:
    """A resident names 星河湾 over the REST channel; returns the new ticket's grid code ("" if none)."""
    first = await say(client, sender, REPORT)
    if "地点" in first[0]:
        first = await say(client, sender, "星河湾")
    assert "手机号" in first[0], first
    assert "回复“确认”提交" in (await say(client, sender, "跳过"))[0]
    opened = await say(client, sender, "确认")
    number = NUMBER.search(opened[0])
    assert number, opened
    ticket = await services_of(client).tickets.store.get(number.group(0))
    assert ticket is not None
    return ticket.grid_code or ""


def _route(client, text: str = "星河湾小区3栋") -> str | None:
    return services_of(client).tickets.route(ReportDraft(description="垃圾没人清理", category="garbage",
                                                          location_text=text))


async def _eventually(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not switched within the timeout"
        await asyncio.sleep(0.02)


async def test_an_imported_grid_routes_reports_at_once_without_a_restart(client, redis, key_prefix, config, extended):
    csrf = await logged_in(client, redis, key_prefix, "admin")
    assert _route(client) is None
    # before: 星河湾 means nothing, so the bot asks where
    assert "地点" in (await say(client, "before", REPORT))[0]
    await say(client, "before", "取消")

    resp = await client.post("/admin/directory", data=_upload(csrf, extended.encode()))
    html = await resp.text()
    assert resp.status == 200 and "已导入 13 个网格" in html and "生效" in html, html
    target = config.path(config.flows.directory)
    assert target.read_text(encoding="utf-8") == extended
    assert [p.name for p in target.parent.glob("directory.yaml.*.bak")]

    # the NLU knows the new place (the next question is the phone) and the ticket is the new grid's
    assert "手机号" in (await say(client, "after", REPORT))[0]
    await say(client, "after", "取消")
    assert await _resident_report(client, "resident") == NEW_GRID

    page = await (await client.get("/admin/directory")).text()
    assert "星河社区第一网格" in page and "钱磊" in page and "13 个网格" in page
    audit = await AuditLog(redis, Keys(key_prefix)).recent(action="directory.import")
    assert audit[0].who == "admin-user" and audit[0].outcome == "ok" and audit[0].detail.startswith("13 grids")


async def test_another_process_follows_an_import(aiohttp_client, client, redis, key_prefix, clock, other_config,
                                                 extended):
    other = await aiohttp_client(create_app(other_config, clock=clock, nlu=_fresh_nlu()))
    csrf = await logged_in(client, redis, key_prefix, "admin")
    assert _route(other) is None

    resp = await client.post("/admin/directory", data=_upload(csrf, extended.encode()))
    assert resp.status == 200, await resp.text()

    await _eventually(lambda: _route(other) == NEW_GRID)
    assert await _resident_report(other, "resident-b") == NEW_GRID
    assert services_of(other).directory.version == services_of(client).directory.version
    # and whom it tells of the new street's escalated tickets
    assert [w.name for w in services_of(other).directory.staff("street", NEW_GRID)] == ["尹睿"]
    # the other machine's own file is left alone
    assert NEW_GRID not in other_config.path(other_config.flows.directory).read_text(encoding="utf-8")

    # a process started after the import uses the Redis copy, although its file is the old sample
    late = await aiohttp_client(create_app(other_config, clock=clock, nlu=_fresh_nlu()))
    assert _route(late) == NEW_GRID


async def test_an_invalid_upload_changes_routing_nowhere(aiohttp_client, client, redis, key_prefix, clock,
                                                         other_config, config, extended):
    other = await aiohttp_client(create_app(other_config, clock=clock, nlu=_fresh_nlu()))
    csrf = await logged_in(client, redis, key_prefix, "admin")
    keys = Keys(key_prefix)
    sample_grid = "500199001001-02"  # 龙湖花园
    target = config.path(config.flows.directory)

    async def refused(content: str) -> None:
        before = await redis.get(keys.directory_current())
        resp = await client.post("/admin/directory", data=_upload(csrf, content.encode()))
        assert resp.status == 422 and "未导入" in await resp.text()
        assert await redis.get(keys.directory_current()) == before
        for c in (client, other):
            assert services_of(c).directory.version == before

    overlapping = extended.replace("[[106.640000, 29.710000], [106.645000", "[[106.630000, 29.710000], [106.645000")
    await refused(overlapping)
    await refused(extended.replace('code: "500199004001-01"', 'code: "bad code"'))
    assert target.read_text(encoding="utf-8") != extended
    for c in (client, other):
        assert _route(c) is None and _route(c, "龙湖花园二期") == sample_grid

    # a valid import goes everywhere; an invalid one after it leaves it in place
    assert (await client.post("/admin/directory", data=_upload(csrf, extended.encode()))).status == 200
    await _eventually(lambda: _route(other) == NEW_GRID)
    await refused(overlapping)
    for c in (client, other):
        assert _route(c) == NEW_GRID and _route(c, "龙湖花园二期") == sample_grid
    assert target.read_text(encoding="utf-8") == extended


async def test_start_up_takes_a_newer_edited_file_and_everyone_follows(redis: Redis, key_prefix, config, extended,
                                                                      clock, tmp_path):
    store = DirectoryStore(redis, Keys(key_prefix))
    path = config.path(config.flows.directory)
    sample = await store.seed(path, clock())  # empty Redis: the file, stored as current
    assert sample.version == directory_version(path.read_text(encoding="utf-8"))
    assert await store.current_version() == sample.version

    other_file = tmp_path / "edited.yaml"
    other_file.write_text(extended, encoding="utf-8")
    old = time.time() - 3600
    os.utime(other_file, (old, old))  # edited before the Redis copy was stored: the Redis copy wins
    assert (await store.seed(other_file, clock())).version == sample.version

    os.utime(other_file, None)  # edited now: newer than the Redis copy, so it is published
    edited = await store.seed(other_file, clock())
    assert edited.version == directory_version(extended) == await store.current_version()
    assert edited.grid(NEW_GRID) is not None
    assert await store.refresh(sample) and sample.grid(NEW_GRID) is not None

    # the sample file again, even with a fresh mtime, is a stale copy: it was current once
    os.utime(path, None)
    assert (await store.seed(path, clock())).version == edited.version


def test_live_directory_overrides_every_public_member_of_grid_directory(config):
    directory = GridDirectory.load(config.path(config.flows.directory))
    public = {n for n in (*vars(GridDirectory), *vars(directory)) if not n.startswith("_")}
    public -= {"load", "from_text"}  # constructors: they return a plain GridDirectory
    assert public <= set(vars(LiveDirectory)), public - set(vars(LiveDirectory))


def test_set_places_replaces_the_directorys_names_in_both_backends():
    embedded = _fresh_nlu()
    assert isinstance(embedded, EmbeddedNlu)
    rasa = RasaHttpNlu("http://127.0.0.1:9", fallback=embedded)  # never asked here
    assert embedded.parse_sync(REPORT).entity("address") is None
    rasa.set_places(["星河湾"])  # passed on to the embedded fallback
    assert embedded.parse_sync(REPORT).entity("address") == "星河湾"
    embedded.set_places([])
    assert embedded.parse_sync(REPORT).entity("address") is None
