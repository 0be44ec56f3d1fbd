"""Datasets from a zip URL: the request (API) and the fetch and unpack (tasks function).

``create_import`` checks the URL with the rules of model imports (https, public addresses, DNS
included) and records the dataset ``processing``. ``run_import_task`` spools the zip to a temporary
file (at most ``MAX_ZIP_BYTES``, and never more than the deployment's model-import limit), judges
its central directory (``functions/domain/zip_datasets.py``: traversal, absolute names, symlinks,
bombs, entry counts, dataset rules) before decompressing anything, reserves the bytes, writes each
planned entry under the dataset's ``uploads/`` prefix as if the owner had PUT it, and then hands the
dataset to the same checks an upload gets: ``record_arrival`` (manifest, ``validating``) and the
background validation that decodes every image into ``files/``. A refused zip fails the dataset
with the reason and leaves no object behind.
"""

from __future__ import annotations

import http.client
import tempfile
import zipfile
from typing import IO

from aws_lambda_powertools import Logger

from functions.adapters.url_fetch import FetchRefused, open_url, resolve_host
from functions.api.schemas.common import view_of
from functions.api.schemas.datasets import CreateDatasetRequest, DatasetCreated, DatasetView
from functions.domain.background_tasks import BackgroundTask, TaskKind
from functions.domain.catalog import ResourceStatus
from functions.domain.errors import LimitExceeded, NotFound, invalid, invalid_all
from functions.domain.ids import new_id, utc_now
from functions.domain.kohya_params import FieldProblem
from functions.domain.model_import import SOURCE_FIELD, url_file_name
from functions.domain.outbound_urls import outbound_url_problems
from functions.domain.records import DatasetRecord
from functions.domain.storage_layout import dataset_declared_key, dataset_upload_key, dataset_upload_prefix
from functions.domain.zip_datasets import (
    MAX_ZIP_BYTES,
    ZIP_EXTENSION,
    ZipRefused,
    plan_zip,
    read_planned,
    zip_entries,
)
from functions.services.context import ServiceContext
from functions.services.dataset_validation import run_validation_task
from functions.services.datasets import declared_files, fail_waiting_dataset, record_arrival

logger = Logger(child=True)
READ_CHUNK_BYTES = 1024 * 1024


def source_problems(ctx: ServiceContext, request: CreateDatasetRequest) -> list[FieldProblem]:
    """Why this import request cannot start ([] when it can); DNS is asked last."""
    assert request.source_url is not None
    allow = ctx.settings.model_import_allow_loopback_http
    problems = outbound_url_problems(
        request.source_url, SOURCE_FIELD, allow_loopback_http=allow, resolve=None
    )
    if problems:
        return problems
    name = url_file_name(request.source_url)
    if "." in name and not name.lower().endswith(ZIP_EXTENSION):
        return [FieldProblem(SOURCE_FIELD, f"must name a {ZIP_EXTENSION} file, not {name!r}")]
    if request.concept is not None and request.repeats is None:
        return [
            FieldProblem(
                "concept", "is only used with repeats (for a zip without <repeats>_<concept>/ folders)"
            )
        ]
    return outbound_url_problems(
        request.source_url, SOURCE_FIELD, allow_loopback_http=allow, resolve=resolve_host
    )


def create_import(ctx: ServiceContext, owner: str, request: CreateDatasetRequest) -> DatasetCreated:
    assert request.source_url is not None
    if request.files is not None:
        raise invalid("files", "must not be given with source_url (the files come from the zip)")
    problems = source_problems(ctx, request)
    if problems:
        raise invalid_all(problems, "dataset")
    dataset_id, now = new_id(), utc_now()
    record = DatasetRecord(
        id=dataset_id,
        owner=owner,
        name=request.name,
        status=ResourceStatus.PROCESSING,
        file_count=0,  # known, and counted towards storage, once the zip is read
        total_bytes=0,
        source_url=request.source_url,
        source_repeats=request.repeats,
        source_concept=request.concept,
        created_at=now,
        updated_at=now,
    )
    ctx.repository.create(record)
    try:
        ctx.tasks.dispatch(BackgroundTask(kind=TaskKind.DATASET_IMPORT, owner=owner, record_id=dataset_id))
    except Exception as error:  # nothing will run it: fail the record now rather than leave it waiting
        fail_waiting_dataset(ctx, record, f"the import could not be started: {error}")
        raise
    logger.info("dataset import requested", extra={"dataset_id": dataset_id, "owner": owner})
    return DatasetCreated(dataset=view_of(record, DatasetView), expires_in_seconds=0, uploads=[])


def import_limit(ctx: ServiceContext) -> int:
    return min(MAX_ZIP_BYTES, ctx.settings.model_import_max_bytes)


def spool_zip(ctx: ServiceContext, url: str, target: IO[bytes]) -> int:
    """Download ``url`` into ``target``, refusing anything over the limit; the size."""
    limit = import_limit(ctx)
    opened = open_url(url, allow_loopback_http=ctx.settings.model_import_allow_loopback_http)
    try:
        declared = opened.content_length
        if declared is not None and declared > limit:
            raise FetchRefused(f"the zip is {declared} bytes, over the import limit of {limit}")
        size = 0
        while chunk := opened.response.read(READ_CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise FetchRefused(f"the zip is larger than the import limit of {limit} bytes")
            target.write(chunk)
        if declared is not None and size != declared:
            raise FetchRefused(f"the transfer ended after {size} of {declared} bytes")
    finally:
        opened.close()
    target.flush()
    target.seek(0)
    return size


def _unpack(ctx: ServiceContext, record: DatasetRecord, spooled: IO[bytes]) -> DatasetRecord:
    """Judge, reserve, write under ``uploads/``; the record as saved (still processing)."""
    try:
        archive = zipfile.ZipFile(spooled)
    except zipfile.BadZipFile as error:
        raise ZipRefused(f"the file is not a zip archive ({error})") from error
    with archive:
        planned = plan_zip(zip_entries(archive), repeats=record.source_repeats, concept=record.source_concept)
        total = sum(p.size_bytes for p in planned)
        ctx.repository.reserve_storage(record.owner, total, ctx.settings.max_storage_bytes_per_owner)
        counted = record.model_copy(
            update={"file_count": len(planned), "total_bytes": total, "updated_at": utc_now()}
        )
        if not ctx.repository.save(counted, expected_status=ResourceStatus.PROCESSING.value):
            ctx.repository.release_storage(record.owner, total)
            raise ZipRefused("the dataset changed while its zip was read")
        ctx.storage.write_json(
            dataset_declared_key(record.owner, record.id),
            {"files": [{"path": p.path, "size_bytes": p.size_bytes} for p in planned]},
        )
        for item in planned:
            data = read_planned(archive, item)
            ctx.storage.write_bytes(dataset_upload_key(record.owner, record.id, item.path), data)
    return counted


def run_import_task(ctx: ServiceContext, task: BackgroundTask) -> None:
    """The tasks function's side. Safe to run twice: it only works on a dataset still processing."""
    try:
        record = ctx.repository.get(DatasetRecord, task.record_id, task.owner)
    except NotFound:  # deleted before the task ran
        return
    if record.status is not ResourceStatus.PROCESSING or record.source_url is None:
        return
    current = record
    try:
        with tempfile.TemporaryFile() as spooled:
            spool_zip(ctx, record.source_url, spooled)
            current = _unpack(ctx, record, spooled)
    except (
        FetchRefused,
        ZipRefused,
        zipfile.BadZipFile,
        LimitExceeded,
        OSError,
        EOFError,
        http.client.HTTPException,
    ) as problem:
        _refuse(ctx, current, str(problem))
        return
    checked = record_arrival(
        ctx,
        current,
        declared_files(ctx, record.owner, record.id),
        passed=ResourceStatus.VALIDATING,
        prefix=dataset_upload_prefix(record.owner, record.id),
    )
    if checked.status is ResourceStatus.VALIDATING:
        # The same background validation an upload gets (every image decoded into files/), run in
        # this invocation: dispatching it would need the tasks function to know its own name, a
        # circular reference in CloudFormation; a zip of at most MAX_ZIP_BYTES fits one run.
        run_validation_task(
            ctx, BackgroundTask(kind=TaskKind.DATASET_VALIDATION, owner=record.owner, record_id=record.id)
        )
    logger.info(
        "dataset imported",
        extra={
            "dataset_id": record.id,
            "owner": record.owner,
            "files": current.file_count,
            "status": checked.status.value,
        },
    )


def _refuse(ctx: ServiceContext, record: DatasetRecord, reason: str) -> None:
    """Fail the dataset with the reason; nothing of it stays in the bucket."""
    if fail_waiting_dataset(ctx, record, f"the zip was refused: {reason}") is None:
        # No longer waiting (deleted, or failed as overdue, meanwhile): still leave nothing.
        ctx.storage.delete_prefix(dataset_upload_prefix(record.owner, record.id))
    ctx.storage.delete(dataset_declared_key(record.owner, record.id))
    logger.warning(
        "dataset import refused", extra={"dataset_id": record.id, "owner": record.owner, "reason": reason}
    )
