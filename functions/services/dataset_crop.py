"""Dataset crops: a new dataset with every image of a ready one cropped and resized.

``request_crop`` (API) records the new dataset as ``processing`` and hands the work to the tasks
function; ``run_crop_task`` (tasks function) writes the images and captions, then checks the
result exactly as an uploaded dataset is checked (``record_arrival``). A file that cannot be
processed is left out with its reason (``file_errors``), together with its caption, so the rest
still makes a consistent dataset.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools import Logger

from functions.api.schemas.common import view_of
from functions.api.schemas.datasets import CropDatasetRequest, DatasetView
from functions.domain.background_tasks import BackgroundTask, TaskKind
from functions.domain.catalog import ResourceStatus
from functions.domain.dataset_preparation import NATIVE_SIDE, CropSpec, output_name, side_problem
from functions.domain.dataset_rules import CAPTION_EXTENSION, DeclaredFile
from functions.domain.errors import Conflict, NotFound, invalid
from functions.domain.ids import new_id, utc_now
from functions.domain.records import CropParameters, DatasetRecord
from functions.domain.storage_layout import dataset_declared_key, dataset_file_key, dataset_prefix
from functions.services.context import ServiceContext
from functions.services.datasets import fail_waiting_dataset, record_arrival

logger = Logger(child=True)
CROP_CONCURRENCY = 8  # Pillow releases the GIL while decoding and resizing
MAX_LISTED_FILE_ERRORS = 500


def crop_spec(request: CropDatasetRequest) -> CropSpec:
    """The target size from width/height, or the family's native side; 400 naming the field."""
    if request.width is not None:
        width = request.width
    elif request.fm_type is not None:
        width = NATIVE_SIDE[request.fm_type]
    else:
        raise invalid("width", "is required unless fm_type is given (then the family's native side is used)")
    height = request.height if request.height is not None else width
    for name, value in (("width", width), ("height", height)):
        problem = side_problem(name, value)
        if problem:
            raise invalid(name, problem.removeprefix(f"{name} "))
    return CropSpec(width, height, request.mode, request.upscale)


def request_crop(ctx: ServiceContext, owner: str, source_id: str, request: CropDatasetRequest) -> DatasetView:
    spec = crop_spec(request)
    source = ctx.repository.get(DatasetRecord, source_id, owner)
    if source.status is not ResourceStatus.READY:
        raise Conflict(f"dataset {source_id} is {source.status.value}; only a ready dataset can be cropped")
    # Reserve the source's size: crops at training resolutions are rarely larger; the exact size
    # is settled when the task ends.
    ctx.repository.reserve_storage(owner, source.total_bytes, ctx.settings.max_storage_bytes_per_owner)
    now = utc_now()
    record = DatasetRecord(
        id=new_id(),
        owner=owner,
        name=request.name,
        status=ResourceStatus.PROCESSING,
        file_count=source.file_count,
        total_bytes=source.total_bytes,
        crop=CropParameters(
            source_dataset_id=source_id,
            width=spec.width,
            height=spec.height,
            mode=spec.mode,
            upscale=spec.upscale,
        ),
        created_at=now,
        updated_at=now,
    )
    ctx.repository.create(record)
    task = BackgroundTask(kind=TaskKind.DATASET_CROP, owner=owner, record_id=record.id)
    try:
        ctx.tasks.dispatch(task)
    except Exception as error:  # nothing will run it: fail the record now rather than leave it waiting
        fail_waiting_dataset(ctx, record, f"the crop could not be started: {error}")
        raise
    logger.info(
        "dataset crop requested", extra={"dataset_id": record.id, "source": source_id, "owner": owner}
    )
    return view_of(record, DatasetView)


def run_crop_task(ctx: ServiceContext, task: BackgroundTask) -> None:
    """The tasks function's side. Safe to run twice: it only works on a record still processing."""
    try:
        record = ctx.repository.get(DatasetRecord, task.record_id, task.owner)
    except NotFound:  # deleted before the task ran
        return
    if record.status is not ResourceStatus.PROCESSING or record.crop is None:
        logger.info("crop task has nothing to do", extra={"dataset_id": task.record_id})
        return
    source_id = record.crop.source_dataset_id
    raw = ctx.storage.read_json(dataset_declared_key(task.owner, source_id))
    if raw is None:
        fail_waiting_dataset(ctx, record, f"the source dataset {source_id} no longer exists")
        return
    spec = CropSpec(record.crop.width, record.crop.height, record.crop.mode, record.crop.upscale)
    written, errors = copy_cropped(
        ctx, task.owner, source_id, record.id, [str(f["path"]) for f in raw["files"]], spec
    )
    ctx.storage.write_json(
        dataset_declared_key(task.owner, record.id),
        {"files": [{"path": f.path, "size_bytes": f.size_bytes} for f in written]},
    )
    total = sum(f.size_bytes for f in written)
    try:
        record_arrival(
            ctx,
            record,
            written,
            file_count=len(written),
            total_bytes=total,
            file_errors=errors[:MAX_LISTED_FILE_ERRORS],
        )
    except Conflict:  # deleted (or failed as overdue) meanwhile: leave nothing behind
        ctx.storage.delete_prefix(dataset_prefix(task.owner, record.id))
        return
    ctx.repository.release_storage(task.owner, record.total_bytes - total)


def copy_cropped(
    ctx: ServiceContext, owner: str, source_id: str, target_id: str, paths: list[str], spec: CropSpec
) -> tuple[list[DeclaredFile], list[str]]:
    """Write each image cropped and each caption as is; a failed image takes its caption along."""
    from functions.domain.image_preparation import ImageProblem, prepare_image  # Pillow: tasks only

    images = [p for p in paths if not p.lower().endswith(CAPTION_EXTENSION)]

    def crop_one(path: str) -> tuple[str, DeclaredFile | None, str | None]:
        data = ctx.storage.read_bytes(dataset_file_key(owner, source_id, path))
        if data is None:
            return path, None, f"{path}: missing from the source dataset"
        try:
            prepared = prepare_image(data, path, spec)
        except ImageProblem as problem:
            return path, None, f"{path}: {problem}"
        target = output_name(path)
        ctx.storage.write_bytes(dataset_file_key(owner, target_id, target), prepared)
        return path, DeclaredFile(target, len(prepared)), None

    def copy_caption(path: str) -> DeclaredFile | None:
        data = ctx.storage.read_bytes(dataset_file_key(owner, source_id, path))
        if data is None:
            return None  # its image then has no caption: the manifest says so
        ctx.storage.write_bytes(dataset_file_key(owner, target_id, path), data)
        return DeclaredFile(path, len(data))

    with ThreadPoolExecutor(CROP_CONCURRENCY) as pool:
        results = list(pool.map(crop_one, images))
        written = [f for _, f, _ in results if f is not None]
        kept_stems = {f.path.rsplit(".", 1)[0] for f in written}
        captions = [
            p for p in paths if p.lower().endswith(CAPTION_EXTENSION) and p.rsplit(".", 1)[0] in kept_stems
        ]
        written += [f for f in pool.map(copy_caption, captions) if f is not None]
    return written, [e for _, _, e in results if e is not None]
