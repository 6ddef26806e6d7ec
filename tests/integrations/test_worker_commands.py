"""Grid workers' reply commands, read by a pure function."""

from __future__ import annotations

import pytest

from integrations.wechat.work import WorkerCommand, parse_worker_command, unspaced_command


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("接单", WorkerCommand("accept")),
        ("  接单  ", WorkerCommand("accept")),
        ("接单 WG202611220001", WorkerCommand("accept", "WG202611220001")),
        ("接单wg202611220001", WorkerCommand("accept", "WG202611220001")),
        ("进度 已到现场，正在协调物业", WorkerCommand("progress", argument="已到现场，正在协调物业")),
        ("进度：已到现场", WorkerCommand("progress", argument="已到现场")),
        ("进度。已到现场", WorkerCommand("progress", argument="已到现场")),
        ("接单！", WorkerCommand("accept")),
        ("进度 WG202611220001 材料已备齐", WorkerCommand("progress", "WG202611220001", "材料已备齐")),
        ("办结 垃圾已清运\n现场已拍照", WorkerCommand("resolve", argument="垃圾已清运\n现场已拍照")),
        ("上报", WorkerCommand("escalate")),
        ("上报 需要城管执法", WorkerCommand("escalate", argument="需要城管执法")),
        ("退回\u3000不属于本网格", WorkerCommand("return", argument="不属于本网格")),
        ("退回，WG202611220002，不属于本网格", WorkerCommand("return", "WG202611220002", "不属于本网格")),
    ],
)
def test_commands_are_read(text: str, expected: WorkerCommand) -> None:
    assert parse_worker_command(text) == expected


@pytest.mark.parametrize("text", ["", "你好", "我想接单", "查询进度", "WG202611220001", "请办结"])
def test_other_text_is_not_a_command(text: str) -> None:
    assert parse_worker_command(text) is None


@pytest.mark.parametrize(
    ("text", "meant"),
    [
        ("进度怎么样了", WorkerCommand("progress", argument="怎么样了")),
        ("上报了吗？", WorkerCommand("escalate", argument="了吗？")),
        ("接单了", WorkerCommand("accept", argument="了")),
        ("退回来的材料在哪", WorkerCommand("return", argument="来的材料在哪")),
        ("办结已清理完毕", WorkerCommand("resolve", argument="已清理完毕")),
    ],
)
def test_a_verb_run_into_the_words_is_no_command_only_a_guess(text: str, meant: WorkerCommand) -> None:
    """Casual talk that starts with a verb ("进度怎么样了") used to be acted on."""
    assert parse_worker_command(text) is None
    assert unspaced_command(text) == meant


def test_a_real_command_or_plain_talk_is_no_guess() -> None:
    assert unspaced_command("办结 已清理") is None and unspaced_command("你好") is None


def test_a_number_lookalike_inside_the_argument_stays_in_the_argument() -> None:
    cmd = parse_worker_command("进度 电话13800138000已联系")
    assert cmd == WorkerCommand("progress", argument="电话13800138000已联系")


def test_notes_and_reasons_are_required_where_they_matter() -> None:
    missing = [parse_worker_command(t) for t in ("进度", "办结", "退回 WG202611220001")]
    assert all(c is not None and c.missing_argument for c in missing)
    present = [parse_worker_command(t) for t in ("接单", "上报", "办结 已修复")]
    assert all(c is not None and not c.missing_argument for c in present)
