"""Starting a training job at most once per (caller, ``Idempotency-Key``).

``POST /trainings`` starts paid work, so a retried request (a timeout, a double click, a client's
automatic retry) must return the first job rather than start another. Powertools' idempotency
utility does it (https://docs.aws.amazon.com/powertools/python/latest/utilities/idempotency/,
"Idempotent function decorator", "Output serialization"): the first call stores an in-progress
record in the idempotency table, runs the use case and stores its result; a retry gets that
result, a concurrent one ``IdempotencyAlreadyInProgressError`` and a reused key with another body
``IdempotencyValidationError`` (both answered 409 by ``functions.api.app``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from functions.api.schemas.trainings import CreateTrainingRequest, TrainingJobView
from functions.services import trainings
from functions.services.context import service_context

IDEMPOTENCY_TTL_SECONDS = 24 * 3600

# Keyed on (caller, Idempotency-Key); the body is validated so a reused key with another body is
# refused instead of silently returning the first job.
IDEMPOTENCY_CONFIG = IdempotencyConfig(
    event_key_jmespath="[owner, key]",
    payload_validation_jmespath="body",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
)


class TrainingStart(BaseModel):
    """What an idempotency record is keyed on (``owner``, ``key``) and checked against (``body``).

    Powertools hashes ``model_dump(mode="json")`` of it, so the key and the payload hash are those
    of the plain JSON request, whatever Python types the request holds.
    """

    owner: str
    key: str
    body: CreateTrainingRequest


def _start(start: TrainingStart) -> TrainingJobView:
    return trainings.create_training(service_context(), start.owner, start.body)


@cache
def _idempotent_start() -> Any:
    """Built on first use: the persistence layer needs the table name from the environment."""
    store = DynamoDBPersistenceLayer(table_name=service_context().settings.idempotency_table_name)
    return idempotent_function(
        data_keyword_argument="start",
        persistence_store=store,
        config=IDEMPOTENCY_CONFIG,
        output_serializer=PydanticSerializer(TrainingJobView),
    )(_start)


def start_training_once(owner: str, key: str, request: CreateTrainingRequest) -> TrainingJobView:
    """The job this (owner, key) started, starting it now if it is the first call with them."""
    job: TrainingJobView = _idempotent_start()(start=TrainingStart(owner=owner, key=key, body=request))
    return job


def register_invocation(context: LambdaContext) -> None:
    """Tell the utility the invocation's remaining time: an in-progress record then expires with
    the invocation, so a retry after a timeout is not refused as in progress until the TTL."""
    IDEMPOTENCY_CONFIG.register_lambda_context(context)


def forget_warm_state() -> None:
    """Drop the persistence layer built on first use (what a cold start does; for tests)."""
    _idempotent_start.cache_clear()
