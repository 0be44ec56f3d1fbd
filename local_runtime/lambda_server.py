"""The local Lambda service: the ``Invoke`` operation for the functions the API hands work to.

``POST /2015-03-31/functions/<name>/invocations`` as botocore sends it. ``X-Amz-Invocation-Type:
Event`` answers 202 at once and runs the handler on a worker thread, retrying a failed run twice
as Lambda does for asynchronous invocations; ``RequestResponse`` runs it and returns its result.
The API's boto3 client reaches it through ``AWS_ENDPOINT_URL_LAMBDA``: the same code path as in
AWS. Requests are not signature-checked (loopback only, like moto).

Each asynchronous invocation is journalled (one file in ``journal_dir``) until it has run; what a
stopped or crashed runtime leaves there is handed back by ``take_interrupted`` at the next start,
so the runtime can end the background work it interrupted, as it ends interrupted training jobs.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from local_runtime.lambda_invoker import LocalLambdaFunction
from local_runtime.loopback_server import LoopbackServer

logger = logging.getLogger("local_runtime.lambda")

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
ASYNC_RETRIES = 2  # Lambda retries a failed asynchronous invocation twice
RETRY_DELAY_SECONDS = 1.0  # Lambda waits about a minute, then two; locally there is no need to


class LocalLambdaService:
    """Named functions and the worker that runs their asynchronous invocations (one at a time)."""

    def __init__(
        self,
        functions: dict[str, LocalLambdaFunction],
        after_async: Callable[[], None] | None = None,
        journal_dir: Path | None = None,
    ) -> None:
        self._functions = functions
        self._after_async = after_async  # e.g. mirror the state once a background task has run
        self._workers = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-lambda-async")
        self._journal_dir = journal_dir

    def take_interrupted(self) -> list[tuple[str, Any]]:
        """(function name, event) of each asynchronous invocation an earlier run accepted but never
        finished; their journal entries are removed. Call before serving."""
        if self._journal_dir is None or not self._journal_dir.is_dir():
            return []
        found = []
        for entry in sorted(self._journal_dir.glob("*.json")):
            try:
                data = json.loads(entry.read_text())
                found.append((str(data["function"]), data["event"]))
            except (OSError, ValueError, KeyError):
                logger.warning("unreadable journal entry %s dropped", entry)
            entry.unlink(missing_ok=True)
        return found

    def _journal(self, function: LocalLambdaFunction, event: Any) -> Path | None:
        if self._journal_dir is None:
            return None
        self._journal_dir.mkdir(parents=True, exist_ok=True)
        entry = self._journal_dir / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.json"
        entry.write_text(json.dumps({"function": function.function_name, "event": event}))
        return entry

    def function(self, name: str) -> LocalLambdaFunction | None:
        # FunctionName may be a name or an ARN; the name is its last ':'-separated part.
        return self._functions.get(name.rsplit(":", 1)[-1])

    def invoke_async(self, function: LocalLambdaFunction, event: Any) -> None:
        entry = self._journal(function, event)
        self._workers.submit(self._run_journalled, function, event, entry)

    def _run_journalled(self, function: LocalLambdaFunction, event: Any, entry: Path | None) -> None:
        try:
            self._run_with_retries(function, event)
        finally:
            if entry is not None:
                entry.unlink(missing_ok=True)

    def _run_with_retries(self, function: LocalLambdaFunction, event: Any) -> None:
        for attempt in range(1 + ASYNC_RETRIES):
            try:
                function.invoke(event)
                if self._after_async is not None:
                    self._after_async()
                return
            except Exception:
                logger.exception(
                    "asynchronous invocation of %s failed (attempt %d)", function.function_name, attempt + 1
                )
                time.sleep(RETRY_DELAY_SECONDS)
        logger.error("asynchronous invocation of %s dropped after its retries", function.function_name)

    def shutdown(self) -> None:
        self._workers.shutdown(wait=False, cancel_futures=True)


class LambdaWireServer(LoopbackServer):
    """The HTTP listener speaking Lambda's Invoke REST protocol."""

    thread_name = "local-lambda"

    def __init__(self, service: LocalLambdaService, port: int = 0) -> None:
        super().__init__(_InvokeHandler, port=port)
        self.service = service

    def stop(self) -> None:
        super().stop()
        self.service.shutdown()


class _InvokeHandler(BaseHTTPRequestHandler):
    server: LambdaWireServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)

    def do_POST(self) -> None:
        match = INVOKE_PATH.match(self.path.split("?", 1)[0])
        if match is None:
            self._error(404, "UnknownOperationException", f"unsupported path {self.path}")
            return
        function = self.server.service.function(match["name"])
        if function is None:
            self._error(404, "ResourceNotFoundException", f"Function not found: {match['name']}")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            event = json.loads(body or b"{}")
        except json.JSONDecodeError:
            self._error(400, "InvalidRequestContentException", "Could not parse request body into json")
            return
        if self.headers.get("X-Amz-Invocation-Type", "RequestResponse") == "Event":
            self.server.service.invoke_async(function, event)
            self._reply(202, b"")
            return
        try:
            result = function.invoke(event)
        except Exception as error:  # Lambda reports a handler error with 200 + X-Amz-Function-Error
            payload = json.dumps({"errorMessage": str(error), "errorType": type(error).__name__}).encode()
            self._reply(200, payload, {"X-Amz-Function-Error": "Unhandled"})
            return
        self._reply(200, json.dumps(result).encode())

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        self._reply(
            status, json.dumps({"Type": "User", "message": message}).encode(), {"X-Amzn-ErrorType": code}
        )
