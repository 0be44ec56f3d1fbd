"""Model imports from a URL: the request (API) and the fetch (tasks function).

``create_import`` checks the URL (DNS included), records the model as ``processing`` and hands
the fetch to the tasks function. ``run_import_task`` streams the file into the bucket as a
multipart upload (one part in memory at a time), refusing anything over the size limit, then
checks it exactly as an uploaded model is checked (size, safetensors header, and a checkpoint's
family from its tensor names and shapes) and marks the
model ``ready``, or ``failed`` with the reason and nothing left in the bucket. Its bytes count
towards the owner's storage once their size is known.
"""

from __future__ import annotations

import hashlib
import http.client

from aws_lambda_powertools import Logger

from functions.adapters.storage import choose_part_size
from functions.adapters.url_fetch import FetchRefused, OpenedUrl, open_url, resolve_host
from functions.api.schemas.common import view_of
from functions.api.schemas.models import CreateModelRequest, ModelCreated, ModelView
from functions.domain.background_tasks import BackgroundTask, TaskKind
from functions.domain.catalog import ResourceStatus
from functions.domain.errors import LimitExceeded, NotFound, invalid, invalid_all
from functions.domain.ids import new_id, utc_now
from functions.domain.model_import import SEALED_TOKEN_PARAM, import_filename, source_problems
from functions.domain.records import ModelRecord
from functions.domain.storage_layout import model_object_key
from functions.services.context import ServiceContext
from functions.services.models import check_component_request, fail_waiting_model, verify_model_file

logger = Logger(child=True)
READ_CHUNK_BYTES = 1024 * 1024


def create_import(ctx: ServiceContext, owner: str, request: CreateModelRequest) -> ModelCreated:
    assert request.source_url is not None
    check_component_request(request)
    if request.size_bytes is not None:
        raise invalid("size_bytes", "must not be given with source_url (the server measures the file)")
    problems = source_problems(
        request.source_url,
        request.filename,
        allow_loopback_http=ctx.settings.model_import_allow_loopback_http,
        resolve=resolve_host,
    )
    if problems:
        raise invalid_all(problems, "model")
    model_id, now = new_id(), utc_now()
    filename = import_filename(request.source_url, request.filename)
    record = ModelRecord(
        id=model_id,
        owner=owner,
        name=request.name,
        kind=request.kind,
        fm_type=request.fm_type,
        component=request.component,
        filename=filename,
        size_bytes=0,  # known, and counted towards storage, once fetched
        sha256=request.sha256,
        status=ResourceStatus.PROCESSING,
        s3_key=model_object_key(owner, model_id, filename),
        source_url=request.source_url,
        created_at=now,
        updated_at=now,
    )
    params = {}
    if request.access_token is not None:
        params[SEALED_TOKEN_PARAM] = ctx.token_sealer().seal(
            request.access_token.get_secret_value(), owner=owner, record_id=model_id
        )
    ctx.repository.create(record)
    try:
        ctx.tasks.dispatch(
            BackgroundTask(kind=TaskKind.MODEL_IMPORT, owner=owner, record_id=model_id, params=params)
        )
    except Exception as error:  # nothing will run it: fail the record now rather than leave it waiting
        fail_waiting_model(ctx, record, f"the import could not be started: {error}")
        raise
    logger.info("model import requested", extra={"model_id": model_id, "owner": owner})
    return ModelCreated(model=view_of(record, ModelView))


def run_import_task(ctx: ServiceContext, task: BackgroundTask) -> None:
    """The tasks function's side. Safe to run twice: it only works on a record still processing."""
    try:
        record = ctx.repository.get(ModelRecord, task.record_id, task.owner)
    except NotFound:  # deleted before the task ran
        return
    if record.status is not ResourceStatus.PROCESSING or record.source_url is None:
        return
    try:
        size, digest = fetch_into_bucket(ctx, record, _access_token(ctx, task))
        _, included = verify_model_file(ctx, record, size)
        if record.sha256 and record.sha256 != digest:
            raise ValueError(f"its sha256 is {digest}, not the {record.sha256} given")
        ctx.repository.reserve_storage(record.owner, size, ctx.settings.max_storage_bytes_per_owner)
    except (FetchRefused, ValueError, LimitExceeded, OSError, http.client.HTTPException) as problem:
        if fail_waiting_model(ctx, record, str(problem)) is None:
            ctx.storage.delete(record.s3_key)  # no longer waiting (deleted meanwhile): still leave nothing
        return
    ready = record.model_copy(
        update={
            "status": ResourceStatus.READY,
            "size_bytes": size,
            "sha256": digest,
            "included_components": included,
            "updated_at": utc_now(),
        }
    )
    if not ctx.repository.save(ready, expected_status=ResourceStatus.PROCESSING.value):
        ctx.storage.delete(record.s3_key)  # deleted (or failed as overdue) meanwhile
        ctx.repository.release_storage(record.owner, size)
        return
    logger.info("model imported", extra={"model_id": record.id, "owner": record.owner, "size": size})


def _access_token(ctx: ServiceContext, task: BackgroundTask) -> str | None:
    """The gated import's token, unsealed here only (never logged, never stored)."""
    sealed = task.params.get(SEALED_TOKEN_PARAM)
    if not isinstance(sealed, str):
        return None
    try:
        return ctx.token_sealer().open(sealed, owner=task.owner, record_id=task.record_id)
    except Exception as error:  # a KMS refusal: fail the import with a reason, not the task
        raise FetchRefused(f"the access token could not be unsealed ({type(error).__name__})") from None


def fetch_into_bucket(
    ctx: ServiceContext, record: ModelRecord, access_token: str | None = None
) -> tuple[int, str]:
    """Stream the URL into the model's key; (size, sha256). FetchRefused/ValueError on any problem."""
    assert record.source_url is not None
    limit = ctx.settings.model_import_max_bytes
    opened = open_url(
        record.source_url,
        allow_loopback_http=ctx.settings.model_import_allow_loopback_http,
        bearer_token=access_token,
    )
    try:
        declared = opened.content_length
        if declared is not None and declared > limit:
            raise FetchRefused(f"the file is {declared} bytes, over the import limit of {limit}")
        _check_served_name(opened)
        return _stream_parts(ctx, record.s3_key, opened, choose_part_size(declared or limit), limit)
    finally:
        opened.close()


def _check_served_name(opened: OpenedUrl) -> None:
    """A download API may name the file in Content-Disposition: it must be a .safetensors too."""
    disposition = opened.response.getheader("Content-Disposition") or ""
    if "filename=" in disposition:
        served = disposition.split("filename=", 1)[1].split(";", 1)[0].strip().strip('"')
        if served and not served.lower().endswith(".safetensors"):
            raise FetchRefused(f"the server sends {served!r}, not a .safetensors file")


def _stream_parts(
    ctx: ServiceContext, key: str, opened: OpenedUrl, part_size: int, limit: int
) -> tuple[int, str]:
    upload_id = ctx.storage.start_multipart_upload(key)
    digest, size, buffer = hashlib.sha256(), 0, bytearray()
    parts: list[tuple[int, str]] = []
    try:
        while chunk := opened.response.read(READ_CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise FetchRefused(f"the file is larger than the import limit of {limit} bytes")
            digest.update(chunk)
            buffer += chunk
            if len(buffer) >= part_size:
                parts.append(
                    (len(parts) + 1, ctx.storage.upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
                )
                buffer.clear()
        if opened.content_length is not None and size != opened.content_length:
            raise FetchRefused(f"the transfer ended after {size} of {opened.content_length} bytes")
        if buffer or not parts:
            parts.append(
                (len(parts) + 1, ctx.storage.upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
            )
        ctx.storage.complete_multipart_upload(key, upload_id, parts)
    except BaseException:
        ctx.storage.abort_multipart_upload(key, upload_id)
        raise
    return size, digest.hexdigest()
