"""A position in a training job's log, and the rules of a log page request.

SageMaker writes one CloudWatch Logs stream per instance and attempt
(``<job name>/algo-1-<epoch>``; a restarted spot job adds a stream). A ``LogCursor`` names a
stream and CloudWatch's own token inside it, and which way to read: ``forward`` (newer lines)
or ``backward`` (older lines). An empty stream name means "before the first stream", so a job
that has not started yet still gets a cursor to follow from.

Cursors travel to clients inside signed page tokens (``functions.domain.page_tokens``), so a
client can neither forge a position nor point a cursor at another job's stream; ``from_token``
still checks the stream belongs to the job, as a second line of defence.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from functions.domain.errors import invalid

DEFAULT_LOG_PAGE_LINES = 100
# CloudWatch answers at most 1 MB per GetLogEvents call, so a page stays well inside Lambda's
# 6 MB response limit whatever this bound.
MAX_LOG_PAGE_LINES = 1000


class LogStart(StrEnum):
    """Where a first request (one without a token) starts reading."""

    TAIL = "tail"  # the newest lines (then follow forward with next_token)
    HEAD = "head"  # the first lines of the first attempt


class Direction(StrEnum):
    FORWARD = "forward"
    BACKWARD = "backward"


@dataclass(frozen=True)
class LogCursor:
    stream: str  # "" = before the first stream
    token: str  # CloudWatch's nextForwardToken / nextBackwardToken; "" = the stream's end
    direction: Direction

    def to_token(self) -> dict[str, Any]:
        return {"s": self.stream, "t": self.token, "d": self.direction.value}

    @classmethod
    def from_token(cls, data: dict[str, Any], stream_prefix: str) -> LogCursor:
        """The cursor inside a verified page token (400 naming ``next_token`` if it is not one)."""
        stream, token, direction = data.get("s"), data.get("t"), data.get("d")
        valid = (
            isinstance(stream, str)
            and isinstance(token, str)
            and direction in {d.value for d in Direction}
            and (stream == "" or stream.startswith(stream_prefix))
        )
        if not valid:
            raise invalid("next_token", "is not a valid page token for this query")
        return cls(str(stream), str(token), Direction(str(direction)))


def head_cursor() -> LogCursor:
    """Before the first line of the first stream (where following a job that has not started begins)."""
    return LogCursor(stream="", token="", direction=Direction.FORWARD)


@dataclass(frozen=True)
class LogLine:
    timestamp_ms: int
    message: str


@dataclass(frozen=True)
class LogRead:
    """One page read from CloudWatch: the lines, oldest first, and where to go on either side."""

    lines: list[LogLine]
    newer: LogCursor  # always set: a follower polls it until new lines arrive
    older: LogCursor | None  # None at the very beginning of the log


def check_log_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LOG_PAGE_LINES:
        raise invalid("limit", f"must be between 1 and {MAX_LOG_PAGE_LINES}")
    return limit


def log_query(job_id: str) -> str:
    """What a log page token is bound to (with the caller): one job's log."""
    return f"TrainingLog|{job_id}"
