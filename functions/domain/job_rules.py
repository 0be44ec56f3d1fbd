"""When a training job may start: the rules on its inputs, instance, runtime and the caller's quota.

Plain functions over records, so each rule is unit-tested on its own; the training service
looks the records up and raises one 400 listing every problem (a client fixes all at once).
A record that does not exist and one that belongs to someone else get the same answer, so a
caller cannot probe for other tenants' ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from functions.domain.catalog import (
    INSTANCE_TYPES,
    MIN_GPU_MEMORY_GB,
    FmType,
    ModelKind,
    ResourceStatus,
    host_memory_needed_gib,
    instance_supports,
)
from functions.domain.families import FAMILIES, ComponentRole, ComponentSlot
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
    if model.component is not None:
        return [
            FieldProblem(
                "base_model_id",
                f"is a {model.component.value} component; give it in components.{model.component.value} "
                "and the family's main checkpoint here",
            )
        ]
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


def _families_taking(role: ComponentRole) -> frozenset[FmType]:
    """CLIP-L and T5-XXL are the same files for FLUX.1 and SD 3.5: either family's upload serves both."""
    return frozenset(f for f, spec in FAMILIES.items() if any(slot.role is role for slot in spec.components))


def _needed(slot: ComponentSlot, base: ModelRecord | None) -> bool:
    """A required component, or an optional one the base checkpoint does not carry itself."""
    return slot.required or (base is not None and slot.role not in base.included_components)


def _component_record_problem(record: ModelRecord | None, role: ComponentRole, owner: str) -> str | None:
    if record is None or record.owner != owner:
        return "does not name one of your models"
    if record.status is not ResourceStatus.READY:
        return f"model is {record.status.value}, not ready"
    if record.component is not role:
        what = f"a {record.component.value} component" if record.component else f"a {record.kind.value}"
        return f"must be a {role.value} component; model {record.id} is {what}"
    if record.fm_type not in _families_taking(role):
        return f"was uploaded for {record.fm_type.value}, which takes no {role.value} component"
    return None


def component_problems(
    fm_type: FmType,
    base: ModelRecord | None,
    components: Mapping[ComponentRole, ModelRecord | None],
    owner: str,
) -> list[FieldProblem]:
    """The job names each component file its family needs (``FamilySpec.components``), only those,
    and each is one of the caller's ready uploads of that component."""
    spec = FAMILIES[fm_type]
    slots = {slot.role: slot for slot in spec.components}
    taken = ", ".join(role.value for role in slots) or "none: everything is in the checkpoint"
    problems = [
        FieldProblem(
            f"components.{role.value}", f"{spec.display_name} jobs take no {role.value} (they take: {taken})"
        )
        for role in components
        if role not in slots
    ]
    for role, slot in slots.items():
        if role not in components:
            if _needed(slot, base):
                lacking = "" if slot.required else "; the base checkpoint does not include it"
                problems.append(
                    FieldProblem(
                        f"components.{role.value}",
                        f"{spec.display_name} jobs need {slot.description}{lacking}: upload it with "
                        f"component {role.value} and give its model id",
                    )
                )
            continue
        problem = _component_record_problem(components[role], role, owner)
        if problem:
            problems.append(FieldProblem(f"components.{role.value}", problem))
    return problems


def host_memory_problems(instance_type: str, fm_type: FmType, model_bytes: int) -> list[FieldProblem]:
    """The instance's host memory holds the job's model files (sd-scripts loads each there first)."""
    instance = INSTANCE_TYPES.get(instance_type)
    if instance is None:
        return []  # instance_problems names it
    needed = host_memory_needed_gib(fm_type, model_bytes)
    if instance.memory_gib >= needed:
        return []
    fitting = [
        it.name
        for it in INSTANCE_TYPES.values()
        if it.memory_gib >= needed and instance_supports(it, fm_type)
    ]
    return [
        FieldProblem(
            "instance_type",
            f"{instance_type} has {instance.memory_gib} GiB of host memory; this {fm_type.value} job needs "
            f"{needed} GiB (its model files, {model_bytes / 1024**3:.1f} GiB, are loaded there before the "
            f"GPU, plus headroom); instance types that fit: {', '.join(fitting) or 'none'}",
        )
    ]
