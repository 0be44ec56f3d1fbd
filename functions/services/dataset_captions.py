"""Captions jobs: a new dataset whose images are captioned by the training image's captioning mode.

``request_captions`` (API) validates the request, records the new dataset ``processing`` with its
``CaptionsJob`` and launches a SageMaker training job in captioning mode through the same
launcher as training (so the local runtime runs it exactly as it runs training). When SageMaker
reports the end (``apply_captions_state``, called by the events function and by the reconciler
through ``functions.services.job_events.apply_state``), a completed job's ``model/dataset/``
becomes the new dataset's files, checked as an upload is (``record_arrival``), and the captions it
computed join the owner's cache; a failed or stopped job fails the dataset with the reason. The
source dataset never changes.

Launch order follows trainings': the record is written first (so a SageMaker job never exists
untracked), then the spec, then CreateTrainingJob under a name derived from the dataset id; the
reconciler finds every dataset still waiting (``active_captions``) and repairs a lost event.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aws_lambda_powertools import Logger

from functions.adapters.training_launcher import LaunchRefused, TrainingJobState
from functions.api.schemas.captions import CaptionDatasetRequest
from functions.api.schemas.common import view_of
from functions.api.schemas.datasets import DatasetView
from functions.domain.batch_queue import (
    SAGEMAKER_ENDS_BATCH_DECIDES,
    newer_training_job_name,
    share_identifier,
)
from functions.domain.captioning import (
    CACHE_CHANNEL,
    CAPTIONED_DATASET_FOLDER,
    CAPTIONING_INSTANCE_TYPE,
    CAPTIONING_SUMMARY_FILENAME,
    NEW_CACHE_FOLDER,
    CaptioningJobSpec,
    CaptioningSummary,
    TaggerSettings,
    plan_captioning,
    trigger_word_problems,
)
from functions.domain.catalog import INSTANCE_TYPES, ResourceStatus
from functions.domain.dataset_rules import DeclaredFile
from functions.domain.errors import Conflict, NotFound, invalid_all
from functions.domain.ids import new_id, utc_now
from functions.domain.kohya_params import FieldProblem
from functions.domain.launch_spec import InputChannel, LaunchSpec
from functions.domain.records import CaptionsJob, DatasetRecord
from functions.domain.storage_layout import (
    caption_cache_prefix,
    dataset_declared_key,
    dataset_file_key,
    dataset_prefix,
    job_id_from_sagemaker_name,
    sagemaker_job_name,
    training_checkpoint_prefix,
    training_input_prefix,
    training_model_output_prefix,
    training_output_prefix,
)
from functions.domain.training_contract import DATASET_CHANNEL, JOB_CHANNEL, JOB_SPEC_FILENAME
from functions.services.background import WAITING_STATUSES
from functions.services.context import ServiceContext
from functions.services.datasets import fail_waiting_dataset, record_arrival

logger = Logger(child=True)
# A captions job's runtime limit: several times its estimate (the estimate assumes no cache hit),
# never under half an hour (SageMaker's start-up alone can take minutes), never over the
# deployment's training limit.
CAPTIONING_RUNTIME_FACTOR = 4
MIN_CAPTIONING_RUNTIME_SECONDS = 1800
ENDED_STATES = ("Completed", "Failed", "Stopped")  # DescribeTrainingJob's TrainingJobStatus
# As for a PENDING training job (functions.services.reconciliation): a job SageMaker still does not
# know this long after it was recorded is a launch that crashed before CreateTrainingJob.
UNLAUNCHED_GRACE = timedelta(minutes=5)
UNLAUNCHED_REASON = "the captions job was recorded but never reached SageMaker (the launch was interrupted)"


def request_problems(request: CaptionDatasetRequest) -> list[FieldProblem]:
    """What the schema cannot say: one model at least, a trigger word that is one caption part."""
    problems = trigger_word_problems(request.trigger_word)
    if not (request.use_tagger or request.use_captioner):
        problems.append(
            FieldProblem("use_tagger", "at least one of use_tagger and use_captioner must be true")
        )
    return problems


def runtime_limit(ctx: ServiceContext, estimated_seconds: int) -> int:
    wanted = max(MIN_CAPTIONING_RUNTIME_SECONDS, estimated_seconds * CAPTIONING_RUNTIME_FACTOR)
    return min(wanted, ctx.settings.max_runtime_seconds)


def job_spec(record: DatasetRecord) -> CaptioningJobSpec:
    """What the container runs (``job.json`` in the job channel)."""
    job = record.captions
    assert job is not None
    return CaptioningJobSpec(
        job_id=record.id,
        mode=job.mode,
        trigger_word=job.trigger_word,
        use_tagger=job.use_tagger,
        use_captioner=job.use_captioner,
        tagger=job.tagger or TaggerSettings(),
        max_caption_tokens=job.max_caption_tokens,
    )


def launch_spec(ctx: ServiceContext, record: DatasetRecord, with_cache: bool) -> LaunchSpec:
    """The captions job's SageMaker launch: the source dataset, the spec and (only when it holds
    objects: an empty S3 prefix fails the job at download) the owner's caption cache."""
    job = record.captions
    assert job is not None
    s, owner = ctx.settings, record.owner
    bucket = f"s3://{s.bucket_name}/"
    channels = [
        InputChannel(DATASET_CHANNEL, bucket + dataset_prefix(owner, job.source_dataset_id)),
        InputChannel(JOB_CHANNEL, bucket + training_input_prefix(owner, record.id)),
    ]
    if with_cache:
        channels.append(InputChannel(CACHE_CHANNEL, bucket + caption_cache_prefix(owner)))
    return LaunchSpec(
        job_name=job.sagemaker_job_name,
        image_uri=s.training_image_uri,
        role_arn=s.training_role_arn,
        hyperparameters={"job_id": record.id, "kind": "captioning"},
        channels=tuple(channels),
        output_uri=bucket + training_output_prefix(owner, record.id),
        checkpoint_uri=bucket + training_checkpoint_prefix(owner, record.id),
        instance_type=job.plan.instance_type,
        max_runtime_seconds=runtime_limit(ctx, job.plan.estimated_seconds),
        use_spot=False,  # a short job: waiting for spot capacity would cost more time than it saves
        network_isolation=s.network_isolation,
        tags={
            "lora:job-id": record.id,
            "lora:owner-key": training_output_prefix(owner, record.id).split("/")[1],
        },
        subnet_ids=s.subnet_ids,
        security_group_ids=s.security_group_ids,
        share_identifier=share_identifier(owner),
    )


def request_captions(
    ctx: ServiceContext, owner: str, source_id: str, request: CaptionDatasetRequest
) -> DatasetView:
    """Validate, record the new dataset with its job, launch the job. Idempotency: the caller's."""
    source = ctx.repository.get(DatasetRecord, source_id, owner)  # 404 first, as for trainings
    problems = request_problems(request)
    if problems:
        raise invalid_all(problems)
    if source.status is not ResourceStatus.READY or source.manifest is None:
        raise Conflict(f"dataset {source_id} is {source.status.value}; only a ready dataset can be captioned")
    instance = INSTANCE_TYPES[CAPTIONING_INSTANCE_TYPE]
    plan = plan_captioning(
        images=source.manifest.image_count,
        use_tagger=request.use_tagger,
        use_captioner=request.use_captioner,
        instance=instance,
        price_per_hour=ctx.price_per_hour(instance.name),
    )
    # The new dataset holds the same images plus captions: reserve the source's size now (the
    # exact size is settled when the job ends, as for crops).
    ctx.repository.reserve_storage(owner, source.total_bytes, ctx.settings.max_storage_bytes_per_owner)
    record_id, now = new_id(), utc_now()
    record = DatasetRecord(
        id=record_id,
        owner=owner,
        name=request.name,
        status=ResourceStatus.PROCESSING,
        file_count=source.file_count,
        total_bytes=source.total_bytes,
        captions=CaptionsJob(
            source_dataset_id=source_id,
            sagemaker_job_name=sagemaker_job_name(ctx.settings.job_name_prefix, record_id),
            mode=request.mode,
            trigger_word=request.trigger_word.strip() if request.trigger_word else None,
            use_tagger=request.use_tagger,
            use_captioner=request.use_captioner,
            tagger=request.tagger if request.use_tagger else None,
            max_caption_tokens=request.max_caption_tokens,
            plan=plan,
        ),
        created_at=now,
        updated_at=now,
    )
    ctx.repository.create(record)
    ctx.storage.write_bytes(
        training_input_prefix(owner, record_id) + JOB_SPEC_FILENAME, job_spec(record).to_json().encode()
    )
    with_cache = bool(ctx.storage.list_objects(caption_cache_prefix(owner)))
    try:
        ctx.launcher.create(launch_spec(ctx, record, with_cache))
    except LaunchRefused as refused:
        failed = fail_waiting_dataset(ctx, record, f"the captions job could not be started: {refused.reason}")
        return view_of(failed or ctx.repository.get(DatasetRecord, record_id, owner), DatasetView)
    logger.info(
        "captions job launched",
        extra={"dataset_id": record_id, "source": source_id, "owner": owner, "cache": with_cache},
    )
    return view_of(record, DatasetView)


# ---------------------------------------------------------------- the job's end (events, reconciler)


def captions_dataset_for_name(ctx: ServiceContext, name: str) -> DatasetRecord | None:
    """The dataset a SageMaker job name fills, when it is a captions job's."""
    record_id = job_id_from_sagemaker_name(ctx.settings.job_name_prefix, name)
    if record_id is None:
        return None
    try:
        record = ctx.repository.get(DatasetRecord, record_id, None)
    except NotFound:
        return None
    return record if record.captions is not None else None


def apply_captions_state(ctx: ServiceContext, state: TrainingJobState) -> bool:
    """Act on SageMaker's state of a captions job; False when the name is no captions job's.

    Safe to repeat (events are retried and duplicated, the reconciler replays them): every write
    is conditional on the dataset still waiting. On a queued deployment the job's states follow
    the trainings' rules (functions.services.job_events): Batch's word ends it, and a SageMaker
    event found by its tag counts only once Batch confirms the training job is this one.
    """
    record = captions_dataset_for_name(ctx, state.name)
    if record is None:
        return False
    job = record.captions
    assert job is not None
    if record.status not in WAITING_STATUSES:
        return True  # already settled: a duplicate or late event
    if state.found_by_tag and state.status in SAGEMAKER_ENDS_BATCH_DECIDES:
        return True  # Batch may run it again (capacity): its own event ends the job
    if state.found_by_tag and not _confirmed_by_batch(ctx, job, state):
        logger.warning("ignoring a training job tagged as a captions job that Batch did not create for it")
        return True
    renamed = newer_training_job_name(job.training_job_name, state.training_job_name)
    if renamed is not None:
        job = job.model_copy(update={"training_job_name": renamed})
        record = record.model_copy(update={"captions": job})
    if state.status == "Completed":
        finish_captions(ctx, record)
    elif state.status in ("Failed", "Stopped"):
        reason = state.failure_reason or f"SageMaker reported the job {state.status.lower()}"
        ended = record.model_copy(update={"captions": job.model_copy(update={"state": state.status})})
        fail_waiting_dataset(ctx, ended, f"the captions job {state.status.lower()}: {reason}")
    elif state.status != job.state or renamed is not None:
        moved = record.model_copy(
            update={"captions": job.model_copy(update={"state": state.status}), "updated_at": utc_now()}
        )
        ctx.repository.save(moved, expected_status=record.status.value)
    return True


def _confirmed_by_batch(ctx: ServiceContext, job: CaptionsJob, state: TrainingJobState) -> bool:
    if state.training_job_name == job.training_job_name:
        return True
    described = ctx.launcher.describe(job.sagemaker_job_name)
    named = described.training_job_name if described else None
    return named is not None and named.casefold() == str(state.training_job_name).casefold()


def _output_folder(ctx: ServiceContext, record: DatasetRecord, job: CaptionsJob) -> str:
    """The folder SageMaker wrote the job's output to: its training job name as SageMaker spells it.

    On a queued deployment the job may end before any SageMaker event has given that spelling
    (Batch names the training job only in its TrainingJobArn, in lower case), while S3 keys keep
    SageMaker's own; the stored object keys are the truth, matched without regard to case.
    """
    name = job.training_job_name or job.sagemaker_job_name
    for path in ctx.storage.list_objects(training_output_prefix(record.owner, record.id)):
        folder = path.split("/", 1)[0]
        if folder.casefold() == name.casefold():
            return folder
    return name


def finish_captions(ctx: ServiceContext, record: DatasetRecord) -> None:
    """Copy the job's new dataset into the dataset's files and check it as an upload; add the
    captions it computed to the owner's cache; keep its summary on the job."""
    job, owner = record.captions, record.owner
    assert job is not None
    output = training_model_output_prefix(owner, record.id, _output_folder(ctx, record, job))
    raw = ctx.storage.read_json(output + CAPTIONING_SUMMARY_FILENAME)
    if raw is None:
        fail_waiting_dataset(ctx, record, "the captions job completed without its summary")
        return
    summary = CaptioningSummary.model_validate(raw)
    produced = ctx.storage.list_objects(f"{output}{CAPTIONED_DATASET_FOLDER}/")
    declared: list[DeclaredFile] = []
    for path, info in sorted(produced.items()):
        ctx.storage.copy(info.key, dataset_file_key(owner, record.id, path))
        declared.append(DeclaredFile(path, info.size_bytes))
    for path, info in ctx.storage.list_objects(f"{output}{NEW_CACHE_FOLDER}/").items():
        ctx.storage.copy(info.key, caption_cache_prefix(owner) + path)
    ctx.storage.write_json(
        dataset_declared_key(owner, record.id),
        {"files": [{"path": f.path, "size_bytes": f.size_bytes} for f in declared]},
    )
    total = sum(f.size_bytes for f in declared)
    finished_job = job.model_copy(update={"state": "Completed", "summary": summary, "progress": None})
    try:
        record_arrival(
            ctx,
            record,
            declared,
            file_count=len(declared),
            total_bytes=total,
            captions=finished_job,  # its summary lists the images it could not caption
        )
    except Conflict:  # deleted (or failed) meanwhile: leave nothing behind
        ctx.storage.delete_prefix(dataset_prefix(owner, record.id))
        return
    ctx.repository.release_storage(owner, record.total_bytes - total)
    logger.info(
        "captions job completed",
        extra={
            "dataset_id": record.id,
            "images": summary.images,
            "cache_hits": summary.cache_hits,
            "model_runs": summary.model_runs,
            "failures": len(summary.failures),
        },
    )


def reconcile_captions(ctx: ServiceContext, now: datetime | None = None) -> dict[str, int]:
    """Every dataset still waiting for its captions job, compared with DescribeTrainingJob."""
    counts = dict.fromkeys(("captions-repaired", "captions-unchanged", "captions-errors"), 0)
    moment = now or datetime.now(UTC)
    for record in ctx.repository.active_captions():
        assert record.captions is not None
        try:
            state = ctx.launcher.describe(record.captions.sagemaker_job_name)
            if state is None:  # never launched (a crash before CreateTrainingJob), or not yet visible
                created = datetime.strptime(record.created_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
                unlaunched = moment - created > UNLAUNCHED_GRACE
                if unlaunched and fail_waiting_dataset(ctx, record, UNLAUNCHED_REASON):
                    counts["captions-repaired"] += 1
                else:
                    counts["captions-unchanged"] += 1
                continue
            settled = state.status in ENDED_STATES
            apply_captions_state(ctx, state)
            counts["captions-repaired" if settled else "captions-unchanged"] += 1
        except Exception:  # one bad record must not stop the others from being repaired
            logger.exception("could not reconcile captions job", extra={"dataset_id": record.id})
            counts["captions-errors"] += 1
    return counts
