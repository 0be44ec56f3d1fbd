"""Dataset validation (tasks function): decode every file, then freeze what was validated.

``complete`` leaves a dataset ``validating`` once its uploads arrived with the declared sizes and
plausible first bytes. This task reads each uploaded object whole, decodes it completely
(functions/domain/image_decoding.py), and writes exactly the bytes it decoded under ``files/``,
the prefix training jobs read and no presigned URL targets. A PUT through a URL that is still
valid can then only change ``uploads/``, which nothing reads: the dataset a job trains on is the
one validated here. The dataset becomes ``ready``, or ``invalid`` with one problem per bad file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from aws_lambda_powertools import Logger

from functions.domain.background_tasks import BackgroundTask
from functions.domain.catalog import ResourceStatus
from functions.domain.dataset_rules import CAPTION_EXTENSION, DatasetManifest, DeclaredFile
from functions.domain.errors import NotFound
from functions.domain.ids import utc_now
from functions.domain.records import DatasetRecord
from functions.domain.storage_layout import (
    dataset_file_key,
    dataset_prefix,
    dataset_thumbnail_key,
    dataset_thumbnail_prefix,
    dataset_upload_key,
    dataset_upload_prefix,
)
from functions.services.context import ServiceContext
from functions.services.datasets import MAX_LISTED_PROBLEMS, declared_files

logger = Logger(child=True)
VALIDATION_CONCURRENCY = 8  # Pillow releases the GIL while decoding
# Decoded pixels held at once by the pool. The tasks function has 2048 MB
# (infrastructure/constructs/functions.py); 8 files of up to 50 MB are read at once (400 MB) and
# Pillow allows a single image of ~89M pixels (Image.MAX_IMAGE_PIXELS, ~358 MB as RGBA): eight
# full decodes could need ~2.9 GB, so decodes wait for their share of this budget.
DECODE_BUDGET_BYTES = 1024 * 1024 * 1024


class DecodeBudget:
    """Bytes of decoded pixels the pool's threads may hold at once: a decode waits until its size
    (from the image header) fits; one bigger than the whole budget waits until it runs alone."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._free = capacity
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        need = min(size, self._capacity)
        with self._changed:
            self._changed.wait_for(lambda: self._free >= need)
            self._free -= need
        try:
            yield
        finally:
            with self._changed:
                self._free += need
                self._changed.notify_all()


def seal_file(
    ctx: ServiceContext, owner: str, dataset_id: str, file: DeclaredFile, budget: DecodeBudget
) -> str | None:
    """Decode one upload and copy the decoded bytes into ``files/``; the problem, or None."""
    from functions.domain.image_decoding import decoded_bytes, file_problem, thumbnail_jpeg  # Pillow

    data = ctx.storage.read_bytes(dataset_upload_key(owner, dataset_id, file.path))
    if data is None:
        return f"{file.path}: disappeared after the dataset was completed"
    if len(data) != file.size_bytes:
        return f"{file.path}: is now {len(data)} bytes, declared {file.size_bytes} (changed after complete)"
    is_image = not file.path.lower().endswith(CAPTION_EXTENSION)
    with budget.hold(decoded_bytes(file.path, data)):
        problem = file_problem(file.path, data)
        thumbnail = thumbnail_jpeg(data) if problem is None and is_image else None
    if problem is None:
        ctx.storage.write_bytes(dataset_file_key(owner, dataset_id, file.path), data)
    if thumbnail is not None:
        ctx.storage.write_bytes(dataset_thumbnail_key(owner, dataset_id, file.path), thumbnail)
    return problem


def drop_unclaimed_files(ctx: ServiceContext, owner: str, dataset_id: str) -> None:
    """After losing the save: delete ``files/`` only if no READY dataset owns it.

    The save fails when the dataset was deleted or failed meanwhile (its ``files/`` is garbage),
    but also when a duplicate delivery of this task won and saved READY: those files are now the
    dataset a job trains on.
    """
    try:
        current = ctx.repository.get(DatasetRecord, dataset_id, owner)
    except NotFound:
        current = None
    if current is None or current.status is not ResourceStatus.READY:
        ctx.storage.delete_prefix(dataset_prefix(owner, dataset_id))
        ctx.storage.delete_prefix(dataset_thumbnail_prefix(owner, dataset_id))


def run_validation_task(ctx: ServiceContext, task: BackgroundTask) -> None:
    """The tasks function's side. Safe to run twice: it only works on a dataset still validating."""
    try:
        record = ctx.repository.get(DatasetRecord, task.record_id, task.owner)
    except NotFound:  # deleted before the task ran
        return
    if record.status is not ResourceStatus.VALIDATING:
        return
    owner, dataset_id = record.owner, record.id
    declared = declared_files(ctx, owner, dataset_id)
    budget = DecodeBudget(DECODE_BUDGET_BYTES)
    with ThreadPoolExecutor(VALIDATION_CONCURRENCY) as pool:
        found = [p for p in pool.map(lambda f: seal_file(ctx, owner, dataset_id, f, budget), declared) if p]
    manifest = (record.manifest or DatasetManifest()).model_copy(deep=True)
    if len(found) > MAX_LISTED_PROBLEMS:
        found = [*found[:MAX_LISTED_PROBLEMS], f"... and {len(found) - MAX_LISTED_PROBLEMS} more problems"]
    manifest.problems = [*manifest.problems, *found]
    status = ResourceStatus.INVALID if found else ResourceStatus.READY
    done = record.model_copy(update={"status": status, "manifest": manifest, "updated_at": utc_now()})
    if not ctx.repository.save(done, expected_status=ResourceStatus.VALIDATING.value):
        drop_unclaimed_files(ctx, owner, dataset_id)
        return
    ctx.storage.delete_prefix(dataset_upload_prefix(owner, dataset_id))  # validated copies are in files/
    logger.info(
        "dataset validated",
        extra={"dataset_id": dataset_id, "owner": owner, "status": status.value, "problems": len(found)},
    )
