"""/datasets: declare and upload Kohya-layout datasets, verify them, list, read, delete."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from functions.api.errors import error_responses
from functions.api.routes.common import accepted, created, ctx, no_content, owner_of, success
from functions.api.schemas.captions import CaptionDatasetRequest
from functions.api.schemas.datasets import (
    CreateDatasetRequest,
    CropDatasetRequest,
    DatasetCreated,
    DatasetList,
    DatasetUploads,
    DatasetUploadsRequest,
    DatasetView,
)
from functions.domain.catalog import ResourceStatus
from functions.domain.dataset_files import DEFAULT_FILES_PAGE, MAX_FILES_PAGE, DatasetFilePage
from functions.domain.page_tokens import PAGE_TOKEN_PATTERN
from functions.services import dataset_captions, dataset_crop, dataset_files, dataset_import, datasets

router = Router()
DatasetId = Annotated[str, Path(pattern=r"^[0-9a-z]{26}$", description="dataset id")]


@router.post(
    "/datasets",
    summary="Declare a dataset's files and get one presigned PUT per file, or import a zip from source_url",
    responses=success(201, DatasetCreated, "Declared; PUT each file, then complete")
    | success(202, DatasetCreated, "Zip import accepted: the dataset is processing; poll GET /datasets/{id}")
    | error_responses(400, 401, 413, 415, 429),
    tags=["datasets"],
)
def create_dataset(request: CreateDatasetRequest) -> Response[Any]:
    if request.source_url is not None:
        return accepted(dataset_import.create_import(ctx(), owner_of(router), request))
    return created(datasets.create_dataset(ctx(), owner_of(router), request))


@router.post(
    "/datasets/<dataset_id>/uploads",
    summary="Presigned PUTs for more declared files (beyond the first batch, or to replace expired URLs)",
    responses=success(200, DatasetUploads, "One presigned PUT per path, in the order asked")
    | error_responses(400, 401, 404, 409, 413, 415),
    tags=["datasets"],
)
def issue_dataset_uploads(dataset_id: DatasetId, request: DatasetUploadsRequest) -> DatasetUploads:
    return datasets.issue_uploads(ctx(), owner_of(router), dataset_id, request)


@router.post(
    "/datasets/<dataset_id>/complete",
    summary="Check every file arrived and build the manifest (ready, or invalid with every problem)",
    responses=success(200, DatasetView, "The dataset with its manifest")
    | error_responses(400, 401, 404, 409),
    tags=["datasets"],
)
def complete_dataset(dataset_id: DatasetId) -> DatasetView:
    return datasets.complete_dataset(ctx(), owner_of(router), dataset_id)


@router.post(
    "/datasets/<dataset_id>/crop",
    summary="Make a new dataset with every image cropped and resized (runs in the background)",
    responses=success(202, DatasetView, "The new dataset, processing; poll GET /datasets/{id}")
    | error_responses(400, 401, 404, 409, 413, 415, 429),
    tags=["datasets"],
)
def crop_dataset(dataset_id: DatasetId, request: CropDatasetRequest) -> Response[Any]:
    return accepted(dataset_crop.request_crop(ctx(), owner_of(router), dataset_id, request))


@router.post(
    "/datasets/<dataset_id>/captions",
    summary="Make a new dataset with every image captioned (WD14 tags and/or a BLIP sentence) by a small "
    "SageMaker job; the source dataset never changes",
    responses=success(
        202, DatasetView, "The new dataset, processing, with its job's plan; poll GET /datasets/{id}"
    )
    | error_responses(400, 401, 404, 409, 413, 415, 429),
    tags=["datasets"],
)
def caption_dataset(dataset_id: DatasetId, request: CaptionDatasetRequest) -> Response[Any]:
    return accepted(dataset_captions.request_captions(ctx(), owner_of(router), dataset_id, request))


@router.get(
    "/datasets",
    summary="List your datasets, newest first",
    responses=success(200, DatasetList, "One page") | error_responses(400, 401),
    tags=["datasets"],
)
def list_datasets(
    status: Annotated[ResourceStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    next_token: Annotated[str | None, Query(max_length=2048, pattern=PAGE_TOKEN_PATTERN)] = None,
) -> DatasetList:
    return datasets.list_datasets(
        ctx(), owner_of(router), status=status.value if status else None, limit=limit, next_token=next_token
    )


@router.get(
    "/datasets/<dataset_id>",
    summary="Read a dataset and its manifest",
    responses=success(200, DatasetView, "The dataset") | error_responses(400, 401, 404),
    tags=["datasets"],
)
def get_dataset(dataset_id: DatasetId) -> DatasetView:
    return datasets.get_dataset(ctx(), owner_of(router), dataset_id)


@router.get(
    "/datasets/<dataset_id>/files",
    summary="Page a ready dataset's images with their captions and preview links (caption review)",
    responses=success(200, DatasetFilePage, "One page of images, in path order")
    | error_responses(400, 401, 404, 409),
    tags=["datasets"],
)
def list_dataset_files(
    dataset_id: DatasetId,
    with_captions: Annotated[bool, Query(description="include each image's caption text")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_FILES_PAGE)] = DEFAULT_FILES_PAGE,
    next_token: Annotated[str | None, Query(max_length=2048, pattern=PAGE_TOKEN_PATTERN)] = None,
) -> DatasetFilePage:
    return dataset_files.list_dataset_files(
        ctx(), owner_of(router), dataset_id, with_captions=with_captions, limit=limit, next_token=next_token
    )


@router.delete(
    "/datasets/<dataset_id>",
    summary="Delete a dataset and its files (refused while an active job uses it)",
    responses={204: {"description": "Deleted"}} | error_responses(400, 401, 404, 409),
    tags=["datasets"],
)
def delete_dataset(dataset_id: DatasetId) -> Response[Any]:
    datasets.delete_dataset(ctx(), owner_of(router), dataset_id)
    return no_content()
