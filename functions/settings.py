"""Runtime settings of the Lambda functions, read from environment variables.

The environment-variable names and the deployment defaults are defined here once: the CDK
stack imports ``EnvVar`` and ``DEFAULTS`` to set them, the local runtime sets the same names,
and the handlers read them through ``Settings.from_env()``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from functions.domain.catalog import INSTANCE_TYPES
from functions.domain.storage_layout import SAGEMAKER_TRAINING_LOG_GROUP


class EnvVar(StrEnum):
    TABLE_NAME = "TABLE_NAME"
    IDEMPOTENCY_TABLE_NAME = "IDEMPOTENCY_TABLE_NAME"
    BUCKET_NAME = "BUCKET_NAME"
    TRAINING_IMAGE_URI = "TRAINING_IMAGE_URI"
    TRAINING_ROLE_ARN = "TRAINING_ROLE_ARN"
    JOB_NAME_PREFIX = "JOB_NAME_PREFIX"
    ALLOWED_INSTANCE_TYPES = "ALLOWED_INSTANCE_TYPES"  # comma-separated
    INSTANCE_PRICES_JSON = "INSTANCE_PRICES_JSON"  # optional {"ml.g5.2xlarge": 1.2, ...}
    DEFAULT_USE_SPOT = "DEFAULT_USE_SPOT"  # "true" | "false"
    MAX_RUNTIME_SECONDS = "MAX_RUNTIME_SECONDS"  # upper bound a job may ask for
    MAX_CONCURRENT_JOBS_PER_OWNER = "MAX_CONCURRENT_JOBS_PER_OWNER"
    MAX_STORAGE_BYTES_PER_OWNER = "MAX_STORAGE_BYTES_PER_OWNER"
    PAGE_TOKEN_SECRET = "PAGE_TOKEN_SECRET"  # local runtime / tests: the secret itself
    PAGE_TOKEN_SECRET_ARN = "PAGE_TOKEN_SECRET_ARN"  # AWS: a Secrets Manager secret holding it
    TRAINING_ENGINE = "TRAINING_ENGINE"  # auto | kohya | diffusers
    TRAINING_NETWORK_ISOLATION = "TRAINING_NETWORK_ISOLATION"  # "true" | "false"
    TRAINING_SUBNET_IDS = "TRAINING_SUBNET_IDS"  # comma-separated, optional
    TRAINING_SECURITY_GROUP_IDS = "TRAINING_SECURITY_GROUP_IDS"  # comma-separated, optional
    PRESIGN_EXPIRY_SECONDS = "PRESIGN_EXPIRY_SECONDS"
    TRAINING_LOG_GROUP = "TRAINING_LOG_GROUP"  # CloudWatch Logs group SageMaker writes job logs to
    # Notifications (docs/notifications.md): the service's own EventBridge bus, the webhook
    # delivery queue, the webhook signing secret (directly, or a Secrets Manager ARN), and the
    # local runtime's switch to allow http:// webhooks to loopback.
    EVENT_BUS_NAME = "EVENT_BUS_NAME"
    WEBHOOK_QUEUE_URL = "WEBHOOK_QUEUE_URL"
    WEBHOOK_SIGNING_SECRET = "WEBHOOK_SIGNING_SECRET"
    WEBHOOK_SIGNING_SECRET_ARN = "WEBHOOK_SIGNING_SECRET_ARN"
    WEBHOOK_ALLOW_LOOPBACK_HTTP = "WEBHOOK_ALLOW_LOOPBACK_HTTP"  # "true" only locally / in tests
    WEBHOOK_RETRY_BASE_SECONDS = "WEBHOOK_RETRY_BASE_SECONDS"  # first retry delay; doubles each time
    TASKS_FUNCTION_NAME = "TASKS_FUNCTION_NAME"  # the function background tasks are handed to
    # Model imports from a URL (docs/dataset-preparation-and-imports.md): the largest file fetched,
    # and the local runtime's switch allowing http:// to loopback (never set in AWS).
    MODEL_IMPORT_MAX_BYTES = "MODEL_IMPORT_MAX_BYTES"
    MODEL_IMPORT_ALLOW_LOOPBACK_HTTP = "MODEL_IMPORT_ALLOW_LOOPBACK_HTTP"
    # The KMS key that seals a gated import's access token between the API and the tasks function.
    IMPORT_TOKEN_KEY_ARN = "IMPORT_TOKEN_KEY_ARN"
    # How trainings are launched: "direct" (CreateTrainingJob) or "queue" (an AWS Batch job queue
    # of SageMaker Training service jobs, functions.adapters.batch_launcher), and that queue.
    TRAINING_LAUNCHER = "TRAINING_LAUNCHER"
    TRAINING_JOB_QUEUE = "TRAINING_JOB_QUEUE"  # the job queue's ARN (or name)
    # Roles whose sessions all map to one owner, the role (functions/api/identity.py).
    OWNER_SESSION_ROLES = "OWNER_SESSION_ROLES"  # comma-separated role names


@dataclass(frozen=True)
class DeploymentDefaults:
    """Documented defaults of a deployment; CDK context keys override them (see README)."""

    allowed_instance_types: tuple[str, ...] = (
        "ml.g4dn.xlarge",
        "ml.g5.xlarge",
        "ml.g5.2xlarge",
        "ml.g6.xlarge",
        "ml.g6e.xlarge",
    )
    default_use_spot: bool = True
    max_runtime_seconds: int = 8 * 3600
    max_concurrent_jobs_per_owner: int = 2
    max_storage_bytes_per_owner: int = 200 * 1024**3
    log_retention_days: int = 30
    job_name_prefix: str = "lora"
    training_engine: str = "auto"
    network_isolation: bool = True
    presign_expiry_seconds: int = 900
    training_log_group: str = SAGEMAKER_TRAINING_LOG_GROUP
    # Webhook deliveries: attempts before the message goes to the dead-letter queue (SQS
    # maxReceiveCount) and the first retry delay, doubled per attempt (capped by SQS at 12 h).
    # The largest model a URL import fetches (the upload limit for checkpoints).
    model_import_max_bytes: int = 32 * 1024**3  # flux1-dev.safetensors: 23.8 GB (MAX_MODEL_BYTES)
    webhook_max_attempts: int = 8
    webhook_retry_base_seconds: int = 30
    # Queued launches (README "Training queue"): off by default, so a first deploy needs nothing
    # new; the GPU budget is the service environment's capacity in instances, and a queued job
    # waiting longer than the maximum for capacity/quota is failed by Batch with its reason.
    training_launcher: str = "direct"
    gpu_budget_instances: int = 2
    max_queue_wait_seconds: int = 24 * 3600


DEFAULTS = DeploymentDefaults()
TRAINING_LAUNCHERS = ("direct", "queue")


def _bool(raw: str | None, default: bool) -> bool:
    return default if raw in (None, "") else raw.strip().lower() in ("1", "true", "yes", "on")


def _csv(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """One function's settings. Every variable is optional here because each function is given
    only the variables it uses (infrastructure/constructs/functions.py); what a use case cannot
    do without is asked for with ``require``, which names the missing variable."""

    table_name: str = ""
    idempotency_table_name: str = ""
    bucket_name: str = ""
    training_image_uri: str = ""
    training_role_arn: str = ""
    job_name_prefix: str = DEFAULTS.job_name_prefix
    allowed_instance_types: tuple[str, ...] = DEFAULTS.allowed_instance_types
    instance_prices_json: str = ""
    default_use_spot: bool = DEFAULTS.default_use_spot
    max_runtime_seconds: int = DEFAULTS.max_runtime_seconds
    max_concurrent_jobs_per_owner: int = DEFAULTS.max_concurrent_jobs_per_owner
    max_storage_bytes_per_owner: int = DEFAULTS.max_storage_bytes_per_owner
    page_token_secret: str = ""
    page_token_secret_arn: str = ""
    training_engine: str = DEFAULTS.training_engine
    network_isolation: bool = DEFAULTS.network_isolation
    subnet_ids: tuple[str, ...] = field(default_factory=tuple)
    security_group_ids: tuple[str, ...] = field(default_factory=tuple)
    presign_expiry_seconds: int = DEFAULTS.presign_expiry_seconds
    training_log_group: str = DEFAULTS.training_log_group
    event_bus_name: str = ""
    webhook_queue_url: str = ""
    webhook_signing_secret: str = ""
    webhook_signing_secret_arn: str = ""
    webhook_allow_loopback_http: bool = False
    webhook_retry_base_seconds: int = DEFAULTS.webhook_retry_base_seconds
    tasks_function_name: str = ""
    model_import_max_bytes: int = DEFAULTS.model_import_max_bytes
    model_import_allow_loopback_http: bool = False
    import_token_key_arn: str = ""
    owner_session_roles: tuple[str, ...] = ()
    training_launcher: str = DEFAULTS.training_launcher
    training_job_queue: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        allowed = _csv(e.get(EnvVar.ALLOWED_INSTANCE_TYPES)) or DEFAULTS.allowed_instance_types
        unknown = [name for name in allowed if name not in INSTANCE_TYPES]
        if unknown:
            raise ValueError(f"{EnvVar.ALLOWED_INSTANCE_TYPES} names unknown instance types: {unknown}")
        launcher = e.get(EnvVar.TRAINING_LAUNCHER) or DEFAULTS.training_launcher
        if launcher not in TRAINING_LAUNCHERS:
            raise ValueError(
                f"{EnvVar.TRAINING_LAUNCHER} must be one of {TRAINING_LAUNCHERS}, not {launcher!r}"
            )
        return cls(
            table_name=e.get(EnvVar.TABLE_NAME, ""),
            idempotency_table_name=e.get(EnvVar.IDEMPOTENCY_TABLE_NAME, ""),
            bucket_name=e.get(EnvVar.BUCKET_NAME, ""),
            training_image_uri=e.get(EnvVar.TRAINING_IMAGE_URI, ""),
            training_role_arn=e.get(EnvVar.TRAINING_ROLE_ARN, ""),
            job_name_prefix=e.get(EnvVar.JOB_NAME_PREFIX) or DEFAULTS.job_name_prefix,
            allowed_instance_types=allowed,
            instance_prices_json=e.get(EnvVar.INSTANCE_PRICES_JSON, ""),
            default_use_spot=_bool(e.get(EnvVar.DEFAULT_USE_SPOT), DEFAULTS.default_use_spot),
            max_runtime_seconds=int(e.get(EnvVar.MAX_RUNTIME_SECONDS) or DEFAULTS.max_runtime_seconds),
            max_concurrent_jobs_per_owner=int(
                e.get(EnvVar.MAX_CONCURRENT_JOBS_PER_OWNER) or DEFAULTS.max_concurrent_jobs_per_owner
            ),
            max_storage_bytes_per_owner=int(
                e.get(EnvVar.MAX_STORAGE_BYTES_PER_OWNER) or DEFAULTS.max_storage_bytes_per_owner
            ),
            page_token_secret=e.get(EnvVar.PAGE_TOKEN_SECRET, ""),
            page_token_secret_arn=e.get(EnvVar.PAGE_TOKEN_SECRET_ARN, ""),
            training_engine=e.get(EnvVar.TRAINING_ENGINE) or DEFAULTS.training_engine,
            network_isolation=_bool(e.get(EnvVar.TRAINING_NETWORK_ISOLATION), DEFAULTS.network_isolation),
            subnet_ids=_csv(e.get(EnvVar.TRAINING_SUBNET_IDS)),
            security_group_ids=_csv(e.get(EnvVar.TRAINING_SECURITY_GROUP_IDS)),
            presign_expiry_seconds=int(
                e.get(EnvVar.PRESIGN_EXPIRY_SECONDS) or DEFAULTS.presign_expiry_seconds
            ),
            training_log_group=e.get(EnvVar.TRAINING_LOG_GROUP) or DEFAULTS.training_log_group,
            event_bus_name=e.get(EnvVar.EVENT_BUS_NAME, ""),
            webhook_queue_url=e.get(EnvVar.WEBHOOK_QUEUE_URL, ""),
            webhook_signing_secret=e.get(EnvVar.WEBHOOK_SIGNING_SECRET, ""),
            webhook_signing_secret_arn=e.get(EnvVar.WEBHOOK_SIGNING_SECRET_ARN, ""),
            webhook_allow_loopback_http=_bool(e.get(EnvVar.WEBHOOK_ALLOW_LOOPBACK_HTTP), False),
            webhook_retry_base_seconds=int(
                e.get(EnvVar.WEBHOOK_RETRY_BASE_SECONDS) or DEFAULTS.webhook_retry_base_seconds
            ),
            tasks_function_name=e.get(EnvVar.TASKS_FUNCTION_NAME, ""),
            model_import_max_bytes=int(
                e.get(EnvVar.MODEL_IMPORT_MAX_BYTES) or DEFAULTS.model_import_max_bytes
            ),
            model_import_allow_loopback_http=_bool(e.get(EnvVar.MODEL_IMPORT_ALLOW_LOOPBACK_HTTP), False),
            import_token_key_arn=e.get(EnvVar.IMPORT_TOKEN_KEY_ARN, ""),
            owner_session_roles=_csv(e.get(EnvVar.OWNER_SESSION_ROLES)),
            training_launcher=launcher,
            training_job_queue=e.get(EnvVar.TRAINING_JOB_QUEUE, ""),
        )

    def require(self, name: str) -> str:
        """A setting this function cannot work without; a clear error names its variable."""
        value = getattr(self, name)
        if not value:
            raise RuntimeError(f"{EnvVar[name.upper()]} is not set for this function")
        return str(value)


# CloudWatch metrics namespace (POWERTOOLS_METRICS_NAMESPACE overrides it); the events handler
# publishes TrainingJobsFailed/TrainingJobsCompleted there and the stack alarms on them.
METRICS_NAMESPACE = "LoraOnAws"
