"""Replies that fit one SMS go out as they are; longer ones in numbered segments of at most 70."""

from bot.sms import segments


def test_a_short_reply_is_one_sms_unchanged() -> None:
    text = "工单号WG202611240001：已登记。"
    assert segments(text) == [text]
    assert segments("字" * 70) == ["字" * 70]


def test_a_long_reply_is_split_into_numbered_segments_of_at_most_70() -> None:
    text = "工单号WG202611240001：已登记。\n" + "很长的说明文字" * 30
    parts = segments(text)
    assert len(parts) > 1
    assert all(len(p) <= 70 for p in parts)
    assert parts[0].startswith(f"(1/{len(parts)})工单号WG202611240001")
    assert "".join(p.split(")", 1)[1].replace("\n", "") for p in parts) == text.replace("\n", "")
