"""What every use case needs (settings and adapters), built once per process.

Building the context makes no AWS call: adapters create their clients on first use, and the
page-token key (only the API signs page tokens, and only its role may read that secret) is read
from Secrets Manager the first time a list route signs or checks a token. The events, reconciler
and tasks functions build the same context and never touch the secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache

from functions.adapters.aws_clients import secret_value
from functions.adapters.batch_launcher import BatchLauncher
from functions.adapters.repository import Repository
from functions.adapters.storage import ObjectStorage
from functions.adapters.task_dispatcher import TaskDispatcher
from functions.adapters.token_sealer import TokenSealer
from functions.adapters.training_launcher import SageMakerLauncher, TrainingLauncher
from functions.adapters.training_logs import TrainingLogReader
from functions.domain.catalog import INSTANCE_TYPES
from functions.services.notifications import Notifier
from functions.settings import Settings


@dataclass
class ServiceContext:
    settings: Settings
    repository: Repository
    storage: ObjectStorage
    launcher: TrainingLauncher
    training_logs: TrainingLogReader
    notifier: Notifier
    tasks: TaskDispatcher
    _page_secret: bytes | None = field(default=None, repr=False)

    @property
    def page_secret(self) -> bytes:
        """The page-token HMAC key, read on first use (see the module docstring)."""
        if self._page_secret is None:
            self._page_secret = page_token_secret(self.settings)
        return self._page_secret

    def token_sealer(self) -> TokenSealer:
        """Seals gated imports' access tokens (the API encrypts, the tasks function decrypts)."""
        return TokenSealer(self.settings.require("import_token_key_arn"))

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


def launcher_for(settings: Settings) -> TrainingLauncher:
    """The deployment's launcher: its Batch job queue when it queues trainings, else SageMaker."""
    if settings.training_launcher == "queue":
        return BatchLauncher(settings.require("training_job_queue"))
    return SageMakerLauncher()


@cache
def service_context() -> ServiceContext:
    """The API's, events', reconciler's and tasks' context (the webhooks function needs none)."""
    settings = Settings.from_env()
    return ServiceContext(
        settings=settings,
        repository=Repository(settings.require("table_name")),
        storage=ObjectStorage(settings.require("bucket_name"), settings.presign_expiry_seconds),
        launcher=launcher_for(settings),
        training_logs=TrainingLogReader(settings.training_log_group),
        notifier=Notifier.from_settings(settings),
        tasks=TaskDispatcher(settings.tasks_function_name),
    )
