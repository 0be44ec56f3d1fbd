"""What every use case needs (settings and adapters), built once per process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from functions.adapters.aws_clients import secret_value
from functions.adapters.repository import Repository
from functions.adapters.storage import ObjectStorage
from functions.adapters.task_dispatcher import TaskDispatcher
from functions.adapters.training_launcher import SageMakerLauncher
from functions.adapters.training_logs import TrainingLogReader
from functions.domain.catalog import INSTANCE_TYPES
from functions.services.notifications import Notifier
from functions.settings import Settings


@dataclass
class ServiceContext:
    settings: Settings
    repository: Repository
    storage: ObjectStorage
    launcher: SageMakerLauncher
    page_secret: bytes
    training_logs: TrainingLogReader
    notifier: Notifier
    tasks: TaskDispatcher

    def price_per_hour(self, instance_type: str) -> float:
        """The deployment's price override for an instance type, else the catalogue's list price."""
        overrides: dict[str, float] = (
            json.loads(self.settings.instance_prices_json) if self.settings.instance_prices_json else {}
        )
        return float(overrides.get(instance_type, INSTANCE_TYPES[instance_type].price_per_hour_usd))


def page_token_secret(settings: Settings) -> bytes:
    """The HMAC key of page tokens: given directly (local runtime, tests) or read from Secrets Manager."""
    if settings.page_token_secret:
        return settings.page_token_secret.encode()
    if settings.page_token_secret_arn:
        return secret_value(settings.page_token_secret_arn)
    raise RuntimeError("PAGE_TOKEN_SECRET or PAGE_TOKEN_SECRET_ARN must be set")


@cache
def service_context() -> ServiceContext:
    settings = Settings.from_env()
    return ServiceContext(
        settings=settings,
        repository=Repository(settings.table_name),
        storage=ObjectStorage(settings.bucket_name, settings.presign_expiry_seconds),
        launcher=SageMakerLauncher(),
        page_secret=page_token_secret(settings),
        training_logs=TrainingLogReader(settings.training_log_group),
        notifier=Notifier.from_settings(settings),
        tasks=TaskDispatcher(settings.tasks_function_name),
    )
