"""Where a ticket's photos live under `service.media_dir`, named by the references tickets store.

A photo reference is a self-describing string:

- a resident's photo: the provider's media id as it is in `Ticket.media_ids`; its folder follows
  the ticket's channel (`wechat_mp/` for the official account, `wecom/` for the WeCom app);
- `upload:<ticket number>/<name>`: a worker's upload on the task page (`<number>/<name>`);
- `wecom:<media id>`: a worker's photo sent in the WeCom app (`wecom/`).

Every path is built here from a stored reference and checked to stay inside the media folder;
nothing a browser sends is ever part of one.
"""

from __future__ import annotations

import re
from pathlib import Path

UPLOAD = "upload:"
WECOM = "wecom:"
FOLDERS = {"wechat_mp": "wechat_mp", "wecom": "wecom"}  # channel -> folder of its residents' photos
WECOM_FOLDER = FOLDERS["wecom"]
_UPLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}/[A-Za-z0-9_-]{1,64}\.[a-z0-9]{1,5}")

# (magic bytes at the start, content type) of the images the console shows inline
_IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def safe_name(media_id: str) -> str:
    """A provider media id as a file name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", media_id)


def media_id_of(reference: str) -> str:
    """The provider media id behind a reference ("" for an upload): the key of `keys.media_failed()`."""
    if reference.startswith(UPLOAD):
        return ""
    return reference.removeprefix(WECOM)


def photo_path(media_dir: Path, reference: str, channel: str = "") -> Path | None:
    """The file of a photo reference, or None when it names nothing we keep or would leave
    `media_dir`. `channel`: the ticket's, for a resident's bare media id."""
    if reference.startswith(UPLOAD):
        relative = reference.removeprefix(UPLOAD)
        if not _UPLOAD.fullmatch(relative):
            return None
        path = media_dir / relative
    elif reference.startswith(WECOM):
        path = media_dir / WECOM_FOLDER / safe_name(reference.removeprefix(WECOM))
    elif channel in FOLDERS and reference:
        path = media_dir / FOLDERS[channel] / safe_name(reference)
    else:
        return None
    root = media_dir.resolve()
    resolved = path.resolve()
    return resolved if resolved.is_relative_to(root) and resolved != root else None


def image_type(head: bytes) -> str | None:
    """JPEG, PNG, GIF or WebP by their magic bytes; None for anything else."""
    for magic, content_type in _IMAGE_MAGIC:
        if head.startswith(magic):
            return content_type
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None
