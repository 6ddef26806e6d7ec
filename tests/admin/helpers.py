"""Console test helpers: make a user in the service's Redis, log in through the form, read CSRF tokens."""

from __future__ import annotations

import re

from bot.admin.auth import Users
from bot.keys import Keys

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = _CSRF.search(html)
    assert m, "no CSRF field on the page"
    return m.group(1)


async def make_user(redis, key_prefix: str, username: str, role: str, password: str = PASSWORD) -> None:
    await Users(redis, Keys(key_prefix)).create(username, password, role, "2026-11-24T09:00:00+08:00")


async def login(client, username: str, password: str = PASSWORD, next_path: str = "/admin/"):
    """Submit the login form as a browser would; returns the response (redirects not followed)."""
    page = await client.get("/admin/login")
    token = csrf_of(await page.text())
    return await client.post(
        "/admin/login",
        data={"username": username, "password": password, "csrf": token, "next": next_path},
        allow_redirects=False,
    )


async def logged_in(client, redis, key_prefix: str, role: str, username: str | None = None) -> str:
    """A fresh user of `role`, logged in; returns a CSRF token of the session."""
    name = username or f"{role}-user"
    await make_user(redis, key_prefix, name, role)
    resp = await login(client, name)
    assert resp.status == 303, await resp.text()
    page = await client.get("/admin/")
    assert page.status == 200, await page.text()
    return csrf_of(await page.text())
