"""Flow editor, template editor and grid directory import: check, refuse bad input with its line, apply."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import shutil

import pytest
from aiohttp import FormData

from bot import cli_admin
from bot.app import build_nlu
from bot.config import Config, load_config
from bot.keys import Keys
from bot.metrics import Metrics
from nlu.types import NluBackend
from tests.admin.helpers import PASSWORD, logged_in, login
from tests.admin.tickets import services_of
from tests.conftest import TEST_REDIS_URL, without_staff


@pytest.fixture
def nlu() -> NluBackend:
    """Its own NLU: a directory import changes the place names, which must not reach the session's one."""
    return build_nlu(load_config(env={}), Metrics())


@pytest.fixture
def config(config: Config, tmp_path) -> Config:
    """The directory file in a temporary copy, so an import never touches the repository's sample."""
    copy = tmp_path / "directory.yaml"
    shutil.copy(config.path(config.flows.directory), copy)
    return config.replace(flows=dataclasses.replace(config.flows, directory=str(copy)))


async def _running_text(client) -> str:
    services = services_of(client)
    return await services.flow_versions.text(services.flows.flow.version)


async def test_flow_check_points_at_the_line(client, redis, key_prefix):
    csrf = await logged_in(client, redis, key_prefix, "admin")
    text = await _running_text(client)
    broken = text.replace("  noise: {colour: red}", "  noise: {colour: purple}")
    line = broken.splitlines().index("  noise: {colour: purple}") + 1
    resp = await client.post("/admin/flows", data={"csrf": csrf, "op": "check", "text": broken})
    html = await resp.text()
    assert resp.status == 422
    assert f"第 {line} 行" in html and "purple" in html
    assert f'<span class="bad">{line}</span>' in html  # the gutter marks the line


async def test_yaml_that_does_not_parse_is_refused_and_nothing_changes(client, redis, key_prefix):
    csrf = await logged_in(client, redis, key_prefix, "admin")
    version = services_of(client).flows.flow.version
    resp = await client.post("/admin/flows", data={"csrf": csrf, "op": "apply", "text": "name: [unclosed\nlevels: x\n"})
    html = await resp.text()
    assert resp.status == 422
    assert "未应用" in html and "YAML" in html and "第 2 行" in html
    assert services_of(client).flows.flow.version == version
    assert await redis.get(Keys(key_prefix).flow_current()) == version


async def test_diff_simulate_apply_and_roll_back(client, redis, key_prefix):
    csrf = await logged_in(client, redis, key_prefix, "admin", username="li.ming")
    services = services_of(client)
    old_version = services.flows.flow.version
    text = await _running_text(client)
    edited = text.replace("  greening: {colour: yellow}", "  greening: {colour: orange}")
    assert edited != text

    resp = await client.post("/admin/flows", data={"csrf": csrf, "op": "diff", "text": edited})
    html = await resp.text()
    assert '<span class="del">-  greening: {colour: yellow}</span>' in html
    assert '<span class="add">+  greening: {colour: orange}</span>' in html

    resp = await client.post(
        "/admin/flows",
        data={"csrf": csrf, "op": "simulate", "text": edited, "category": "greening",
              "script": "accepted@+1h, resolved@+3d, rated:1@+4d"},
    )
    html = await resp.text()
    assert resp.status == 200 and 'id="simulation"' in html
    assert "已重新打开" in html  # a bad rating reopens the ticket under the edited flow
    assert services.flows.flow.version == old_version  # simulating changes nothing

    resp = await client.post("/admin/flows", data={"csrf": csrf, "op": "apply", "text": edited})
    html = await resp.text()
    assert resp.status == 200 and "已应用新版本" in html
    new_version = services.flows.flow.version
    assert new_version != old_version
    assert services.flows.flow.category_rule("greening").colour == "orange"
    assert await redis.get(Keys(key_prefix).flow_current()) == new_version

    resp = await client.post("/admin/flows/rollback", data={"csrf": csrf, "version": old_version})
    assert "已回滚到版本" in await resp.text()
    assert services.flows.flow.version == old_version
    history = await services.flow_versions.history()
    assert [h.version for h in history][:2] == [old_version, new_version]
    assert history[1].author == "li.ming"


async def test_template_preview_apply_and_a_broken_template_is_refused(client, redis, key_prefix, config):
    csrf = await logged_in(client, redis, key_prefix, "admin")
    page = await client.get("/admin/templates/edit?name=replies/ticket_opened.j2")
    assert page.status == 200 and "WG202611240001" in await page.text()  # the sample ticket in the preview
    override = config.path(config.templates.override_dir) / "replies" / "ticket_opened.j2"

    broken = "已登记：{{ t.number }\n第二行 {% if %}"
    resp = await client.post(
        "/admin/templates/edit", data={"csrf": csrf, "name": "replies/ticket_opened.j2", "op": "apply", "text": broken}
    )
    html = await resp.text()
    assert resp.status == 422 and "模板语法错误（第 1 行）" in html
    assert not override.exists()

    unknown = "已登记：{{ t.number }}，{{ secret_token }}"
    resp = await client.post(
        "/admin/templates/edit", data={"csrf": csrf, "name": "replies/ticket_opened.j2", "op": "apply", "text": unknown}
    )
    assert resp.status == 422 and "secret_token" in await resp.text()
    assert not override.exists()

    good = "已为您登记，工单号 {{ t.number }}（{{ t.category_name }}）。"
    resp = await client.post(
        "/admin/templates/edit", data={"csrf": csrf, "name": "replies/ticket_opened.j2", "op": "apply", "text": good}
    )
    assert resp.status == 200 and "已应用" in await resp.text()
    assert override.read_text(encoding="utf-8") == good
    resp = await client.post("/admin/templates/edit", data={"csrf": csrf, "name": "../../etc/passwd", "op": "apply"})
    assert resp.status == 404


def _upload(csrf: str, content: bytes) -> FormData:
    form = FormData()
    form.add_field("csrf", csrf)
    form.add_field("file", content, filename="directory.yaml", content_type="application/x-yaml")
    return form


async def test_directory_page_and_import(client, redis, key_prefix, config):
    csrf = await logged_in(client, redis, key_prefix, "admin")
    page = await client.get("/admin/directory")
    html = await page.text()
    assert page.status == 200 and "金桥社区第一网格" in html and "张芳" in html and "<svg" in html
    target = config.path(config.flows.directory)
    original = target.read_text(encoding="utf-8")

    resp = await client.post("/admin/directory", data=_upload(csrf, b"streets: [oops\n"))
    html = await resp.text()
    assert resp.status == 422 and "未导入" in html and "第 2 行" in html
    assert target.read_text(encoding="utf-8") == original

    invalid = original.replace('code: "500199001001-01"', 'code: "bad code"', 1)
    resp = await client.post("/admin/directory", data=_upload(csrf, invalid.encode()))
    assert resp.status == 422 and "未导入" in await resp.text()
    assert target.read_text(encoding="utf-8") == original

    renamed = original.replace("金桥社区第一网格", "金桥社区一网格")
    resp = await client.post("/admin/directory", data=_upload(csrf, renamed.encode()))
    assert resp.status == 200 and "已导入 12 个网格" in await resp.text()
    assert target.read_text(encoding="utf-8") == renamed
    assert [p.name for p in target.parent.glob("directory.yaml.*.bak")]


def _staff_table(html: str) -> str:
    start = html.index('id="staff"')
    return html[start:html.index("</table>", start)]


async def test_the_directory_page_shows_each_levels_staff_and_imports_files_with_or_without_them(
    client, redis, key_prefix, config
):
    await logged_in(client, redis, key_prefix, "viewer")
    staff = _staff_table(await (await client.get("/admin/directory")).text())
    assert "青枫街道" in staff and "韩波（街道社会治理分中心主任） 138****0000" in staff  # masked like workers'
    assert "13800910000" not in staff and "示例区" in staff and "秦海" in staff and "唐明" in staff
    songlin = staff[staff.index("松林社区"):]
    assert songlin.index("未配置") < songlin.index("</tr>")  # a community without staff says so

    csrf = await logged_in(client, redis, key_prefix, "admin")
    assert "13800910000" in _staff_table(await (await client.get("/admin/directory")).text())
    target = config.path(config.flows.directory)
    sample = target.read_text(encoding="utf-8")
    resp = await client.post("/admin/directory", data=_upload(csrf, without_staff(sample).encode()))
    html = await resp.text()
    assert resp.status == 200 and "已导入 12 个网格" in html, html
    assert "韩波" not in _staff_table(html) and "张芳" in html  # the workers stay
    assert services_of(client).directory.staff("street", "500199001001-01") == ()

    resp = await client.post("/admin/directory", data=_upload(csrf, sample.encode()))
    assert resp.status == 200 and "韩波" in _staff_table(await resp.text())
    assert [w.name for w in services_of(client).directory.staff("street", "500199001001-01")] == ["韩波", "冯雪"]


async def test_a_dispatcher_cannot_import_a_directory(client, redis, key_prefix, config):
    csrf = await logged_in(client, redis, key_prefix, "dispatcher")
    resp = await client.post("/admin/directory", data=_upload(csrf, b"x: 1\n"))
    assert resp.status == 403


def _gridbot_admin(monkeypatch, key_prefix: str, password: str, *argv: str) -> int:
    """`gridbot admin ...` in-process, the password on stdin as a script would pipe it."""
    monkeypatch.setenv("GRIDBOT_REDIS__URL", TEST_REDIS_URL)
    monkeypatch.setenv("GRIDBOT_REDIS__KEY_PREFIX", key_prefix)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{password}\n"))
    parser = argparse.ArgumentParser(prog="gridbot")
    cli_admin.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["admin", *argv])
    return int(args.func(args))


def test_create_user_command(monkeypatch, capsys, key_prefix):
    assert _gridbot_admin(monkeypatch, key_prefix, PASSWORD, "create-user", "--username", "first.admin",
                          "--role", "admin") == 0
    assert "已创建账号 first.admin（admin）" in capsys.readouterr().out
    assert _gridbot_admin(monkeypatch, key_prefix, PASSWORD, "create-user", "--username", "first.admin",
                          "--role", "admin") == 1
    assert "已存在" in capsys.readouterr().err
    assert _gridbot_admin(monkeypatch, key_prefix, "short", "create-user", "--username", "second",
                          "--role", "viewer") == 1
    assert "密码至少" in capsys.readouterr().err


async def test_the_created_user_can_log_in(client, redis, key_prefix, monkeypatch):
    await asyncio.to_thread(
        _gridbot_admin, monkeypatch, key_prefix, PASSWORD, "create-user", "--username", "first.admin", "--role", "admin"
    )
    assert (await login(client, "first.admin")).status == 303


async def test_admin_moves_an_open_ticket_to_the_new_flow_version(client, redis, key_prefix, clock):
    from tests.admin.tickets import report

    ticket = await report(client, clock, "小区绿化带被人占用种菜", category="greening")
    csrf = await logged_in(client, redis, key_prefix, "admin")
    text = await _running_text(client)
    shorter = text.replace("    deadline: 22 working days", "    deadline: 10 working days")
    assert shorter != text
    await client.post("/admin/flows", data={"csrf": csrf, "op": "apply", "text": shorter})
    new_version = services_of(client).flows.flow.version
    page = await (await client.get(f"/admin/tickets/{ticket.number}")).text()
    assert 'id="migrate"' in page
    resp = await client.post(f"/admin/tickets/{ticket.number}/migrate", data={"csrf": csrf})
    assert resp.status == 200 and "已按当前流程版本" in await resp.text()
    moved = await services_of(client).tickets.store.get(ticket.number)
    assert moved.flow.flow_version == new_version
    assert moved.flow.deadline < ticket.flow.deadline  # yellow now has 10 working days instead of 22


def test_an_override_saved_by_another_process_is_used_at_once_even_for_a_template_already_read(tmp_path):
    from bot.replies import Replies

    replies = Replies(override_dir=tmp_path)
    shipped = replies.render("thanks")
    assert shipped  # read (and cached) from the shipped file
    (tmp_path / "replies").mkdir()
    (tmp_path / "replies" / "thanks.j2").write_text("不客气，祝您生活愉快！", encoding="utf-8")
    assert replies.render("thanks") == "不客气，祝您生活愉快！"
    (tmp_path / "replies" / "thanks.j2").unlink()  # the admin reverts it
    assert replies.render("thanks") == shipped
