"""Records (what is stored) and API shapes (what callers send and see), as pydantic v2 models.

Stored records carry internal fields (owner, S3 keys, upload ids); ``*View`` models are what the
API returns, so internals never leak. Request models forbid unknown fields and bound every size,
and their numbers and booleans are strict: JSON ``"12"`` or ``true`` is not a size, ``"yes"`` is not
a boolean (the schema says integer/boolean, so a coerced value would be a guess).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, model_validator

from functions.domain.catalog import INSTANCE_TYPES, FmType, ModelKind, ResourceStatus
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
from functions.domain.epoch_outputs import MAX_SAMPLE_PROMPTS, SamplePrompt, VersionInfo
from functions.domain.json_types import JsonBool, JsonRequestModel
from functions.domain.kohya_params import ParamValue, engine_warnings
from functions.domain.notifications import WEBHOOK_URL_MAX_LENGTH
from functions.domain.outbound_urls import MAX_URL_LENGTH
from functions.domain.planning import TrainingPlan
from functions.domain.statuses import JobStatus
from functions.domain.training_contract import Engine
from functions.domain.trigger_words import TriggerWord

MAX_MODEL_BYTES = 20 * 1024**3
# What dataset_rules accepts as a path, as a schema pattern (ASCII names; the service also takes
# other Unicode letters): <repeats 1-10000>_<concept>/<file>.<image or txt extension>.
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_ .,()+-]*"
_IMAGE_SUFFIX = r"\.(?:[pP][nN][gG]|[jJ][pP][eE]?[gG]|[wW][eE][bB][pP]|[bB][mM][pP])"
_FOLDER = rf"(?:[1-9][0-9]{{0,3}}|10000)_{_NAME}/{_NAME}"
DATASET_PATH_PATTERN = rf"^{_FOLDER}(?:{_IMAGE_SUFFIX}|\.[tT][xX][tT])$"
IMAGE_PATH_PATTERN = rf"^{_FOLDER}{_IMAGE_SUFFIX}$"
MAX_NAME_LENGTH = 128


def _clean_name(value: str) -> str:
    """Display names: NFC, no control/format characters (bidi overrides, zero-width), not blank."""
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        raise ValueError("must not be blank")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in value):
        raise ValueError("must not contain control, invisible or unassigned characters")
    return value


DisplayName = Annotated[
    str,
    # The pattern says "not blank"; the characters refused (Unicode categories C*) are in its
    # description: JSON Schema's portable regex dialect has no \p{...} classes.
    Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=r"\S",
        description="a display name: not blank; no control, format (invisible), private-use, surrogate "
        "or unassigned characters (Unicode categories Cc, Cf, Cs, Co, Cn)",
    ),
    AfterValidator(_clean_name),
]
RecordId = Annotated[str, Field(pattern=r"^[0-9a-z]{26}$", description="a record id")]


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorInfo(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. INVALID_INPUT, NOT_FOUND")
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """The one error shape of every non-2xx response."""

    error: ErrorInfo


# ---------------------------------------------------------------- models


class CreateModelRequest(JsonRequestModel):
    # Either an upload (filename and size_bytes) or an import (source_url), as the schema says.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["filename", "size_bytes"],
                    "properties": {
                        "filename": {"type": "string"},
                        "size_bytes": {"type": "integer"},
                        "source_url": {"type": "null"},
                    },
                },
                {
                    "required": ["source_url"],
                    "properties": {"source_url": {"type": "string"}, "size_bytes": {"type": "null"}},
                },
            ]
        },
    )

    name: DisplayName
    kind: ModelKind = ModelKind.CHECKPOINT
    fm_type: FmType
    filename: str | None = Field(
        default=None,
        min_length=13,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*\.safetensors$",
        description="the file's name; only .safetensors is accepted (pickled .ckpt files can run code). "
        "Required for an upload; for an import, defaults to the URL's file name",
    )
    size_bytes: int | None = Field(
        default=None, ge=1, le=MAX_MODEL_BYTES, description="the file's size; required for an upload"
    )
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    source_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="import from this https URL instead of uploading (docs/model-imports.md); "
        "the model is processing until the server has fetched and checked it",
    )


class UploadedPart(JsonRequestModel):
    model_config = ConfigDict(extra="forbid")

    part_number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=128)


class CompleteModelRequest(JsonRequestModel):
    model_config = ConfigDict(extra="forbid")

    parts: list[UploadedPart] = Field(min_length=1, max_length=10_000)


class ModelVersion(VersionInfo):
    """One stored file of a trained LoRA: an intermediate epoch or the final (default) one."""

    filename: str
    size_bytes: int
    sha256: str | None = None
    s3_key: str


class ModelVersionView(BaseModel):
    epoch: int
    is_default: bool = Field(description="the final LoRA; what a download without ?epoch= gets")
    filename: str
    size_bytes: int
    sha256: str | None = None
    download_url: str | None = Field(default=None, description="presigned GET (GET /models/{id} only)")


class ModelRecord(BaseModel):
    id: str
    owner: str
    name: str
    kind: ModelKind
    fm_type: FmType
    filename: str
    size_bytes: int
    sha256: str | None = None
    status: ResourceStatus
    s3_key: str
    upload_id: str | None = None
    source_job_id: str | None = None
    versions: list[ModelVersion] = Field(default_factory=list)
    source_url: str | None = None
    failure_reason: str | None = None
    created_at: str
    updated_at: str


class ModelView(BaseModel):
    id: str
    name: str
    kind: ModelKind
    fm_type: FmType
    filename: str
    size_bytes: int
    sha256: str | None = None
    status: ResourceStatus
    source_job_id: str | None = Field(default=None, description="the training job that produced this LoRA")
    source_url: str | None = Field(default=None, description="where an imported model was fetched from")
    failure_reason: str | None = Field(default=None, description="why an import failed (status failed)")
    created_at: str
    updated_at: str
    download_url: str | None = Field(default=None, description="presigned GET, once ready (GET /models/{id})")
    versions: list[ModelVersionView] = Field(
        default_factory=list, description="a trained LoRA's saved epochs (save_every_n_epochs), ascending"
    )


class PresignedPart(BaseModel):
    part_number: int
    url: str


class MultipartUpload(BaseModel):
    upload_id: str
    part_size: int = Field(description="bytes per part; the last part holds the rest")
    expires_in_seconds: int
    parts: list[PresignedPart]


class ModelCreated(BaseModel):
    model: ModelView
    upload: MultipartUpload | None = Field(
        default=None, description="where to PUT the parts (absent for an import from source_url)"
    )


# ---------------------------------------------------------------- datasets


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


class CropParameters(BaseModel):
    """How a dataset was (or is being) cropped from another one."""

    source_dataset_id: str
    width: int
    height: int
    mode: CropMode
    upscale: bool


class DatasetRecord(BaseModel):
    id: str
    owner: str
    name: str
    status: ResourceStatus
    file_count: int
    total_bytes: int
    manifest: DatasetManifest | None = None
    crop: CropParameters | None = None
    failure_reason: str | None = None
    file_errors: list[str] = Field(default_factory=list)
    created_at: str
    updated_at: str
    source_url: str | None = None
    source_repeats: int | None = None
    source_concept: str | None = None


class DatasetView(BaseModel):
    id: str
    name: str
    status: ResourceStatus
    file_count: int
    total_bytes: int
    manifest: DatasetManifest | None = None
    crop: CropParameters | None = Field(None, description="set on a dataset made by POST /datasets/{id}/crop")
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
        None, description="family whose native resolution to use when no width is given (sd15 512, sdxl 1024)"
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


# ---------------------------------------------------------------- configs


class ParameterInfo(BaseModel):
    name: str
    type: str
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: list[str] = Field(default_factory=list)
    default: ParamValue | None = None


class ConfigDefaults(BaseModel):
    fm_type: FmType
    defaults: dict[str, ParamValue]
    parameters: list[ParameterInfo]
    reserved: dict[str, str] = Field(description="keys the service sets, with the reason")


class ValidateConfigRequest(JsonRequestModel):
    model_config = ConfigDict(extra="forbid")

    fm_type: FmType
    config: dict[str, Any] = Field(default_factory=dict)
    dataset_id: RecordId | None = Field(default=None, description="with instance_type: also plan the job")
    instance_type: str | None = Field(
        default=None,
        max_length=64,
        json_schema_extra={"enum": list[JsonValue]([*sorted(INSTANCE_TYPES), None])},
    )


class ValidatedConfig(BaseModel):
    fm_type: FmType
    config: dict[str, ParamValue] = Field(description="normalised parameters, defaults merged")


# ---------------------------------------------------------------- trainings


class CreateTrainingRequest(JsonRequestModel):
    model_config = ConfigDict(extra="forbid")

    fm_type: FmType
    base_model_id: RecordId
    dataset_id: RecordId
    instance_type: str = Field(
        max_length=64,
        description="one of the deployment's allowed instance types",
        json_schema_extra={"enum": list[JsonValue](sorted(INSTANCE_TYPES))},
    )
    config: dict[str, Any] = Field(default_factory=dict, description="Kohya train_network parameters")
    name: DisplayName | None = None
    use_spot: JsonBool | None = Field(default=None, description="managed spot; default set by the deployment")
    max_runtime_seconds: int | None = Field(default=None, ge=600, le=28 * 24 * 3600)
    sample_prompts: list[SamplePrompt] = Field(
        default_factory=list,
        max_length=MAX_SAMPLE_PROMPTS,
        description="prompts rendered as sample images at each saved epoch and at the end",
    )
    webhook_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=WEBHOOK_URL_MAX_LENGTH,
        description="https URL that receives a signed POST when the job ends (docs/notifications.md)",
    )
    trigger_word: TriggerWord | None = None


class TrainingProgress(BaseModel):
    phase: str | None = None
    step: int = 0
    total_steps: int | None = None
    epoch: int = 0
    total_epochs: int | None = None
    loss: float | None = None
    eta_seconds: float | None = None
    updated_at: str | None = None


class RejectedEpoch(BaseModel):
    epoch: int
    reason: str


class SampleRef(BaseModel):
    epoch: int
    prompt_index: int


class TrainingOutput(BaseModel):
    lora_model_id: str
    lora_size_bytes: int
    lora_sha256: str | None = None
    steps: int | None = None
    final_loss: float | None = None
    training_seconds: float | None = None
    epochs: list[int] = Field(default_factory=list, description="epochs kept as versions of the LoRA model")
    rejected_epochs: list[RejectedEpoch] = Field(
        default_factory=list, description="intermediate LoRAs that failed verification and were not kept"
    )
    samples: list[SampleRef] = Field(default_factory=list, description="verified sample images")


class TrainingSampleView(BaseModel):
    epoch: int
    prompt_index: int
    prompt: str
    download_url: str = Field(description="presigned GET of the PNG")


class StatusChange(BaseModel):
    status: JobStatus
    at: str
    cause: str


class TrainingJobRecord(BaseModel):
    id: str
    owner: str
    name: str
    fm_type: FmType
    base_model_id: str
    dataset_id: str
    instance_type: str
    use_spot: bool
    max_runtime_seconds: int
    engine: Engine
    config: dict[str, ParamValue]
    plan: TrainingPlan
    status: JobStatus
    secondary_status: str | None = None
    failure_reason: str | None = None
    sagemaker_job_name: str
    progress: TrainingProgress | None = None
    output: TrainingOutput | None = None
    history: list[StatusChange] = Field(default_factory=list)
    sample_prompts: list[SamplePrompt] = Field(default_factory=list)
    created_at: str
    updated_at: str
    webhook_url: str | None = None
    trigger_word: str | None = None


class ConfigWarning(BaseModel):
    """A valid parameter that will not take effect (e.g. one the diffusers engine ignores)."""

    field: str
    warning: str


def config_warnings(config: dict[str, ParamValue], engine: str) -> list[ConfigWarning]:
    return [ConfigWarning(field=w.field, warning=w.warning) for w in engine_warnings(config, engine)]


class TrainingJobView(BaseModel):
    id: str
    name: str
    fm_type: FmType
    base_model_id: str
    dataset_id: str
    instance_type: str
    use_spot: bool
    max_runtime_seconds: int
    engine: Engine
    config: dict[str, ParamValue]
    plan: TrainingPlan
    status: JobStatus
    secondary_status: str | None = None
    failure_reason: str | None = None
    sagemaker_job_name: str
    progress: TrainingProgress | None = None
    output: TrainingOutput | None = None
    history: list[StatusChange] = Field(default_factory=list)
    sample_prompts: list[SamplePrompt] = Field(default_factory=list)
    samples: list[TrainingSampleView] = Field(
        default_factory=list, description="sample images by epoch and prompt (GET /trainings/{id} only)"
    )
    created_at: str
    updated_at: str
    webhook_url: str | None = None
    trigger_word: str | None = Field(
        default=None, description="placed first in every caption; the LoRA's modelspec.trigger_phrase"
    )
    warnings: list[ConfigWarning] = Field(
        default_factory=list,
        description="parameters the job's engine ignores (derived from config and engine)",
    )

    @model_validator(mode="after")
    def _derive_warnings(self) -> TrainingJobView:
        """Derived, never stored: a view always says what its own engine ignores."""
        self.warnings = config_warnings(self.config, self.engine.value)
        return self


class ConfigValidation(BaseModel):
    fm_type: FmType
    config: dict[str, ParamValue]
    plan: TrainingPlan | None = Field(default=None, description="with dataset_id and instance_type")
    warnings: list[ConfigWarning] = Field(
        default_factory=list, description="valid parameters the deployment's training engine ignores"
    )


# ---------------------------------------------------------------- lists


class ModelList(BaseModel):
    items: list[ModelView]
    next_token: str | None = None


class DatasetList(BaseModel):
    items: list[DatasetView]
    next_token: str | None = None


class TrainingJobList(BaseModel):
    items: list[TrainingJobView]
    next_token: str | None = None


def view_of(record: BaseModel, view: type[BaseModel], **extra: Any) -> Any:
    """Project a stored record onto its API view (drops internal fields)."""
    data = record.model_dump(mode="json")
    data.update(extra)
    return view.model_validate({k: v for k, v in data.items() if k in view.model_fields})


# ---------------------------------------------------------------- logs and metrics


class TrainingLogLine(BaseModel):
    timestamp: str = Field(description="ISO-8601 UTC time CloudWatch Logs recorded the line")
    message: str


class TrainingLogPage(BaseModel):
    job_id: str
    lines: list[TrainingLogLine] = Field(description="oldest first")
    next_token: str = Field(
        description="newer lines; always given, so a follower polls it until the job ends and a page is empty"
    )
    previous_token: str | None = Field(default=None, description="older lines; null at the start of the log")


class TrainingMetricPoint(BaseModel):
    step: int
    epoch: int
    loss: float | None = None
    learning_rate: float | None = Field(default=None, description="null when the engine does not report it")
    elapsed_seconds: float | None = None


class TrainingMetrics(BaseModel):
    job_id: str
    engine: Engine | None = None
    total_steps: int | None = None
    stride: int = Field(description="steps between consecutive points (long jobs are evenly downsampled)")
    points: list[TrainingMetricPoint] = Field(description="by step; empty until the first step is recorded")
    updated_at: str | None = None
