"""Lambda entry point of background tasks (asynchronous invocations from the API function).

An exception is re-raised so that Lambda retries the invocation (twice) and then sends it to the
on-failure destination; runners record expected failures on their record instead of raising.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.domain.background_tasks import BackgroundTask
from functions.services.background import run_task
from functions.services.context import service_context

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = BackgroundTask.model_validate(event)
    logger.append_keys(task_kind=task.kind.value, record_id=task.record_id, owner=task.owner)
    logger.info("background task started")
    run_task(service_context(), task)
    logger.info("background task finished")
    return {"kind": task.kind.value, "record_id": task.record_id}
