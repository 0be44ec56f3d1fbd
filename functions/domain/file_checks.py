"""Byte-level checks of uploaded objects: the completion steps verify what really arrived."""

from __future__ import annotations

import json
import struct

SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024


def safetensors_header_length(first_8_bytes: bytes) -> int:
    """Length of the JSON header announced by a safetensors file, or raise ValueError."""
    if len(first_8_bytes) < 8:
        raise ValueError("the file is shorter than a safetensors header")
    (length,) = struct.unpack("<Q", first_8_bytes[:8])
    if not 2 <= length <= SAFETENSORS_MAX_HEADER:
        raise ValueError("the file does not start with a safetensors header")
    return length


def parse_safetensors_header(header: bytes, file_size: int) -> dict[str, object]:
    """Parse the JSON header and check that its tensors fit inside the file."""
    try:
        data = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError("the safetensors header is not valid JSON") from error
    if not isinstance(data, dict):
        raise ValueError("the safetensors header is not a JSON object")
    end = 0
    for name, info in data.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2):
            raise ValueError(f"tensor {name!r} has no data_offsets")
        end = max(end, int(offsets[1]))
    if 8 + len(header) + end > file_size:
        raise ValueError("the file is truncated: its tensors end after the end of the file")
    return data


_IMAGE_MAGIC: dict[str, tuple[bytes, ...]] = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpg": (b"\xff\xd8\xff",),
    "jpeg": (b"\xff\xd8\xff",),
    "bmp": (b"BM",),
}


def looks_like_image(extension: str, head: bytes) -> bool:
    """Whether the first bytes match the file's image extension (webp: RIFF....WEBP)."""
    ext = extension.lower().lstrip(".")
    if ext == "webp":
        return len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    return any(head.startswith(magic) for magic in _IMAGE_MAGIC.get(ext, ()))


def looks_like_text(head: bytes) -> bool:
    """Captions must be UTF-8 text without NULs."""
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # a multi-byte character cut at the end of the sniffed range is fine
        return error.start >= len(head) - 3
    return True
