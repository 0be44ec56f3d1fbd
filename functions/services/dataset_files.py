"""Caption review: page through a ready dataset's images with their captions and previews.

Reads the validated ``files/`` prefix (what a training job gets), so what a user reviews is what
trains. Pages are in path order and the token (signed, bound to the caller and dataset) carries the
last path shown; captions of a page are read in parallel, since S3 answers each GET in tens of ms.
"""

from __future__ import annotations

import bisect
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath

from functions.domain.catalog import ResourceStatus
from functions.domain.dataset_files import DatasetFilePage, DatasetFileView
from functions.domain.dataset_rules import CAPTION_EXTENSION, IMAGE_EXTENSIONS
from functions.domain.errors import Conflict
from functions.domain.page_tokens import decode_token, encode_token
from functions.domain.records import DatasetRecord
from functions.domain.storage_layout import THUMBNAIL_SUFFIX, dataset_prefix, dataset_thumbnail_prefix
from functions.services.context import ServiceContext

CAPTION_READ_CONCURRENCY = 16


def _caption_path(image_path: str) -> str:
    return str(PurePosixPath(image_path).with_suffix(CAPTION_EXTENSION))


def list_dataset_files(
    ctx: ServiceContext,
    owner: str,
    dataset_id: str,
    *,
    with_captions: bool,
    limit: int,
    next_token: str | None,
) -> DatasetFilePage:
    record = ctx.repository.get(DatasetRecord, dataset_id, owner)
    if record.status is not ResourceStatus.READY:
        raise Conflict(f"dataset {dataset_id} is {record.status.value}; its files are listed once ready")
    query = f"files:{dataset_id}"
    after = str(decode_token(ctx.page_secret, owner, query, next_token)["path"]) if next_token else None
    objects = ctx.storage.list_objects(dataset_prefix(owner, dataset_id))
    images = sorted(p for p in objects if PurePosixPath(p).suffix.lower() in IMAGE_EXTENSIONS)
    start = bisect.bisect_right(images, after) if after is not None else 0
    page = images[start : start + limit]
    previews = ctx.storage.list_objects(dataset_thumbnail_prefix(owner, dataset_id)) if page else {}

    def caption_of(path: str) -> str | None:
        info = objects.get(_caption_path(path))
        data = ctx.storage.read_bytes(info.key) if with_captions and info is not None else None
        return data.decode("utf-8", errors="replace").strip() if data is not None else None

    with ThreadPoolExecutor(CAPTION_READ_CONCURRENCY) as pool:
        captions = list(pool.map(caption_of, page))
    items = []
    for path, caption in zip(page, captions, strict=True):
        preview = previews.get(path + THUMBNAIL_SUFFIX)
        name = PurePosixPath(path).name
        thumbnail = ctx.storage.presign_get(preview.key, name + THUMBNAIL_SUFFIX) if preview else None
        items.append(
            DatasetFileView(
                path=path,
                size_bytes=objects[path].size_bytes,
                has_caption=_caption_path(path) in objects,
                caption=caption,
                thumbnail_url=thumbnail,
                download_url=ctx.storage.presign_get(objects[path].key, name),
            )
        )
    more = start + limit < len(images)
    token = encode_token(ctx.page_secret, owner, query, {"path": page[-1]}) if more and page else None
    return DatasetFilePage(dataset_id=dataset_id, items=items, next_token=token)
