"""Calls the service's Lambda handlers in-process, as the Lambda runtime would.

One ``LocalLambdaFunction`` is one execution environment: it imports the handler once (after
the runtime has set the environment variables, as Lambda sets them before the init phase) and
runs one invocation at a time, because Lambda never sends two events to the same environment
at once and the handlers' module-level state (Powertools' resolver) relies on that.
"""

from __future__ import annotations

import importlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local_runtime.sagemaker_jobs import ACCOUNT_ID

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalLambdaContext:
    """The attributes of Lambda's context object that Powertools and handlers read."""

    function_name: str
    region: str
    timeout_seconds: int
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalLambdaFunction:
    """A handler given by dotted path (``package.module.function``), invoked one event at a time."""

    def __init__(self, handler_path: str, function_name: str, region: str, timeout_seconds: int = 30) -> None:
        self._handler_path = handler_path
        self.function_name = function_name
        self._region = region
        self._timeout_seconds = timeout_seconds
        self._handler: Handler | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """The init phase: import the handler module (the env vars must be set by now)."""
        module_name, _, attribute = self._handler_path.rpartition(".")
        self._handler = getattr(importlib.import_module(module_name), attribute)

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._lock:
            if self._handler is None:
                self.load()
            assert self._handler is not None
            context = LocalLambdaContext(self.function_name, self._region, self._timeout_seconds)
            return self._handler(event, context)
