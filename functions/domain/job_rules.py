"""When a training job may start: the rules on its inputs, instance, runtime and the caller's quota.

Plain functions over records, so each rule is unit-tested on its own; the training service
looks the records up and raises one 400 listing every problem (a client fixes all at once).
A record that does not exist and one that belongs to someone else get the same answer, so a
caller cannot probe for other tenants' ids.
"""

from __future__ import annotations

from collections.abc import Sequence

from functions.domain.catalog import (
    INSTANCE_TYPES,
    MIN_GPU_MEMORY_GB,
    FmType,
    ModelKind,
    ResourceStatus,
    instance_supports,
)
from functions.domain.kohya_params import FieldProblem
from functions.domain.records import DatasetRecord, ModelRecord


def instance_problems(instance_type: str, fm_type: FmType, allowed: Sequence[str]) -> list[FieldProblem]:
    """Only the deployment's instance types, and only those with enough GPU memory for the family."""
    if instance_type not in allowed or instance_type not in INSTANCE_TYPES:
        listed = ", ".join(allowed)
        return [FieldProblem("instance_type", f"must be one of the deployment's instance types: {listed}")]
    instance = INSTANCE_TYPES[instance_type]
    if not instance_supports(instance, fm_type):
        return [
            FieldProblem(
                "instance_type",
                f"{instance_type} has {instance.gpu_memory_gb} GB of GPU memory; "
                f"{fm_type.value} training needs at least {MIN_GPU_MEMORY_GB[fm_type]} GB",
            )
        ]
    return []


def base_model_problems(model: ModelRecord | None, owner: str, fm_type: FmType) -> list[FieldProblem]:
    """The base model exists, is the caller's, is verified, and is a checkpoint of the job's family."""
    if model is None or model.owner != owner:
        return [FieldProblem("base_model_id", "does not name one of your models")]
    if model.status is not ResourceStatus.READY:
        return [FieldProblem("base_model_id", f"model is {model.status.value}, not ready")]
    if model.kind is not ModelKind.CHECKPOINT:
        return [FieldProblem("base_model_id", "must be a checkpoint, not a LoRA")]
    if model.fm_type is not fm_type:
        return [
            FieldProblem("base_model_id", f"is an {model.fm_type.value} model but the job is {fm_type.value}")
        ]
    return []


def dataset_problems(dataset: DatasetRecord | None, owner: str) -> list[FieldProblem]:
    """The dataset exists, is the caller's, and its manifest found it usable (status ready)."""
    if dataset is None or dataset.owner != owner:
        return [FieldProblem("dataset_id", "does not name one of your datasets")]
    if dataset.status is not ResourceStatus.READY or dataset.manifest is None:
        return [FieldProblem("dataset_id", f"dataset is {dataset.status.value}, not ready")]
    if dataset.manifest.missing_captions:
        return [
            FieldProblem(
                "dataset_id",
                f"dataset {dataset.id} has {dataset.manifest.missing_captions} image(s) without a caption; "
                f"upload their .txt files or caption them with POST /datasets/{dataset.id}/captions",
            )
        ]
    return []


def runtime_problems(requested_seconds: int | None, limit_seconds: int) -> list[FieldProblem]:
    """A job may ask for less runtime than the deployment allows, never more."""
    if requested_seconds is not None and requested_seconds > limit_seconds:
        return [FieldProblem("max_runtime_seconds", f"must be at most {limit_seconds} in this deployment")]
    return []


def concurrency_refusal(active_jobs: int, limit: int) -> str | None:
    """Why one more active job would exceed the caller's cap, or None if it fits."""
    if active_jobs < limit:
        return None
    return (
        f"you already have {active_jobs} active training job(s); the limit is {limit}. "
        "Wait for one to end or stop one."
    )
