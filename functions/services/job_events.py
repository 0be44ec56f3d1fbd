"""Apply SageMaker's view of a job (from an EventBridge event or from DescribeTrainingJob), or
AWS Batch's view of a queued one (a "Batch Service Job State Change" event, DescribeServiceJob).

Shared by the events handler and the reconciler, so a lost event repaired later has exactly the
effect the event would have had. Every write is conditional on the job's current status:
duplicates, late and out-of-order events are no-ops.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from functions.adapters.training_launcher import TrainingJobState
from functions.domain.batch_queue import SAGEMAKER_ENDS_BATCH_DECIDES, newer_training_job_name
from functions.domain.catalog import ModelKind, ResourceStatus
from functions.domain.epoch_outputs import (
    MAX_SAMPLE_IMAGES,
    MAX_SAVED_EPOCHS,
    epoch_lora_filename,
    is_saved_epoch,
)
from functions.domain.errors import NotFound
from functions.domain.file_checks import looks_like_image
from functions.domain.ids import utc_now
from functions.domain.records import (
    ModelRecord,
    ModelVersion,
    RejectedEpoch,
    SampleRef,
    TrainingJobRecord,
    TrainingOutput,
    TrainingProgress,
)
from functions.domain.sagemaker_states import job_status_for, stop_reason
from functions.domain.statuses import JobStatus, can_transition
from functions.domain.storage_layout import (
    SUMMARY_FILENAME,
    job_id_from_sagemaker_name,
    model_object_key,
    training_published_key,
)
from functions.domain.training_contract import (
    LORA_FILENAME_SUFFIX,
    EpochLora,
    SampleImage,
    TrainingSummary,
    published_epoch_lora_path,
    published_sample_path,
)
from functions.services.context import ServiceContext
from functions.services.dataset_captions import apply_captions_state
from functions.services.job_transitions import move_job
from functions.services.models import verify_safetensors
from functions.services.trainings import live_progress

logger = Logger(child=True)


def job_for_sagemaker_name(ctx: ServiceContext, name: str) -> TrainingJobRecord | None:
    job_id = job_id_from_sagemaker_name(ctx.settings.job_name_prefix, name)
    if job_id is None:
        return None
    try:
        return ctx.repository.get(TrainingJobRecord, job_id, None)
    except NotFound:  # a job deleted meanwhile, or a name that merely looks like ours
        return None


def confirmed_by_batch(ctx: ServiceContext, job: TrainingJobRecord, state: TrainingJobState) -> bool:
    """Whether the training job a state names is the job's own.

    A state from Batch (its events, DescribeServiceJob) is Batch's word. A SageMaker event found
    through its JOB_NAME_TAG is only a tag anyone allowed to create training jobs could set: it is
    trusted when the record already holds that name (Batch said so before), else when Batch says
    now that this service job's training job is the one the event is about.
    """
    if not state.found_by_tag or state.training_job_name == job.training_job_name:
        return True
    described = ctx.launcher.describe(job.sagemaker_job_name)
    named = described.training_job_name if described else None
    return named is not None and named.casefold() == str(state.training_job_name).casefold()


def apply_state(ctx: ServiceContext, state: TrainingJobState, cause: str) -> JobStatus | None:
    """Move the job forward to what SageMaker reports; returns the new status, or None if no change."""
    job = job_for_sagemaker_name(ctx, state.name)
    if job is None:
        # A captions job (the same image in its captioning mode) fills a dataset, not a job record.
        if apply_captions_state(ctx, state):
            return None
        logger.info("ignoring state of an unknown job", extra={"sagemaker_job_name": state.name})
        return None
    if state.found_by_tag and state.status in SAGEMAKER_ENDS_BATCH_DECIDES:
        # Batch may run the job again (capacity): its own event ends the job (see batch_queue).
        logger.info("a training job Batch runs ended; Batch's event decides", extra={"job_id": job.id})
        return None
    if not confirmed_by_batch(ctx, job, state):
        logger.warning(
            "ignoring a training job tagged as this job that Batch did not create for it",
            extra={"job_id": job.id, "training_job_name": state.training_job_name},
        )
        return None
    renamed: dict[str, object] = {}
    name = newer_training_job_name(job.training_job_name, state.training_job_name)
    if name is not None:
        # Batch's name for the training job: from now on its logs and outputs are found by it.
        renamed = {"training_job_name": name}
        job = job.model_copy(update=renamed)
    target = job_status_for(state.status, state.secondary_status)
    if target is None:
        logger.warning("unknown SageMaker status", extra={"job_id": job.id, "status": state.status})
        return None
    if target == job.status or not can_transition(job.status, target):
        if renamed:  # even once ended: its logs stay under that name
            ctx.repository.update_job_fields(job.id, job.status, renamed)
        if target == job.status and state.secondary_status and state.secondary_status != job.secondary_status:
            ctx.repository.update_job_fields(job.id, job.status, {"secondary_status": state.secondary_status})
        if target is JobStatus.QUEUED is job.status and state.queue_reason != job.queue_reason:
            ctx.repository.update_job_fields(job.id, job.status, {"queue_reason": state.queue_reason})
        return None
    fields: dict[str, object] = {"secondary_status": state.secondary_status, **renamed}
    if target is JobStatus.QUEUED:
        fields["queue_reason"] = state.queue_reason
    elif job.queue_reason is not None:
        fields["queue_reason"] = None  # it no longer waits
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
    detail = f"{cause}: {state.status}/{state.secondary_status}"
    if move_job(ctx, job, target, cause=cause, detail=detail, fields=fields) is None:
        return None  # someone else moved it first: their state stands
    return target


def completion_fields(ctx: ServiceContext, job: TrainingJobRecord) -> dict[str, object]:
    """Verify the LoRA SageMaker uploaded and register it as a model (id = the job's id).

    Intermediate epochs (``save_every_n_epochs``) become versions of that one model, the final LoRA
    the default version. An intermediate file that fails verification is left out, with its reason
    in ``output.rejected_epochs``: the final LoRA is the paid-for result and stays usable. Sample
    images are kept where SageMaker put them (they go with the job) and listed once verified.

    Returns the job fields to set: ``output`` and final ``progress``, or a ``failure_reason`` when
    the final output is missing or not a valid safetensors file.
    """
    name = job.sagemaker_job_name  # the LoRA's file stem (output_name); the folder is SageMaker's name
    lora_key = training_published_key(job.owner, job.id, job.sagemaker_name, f"{name}{LORA_FILENAME_SUFFIX}")
    try:
        size = verify_safetensors(ctx, lora_key, None)
    except ValueError as problem:
        return {"failure_reason": f"the training finished but its LoRA is unusable: {problem}"}
    summary_data = ctx.storage.read_json(
        training_published_key(job.owner, job.id, job.sagemaker_name, SUMMARY_FILENAME)
    )
    try:
        summary: TrainingSummary | None = TrainingSummary.model_validate(summary_data or {})
    except ValueError:
        summary = None
    filename = f"{name}{LORA_FILENAME_SUFFIX}"
    model_key = model_object_key(job.owner, job.id, filename)
    ctx.storage.copy(lora_key, model_key)
    final_epoch = summary.epochs if summary and summary.epochs else job.plan.epochs
    intermediate, rejected = register_epoch_loras(
        ctx, job, summary.epoch_loras if summary else [], final_epoch
    )
    final = ModelVersion(
        epoch=final_epoch,
        is_default=True,
        filename=filename,
        size_bytes=size,
        sha256=summary.lora_sha256 if summary else None,
        s3_key=model_key,
    )
    versions = [*intermediate, final] if intermediate else []
    now = utc_now()
    # the model and its bytes in one transaction: a retry that finds the model finds it counted
    ctx.repository.create_if_absent(
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
            versions=versions,
            created_at=now,
            updated_at=now,
        ),
        # counted, never refused: the work is paid for
        counting_bytes=(job.owner, size + sum(v.size_bytes for v in intermediate)),
    )
    output = TrainingOutput(
        lora_model_id=job.id,
        lora_size_bytes=size,
        lora_sha256=summary.lora_sha256 if summary else None,
        steps=summary.steps if summary else None,
        final_loss=summary.final_loss if summary else None,
        training_seconds=summary.training_seconds if summary else None,
        epochs=[v.epoch for v in versions],
        rejected_epochs=rejected,
        samples=verified_samples(ctx, job, summary.samples if summary else []),
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


def register_epoch_loras(
    ctx: ServiceContext, job: TrainingJobRecord, listed: list[EpochLora], final_epoch: int
) -> tuple[list[ModelVersion], list[RejectedEpoch]]:
    """Verify each intermediate LoRA the summary lists and copy the good ones beside the final one.

    Only epochs the job's own ``save_every_n_epochs`` saves are accepted (at most one file each,
    at most ``MAX_SAVED_EPOCHS`` in all), so a summary can never make the control plane copy
    arbitrary objects or grow the job record without bound.
    """
    save_every = job.config.get("save_every_n_epochs")
    every = save_every if isinstance(save_every, int) else None
    versions: list[ModelVersion] = []
    rejected: list[RejectedEpoch] = []
    entries = sorted({e.epoch: e for e in listed}.values(), key=lambda e: e.epoch)[:MAX_SAVED_EPOCHS]
    for entry in entries:
        if entry.epoch == final_epoch:
            continue  # the final LoRA is the default version, registered from its own file
        if not is_saved_epoch(entry.epoch, final_epoch, every):
            rejected.append(RejectedEpoch(epoch=entry.epoch, reason="not an epoch this job saves"))
            continue
        relative = published_epoch_lora_path(job.sagemaker_job_name, entry.epoch)
        source = training_published_key(job.owner, job.id, job.sagemaker_name, relative)
        try:
            size = verify_safetensors(ctx, source, entry.size_bytes)
        except ValueError as problem:
            logger.warning("epoch LoRA rejected", extra={"job_id": job.id, "epoch": entry.epoch})
            rejected.append(RejectedEpoch(epoch=entry.epoch, reason=str(problem)))
            continue
        filename = epoch_lora_filename(job.sagemaker_job_name, entry.epoch)
        target = model_object_key(job.owner, job.id, filename)
        ctx.storage.copy(source, target)
        versions.append(
            ModelVersion(
                epoch=entry.epoch, filename=filename, size_bytes=size, sha256=entry.sha256, s3_key=target
            )
        )
    return versions, rejected


def verified_samples(
    ctx: ServiceContext, job: TrainingJobRecord, listed: list[SampleImage]
) -> list[SampleRef]:
    """Sample images that are really there and really PNGs, for prompts the job really had."""
    if not listed or not job.sample_prompts:
        return []
    prefix = training_published_key(job.owner, job.id, job.sagemaker_name, "")
    present = ctx.storage.list_objects(prefix)  # one listing instead of a HEAD per image
    refs: list[SampleRef] = []
    for sample in sorted({(s.epoch, s.prompt_index) for s in listed})[:MAX_SAMPLE_IMAGES]:
        epoch, index = sample
        relative = published_sample_path(job.sagemaker_job_name, epoch, index)
        if index >= len(job.sample_prompts) or relative not in present:
            continue
        if not looks_like_image("png", ctx.storage.read_range(present[relative].key, 0, 16)):
            logger.warning("sample image is not a PNG", extra={"job_id": job.id, "sample": relative})
            continue
        refs.append(SampleRef(epoch=epoch, prompt_index=index))
    return refs
