"""Record ids: time-ordered, lowercase, safe in S3 keys and SageMaker job names."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
ID_LENGTH = 26


def new_id(now_ms: int | None = None) -> str:
    """48-bit millisecond time + 80 random bits (ULID layout): sorts by creation time."""
    value = ((now_ms if now_ms is not None else time.time_ns() // 1_000_000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(ID_LENGTH):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_valid_id(value: str) -> bool:
    return len(value) == ID_LENGTH and all(c in _ALPHABET for c in value)


def utc_now() -> str:
    """ISO-8601 UTC with microseconds: sorts lexicographically in time order."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
