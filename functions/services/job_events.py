"""Apply SageMaker's view of a job (from an EventBridge event or from DescribeTrainingJob).

Shared by the events handler and the reconciler, so a lost event repaired later has exactly the
effect the event would have had. Every write is conditional on the job's current status:
duplicates, late and out-of-order events are no-ops.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from functions.adapters.training_launcher import TrainingJobState
from functions.domain.catalog import ModelKind, ResourceStatus
from functions.domain.errors import NotFound
from functions.domain.ids import utc_now
from functions.domain.records import ModelRecord, TrainingJobRecord, TrainingOutput, TrainingProgress
from functions.domain.sagemaker_states import job_status_for, stop_reason
from functions.domain.statuses import JobStatus, can_transition
from functions.domain.storage_layout import (
    SUMMARY_FILENAME,
    job_id_from_sagemaker_name,
    model_object_key,
    training_output_prefix,
)
from functions.domain.training_contract import LORA_FILENAME_SUFFIX, TrainingSummary
from functions.services.context import ServiceContext
from functions.services.models import verify_safetensors
from functions.services.notifications import announce
from functions.services.trainings import audit, live_progress

logger = Logger(child=True)


def job_for_sagemaker_name(ctx: ServiceContext, name: str) -> TrainingJobRecord | None:
    job_id = job_id_from_sagemaker_name(ctx.settings.job_name_prefix, name)
    if job_id is None:
        return None
    try:
        return ctx.repository.get(TrainingJobRecord, job_id, None)
    except NotFound:  # a job deleted meanwhile, or a name that merely looks like ours
        return None


def apply_state(ctx: ServiceContext, state: TrainingJobState, cause: str) -> JobStatus | None:
    """Move the job forward to what SageMaker reports; returns the new status, or None if no change."""
    job = job_for_sagemaker_name(ctx, state.name)
    if job is None:
        logger.info("ignoring state of an unknown job", extra={"sagemaker_job_name": state.name})
        return None
    target = job_status_for(state.status, state.secondary_status)
    if target is None:
        logger.warning("unknown SageMaker status", extra={"job_id": job.id, "status": state.status})
        return None
    if target == job.status or not can_transition(job.status, target):
        if target == job.status and state.secondary_status and state.secondary_status != job.secondary_status:
            ctx.repository.update_job_fields(job.id, job.status, {"secondary_status": state.secondary_status})
        return None
    fields: dict[str, object] = {"secondary_status": state.secondary_status}
    if target is JobStatus.COMPLETED:
        fields |= completion_fields(ctx, job)
        if "failure_reason" in fields:
            target = JobStatus.FAILED
    elif target is JobStatus.FAILED:
        fields["failure_reason"] = state.failure_reason or "SageMaker reported the job as failed"
    elif target is JobStatus.STOPPED:
        reason = stop_reason(state.secondary_status)
        if reason:
            fields["failure_reason"] = reason
    if target in (JobStatus.FAILED, JobStatus.STOPPED):
        final = live_progress(ctx, job)
        if final:
            fields["progress"] = final.model_dump(mode="json")
    moved = ctx.repository.transition_job(job.id, target, at=utc_now(), cause=cause, fields=fields)
    if moved is None:
        return None  # someone else moved it first: their state stands
    audit(job, job.status, target, f"{cause}: {state.status}/{state.secondary_status}")
    announce(ctx.notifier, moved, job.status, target, f"{cause}: {state.status}/{state.secondary_status}")
    return target


def completion_fields(ctx: ServiceContext, job: TrainingJobRecord) -> dict[str, object]:
    """Verify the LoRA SageMaker uploaded and register it as a model (id = the job's id).

    Returns the job fields to set: ``output`` and final ``progress``, or a ``failure_reason`` when
    the output is missing or not a valid safetensors file.
    """
    output_folder = f"{training_output_prefix(job.owner, job.id)}{job.sagemaker_job_name}/output/model/"
    lora_key = f"{output_folder}{job.sagemaker_job_name}{LORA_FILENAME_SUFFIX}"
    try:
        size = verify_safetensors(ctx, lora_key, None)
    except ValueError as problem:
        return {"failure_reason": f"the training finished but its LoRA is unusable: {problem}"}
    summary_data = ctx.storage.read_json(output_folder + SUMMARY_FILENAME) or {}
    try:
        summary: TrainingSummary | None = TrainingSummary.model_validate(summary_data)
    except ValueError:
        summary = None
    filename = f"{job.sagemaker_job_name}{LORA_FILENAME_SUFFIX}"
    model_key = model_object_key(job.owner, job.id, filename)
    ctx.storage.copy(lora_key, model_key)
    now = utc_now()
    registered = ctx.repository.create_if_absent(
        ModelRecord(
            id=job.id,
            owner=job.owner,
            name=f"{job.name} (LoRA)",
            kind=ModelKind.LORA,
            fm_type=job.fm_type,
            filename=filename,
            size_bytes=size,
            sha256=summary.lora_sha256 if summary else None,
            status=ResourceStatus.READY,
            s3_key=model_key,
            source_job_id=job.id,
            created_at=now,
            updated_at=now,
        )
    )
    if registered:
        ctx.repository.reserve_storage(job.owner, size, None)  # counted, never refused: the work is paid for
    output = TrainingOutput(
        lora_model_id=job.id,
        lora_size_bytes=size,
        lora_sha256=summary.lora_sha256 if summary else None,
        steps=summary.steps if summary else None,
        final_loss=summary.final_loss if summary else None,
        training_seconds=summary.training_seconds if summary else None,
    )
    progress = TrainingProgress(
        phase="done",
        step=summary.steps if summary else job.plan.total_steps,
        total_steps=summary.steps if summary else job.plan.total_steps,
        epoch=summary.epochs if summary else job.plan.epochs,
        total_epochs=summary.epochs if summary else job.plan.epochs,
        loss=summary.final_loss if summary else None,
        eta_seconds=0,
        updated_at=now,
    )
    return {"output": output.model_dump(mode="json"), "progress": progress.model_dump(mode="json")}
