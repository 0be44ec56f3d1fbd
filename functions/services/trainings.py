"""Training jobs: plan and launch, read with live progress, list, stop, delete.

Launch order matters for "no orphan, no stuck job": the job is recorded PENDING first (so a
SageMaker job can never exist untracked), then CreateTrainingJob (or, on a queued deployment,
SubmitServiceJob) runs under a deterministic name, then the job moves to STARTING (or QUEUED,
with the reason it waits). A refusal marks it FAILED with the reason; a crash or timeout in
between leaves a PENDING job whose name the reconciler looks up to repair it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aws_lambda_powertools import Logger

from functions.adapters.training_launcher import LaunchRefused
from functions.api.schemas.common import view_of
from functions.api.schemas.trainings import (
    CreateTrainingRequest,
    TrainingJobList,
    TrainingJobView,
    TrainingSampleView,
)
from functions.domain.batch_queue import JOB_NAME_TAG, WAITING_REASON, share_identifier
from functions.domain.catalog import INSTANCE_TYPES, FmType
from functions.domain.epoch_outputs import epoch_output_problems, sample_prompt_problems
from functions.domain.errors import Conflict, LimitExceeded, NotFound, invalid_all
from functions.domain.families import ComponentRole
from functions.domain.ids import new_id, utc_now
from functions.domain.job_rules import (
    base_model_problems,
    component_problems,
    concurrency_refusal,
    dataset_problems,
    host_memory_problems,
    instance_problems,
    runtime_problems,
)
from functions.domain.kohya_params import FieldProblem, ParamValue, validate_config
from functions.domain.launch_spec import InputChannel, LaunchSpec
from functions.domain.planning import TrainingPlan, plan_training
from functions.domain.records import DatasetRecord, ModelRecord, TrainingJobRecord, TrainingProgress
from functions.domain.statuses import JobStatus, is_terminal
from functions.domain.storage_layout import (
    dataset_prefix,
    sagemaker_job_name,
    training_checkpoint_prefix,
    training_input_prefix,
    training_output_prefix,
    training_prefix,
    training_progress_key,
    training_published_key,
)
from functions.domain.training_contract import (
    DATASET_CHANNEL,
    JOB_CHANNEL,
    JOB_SPEC_FILENAME,
    MODEL_CHANNEL,
    Engine,
    TrainingJobSpec,
    published_sample_path,
)
from functions.domain.trigger_words import keep_tokens_for_trigger
from functions.services.context import ServiceContext
from functions.services.job_transitions import move_job, record_new_job
from functions.services.models import delete_lora_of_job
from functions.services.notifications import webhook_problems
from functions.services.pagination import list_page

logger = Logger(child=True)
R = TypeVar("R", ModelRecord, DatasetRecord)
SPOT_WAIT_FACTOR = 2  # spot jobs may wait for capacity up to this multiple of their runtime


def check_instance_type(ctx: ServiceContext, instance_type: str, fm_type: FmType) -> None:
    problems = instance_problems(instance_type, fm_type, ctx.settings.allowed_instance_types)
    if problems:
        raise invalid_all(problems)


def validated_config(
    user_config: dict[str, Any], fm_type: FmType, instance_type: str | None = None
) -> dict[str, ParamValue]:
    config, problems = validate_config(user_config, fm_type, instance_type=instance_type)
    if problems:
        raise invalid_all(problems, "config")
    return config


def _owned_or_none(ctx: ServiceContext, record_type: type[R], record_id: str, owner: str) -> R | None:
    try:
        return ctx.repository.get(record_type, record_id, owner)
    except NotFound:
        return None


def job_components(
    ctx: ServiceContext, owner: str, ids: dict[ComponentRole, str]
) -> dict[ComponentRole, ModelRecord | None]:
    """The component models a job names (None where an id names none of the caller's models)."""
    return {role: _owned_or_none(ctx, ModelRecord, model_id, owner) for role, model_id in ids.items()}


def _model_bytes(model: ModelRecord, components: dict[ComponentRole, ModelRecord | None]) -> int:
    return model.size_bytes + sum(c.size_bytes for c in components.values() if c is not None)


def ready_inputs(
    ctx: ServiceContext, owner: str, request: CreateTrainingRequest
) -> tuple[ModelRecord, DatasetRecord, dict[str, ParamValue]]:
    """Everything a job needs, checked together so one 400 lists every problem.

    Returns the base model, the dataset and the normalised config (see functions.domain.job_rules).
    """
    config, config_problems = validate_config(
        request.config, request.fm_type, instance_type=request.instance_type
    )
    model = _owned_or_none(ctx, ModelRecord, request.base_model_id, owner)
    dataset = _owned_or_none(ctx, DatasetRecord, request.dataset_id, owner)
    missing = [
        *([FieldProblem("base_model_id", "does not name one of your models")] if model is None else []),
        *([FieldProblem("dataset_id", "does not name one of your datasets")] if dataset is None else []),
    ]
    if missing:  # well formed, but naming nothing: 404 (as GET of that id would answer)
        raise NotFound(" and ".join(f"{p.field} {p.problem}" for p in missing), missing)
    assert model is not None
    components = job_components(ctx, owner, request.components)
    model_problems = base_model_problems(model, owner, request.fm_type)
    problems = [
        *instance_problems(request.instance_type, request.fm_type, ctx.settings.allowed_instance_types),
        *model_problems,
        *component_problems(request.fm_type, None if model_problems else model, components, owner),
        *host_memory_problems(request.instance_type, request.fm_type, _model_bytes(model, components)),
        *dataset_problems(dataset, owner),
        *runtime_problems(request.max_runtime_seconds, ctx.settings.max_runtime_seconds),
        *config_problems,
        *sample_prompt_problems(request.sample_prompts, request.fm_type),
        *webhook_problems(ctx.notifier, request.webhook_url),
    ]
    if problems:
        raise invalid_all(problems)
    assert model is not None and dataset is not None  # no problems means both were found
    return model, dataset, config


def plan_for(
    ctx: ServiceContext,
    dataset: DatasetRecord,
    config: dict[str, ParamValue],
    fm_type: FmType,
    instance_type: str,
) -> TrainingPlan:
    assert dataset.manifest is not None
    return plan_training(
        weighted_images=dataset.manifest.weighted_images,
        config=config,
        fm_type=fm_type,
        instance=INSTANCE_TYPES[instance_type],
        price_per_hour=ctx.price_per_hour(instance_type),
    )


def component_records(ctx: ServiceContext, job: TrainingJobRecord) -> dict[ComponentRole, ModelRecord]:
    """The job's component models, read when it launches (or relaunches from the queue)."""
    return {
        role: ctx.repository.get(ModelRecord, model_id, job.owner)
        for role, model_id in job.components.items()
    }


def job_spec(
    job: TrainingJobRecord, model: ModelRecord, components: dict[ComponentRole, ModelRecord] | None = None
) -> TrainingJobSpec:
    """What the container runs (see functions.domain.training_contract)."""
    return TrainingJobSpec(
        job_id=job.id,
        fm_type=job.fm_type,
        engine=job.engine,
        output_name=job.sagemaker_job_name,
        base_model_filename=model.filename,
        component_filenames={role: c.filename for role, c in (components or {}).items()},
        config=job.config,
        sample_prompts=job.sample_prompts,
        trigger_word=job.trigger_word,
    )


def with_trigger_word(config: dict[str, ParamValue], trigger_word: str | None) -> dict[str, ParamValue]:
    """The config a job with a trigger word runs with: ``keep_tokens`` keeps it first when shuffling.

    Set here, not in the container, so the job's stored config (and its view) says what runs.
    """
    if trigger_word is None:
        return config
    keep = config.get("keep_tokens", 0)
    return {**config, "keep_tokens": keep_tokens_for_trigger(keep if isinstance(keep, int) else 0)}


def _model_folder(model: ModelRecord) -> str:
    """A model's own S3 folder (its file alone): what its input channel copies."""
    return model.s3_key.rsplit("/", 1)[0] + "/"


def launch_spec(
    ctx: ServiceContext,
    job: TrainingJobRecord,
    model: ModelRecord,
    components: dict[ComponentRole, ModelRecord] | None = None,
) -> LaunchSpec:
    r"""What SageMaker runs the job with: its input channels (model, dataset, job, and one per
    component, named after its role: botocore's sagemaker ChannelName pattern ``[A-Za-z0-9\.\-_]+``
    admits ``clip_l`` and ``t5xxl``), outputs, limits and network."""
    s = ctx.settings
    bucket = f"s3://{s.bucket_name}/"
    return LaunchSpec(
        job_name=job.sagemaker_job_name,
        image_uri=s.training_image_uri,
        role_arn=s.training_role_arn,
        hyperparameters=job_spec(job, model, components).sagemaker_hyperparameters(),
        channels=(
            InputChannel(MODEL_CHANNEL, bucket + _model_folder(model)),
            InputChannel(DATASET_CHANNEL, bucket + dataset_prefix(job.owner, job.dataset_id)),
            InputChannel(JOB_CHANNEL, bucket + training_input_prefix(job.owner, job.id)),
            *(InputChannel(role.value, bucket + _model_folder(c)) for role, c in (components or {}).items()),
        ),
        output_uri=bucket + training_output_prefix(job.owner, job.id),
        checkpoint_uri=bucket + training_checkpoint_prefix(job.owner, job.id),
        instance_type=job.instance_type,
        max_runtime_seconds=job.max_runtime_seconds,
        max_wait_seconds=job.max_runtime_seconds * SPOT_WAIT_FACTOR if job.use_spot else None,
        use_spot=job.use_spot,
        network_isolation=s.network_isolation,
        tags={
            "lora:job-id": job.id,
            "lora:owner-key": training_output_prefix(job.owner, job.id).split("/")[1],
            JOB_NAME_TAG: job.sagemaker_job_name,  # finds the job under Batch's name
        },
        subnet_ids=s.subnet_ids,
        security_group_ids=s.security_group_ids,
        share_identifier=share_identifier(job.owner),
        priority=job.priority,
    )


def launch(ctx: ServiceContext, job: TrainingJobRecord, model: ModelRecord) -> JobStatus:
    """Write the job's spec into its input channel, then ask SageMaker to run it.

    The spec goes first: SageMaker downloads the channel when the job starts, and a spec written
    for a job SageMaker then refuses is deleted with the job's folder.
    """
    components = component_records(ctx, job)
    spec_key = training_input_prefix(job.owner, job.id) + JOB_SPEC_FILENAME
    ctx.storage.write_bytes(spec_key, job_spec(job, model, components).to_json().encode())
    return ctx.launcher.create(launch_spec(ctx, job, model, components))


def create_training(ctx: ServiceContext, owner: str, request: CreateTrainingRequest) -> TrainingJobView:
    """Validate everything, record the job, launch it. Idempotency is applied by the caller."""
    model, dataset, config = ready_inputs(ctx, owner, request)
    config = with_trigger_word(config, request.trigger_word)
    settings = ctx.settings
    max_runtime = request.max_runtime_seconds or settings.max_runtime_seconds
    refusal = concurrency_refusal(
        len(ctx.repository.active_jobs(owner)), settings.max_concurrent_jobs_per_owner
    )
    if refusal:
        raise LimitExceeded(refusal)
    plan = plan_for(ctx, dataset, config, request.fm_type, request.instance_type)
    save_every = config.get("save_every_n_epochs")
    problems = epoch_output_problems(
        plan.epochs, save_every if isinstance(save_every, int) else None, len(request.sample_prompts)
    )
    if problems:
        raise invalid_all(problems)
    job_id, now = new_id(), utc_now()
    job = TrainingJobRecord(
        id=job_id,
        owner=owner,
        name=request.name or f"{model.name} on {dataset.name}",
        fm_type=request.fm_type,
        base_model_id=model.id,
        components=dict(request.components),
        dataset_id=dataset.id,
        instance_type=request.instance_type,
        use_spot=settings.default_use_spot if request.use_spot is None else request.use_spot,
        max_runtime_seconds=max_runtime,
        engine=Engine(settings.training_engine),
        config=config,
        plan=plan,
        status=JobStatus.PENDING,
        sagemaker_job_name=sagemaker_job_name(settings.job_name_prefix, job_id),
        sample_prompts=request.sample_prompts,
        created_at=now,
        updated_at=now,
        webhook_url=request.webhook_url,
        priority=request.priority or 0,
        trigger_word=request.trigger_word,
    )
    # The cap check above is advisory (a friendly early answer); this transaction is the guarantee.
    record_new_job(ctx, job, max_active=settings.max_concurrent_jobs_per_owner)
    try:
        launched = launch(ctx, job, model)
    except LaunchRefused as refused:
        failed = move_job(
            ctx,
            job,
            JobStatus.FAILED,
            cause="launch refused",
            detail=refused.reason,
            fields={"failure_reason": refused.reason},
        )
        return view_of(failed or ctx.repository.get(TrainingJobRecord, job_id, owner), TrainingJobView)
    if launched is JobStatus.QUEUED:
        moved = move_job(
            ctx,
            job,
            JobStatus.QUEUED,
            cause="SubmitServiceJob accepted",
            fields={"queue_reason": WAITING_REASON},
        )
    else:
        moved = move_job(
            ctx,
            job,
            JobStatus.STARTING,
            cause="CreateTrainingJob accepted",
            fields={"secondary_status": "Starting"},
        )
    current = moved or ctx.repository.get(TrainingJobRecord, job_id, owner)
    if current.status is JobStatus.STOPPING:
        # A stop that arrived before the launch ran found nothing to stop: stop it now.
        current = stop_launched(ctx, current)
    return view_of(current, TrainingJobView)


def stop_launched(ctx: ServiceContext, job: TrainingJobRecord) -> TrainingJobRecord:
    """Ask the launcher to stop a STOPPING job; one that never left the queue is STOPPED here,
    since no SageMaker event will ever report it (TerminateServiceJob on a queued service job)."""
    if not ctx.launcher.stop(job.sagemaker_job_name):
        return job
    stopped = move_job(
        ctx,
        job,
        JobStatus.STOPPED,
        cause="stopped while queued",
        detail="stopped while queued: it never started and was not billed",
        fields={"queue_reason": None},
    )
    return stopped or ctx.repository.get(TrainingJobRecord, job.id, job.owner)


def live_progress(ctx: ServiceContext, job: TrainingJobRecord) -> TrainingProgress | None:
    """The container's latest progress report (synced from its checkpoint folder), if any."""
    data = ctx.storage.read_json(training_progress_key(job.owner, job.id))
    if data is None:
        return job.progress
    try:
        return TrainingProgress.model_validate(data)
    except ValueError:
        return job.progress


def sample_views(ctx: ServiceContext, job: TrainingJobRecord) -> list[TrainingSampleView]:
    """The job's verified sample images with presigned links, by epoch then prompt."""
    if job.output is None:
        return []
    views = []
    for ref in sorted(job.output.samples, key=lambda r: (r.epoch, r.prompt_index)):
        if ref.prompt_index >= len(job.sample_prompts):
            continue  # a record older than its prompts cannot be labelled; never guess
        relative = published_sample_path(job.sagemaker_job_name, ref.epoch, ref.prompt_index)
        key = training_published_key(job.owner, job.id, job.sagemaker_name, relative)
        views.append(
            TrainingSampleView(
                epoch=ref.epoch,
                prompt_index=ref.prompt_index,
                prompt=job.sample_prompts[ref.prompt_index].prompt,
                download_url=ctx.storage.presign_get(key, relative.rsplit("/", 1)[-1]),
            )
        )
    return views


def get_training(ctx: ServiceContext, owner: str, job_id: str) -> TrainingJobView:
    job = ctx.repository.get(TrainingJobRecord, job_id, owner)
    progress = job.progress if is_terminal(job.status) else live_progress(ctx, job)
    return view_of(
        job,
        TrainingJobView,
        progress=progress.model_dump(mode="json") if progress else None,
        samples=[s.model_dump(mode="json") for s in sample_views(ctx, job)],
    )


def list_trainings(
    ctx: ServiceContext, owner: str, *, status: JobStatus | None, limit: int, next_token: str | None
) -> TrainingJobList:
    items, token = list_page(
        ctx,
        TrainingJobRecord,
        owner,
        status=status.value if status else None,
        limit=limit,
        next_token=next_token,
    )
    return TrainingJobList(items=[view_of(j, TrainingJobView) for j in items], next_token=token)


def stop_training(ctx: ServiceContext, owner: str, job_id: str) -> TrainingJobView:
    job = ctx.repository.get(TrainingJobRecord, job_id, owner)
    if is_terminal(job.status):
        raise Conflict(f"training {job_id} already ended ({job.status.value})")
    if job.status is not JobStatus.STOPPING:
        moved = move_job(
            ctx, job, JobStatus.STOPPING, cause="stop requested", detail="stop requested by owner"
        )
        if moved is None:  # it ended in the meantime: report the consistent final state
            job = ctx.repository.get(TrainingJobRecord, job_id, owner)
            raise Conflict(f"training {job_id} already ended ({job.status.value})")
        job = moved
    stop_launched(ctx, job)
    return get_training(ctx, owner, job_id)


def delete_training(ctx: ServiceContext, owner: str, job_id: str, *, delete_lora: bool) -> None:
    job = ctx.repository.get(TrainingJobRecord, job_id, owner)
    if not is_terminal(job.status):
        raise Conflict(f"training {job_id} is {job.status.value}; stop it and wait for it to end first")
    if delete_lora:
        delete_lora_of_job(ctx, job)
    ctx.storage.delete_prefix(training_prefix(owner, job_id))  # the LoRA was copied to models/
    ctx.repository.delete(TrainingJobRecord, job_id)
    logger.info("training deleted", extra={"job_id": job_id, "owner": owner, "lora_deleted": delete_lora})
