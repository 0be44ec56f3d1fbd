"""Models: register + multipart upload, completion with verification, read, list, delete."""

from __future__ import annotations

import math

from aws_lambda_powertools import Logger

from functions.adapters.storage import choose_part_size
from functions.api.schemas.common import view_of
from functions.api.schemas.models import (
    CompleteModelRequest,
    CreateModelRequest,
    ModelCreated,
    ModelList,
    ModelVersionView,
    ModelView,
    MultipartUpload,
    PresignedPart,
)
from functions.domain.catalog import FmType, ModelKind, ResourceStatus
from functions.domain.checkpoint_family import model_file_problems, tensor_shapes
from functions.domain.epoch_outputs import select_version
from functions.domain.errors import Conflict, NotFound, invalid, invalid_all
from functions.domain.families import FAMILIES, ComponentRole
from functions.domain.file_checks import parse_safetensors_header, safetensors_header_length
from functions.domain.flow_checkpoints import sd35_included_components
from functions.domain.ids import new_id, utc_now
from functions.domain.kohya_params import FieldProblem
from functions.domain.records import ModelRecord, TrainingJobRecord
from functions.domain.storage_layout import model_object_key
from functions.services.background import OVERDUE_REASON, is_overdue, mark_failed
from functions.services.context import ServiceContext
from functions.services.pagination import list_page

logger = Logger(child=True)


def component_request_problems(request: CreateModelRequest) -> list[FieldProblem]:
    """A component is a checkpoint file its family loads besides the main one (FamilySpec.components)."""
    if request.component is None:
        return []
    spec = FAMILIES[request.fm_type]
    taken = [slot.role.value for slot in spec.components]
    if request.kind is not ModelKind.CHECKPOINT:
        return [FieldProblem("component", "is for checkpoint files only, not LoRAs")]
    if request.component.value not in taken:
        listed = ", ".join(taken) or "none: everything is in the one checkpoint"
        return [
            FieldProblem(
                "component",
                f"{spec.display_name} takes no {request.component.value} component (it takes: {listed})",
            )
        ]
    return []


def check_component_request(request: CreateModelRequest) -> None:
    problems = component_request_problems(request)
    if problems:
        raise invalid_all(problems)


def create_model(ctx: ServiceContext, owner: str, request: CreateModelRequest) -> ModelCreated:
    """Register an upload (``source_url`` imports go through ``model_import.create_import``)."""
    check_component_request(request)
    if request.access_token is not None:
        raise invalid("access_token", "is for imports only: give it with source_url")
    if request.filename is None or request.size_bytes is None:
        missing = [name for name in ("filename", "size_bytes") if getattr(request, name) is None]
        raise invalid_all(
            [
                FieldProblem(name, "is required for an upload (or give source_url to import)")
                for name in missing
            ],
            "model",
        )
    filename, size_bytes = request.filename, request.size_bytes
    model_id, now = new_id(), utc_now()
    key = model_object_key(owner, model_id, filename)
    ctx.repository.reserve_storage(owner, size_bytes, ctx.settings.max_storage_bytes_per_owner)
    upload_id = ctx.storage.start_multipart_upload(key)
    part_size = choose_part_size(size_bytes)
    record = ModelRecord(
        id=model_id,
        owner=owner,
        name=request.name,
        kind=request.kind,
        fm_type=request.fm_type,
        component=request.component,
        filename=filename,
        size_bytes=size_bytes,
        sha256=request.sha256,
        status=ResourceStatus.UPLOADING,
        s3_key=key,
        upload_id=upload_id,
        created_at=now,
        updated_at=now,
    )
    ctx.repository.create(record)
    parts = [
        PresignedPart(part_number=n, url=ctx.storage.presign_upload_part(key, upload_id, n))
        for n in range(1, math.ceil(size_bytes / part_size) + 1)
    ]
    logger.info("model registered", extra={"model_id": model_id, "owner": owner, "size": size_bytes})
    return ModelCreated(
        model=view_of(record, ModelView),
        upload=MultipartUpload(
            upload_id=upload_id,
            part_size=part_size,
            expires_in_seconds=ctx.settings.presign_expiry_seconds,
            parts=parts,
        ),
    )


def _read_safetensors(
    ctx: ServiceContext, key: str, expected_size: int | None
) -> tuple[int, dict[str, object]]:
    size = ctx.storage.object_size(key)
    if size is None:
        raise ValueError("the file was not found in storage")
    if expected_size is not None and size != expected_size:
        raise ValueError(f"the uploaded file is {size} bytes, but {expected_size} were declared")
    length = safetensors_header_length(ctx.storage.read_range(key, 0, 8))
    return size, parse_safetensors_header(ctx.storage.read_range(key, 8, length), size)


def verify_safetensors(ctx: ServiceContext, key: str, expected_size: int | None) -> int:
    """Size and header of an uploaded .safetensors object; its size, or ValueError with the reason."""
    return _read_safetensors(ctx, key, expected_size)[0]


def verify_model_file(
    ctx: ServiceContext, record: ModelRecord, expected_size: int | None
) -> tuple[int, list[ComponentRole]]:
    """The model's file is what its record says; its size and the components it carries itself.

    A checkpoint's header must show that family's checkpoint, or the component the record names
    (tensor names and shapes: functions.domain.checkpoint_family / flow_checkpoints): a file that is
    not one would otherwise be ``ready`` and fail only inside a billed training job. LoRAs are not
    checked. ValueError with the reason otherwise.
    """
    size, header = _read_safetensors(ctx, record.s3_key, expected_size)
    if record.kind is not ModelKind.CHECKPOINT:
        return size, []
    problems = model_file_problems(header, record.fm_type, record.component)
    if problems:
        raise ValueError("; ".join(problems))
    if record.fm_type is FmType.SD35 and record.component is None:
        return size, sorted(sd35_included_components(tensor_shapes(header)))
    return size, []


def complete_model(
    ctx: ServiceContext, owner: str, model_id: str, request: CompleteModelRequest
) -> ModelView:
    record = ctx.repository.get(ModelRecord, model_id, owner)
    if record.status is not ResourceStatus.UPLOADING or not record.upload_id:
        raise Conflict(f"model {model_id} is {record.status.value}, not uploading")
    numbers = [p.part_number for p in request.parts]
    if len(set(numbers)) != len(numbers):
        raise invalid("parts", "lists a part_number more than once")
    expected = math.ceil(record.size_bytes / choose_part_size(record.size_bytes))
    if sorted(numbers) != list(range(1, expected + 1)):
        raise invalid("parts", f"must list parts 1 to {expected}, each once, with its ETag")
    try:
        ctx.storage.complete_multipart_upload(
            record.s3_key, record.upload_id, [(p.part_number, p.etag) for p in request.parts]
        )
    except Exception as error:  # botocore ClientError: InvalidPart, NoSuchUpload, EntityTooSmall ...
        raise Conflict(f"the upload could not be completed: {error}") from error
    try:
        _, included = verify_model_file(ctx, record, record.size_bytes)
    except ValueError as problem:
        ctx.storage.delete(record.s3_key)
        _fail_upload(ctx, record)
        raise invalid("file", f"{problem}; the upload was discarded, register the model again") from problem
    record = record.model_copy(
        update={
            "status": ResourceStatus.READY,
            "upload_id": None,
            "included_components": included,
            "updated_at": utc_now(),
        }
    )
    if not ctx.repository.save(record, expected_status=ResourceStatus.UPLOADING.value):
        raise Conflict(f"model {model_id} changed while completing; try again")
    logger.info("model ready", extra={"model_id": model_id, "owner": owner})
    return view_of(record, ModelView)


def _fail_upload(ctx: ServiceContext, record: ModelRecord) -> None:
    """A failed upload leaves nothing behind: no record, no object, no reserved bytes."""
    if ctx.repository.delete(ModelRecord, record.id):
        ctx.repository.release_storage(record.owner, record.size_bytes)


def get_model(ctx: ServiceContext, owner: str, model_id: str, epoch: int | None = None) -> ModelView:
    """A model with presigned links; ``epoch`` makes ``download_url`` that saved epoch's LoRA."""
    record = settled_model(ctx, ctx.repository.get(ModelRecord, model_id, owner))
    ready = record.status is ResourceStatus.READY
    versions = [
        ModelVersionView(
            **v.model_dump(exclude={"s3_key"}),
            download_url=ctx.storage.presign_get(v.s3_key, v.filename) if ready else None,
        )
        for v in record.versions
    ]
    url = ctx.storage.presign_get(record.s3_key, record.filename) if ready else None
    if epoch is not None:
        chosen = select_version(record.versions, epoch)
        if chosen is None:
            kept = ", ".join(str(v.epoch) for v in record.versions) or "none (no save_every_n_epochs)"
            # 404: the request is well formed; the version it names does not exist
            message = f"model {model_id} has no version for epoch {epoch}; saved epochs: {kept}"
            raise NotFound(message, [FieldProblem("epoch", f"no version for epoch {epoch}")])
        url = ctx.storage.presign_get(chosen.s3_key, chosen.filename) if ready else None
    return view_of(
        record, ModelView, download_url=url, versions=[v.model_dump(mode="json") for v in versions]
    )


def stored_objects(record: ModelRecord) -> dict[str, int]:
    """Every object a model owns with its size: the file, plus a trained LoRA's other versions."""
    objects = {v.s3_key: v.size_bytes for v in record.versions}
    objects[record.s3_key] = record.size_bytes
    return objects


def list_models(
    ctx: ServiceContext,
    owner: str,
    *,
    kind: ModelKind | None,
    fm_type: str | None,
    status: str | None,
    limit: int,
    next_token: str | None,
) -> ModelList:
    filters = {k: v for k, v in {"kind": kind.value if kind else None, "fm_type": fm_type}.items() if v}
    items, token = list_page(
        ctx, ModelRecord, owner, status=status, limit=limit, next_token=next_token, filters=filters
    )
    return ModelList(items=[view_of(settled_model(ctx, m), ModelView) for m in items], next_token=token)


def settled_model(ctx: ServiceContext, record: ModelRecord) -> ModelRecord:
    """The record, failed first if its import has outlived any possible run of its task."""
    if record.status is not ResourceStatus.PROCESSING or not is_overdue(record.updated_at):
        return record
    # None: it finished meanwhile, so read what it became
    return fail_waiting_model(ctx, record, OVERDUE_REASON) or ctx.repository.get(
        ModelRecord, record.id, record.owner
    )


def fail_waiting_model(ctx: ServiceContext, record: ModelRecord, reason: str) -> ModelRecord | None:
    """Fail a model still waiting for its import and drop whatever the import stored."""
    failed = mark_failed(ctx, record, reason)
    if failed is not None:
        ctx.storage.delete(record.s3_key)
        logger.warning(
            "model import failed", extra={"model_id": record.id, "owner": record.owner, "reason": reason}
        )
    return failed


def jobs_using(
    ctx: ServiceContext, owner: str, *, model_id: str | None = None, dataset_id: str | None = None
) -> list[str]:
    """Ids of the owner's active jobs that use a model or dataset."""
    return [
        job.id
        for job in ctx.repository.active_jobs(owner)
        if (model_id and model_id in (job.base_model_id, *job.components.values()))
        or (dataset_id and job.dataset_id == dataset_id)
    ]


def delete_model(ctx: ServiceContext, owner: str, model_id: str) -> None:
    """Delete the record first, on condition that no active job uses it (see delete_dataset),
    then its objects and bytes."""
    record = ctx.repository.get(ModelRecord, model_id, owner)
    using = jobs_using(ctx, owner, model_id=model_id)
    if using:
        raise Conflict(
            f"model {model_id} is used by active training job(s) {', '.join(using)}; stop them first"
        )
    objects = stored_objects(record)
    # the record and its bytes go in one transaction: a crash after it loses no bytes
    ctx.repository.delete(ModelRecord, model_id, release_bytes=(owner, sum(objects.values())))
    if record.upload_id:
        ctx.storage.abort_multipart_upload(record.s3_key, record.upload_id)
    for key in objects:
        ctx.storage.delete(key)
    logger.info("model deleted", extra={"model_id": model_id, "owner": owner})


def delete_lora_of_job(ctx: ServiceContext, job: TrainingJobRecord) -> None:
    if job.output:
        delete_model(ctx, job.owner, job.output.lora_model_id)
