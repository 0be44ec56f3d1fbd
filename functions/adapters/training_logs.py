"""Training job logs from CloudWatch Logs, where SageMaker writes them.

The log group holds one stream per instance and attempt of a job (``<job name>/algo-1-<epoch>``).
Streams are read with ``GetLogEvents`` and its forward/backward tokens; a page that reaches the
end of a stream continues in the next (older or newer) stream, so a spot restart reads as one
log. The local runtime ships its child processes' output into the emulated CloudWatch Logs under
the same names, so this adapter serves both places.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from functions.adapters.aws_clients import logs_client
from functions.domain.errors import invalid
from functions.domain.training_logs import Direction, LogCursor, LogLine, LogRead, head_cursor

# GetLogEvents may answer an empty page while more events lie further on (the documented end
# is the same token coming back); a few calls settle it without looping on a busy stream.
MAX_EMPTY_PAGES = 5


def _lines(events: list[dict[str, Any]]) -> list[LogLine]:
    return [
        LogLine(
            timestamp_ms=int(event.get("timestamp", 0)), message=str(event.get("message", "")).rstrip("\r\n")
        )
        for event in events
    ]


class TrainingLogReader:
    def __init__(self, log_group: str) -> None:
        self.log_group = log_group

    @property
    def _logs(self) -> Any:
        return logs_client()

    def streams(self, prefix: str) -> list[str]:
        """The job's streams, oldest attempt first (none before the job has started)."""
        found: list[tuple[int, str]] = []
        try:
            pages = self._logs.get_paginator("describe_log_streams").paginate(
                logGroupName=self.log_group, logStreamNamePrefix=prefix
            )
            for page in pages:
                found += [(int(s.get("creationTime", 0)), s["logStreamName"]) for s in page["logStreams"]]
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                return []  # no training job has logged in this account and region yet
            raise
        return [name for _, name in sorted(found)]

    def _page(
        self, stream: str, token: str, direction: Direction, limit: int
    ) -> tuple[list[LogLine], str, str]:
        """One GetLogEvents page: (lines, forward token, backward token)."""
        forward = direction is Direction.FORWARD
        sent = token
        for _ in range(MAX_EMPTY_PAGES):
            request: dict[str, Any] = {
                "logGroupName": self.log_group,
                "logStreamName": stream,
                "limit": limit,
                "startFromHead": forward,
            }
            if sent:
                request["nextToken"] = sent
            try:
                response = self._logs.get_log_events(**request)
            except ClientError as error:
                code = error.response["Error"]["Code"]
                if code == "ResourceNotFoundException":
                    return [], token, token
                if code == "InvalidParameterException":
                    raise invalid("next_token", "has expired; start again without it") from error
                raise
            events = response.get("events") or []
            newer, older = (
                str(response.get("nextForwardToken", "")),
                str(response.get("nextBackwardToken", "")),
            )
            received = newer if forward else older
            if events or received == sent or not received:
                return _lines(events), newer, older
            sent = received
        return [], newer, older

    def tail(self, prefix: str, limit: int) -> LogRead:
        """The newest ``limit`` lines of the job."""
        streams = self.streams(prefix)
        if not streams:
            return LogRead(lines=[], newer=head_cursor(), older=None)
        return self.read(prefix, LogCursor(streams[-1], "", Direction.BACKWARD), limit, streams)

    def read(self, prefix: str, cursor: LogCursor, limit: int, streams: list[str] | None = None) -> LogRead:
        """``limit`` lines on the cursor's side of it, crossing into the next stream at a stream's end."""
        streams = self.streams(prefix) if streams is None else streams
        if not streams:  # nothing logged yet: follow from the start of the first stream
            return LogRead(lines=[], newer=head_cursor(), older=None)
        step = 1 if cursor.direction is Direction.FORWARD else -1
        index, token = self._start(streams, cursor)
        while True:
            stream = streams[index]
            lines, newer, older = self._page(stream, token, cursor.direction, limit)
            if lines:
                return LogRead(
                    lines=lines,
                    newer=LogCursor(stream, newer, Direction.FORWARD),
                    older=LogCursor(stream, older, Direction.BACKWARD),
                )
            if 0 <= index + step < len(streams):
                index, token = index + step, ""
                continue
            if cursor.direction is Direction.FORWARD:  # the end: poll here for new lines
                return LogRead(
                    lines=[], newer=LogCursor(stream, newer or token, Direction.FORWARD), older=None
                )
            return LogRead(lines=[], newer=LogCursor(streams[0], "", Direction.FORWARD), older=None)

    @staticmethod
    def _start(streams: list[str], cursor: LogCursor) -> tuple[int, str]:
        """Where in ``streams`` a cursor points (a vanished stream: the nearest one on its side)."""
        if cursor.stream in streams:
            return streams.index(cursor.stream), cursor.token
        if cursor.direction is Direction.FORWARD:
            later = [i for i, name in enumerate(streams) if name > cursor.stream]
            return (later[0], "") if later else (len(streams) - 1, "")
        earlier = [i for i, name in enumerate(streams) if name < cursor.stream]
        return (earlier[-1], "") if earlier else (0, "")
