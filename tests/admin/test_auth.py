"""Console log-in: argon2 passwords, sessions, CSRF, roles, lock-out and the audit log, over HTTP."""

from __future__ import annotations

from bot.admin.audit import AuditLog
from bot.admin.sessions import COOKIE
from bot.keys import Keys
from tests.admin.helpers import PASSWORD, csrf_of, logged_in, login, make_user


async def test_pages_need_a_login(client):
    resp = await client.get("/admin/tickets", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/admin/login?reason=login&next=/admin/tickets")


async def test_login_sets_a_safe_cookie_and_the_password_is_stored_as_argon2(client, redis, key_prefix):
    await make_user(redis, key_prefix, "li.ming", "admin")
    stored = await redis.get(f"{key_prefix}admin-user:li.ming")
    assert '"$argon2id$' in stored and PASSWORD not in stored
    resp = await login(client, "li.ming")
    assert resp.status == 303 and resp.headers["Location"] == "/admin/"
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/admin"
    # only the token's hash is a Redis key: the cookie value itself is nowhere in Redis
    keys = [k async for k in redis.scan_iter(match=f"{key_prefix}admin-session:*")]
    assert len(keys) == 1 and cookie.value not in keys[0]
    page = await client.get("/admin/")
    assert page.status == 200
    assert "统计看板" in await page.text()


async def test_wrong_password_is_refused_with_a_message(client, redis, key_prefix):
    await make_user(redis, key_prefix, "li.ming", "admin")
    resp = await login(client, "li.ming", "not the password")
    assert resp.status == 401
    assert "用户名或密码错误" in await resp.text()
    assert COOKIE not in resp.cookies
    resp = await login(client, "nobody", PASSWORD)
    assert resp.status == 401
    assert "用户名或密码错误" in await resp.text()


async def test_login_form_without_its_csrf_token_is_refused(client, redis, key_prefix):
    await make_user(redis, key_prefix, "li.ming", "admin")
    resp = await client.post(
        "/admin/login", data={"username": "li.ming", "password": PASSWORD}, allow_redirects=False
    )
    assert resp.status == 403
    assert "登录表单已失效" in await resp.text()


async def test_lock_out_after_five_failures_even_with_the_right_password(client, redis, key_prefix):
    await make_user(redis, key_prefix, "li.ming", "admin")
    await make_user(redis, key_prefix, "zhao", "dispatcher")
    for _ in range(5):
        assert (await login(client, "li.ming", "wrong password!")).status == 401
    resp = await login(client, "li.ming")
    assert resp.status == 429
    assert "已暂时锁定" in await resp.text()
    # the lock is per username: a colleague at the same address still gets in
    assert (await login(client, "zhao")).status == 303
    ttl = await redis.ttl(f"{key_prefix}admin-fail:user:li.ming")
    assert 0 < ttl <= 15 * 60


async def test_logout_ends_the_session(client, redis, key_prefix):
    csrf = await logged_in(client, redis, key_prefix, "viewer")
    resp = await client.post("/admin/logout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/admin/login?reason=logout"
    assert [k async for k in redis.scan_iter(match=f"{key_prefix}admin-session:*")] == []
    resp = await client.get("/admin/", allow_redirects=False)
    assert resp.status == 303


async def test_an_expired_session_says_so(client, redis, key_prefix, clock):
    await logged_in(client, redis, key_prefix, "viewer")
    clock.advance(hours=2, minutes=1)  # idle longer than the session's idle limit
    resp = await client.get("/admin/tickets", allow_redirects=False)
    assert resp.status == 303 and "reason=expired" in resp.headers["Location"]
    page = await client.get(resp.headers["Location"])
    assert "登录已过期，请重新登录" in await page.text()


async def test_a_session_stays_alive_while_used(client, redis, key_prefix, clock):
    await logged_in(client, redis, key_prefix, "viewer")
    for _ in range(3):
        clock.advance(hours=1, minutes=30)
        assert (await client.get("/admin/", allow_redirects=False)).status == 200


async def test_post_without_csrf_token_changes_nothing(client, redis, key_prefix):
    await logged_in(client, redis, key_prefix, "admin")
    resp = await client.post("/admin/logout", data={}, allow_redirects=False)
    assert resp.status == 403
    assert "安全令牌" in await resp.text()
    assert (await client.get("/admin/", allow_redirects=False)).status == 200  # still logged in
    resp = await client.post("/admin/logout", data={"csrf": "forged"}, allow_redirects=False)
    assert resp.status == 403


async def test_roles_viewer_cannot_open_admin_pages(client, redis, key_prefix):
    await logged_in(client, redis, key_prefix, "viewer")
    for path in ("/admin/flows", "/admin/templates", "/admin/audit", "/admin/users"):
        resp = await client.get(path)
        assert resp.status == 403, path
        assert "没有权限" in await resp.text()
    assert (await client.get("/admin/tickets")).status == 200
    assert (await client.get("/admin/directory")).status == 200


async def test_dispatcher_cannot_edit_flows(client, redis, key_prefix):
    csrf = await logged_in(client, redis, key_prefix, "dispatcher")
    resp = await client.post("/admin/flows", data={"csrf": csrf, "op": "apply", "text": "name: x\n"})
    assert resp.status == 403
    assert "管理员" in await resp.text()


async def test_the_audit_log_records_who_what_when_and_from_where(client, redis, key_prefix):
    await make_user(redis, key_prefix, "li.ming", "admin")
    await login(client, "li.ming", "bad password 1")
    await login(client, "li.ming")
    entries = await AuditLog(redis, Keys(key_prefix)).recent()
    assert [(e.who, e.action, e.outcome) for e in entries] == [
        ("li.ming", "login", "ok"),
        ("li.ming", "login", "refused"),
    ]
    assert all(e.ip == "127.0.0.1" and e.at.startswith("2026-11-24T10:00") for e in entries)
    page = await client.get("/admin/audit")
    text = await page.text()
    assert page.status == 200 and "li.ming" in text and "被拒绝" in text and "127.0.0.1" in text
    assert csrf_of(text)


async def test_a_denied_request_is_audited(client, redis, key_prefix):
    await logged_in(client, redis, key_prefix, "viewer", username="kan")
    await client.get("/admin/flows")
    entries = await AuditLog(redis, Keys(key_prefix)).recent(action="request")
    assert entries[0].who == "kan" and entries[0].outcome == "denied" and entries[0].target == "/admin/flows"


async def test_next_parameter_cannot_redirect_off_site(client, redis, key_prefix):
    await make_user(redis, key_prefix, "li.ming", "admin")
    resp = await login(client, "li.ming", next_path="//evil.example/")
    assert resp.headers["Location"] == "/admin/"


async def test_admin_manages_accounts_and_a_removed_account_is_logged_out(client, redis, key_prefix, aiohttp_client):
    csrf = await logged_in(client, redis, key_prefix, "admin", username="li.ming")
    resp = await client.post(
        "/admin/users", data={"csrf": csrf, "op": "create", "username": "wang", "role": "viewer", "password": PASSWORD}
    )
    assert resp.status == 200 and "已创建账号 wang" in await resp.text()
    other = await aiohttp_client(client.server)  # wang's own browser
    assert (await login(other, "wang")).status == 303
    assert (await other.get("/admin/flows")).status == 403

    resp = await client.post("/admin/users", data={"csrf": csrf, "op": "role", "username": "wang", "role": "admin"})
    assert "下一次请求起生效" in await resp.text()
    assert (await other.get("/admin/flows")).status == 200  # the new role counts at once

    resp = await client.post("/admin/users", data={"csrf": csrf, "op": "remove", "username": "wang"})
    assert "已删除账号 wang" in await resp.text()
    resp = await other.get("/admin/", allow_redirects=False)
    assert resp.status == 303 and "/admin/login" in resp.headers["Location"]

    resp = await client.post("/admin/users", data={"csrf": csrf, "op": "remove", "username": "li.ming"})
    assert resp.status == 400 and "不能修改或删除自己的账号" in await resp.text()
    resp = await client.post(
        "/admin/users", data={"csrf": csrf, "op": "create", "username": "x", "role": "root", "password": "short"}
    )
    assert resp.status == 400 and "账号没有变化" in await resp.text()
