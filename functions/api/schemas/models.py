"""/models: register (upload or import), complete an upload, read and list."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from functions.api.schemas.common import DisplayName
from functions.domain.catalog import FmType, ModelKind, ResourceStatus
from functions.domain.families import ComponentRole
from functions.domain.json_types import JsonRequestModel
from functions.domain.model_import import ACCESS_TOKEN_CHARACTERS, ACCESS_TOKEN_MAX_LENGTH
from functions.domain.outbound_urls import MAX_URL_LENGTH

# flux1-dev.safetensors is 23.8 GB. S3 takes 10,000 parts of up to 5 GiB each (Amazon S3 User
# Guide, "Amazon S3 multipart upload limits"); choose_part_size keeps every upload within them.
MAX_MODEL_BYTES = 32 * 1024**3


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
                        "access_token": {"type": "null"},
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
    component: ComponentRole | None = Field(
        default=None,
        description="FLUX.1 / SD 3.5: this file is the family's ae, clip_l, clip_g or t5xxl component "
        "rather than its main checkpoint (docs/flux-and-sd35.md); checked against the file's tensors",
    )
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
    # SecretStr: never shown by repr, model_dump or a log line. Sent as a Bearer token to the
    # URL's own host only; sealed with KMS for the fetch and never stored (token_sealer.py).
    access_token: SecretStr | None = Field(
        default=None,
        min_length=1,
        max_length=ACCESS_TOKEN_MAX_LENGTH,
        description="with source_url: the hub's access token for a gated model (e.g. FLUX.1-dev on "
        "Hugging Face); used for this import only, never stored or logged",
    )

    @field_validator("access_token")
    @classmethod
    def _token_fits_a_header(cls, token: SecretStr | None) -> SecretStr | None:
        """It becomes an HTTP header value: printable ASCII without spaces, or it could inject one."""
        if token is not None and not ACCESS_TOKEN_CHARACTERS.fullmatch(token.get_secret_value()):
            raise ValueError("must be printable ASCII without spaces (the token as the hub shows it)")
        return token


class UploadedPart(JsonRequestModel):
    model_config = ConfigDict(extra="forbid")

    part_number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=128)


class CompleteModelRequest(JsonRequestModel):
    model_config = ConfigDict(extra="forbid")

    parts: list[UploadedPart] = Field(min_length=1, max_length=10_000)


class ModelVersionView(BaseModel):
    epoch: int
    is_default: bool = Field(description="the final LoRA; what a download without ?epoch= gets")
    filename: str
    size_bytes: int
    sha256: str | None = None
    download_url: str | None = Field(default=None, description="presigned GET (GET /models/{id} only)")


class ModelView(BaseModel):
    id: str
    name: str
    kind: ModelKind
    fm_type: FmType
    component: ComponentRole | None = None
    included_components: list[ComponentRole] = Field(
        default_factory=list, description="SD 3.5: the text encoders the checkpoint carries itself"
    )
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


class ModelList(BaseModel):
    items: list[ModelView]
    next_token: str | None = None
