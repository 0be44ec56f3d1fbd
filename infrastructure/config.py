"""Deployment configuration from CDK context, with the documented defaults of ``DeploymentDefaults``.

    cdk deploy -c allowedInstanceTypes=ml.g5.xlarge,ml.g5.2xlarge -c defaultUseSpot=false ...

Every key is optional; README "Deploy to AWS" lists them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from constructs import Construct

from functions.domain.catalog import INSTANCE_TYPES
from functions.settings import DEFAULTS

CONTEXT_KEYS = (
    "allowedInstanceTypes",
    "defaultUseSpot",
    "maxRuntimeSeconds",
    "maxConcurrentJobsPerOwner",
    "maxStorageBytesPerOwner",
    "logRetentionDays",
    "removalPolicy",
    "jobNamePrefix",
    "networkIsolation",
    "trainingSubnetIds",
    "trainingSecurityGroupIds",
    "instancePrices",
    "reservedConcurrency",
    "alarmEmail",
    "snapStart",
    "ownerSessionRoles",
    "trainingQueue",
    "gpuBudgetInstances",
    "maxQueueWaitSeconds",
)
# jobStateTimeLimitActions' maxTimeSeconds bounds (AWS::Batch::JobQueue JobStateTimeLimitAction).
QUEUE_WAIT_BOUNDS = (600, 86400)


def _list(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v) for v in value)


def _bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class DeploymentConfig:
    allowed_instance_types: tuple[str, ...] = DEFAULTS.allowed_instance_types
    default_use_spot: bool = DEFAULTS.default_use_spot
    max_runtime_seconds: int = DEFAULTS.max_runtime_seconds
    max_concurrent_jobs_per_owner: int = DEFAULTS.max_concurrent_jobs_per_owner
    max_storage_bytes_per_owner: int = DEFAULTS.max_storage_bytes_per_owner
    log_retention_days: int = DEFAULTS.log_retention_days
    retain_data: bool = True
    job_name_prefix: str | None = None  # None: derived from the stack name
    network_isolation: bool = DEFAULTS.network_isolation
    training_subnet_ids: tuple[str, ...] = ()
    training_security_group_ids: tuple[str, ...] = ()
    instance_prices: dict[str, float] = field(default_factory=dict)
    # Off by default: a new account's concurrency limit (10 or 50) cannot reserve any (README).
    reserved_concurrency: bool = False
    alarm_email: str | None = None
    snap_start: bool = True  # the API function (README "Cold starts")
    # Roles whose trust policy pins sts:RoleSessionName: each session name is a person (README
    # "Who owns what"); every other assumed role but Identity Center's is one shared owner.
    owner_session_roles: tuple[str, ...] = ()
    # README "Training queue": trainings wait in AWS Batch for the GPU budget (in instances).
    training_queue: bool = DEFAULTS.training_launcher == "queue"
    gpu_budget_instances: int = DEFAULTS.gpu_budget_instances
    max_queue_wait_seconds: int = DEFAULTS.max_queue_wait_seconds

    @classmethod
    def from_context(cls, scope: Construct) -> DeploymentConfig:
        get = scope.node.try_get_context
        allowed = _list(get("allowedInstanceTypes")) or DEFAULTS.allowed_instance_types
        unknown = [name for name in allowed if name not in INSTANCE_TYPES]
        if unknown:
            raise ValueError(f"allowedInstanceTypes names unknown instance types: {unknown}")
        removal = str(get("removalPolicy") or "retain").lower()
        if removal not in ("retain", "destroy"):
            raise ValueError("removalPolicy must be 'retain' or 'destroy'")
        prices = get("instancePrices") or {}
        if isinstance(prices, str):
            prices = json.loads(prices)
        session_roles = _list(get("ownerSessionRoles"))
        bad_roles = [r for r in session_roles if not re.fullmatch(r"[\w+=,.@-]{1,64}", r)]
        if (
            bad_roles
        ):  # IAM role names (not ARNs): https://docs.aws.amazon.com/IAM/latest/APIReference/API_Role.html
            raise ValueError(f"ownerSessionRoles must be IAM role names, not {bad_roles}")
        subnets, groups = _list(get("trainingSubnetIds")), _list(get("trainingSecurityGroupIds"))
        if bool(subnets) != bool(groups):
            raise ValueError("trainingSubnetIds and trainingSecurityGroupIds must be given together")
        raw_budget = get("gpuBudgetInstances")
        budget = DEFAULTS.gpu_budget_instances if raw_budget in (None, "") else int(raw_budget)
        if budget < 1:
            raise ValueError("gpuBudgetInstances must be at least 1 (instances the queue may run at once)")
        wait = int(get("maxQueueWaitSeconds") or DEFAULTS.max_queue_wait_seconds)
        if not QUEUE_WAIT_BOUNDS[0] <= wait <= QUEUE_WAIT_BOUNDS[1]:
            raise ValueError(
                f"maxQueueWaitSeconds must be between {QUEUE_WAIT_BOUNDS[0]} and {QUEUE_WAIT_BOUNDS[1]}"
            )
        return cls(
            allowed_instance_types=allowed,
            default_use_spot=_bool(get("defaultUseSpot"), DEFAULTS.default_use_spot),
            max_runtime_seconds=int(get("maxRuntimeSeconds") or DEFAULTS.max_runtime_seconds),
            max_concurrent_jobs_per_owner=int(
                get("maxConcurrentJobsPerOwner") or DEFAULTS.max_concurrent_jobs_per_owner
            ),
            max_storage_bytes_per_owner=int(
                get("maxStorageBytesPerOwner") or DEFAULTS.max_storage_bytes_per_owner
            ),
            log_retention_days=int(get("logRetentionDays") or DEFAULTS.log_retention_days),
            retain_data=removal == "retain",
            job_name_prefix=get("jobNamePrefix"),
            network_isolation=_bool(get("networkIsolation"), DEFAULTS.network_isolation),
            training_subnet_ids=subnets,
            training_security_group_ids=groups,
            instance_prices={str(k): float(v) for k, v in dict(prices).items()},
            reserved_concurrency=_bool(get("reservedConcurrency"), False),
            alarm_email=get("alarmEmail"),
            snap_start=_bool(get("snapStart"), True),
            owner_session_roles=session_roles,
            training_queue=_bool(get("trainingQueue"), DEFAULTS.training_launcher == "queue"),
            gpu_budget_instances=budget,
            max_queue_wait_seconds=wait,
        )
