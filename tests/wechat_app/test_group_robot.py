"""A grid's work group reaches the bot through its WeCom group robot's callback (/wechat/robot).

Someone @-mentions the robot in the group: the group hears only that the report goes on in
private; the questions arrive as WeCom app messages to that person, who answers them in the app
(/wechat/work) until the ticket opens. Phone numbers, places and what was reported never reach
the group, neither in the passive reply nor through the robot's webhook.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot.app import SERVICES
from flows import GridDirectory
from integrations.wechat.robot import decode_robot_callback
from tests.fakes.wechat_api import CallbackSigner, FakeWeChatApi, SentMessage, message_xml
from tests.wechat_app.conftest import DIRECTORY, NUMBER, ROBOT_AES, ROBOT_TOKEN, Service

GRID = "500199001001-01"
ROBOT_KEY = next(g.robot_key for g in GridDirectory.load(DIRECTORY).grids if g.code == GRID)
CHAT_ID = "wrkSFfCgAALFgnrSsWU38puiv4yvExuw"


def robot_xml(fake: FakeWeChatApi, user: str, content: str, msg_id: str, chat_type: str = "group") -> str:
    """A group robot callback as WeCom sends it: the sender nested in <From>, the text in <Text>."""
    return (
        f"<xml><WebhookUrl><![CDATA[{fake.base_url}/cgi-bin/webhook/send?key={ROBOT_KEY}]]></WebhookUrl>"
        f"<MsgId>{msg_id}</MsgId><ChatId><![CDATA[{CHAT_ID}]]></ChatId><ChatType>{chat_type}</ChatType>"
        f"<From><UserId>{user}</UserId><Name><![CDATA[张芳]]></Name><Alias><![CDATA[zf]]></Alias></From>"
        f"<GetChatInfoUrl><![CDATA[{fake.base_url}/cgi-bin/webhook/get_chat_info?code=C]]></GetChatInfoUrl>"
        f"<MsgType>text</MsgType><Text><Content><![CDATA[{content}]]></Content></Text></xml>"
    )


async def app_messages_to(service: Service, user: str, count: int, timeout: float = 5.0) -> list[SentMessage]:
    """The WeCom app messages sent to `user`, once there are `count` of them (private answers go
    through the outbox: its rounds run meanwhile)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await service.outbox.run_once()
        sent = [m for m in service.fake.sent_to("wecom_app") if user in m.to]
        if len(sent) >= count or asyncio.get_running_loop().time() > deadline:
            return sent
        await asyncio.sleep(0.02)


async def mention(service: Service, user: str, text: str, msg_id: str) -> tuple[int, dict[str, str] | str]:
    return await service.send(service.robot.message(robot_xml(service.fake, user, text, msg_id)))


async def test_a_report_started_in_the_group_goes_on_in_private_and_the_group_sees_nothing_personal(
    service: Service,
) -> None:
    worker = "ZhangFang00"  # the grid's own 网格长, reporting what she saw on her round
    status, group_reply = await mention(service, worker, "@网格助手 金桥小区门口垃圾好几天没人清理了", "g-1")
    assert status == 200 and isinstance(group_reply, dict), group_reply
    assert "私聊" in group_reply["Content"]
    for personal in ("金桥", "垃圾", "手机"):
        assert personal not in group_reply["Content"]

    # the question comes privately, as a WeCom app message to her alone
    [asked] = await app_messages_to(service, worker, 1)
    assert asked.to == (worker,) and "手机号" in asked.content, asked

    # she answers in the app: not a worker command, so the dialogue takes it
    summary = await service.worker(worker, "13812345678", 7001)
    assert "确认" in summary and "5678" in summary, summary
    opened = await service.worker(worker, "确认", 7002)
    number = NUMBER.search(opened)
    assert number, opened
    ticket = await service.client.app[SERVICES].tickets.store.get(number.group(0))
    assert ticket is not None and ticket.grid_code == GRID and ticket.channel == "wecom"

    # the robot's push (the new task for the grid's work group) carries no phone and no place
    await service.outbox.run_once()
    for pushed in service.fake.sent_to("wecom_robot"):
        assert "13812345678" not in pushed.content and "5678" not in pushed.content


async def test_a_retried_robot_callback_is_handled_once(service: Service) -> None:
    resident = "community-staff-7"  # not in the grid directory: a resident-like member of the group
    for _ in range(3):
        status, _reply = await mention(service, resident, "@网格助手 幸福路8号楼道里电动车充电，很危险", "g-retry")
        assert status == 200
    sent = await app_messages_to(service, resident, 1)
    await asyncio.sleep(0.2)  # a second private answer, if any, would be on its way by now
    await service.outbox.run_once()
    assert len([m for m in service.fake.sent_to("wecom_app") if resident in m.to]) == len(sent) == 1


async def test_a_late_group_notice_goes_through_the_chat_s_robot_and_private_answers_stay_private(
    service: Service,
) -> None:
    """When the answer misses the passive reply, the notice takes the robot webhook of the chat it
    came from (merged and rate-limited like every group message), the rest the app."""
    sender = service.wiring.robot._runner._sender  # what late replies go through
    desk = service.wiring.desk
    status, _ = await mention(service, "member-9", "@网格助手 你好", "g-late")  # the chat's robot is now known
    assert status == 200
    xml = robot_xml(service.fake, "member-9", "@网格助手 路灯坏了，我电话13912345678", "g-late-2")
    late = decode_robot_callback(xml.encode(), datetime.now(UTC))
    [notice] = [r for r in await desk.handle(late.message) if not r.private]
    await sender.send(notice)
    await service.outbox.run_once()
    robot = service.fake.sent_to("wecom_robot")
    assert robot and robot[-1].robot_key == ROBOT_KEY and "私聊" in robot[-1].content
    assert all("13912345678" not in m.content for m in robot)


async def test_robot_callbacks_are_verified_like_wecom_s(service: Service) -> None:
    verify = service.robot.verify_url_encrypted("echo-1234")
    resp = await service.client.get(verify.url)
    assert resp.status == 200 and await resp.text() == "echo-1234"

    forged = service.robot.message(robot_xml(service.fake, "u1", "@网格助手 hi", "g-forged"))
    forged_url = forged.url.replace("msg_signature=", "msg_signature=0")
    assert (await service.client.post(forged_url, data=forged.body)).status == 403

    # encrypted for the WeCom app (receive id = CorpID) rather than for a robot
    foreign = CallbackSigner(ROBOT_TOKEN, service.fake.corp_id, ROBOT_AES, path="/wechat/robot")
    status, _ = await service.send(foreign.message(robot_xml(service.fake, "u1", "@网格助手 hi", "g-foreign")))
    assert status == 403

    no_sender = message_xml(("MsgType", "text"), ("MsgId", "g-bad"))
    status, _ = await service.send(service.robot.message(no_sender))
    assert status == 400
    assert not [m for m in service.fake.sent_to("wecom_app") if "u1" in m.to]


async def test_a_worker_s_command_in_the_group_is_done_and_answered_in_private(service: Service) -> None:
    number = await service.report("o-group-command")
    status, group_reply = await mention(service, "ZhangFang00", f"@网格助手 接单 {number}", "g-cmd")
    assert status == 200 and isinstance(group_reply, dict), group_reply
    assert "私聊" in group_reply["Content"] and number not in group_reply["Content"]
    # the task card of the report, then the private answer
    [answer] = [m for m in await app_messages_to(service, "ZhangFang00", 2) if m.msgtype == "text"]
    assert "已接单" in answer.content and number in answer.content
    ticket = await service.client.app[SERVICES].tickets.store.get(number)
    assert (ticket.status, ticket.flow.assignee) == ("accepted", "ZhangFang00")

    # someone not in the directory: the words are a report, nothing is accepted for them
    other = await service.report("o-group-command-2", first_id=1100)
    status, group_reply = await mention(service, "member-3", f"@网格助手 接单 {other}", "g-cmd-2")
    assert "私聊继续" in group_reply["Content"]
    assert (await service.client.app[SERVICES].tickets.store.get(other)).status == "dispatched"
