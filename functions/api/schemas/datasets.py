"""/datasets: declare the files, upload them, complete, crop, read and list."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from functions.api.schemas.common import DisplayName
from functions.domain.catalog import FmType, ResourceStatus
from functions.domain.dataset_preparation import MAX_SIDE, MIN_SIDE, SIDE_MULTIPLE, CropMode
from functions.domain.dataset_rules import (
    MAX_CAPTION_BYTES,
    MAX_FILES,
    MAX_IMAGE_BYTES,
    MAX_PATH_LENGTH,
    MAX_REPEATS,
    UPLOAD_URLS_PER_RESPONSE,
    DatasetManifest,
)
from functions.domain.families import FAMILIES
from functions.domain.json_types import JsonBool, JsonRequestModel
from functions.domain.outbound_urls import MAX_URL_LENGTH
from functions.domain.records import CaptionsJob, CropParameters

# What dataset_rules accepts as a path, as a schema pattern (ASCII names; the service also takes
# other Unicode letters): <repeats 1-10000>_<concept>/<file>.<image or txt extension>.
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_ .,()+-]*"
_IMAGE_SUFFIX = r"\.(?:[pP][nN][gG]|[jJ][pP][eE]?[gG]|[wW][eE][bB][pP]|[bB][mM][pP])"
_FOLDER = rf"(?:[1-9][0-9]{{0,3}}|10000)_{_NAME}/{_NAME}"
DATASET_PATH_PATTERN = rf"^{_FOLDER}(?:{_IMAGE_SUFFIX}|\.[tT][xX][tT])$"
IMAGE_PATH_PATTERN = rf"^{_FOLDER}{_IMAGE_SUFFIX}$"


class DeclaredFileIn(JsonRequestModel):
    # A caption's size limit is smaller than an image's (dataset_rules._size_problem).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"path": {"pattern": r"\.[tT][xX][tT]$"}}},
            "then": {"properties": {"size_bytes": {"maximum": MAX_CAPTION_BYTES}}},
        },
    )

    path: str = Field(
        min_length=1,
        pattern=DATASET_PATH_PATTERN,
        max_length=MAX_PATH_LENGTH,
        description="<repeats>_<concept>/<file>, e.g. 10_mycat/photo1.png",
    )
    size_bytes: int = Field(ge=1, le=MAX_IMAGE_BYTES)


class CreateDatasetRequest(JsonRequestModel):
    # Either declared files to upload, or a zip to import (source_url), as the schema says.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["files"],
                    "properties": {
                        "files": {"type": "array"},
                        "source_url": {"type": "null"},
                        "repeats": {"type": "null"},
                        "concept": {"type": "null"},
                    },
                },
                {
                    "required": ["source_url"],
                    "properties": {"source_url": {"type": "string"}, "files": {"type": "null"}},
                },
            ]
        },
    )

    name: DisplayName
    files: list[DeclaredFileIn] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_FILES,
        json_schema_extra={"contains": {"properties": {"path": {"pattern": IMAGE_PATH_PATTERN}}}},
        description="the files to upload (one presigned PUT each); required unless source_url is given",
    )
    source_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="import a .zip from this https URL instead (same URL rules and limits as model "
        "imports); the dataset is processing until the server has fetched, unpacked and checked it",
    )
    repeats: int | None = Field(
        default=None,
        ge=1,
        le=MAX_REPEATS,
        description="for a zip whose images are not in <repeats>_<concept>/ folders: the repeats",
    )
    concept: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 .,()+_-]*$",
        description="with repeats: the concept's folder name (default 'concept')",
    )


class PresignedFileUpload(BaseModel):
    path: str
    url: str
    headers: dict[str, str] = Field(default_factory=dict, description="headers the PUT must send")


class DatasetView(BaseModel):
    id: str
    name: str
    status: ResourceStatus
    file_count: int
    total_bytes: int
    manifest: DatasetManifest | None = None
    crop: CropParameters | None = Field(None, description="set on a dataset made by POST /datasets/{id}/crop")
    captions: CaptionsJob | None = Field(
        None, description="set on a dataset made by POST /datasets/{id}/captions: its job, progress, summary"
    )
    failure_reason: str | None = Field(None, description="why its background task failed (status failed)")
    file_errors: list[str] = Field(
        default_factory=list, description="files a crop could not process (left out, with the reason)"
    )
    created_at: str
    updated_at: str
    source_url: str | None = Field(None, description="the zip an imported dataset was fetched from")


class CropDatasetRequest(JsonRequestModel):
    """``POST /datasets/{id}/crop``: a new dataset with every image cropped and resized."""

    # A width, or a family whose native side is used (crop_spec).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["width"], "properties": {"width": {"type": "integer"}}},
                {"required": ["fm_type"], "properties": {"fm_type": {"type": "string"}}},
            ]
        },
    )

    name: DisplayName
    width: int | None = Field(
        None,
        ge=MIN_SIDE,
        le=MAX_SIDE,
        multiple_of=SIDE_MULTIPLE,
        description="target width in pixels (default: the family's native side)",
    )
    height: int | None = Field(
        None,
        ge=MIN_SIDE,
        le=MAX_SIDE,
        multiple_of=SIDE_MULTIPLE,
        description="target height in pixels (default: the width)",
    )
    fm_type: FmType | None = Field(
        None,
        description="family whose native resolution to use when no width is given ("
        + ", ".join(f"{spec.fm_type.value} {spec.native_side}" for spec in FAMILIES.values())
        + ")",
    )
    mode: CropMode = Field(CropMode.CENTER, description="center, or smart: the window with the most detail")
    upscale: JsonBool = Field(
        False, description="enlarge images smaller than the target (default: only crop)"
    )


class DatasetCreated(BaseModel):
    dataset: DatasetView
    expires_in_seconds: int
    uploads: list[PresignedFileUpload] = Field(
        default_factory=list,
        description=f"presigned PUTs of the first {UPLOAD_URLS_PER_RESPONSE} declared files, in order "
        "(empty for an import from source_url)",
    )
    uploads_remaining: int = Field(
        0, description="declared files without a URL here: ask POST /datasets/{id}/uploads for them"
    )


class DatasetUploadsRequest(JsonRequestModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(
        min_length=1,
        max_length=UPLOAD_URLS_PER_RESPONSE,
        description="declared paths to (re)issue presigned PUTs for (e.g. the rest, or expired ones)",
    )


class DatasetUploads(BaseModel):
    expires_in_seconds: int
    uploads: list[PresignedFileUpload]


class DatasetList(BaseModel):
    items: list[DatasetView]
    next_token: str | None = None
