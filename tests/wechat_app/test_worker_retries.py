"""WeCom sends a message again after the callback failed (503): a worker's command is done once.

The callback forgets a message whose handler raised, so that its retry is handled
(integrations/wechat/callback.py); the worker desk then tells apart a retry of a command whose
change was committed (answered, nothing done again) from one that failed before it (done now).
The failures here are an admin's broken template override, the kind that happens.
"""

from __future__ import annotations

from pathlib import Path

from bot.app import SERVICES
from tests.fakes.wechat_api import message_xml
from tests.wechat_app.conftest import Service
from tests.wechat_app.test_workers import photo_xml


async def _command(service: Service, user: str, text: str, msg_id: int) -> tuple[int, str]:
    """One encrypted WeCom app text: the HTTP status and the passive reply's text."""
    xml = message_xml(("ToUserName", service.fake.corp_id), ("FromUserName", user), ("CreateTime", 1764000000),
                      ("MsgType", "text"), ("Content", text), ("MsgId", msg_id), ("AgentID", service.fake.agent_id))
    status, reply = await service.send(service.work.message(xml))
    return status, reply["Content"] if isinstance(reply, dict) else ""


def _override(service: Service, name: str, text: str | None) -> None:
    """Write (or, with None, remove) an admin's override of a worker reply template."""
    path = Path(service.client.app[SERVICES].config.templates.override_dir) / "replies" / "worker" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is None:
        path.unlink()
    else:
        path.write_text(text, encoding="utf-8")


async def test_the_retry_of_a_progress_that_failed_after_its_change_is_not_a_second_progress(service: Service):
    # the answer to a 进度 fails once the progress is in (the other verbs' answers work)
    _override(service, "done.j2",
              '{% if verb == "报告进展" %}{{ t.no_such_field }}{% endif %}已{{ verb }}：工单 {{ t.number }}')
    number = await service.report("o-retry-done")
    await service.outbox.run_once()
    assert "已接单" in (await _command(service, "ZhangFang00", f"接单 {number}", 8000))[1]
    await service.outbox.run_once()
    told_before = len(service.fake.sent_to("mp_custom"))

    assert (await _command(service, "ZhangFang00", f"进度 {number} 已到场清理", 8001))[0] == 503
    # WeCom tries the same MsgId again
    retried = await _command(service, "ZhangFang00", f"进度 {number} 已到场清理", 8001)
    assert retried == (200, f"这条指令已经办理过了（工单 {number}），无需重发。")

    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert [e.text for e in ticket.timeline if e.kind == "progress"] == ["已到场清理"]
    await service.outbox.run_once()
    told = [m.content for m in service.fake.sent_to("mp_custom")[told_before:] if m.to == ("o-retry-done",)]
    assert told == [f"工单 {number} 有新进展：已到场清理"]


async def test_a_retry_after_a_failure_before_the_change_does_it_once_and_the_message_is_kept(service: Service):
    number = await service.report("o-retry-again")
    await service.outbox.run_once()
    _override(service, "already_done.j2", "{{ no_such_variable }}")  # fails before anything changes
    status, _ = await _command(service, "ZhangFang00", f"接单 {number}", 8100)
    assert status == 503
    services = service.client.app[SERVICES]
    ticket = await services.tickets.store.get(number)
    assert (ticket.status, ticket.flow.assignee) == ("dispatched", None)

    _override(service, "already_done.j2", None)  # the admin puts it right; WeCom tries again
    status, answer = await _command(service, "ZhangFang00", f"接单 {number}", 8100)
    assert status == 200 and answer.startswith(f"已接单：工单 {number}")
    ticket = await services.tickets.store.get(number)
    assert (ticket.status, ticket.flow.assignee) == ("accepted", "ZhangFang00")
    assert [e.kind for e in ticket.timeline].count("accept") == 1

    # the worker's message is in the inbox like a resident's: nothing anyone sent is lost
    kept = [f for _, f in await services.redis.xrange(services.keys.inbox()) if f.get("message_id") == "8100"]
    assert kept and all(f["user"] == "ZhangFang00" and f["text"] == f"接单 {number}" for f in kept)


async def test_a_photo_sent_again_after_the_callback_forgot_it_is_kept_once(service: Service):
    number = await service.report("o-retry-photo")
    await service.outbox.run_once()
    await _command(service, "ZhangFang00", f"接单 {number}", 8200)
    services = service.client.app[SERVICES]
    for _ in range(2):
        status, reply = await service.send(service.work.message(photo_xml("ZhangFang00", "media-twice", 8201)))
        assert status == 200 and "照片1张" in reply["Content"]
        # what the callback does after a failure: it forgets the message, and WeCom's retry comes in
        async for key in services.redis.scan_iter(match=services.keys.wechat_callback_seen("*")):
            await services.redis.delete(key)
    done = (await _command(service, "ZhangFang00", f"办结 {number} 已清运", 8202))[1]
    assert "附照片1张" in done
    ticket = await services.tickets.store.get(number)
    assert [e.photos for e in ticket.timeline if e.kind == "resolve"] == [("wecom:media-twice",)]
