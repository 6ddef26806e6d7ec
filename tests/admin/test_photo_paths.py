"""Photo references become paths only inside the media folder; timeline photos survive storage."""

from __future__ import annotations

from pathlib import Path

from bot.media import image_type, media_id_of, photo_path
from bot.tickets import TimelineEntry


def test_references_resolve_inside_the_media_folder_only(tmp_path: Path):
    root = tmp_path / "media"
    assert photo_path(root, "upload:WG202611240001/ab12.jpg") == (root / "WG202611240001" / "ab12.jpg").resolve()
    assert photo_path(root, "wecom:abc/../../x") == (root / "wecom" / "abc_______x").resolve()
    assert photo_path(root, "m1", "wechat_mp") == (root / "wechat_mp" / "m1").resolve()
    assert photo_path(root, "m1", "wecom") == (root / "wecom" / "m1").resolve()
    assert photo_path(root, "..", "wechat_mp") == (root / "wechat_mp" / "__").resolve()
    for bad in ("upload:../../etc/passwd", "upload:WG1/../x.jpg", "upload:/etc/passwd", "upload:WG1/x"):
        assert photo_path(root, bad) is None, bad
    assert photo_path(root, "m1", "rest") is None  # a channel whose photos are not kept
    assert photo_path(root, "", "wechat_mp") is None


def test_media_ids_and_image_types():
    assert media_id_of("wecom:m1") == "m1" and media_id_of("m2") == "m2" and media_id_of("upload:W/x.jpg") == ""
    assert image_type(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert image_type(b"\x89PNG\r\n\x1a\n") == "image/png"
    assert image_type(b"GIF89a..") == "image/gif"
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert image_type(b"<svg xmlns=") is None and image_type(b"") is None


def test_timeline_photos_round_trip_and_old_entries_still_load():
    entry = TimelineEntry(at="2026-11-24T09:00:00+08:00", actor="worker:Z", kind="resolve", text="已清运",
                          photos=("wecom:m1", "upload:WG202611240001/a.jpg"))
    assert entry.to_json()["photos"] == ["wecom:m1", "upload:WG202611240001/a.jpg"]
    assert TimelineEntry.from_json(entry.to_json()) == entry
    old = {"at": "2026-11-24T09:00:00+08:00", "actor": "system", "kind": "notify", "text": "x"}
    assert TimelineEntry.from_json(old).photos == ()
    assert "photos" not in TimelineEntry.from_json(old).to_json()
