"""Hands a background task to the tasks function: an asynchronous Lambda invocation.

``InvocationType="Event"`` returns as soon as Lambda has queued the event; Lambda retries a
failed run twice and then sends the event to the function's on-failure destination. Locally,
``AWS_ENDPOINT_URL_LAMBDA`` points the same call at the local runtime, which runs the same
handler on a worker thread.
"""

from __future__ import annotations

from functions.adapters.aws_clients import lambda_client
from functions.domain.background_tasks import BackgroundTask


class TaskDispatcher:
    def __init__(self, function_name: str) -> None:
        self._function_name = function_name

    def dispatch(self, task: BackgroundTask) -> None:
        if not self._function_name:
            raise RuntimeError("TASKS_FUNCTION_NAME is not set: background tasks cannot run")
        lambda_client().invoke(
            FunctionName=self._function_name,
            InvocationType="Event",
            Payload=task.model_dump_json().encode(),
        )
