"""Datasets: declare files (presigned PUTs), complete (verify + manifest), read, list, delete.

Presigned PUTs write under the dataset's ``uploads/`` prefix and stay usable until they expire,
also after ``complete``. So ``complete`` only checks what arrived (sizes, first bytes) and hands
the dataset to a background validation (``validating``, functions/services/dataset_validation.py)
that decodes every file completely and writes the bytes it validated to ``files/``, the prefix
training jobs read and no URL targets: what a job trains on is exactly what was validated.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools import Logger

from functions.adapters.storage import ObjectInfo
from functions.api.schemas.common import view_of
from functions.api.schemas.datasets import (
    CreateDatasetRequest,
    DatasetCreated,
    DatasetList,
    DatasetUploads,
    DatasetUploadsRequest,
    DatasetView,
    PresignedFileUpload,
)
from functions.domain.background_tasks import BackgroundTask, TaskKind
from functions.domain.catalog import ResourceStatus
from functions.domain.dataset_rules import (
    CAPTION_EXTENSION,
    UPLOAD_URLS_PER_RESPONSE,
    ArrivedFile,
    DeclaredFile,
    build_manifest,
    check_declared_files,
)
from functions.domain.errors import Conflict, invalid, invalid_all
from functions.domain.file_checks import looks_like_image, looks_like_text
from functions.domain.ids import new_id, utc_now
from functions.domain.records import DatasetRecord, TrainingProgress
from functions.domain.storage_layout import (
    dataset_declared_key,
    dataset_prefix,
    dataset_thumbnail_prefix,
    dataset_upload_key,
    dataset_upload_prefix,
    training_progress_key,
)
from functions.services.background import OVERDUE_REASON, WAITING_STATUSES, is_overdue, mark_failed
from functions.services.context import ServiceContext
from functions.services.models import jobs_using
from functions.services.pagination import list_page

logger = Logger(child=True)
SNIFF_BYTES = 16
SNIFF_CONCURRENCY = 32
MAX_LISTED_PROBLEMS = 500


def create_dataset(ctx: ServiceContext, owner: str, request: CreateDatasetRequest) -> DatasetCreated:
    if request.files is None:
        raise invalid("files", "is required unless source_url names a .zip to import")
    for field in ("repeats", "concept"):
        if getattr(request, field) is not None:
            raise invalid(
                field, "is only for a zip import (source_url); uploaded paths carry <repeats>_<concept>/"
            )
    declared = [DeclaredFile(f.path, f.size_bytes) for f in request.files]
    problems = check_declared_files(declared)
    if problems:
        raise invalid_all(problems, "dataset")
    total = sum(f.size_bytes for f in declared)
    dataset_id, now = new_id(), utc_now()
    ctx.repository.reserve_storage(owner, total, ctx.settings.max_storage_bytes_per_owner)
    record = DatasetRecord(
        id=dataset_id,
        owner=owner,
        name=request.name,
        status=ResourceStatus.UPLOADING,
        file_count=len(declared),
        total_bytes=total,
        created_at=now,
        updated_at=now,
    )
    ctx.storage.write_json(
        dataset_declared_key(owner, dataset_id),
        {"files": [{"path": f.path, "size_bytes": f.size_bytes} for f in declared]},
    )
    ctx.repository.create(record)
    first = declared[:UPLOAD_URLS_PER_RESPONSE]
    logger.info(
        "dataset registered", extra={"dataset_id": dataset_id, "owner": owner, "files": len(declared)}
    )
    return DatasetCreated(
        dataset=view_of(record, DatasetView),
        expires_in_seconds=ctx.settings.presign_expiry_seconds,
        uploads=[_presigned_put(ctx, owner, dataset_id, f) for f in first],
        uploads_remaining=len(declared) - len(first),
    )


def _presigned_put(
    ctx: ServiceContext, owner: str, dataset_id: str, file: DeclaredFile
) -> PresignedFileUpload:
    """A PUT bound to the file's key and declared size (Content-Length is signed)."""
    return PresignedFileUpload(
        path=file.path,
        url=ctx.storage.presign_put(dataset_upload_key(owner, dataset_id, file.path), file.size_bytes),
        headers={"Content-Length": str(file.size_bytes)},
    )


def issue_uploads(
    ctx: ServiceContext, owner: str, dataset_id: str, request: DatasetUploadsRequest
) -> DatasetUploads:
    """Presigned PUTs for declared files of a dataset still uploading (the rest, or expired ones)."""
    record = ctx.repository.get(DatasetRecord, dataset_id, owner)
    if record.status is not ResourceStatus.UPLOADING:
        raise Conflict(f"dataset {dataset_id} is already {record.status.value}: nothing to upload")
    raw = ctx.storage.read_json(dataset_declared_key(owner, dataset_id)) or {}
    sizes = {str(f["path"]): int(f["size_bytes"]) for f in raw.get("files", [])}
    for index, path in enumerate(request.paths):
        if path not in sizes:
            raise invalid(f"paths[{index}]", f"must be a file declared for this dataset (got {path!r})")
    return DatasetUploads(
        expires_in_seconds=ctx.settings.presign_expiry_seconds,
        uploads=[_presigned_put(ctx, owner, dataset_id, DeclaredFile(p, sizes[p])) for p in request.paths],
    )


def _content_ok(ctx: ServiceContext, path: str, info: ObjectInfo) -> bool:
    """The object's first bytes match its type (image magic bytes, or UTF-8 caption text)."""
    head = ctx.storage.read_range(info.key, 0, min(SNIFF_BYTES, info.size_bytes))
    suffix = "." + path.rsplit(".", 1)[-1]
    return looks_like_text(head) if suffix.lower() == CAPTION_EXTENSION else looks_like_image(suffix, head)


def _arrived(
    ctx: ServiceContext, objects: dict[str, ObjectInfo], declared: list[DeclaredFile]
) -> dict[str, ArrivedFile]:
    """Objects that arrived, with their first bytes checked against their type.

    The ranged GETs run in parallel: S3 answers each in ~10-30 ms, so 5,000 files one by one
    would outlast API Gateway's 29-second limit.
    """
    sizes = {d.path: d.size_bytes for d in declared}
    to_sniff = {
        path: info
        for path, info in objects.items()
        if path in sizes and info.size_bytes == sizes[path] and info.size_bytes > 0
    }
    with ThreadPoolExecutor(max_workers=SNIFF_CONCURRENCY) as pool:
        verdicts = dict(
            zip(to_sniff, pool.map(lambda item: _content_ok(ctx, *item), to_sniff.items()), strict=True)
        )
    return {
        path: ArrivedFile(path, info.size_bytes, verdicts.get(path, True))
        for path, info in objects.items()
        if path in sizes  # undeclared objects are ignored (and deleted by the caller)
    }


def complete_dataset(ctx: ServiceContext, owner: str, dataset_id: str) -> DatasetView:
    record = ctx.repository.get(DatasetRecord, dataset_id, owner)
    if record.status is not ResourceStatus.UPLOADING:
        raise Conflict(f"dataset {dataset_id} is already {record.status.value}")
    declared = declared_files(ctx, owner, dataset_id)
    checked = record_arrival(
        ctx,
        record,
        declared,
        prefix=dataset_upload_prefix(owner, dataset_id),
        passed=ResourceStatus.VALIDATING,
    )
    if checked.status is ResourceStatus.VALIDATING:
        task = BackgroundTask(kind=TaskKind.DATASET_VALIDATION, owner=owner, record_id=dataset_id)
        try:
            ctx.tasks.dispatch(task)
        except Exception as error:  # nothing will run it: fail the dataset now rather than leave it waiting
            fail_waiting_dataset(ctx, checked, f"the validation could not be started: {error}")
            raise
    return view_of(checked, DatasetView)


def declared_files(ctx: ServiceContext, owner: str, dataset_id: str) -> list[DeclaredFile]:
    raw = ctx.storage.read_json(dataset_declared_key(owner, dataset_id))
    return [DeclaredFile(str(f["path"]), int(f["size_bytes"])) for f in (raw or {}).get("files", [])]


def record_arrival(
    ctx: ServiceContext,
    record: DatasetRecord,
    declared: list[DeclaredFile],
    *,
    prefix: str | None = None,
    passed: ResourceStatus = ResourceStatus.READY,
    **updates: object,
) -> DatasetRecord:
    """Check the declared files against what is under ``prefix``, write the manifest, set the status
    (``passed`` when there is no problem, else invalid).

    Shared by ``complete`` (files uploaded by the caller, then validated in the background) and
    crops (files the tasks function encoded itself, under ``files/``). The write is conditional
    on the record's current status, so a concurrent change or delete wins.
    """
    owner, dataset_id = record.owner, record.id
    objects = ctx.storage.list_objects(prefix or dataset_prefix(owner, dataset_id))
    declared_paths = {d.path for d in declared}
    for path, info in objects.items():
        if path not in declared_paths:
            ctx.storage.delete(info.key)  # an undeclared object never reaches a training job
    manifest = build_manifest(declared, _arrived(ctx, objects, declared))
    if len(manifest.problems) > MAX_LISTED_PROBLEMS:
        extra = len(manifest.problems) - MAX_LISTED_PROBLEMS
        manifest.problems = [*manifest.problems[:MAX_LISTED_PROBLEMS], f"... and {extra} more problems"]
    status = ResourceStatus.INVALID if manifest.problems else passed
    finished = record.model_copy(
        update={**updates, "status": status, "manifest": manifest, "updated_at": utc_now()}
    )
    if not ctx.repository.save(finished, expected_status=record.status.value):
        raise Conflict(f"dataset {dataset_id} changed while its files were checked; try again")
    logger.info(
        "dataset checked",
        extra={
            "dataset_id": dataset_id,
            "owner": owner,
            "status": status.value,
            "problems": len(manifest.problems),
        },
    )
    return finished


def get_dataset(ctx: ServiceContext, owner: str, dataset_id: str) -> DatasetView:
    record = settled(ctx, ctx.repository.get(DatasetRecord, dataset_id, owner))
    return view_of(with_live_progress(ctx, record), DatasetView)


def with_live_progress(ctx: ServiceContext, record: DatasetRecord) -> DatasetRecord:
    """A dataset waiting for its captions job, with the container's latest progress report
    (images done of total; synced from the job's checkpoint folder)."""
    if record.captions is None or record.status not in WAITING_STATUSES:
        return record
    data = ctx.storage.read_json(training_progress_key(record.owner, record.id))
    if data is None:
        return record
    try:
        progress = TrainingProgress.model_validate(data)
    except ValueError:
        return record
    return record.model_copy(update={"captions": record.captions.model_copy(update={"progress": progress})})


def settled(ctx: ServiceContext, record: DatasetRecord) -> DatasetRecord:
    """The record, failed first if its background task has outlived any possible run of it.

    A captions job is no background task: SageMaker's events (and the reconciler) settle it."""
    if (
        record.status not in WAITING_STATUSES
        or record.captions is not None
        or not is_overdue(record.updated_at)
    ):
        return record
    # None: it finished meanwhile, so read what it became
    return fail_waiting_dataset(ctx, record, OVERDUE_REASON) or ctx.repository.get(
        DatasetRecord, record.id, record.owner
    )


def fail_waiting_dataset(ctx: ServiceContext, record: DatasetRecord, reason: str) -> DatasetRecord | None:
    """Fail a dataset still waiting for its task, drop what the task wrote, give its bytes back."""
    waiting = record.status if record.status in WAITING_STATUSES else ResourceStatus.PROCESSING
    failed = mark_failed(ctx, record, reason, waiting, total_bytes=0)
    if failed is not None:
        ctx.storage.delete_prefix(dataset_prefix(record.owner, record.id))
        ctx.storage.delete_prefix(dataset_upload_prefix(record.owner, record.id))
        ctx.storage.delete_prefix(dataset_thumbnail_prefix(record.owner, record.id))
        ctx.repository.release_storage(record.owner, record.total_bytes)
        logger.warning(
            "dataset task failed", extra={"dataset_id": record.id, "owner": record.owner, "reason": reason}
        )
    return failed


def list_datasets(
    ctx: ServiceContext, owner: str, *, status: str | None, limit: int, next_token: str | None
) -> DatasetList:
    items, token = list_page(ctx, DatasetRecord, owner, status=status, limit=limit, next_token=next_token)
    return DatasetList(items=[view_of(settled(ctx, d), DatasetView) for d in items], next_token=token)


def delete_dataset(ctx: ServiceContext, owner: str, dataset_id: str) -> None:
    """Delete the record first, on condition that no active job uses it (one conditional write,
    so a job created concurrently either holds it and the delete is refused, or finds it gone);
    only then its objects and bytes."""
    record = ctx.repository.get(DatasetRecord, dataset_id, owner)
    using = jobs_using(ctx, owner, dataset_id=dataset_id)
    if using:
        raise Conflict(
            f"dataset {dataset_id} is used by active training job(s) {', '.join(using)}; stop them first"
        )
    # the record and its bytes go in one transaction: a crash after it loses no bytes
    ctx.repository.delete(DatasetRecord, dataset_id, release_bytes=(owner, record.total_bytes))
    if record.captions is not None and record.status in WAITING_STATUSES:
        # its captions job would go on billing for a dataset that is gone; its end event then
        # finds no record and is ignored
        ctx.launcher.stop(record.captions.sagemaker_job_name)
    ctx.storage.delete_prefix(dataset_prefix(owner, dataset_id))
    ctx.storage.delete_prefix(dataset_upload_prefix(owner, dataset_id))
    ctx.storage.delete_prefix(dataset_thumbnail_prefix(owner, dataset_id))
    ctx.storage.delete(dataset_declared_key(owner, dataset_id))
    logger.info("dataset deleted", extra={"dataset_id": dataset_id, "owner": owner})
