"""/trainings: start a job, and the job as a caller sees it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from functions.api.schemas.common import DisplayName, RecordId
from functions.api.schemas.configs import ConfigWarning, config_warnings
from functions.domain.catalog import INSTANCE_TYPES, FmType
from functions.domain.epoch_outputs import MAX_SAMPLE_PROMPTS, SamplePrompt
from functions.domain.families import ComponentRole
from functions.domain.json_types import JsonBool, JsonRequestModel
from functions.domain.kohya_params import ParamValue
from functions.domain.notifications import WEBHOOK_URL_MAX_LENGTH
from functions.domain.planning import TrainingPlan
from functions.domain.records import StatusChange, TrainingOutput, TrainingProgress
from functions.domain.statuses import JobStatus
from functions.domain.training_contract import Engine
from functions.domain.trigger_words import TriggerWord


class CreateTrainingRequest(JsonRequestModel):
    model_config = ConfigDict(extra="forbid")

    fm_type: FmType
    base_model_id: RecordId
    components: dict[ComponentRole, RecordId] = Field(
        default_factory=dict,
        description="FLUX.1 / SD 3.5: the model ids of the component files the family loads besides "
        "base_model_id (ae, clip_l, clip_g, t5xxl; docs/flux-and-sd35.md); none for SD 1.5 / SDXL",
    )
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
    # AWS Batch's schedulingPriority range (botocore batch service-2.json: 0-9999).
    priority: int | None = Field(
        default=None,
        ge=0,
        le=9999,
        description="queued deployments: order among your own queued jobs (higher first; default 0)",
    )
    trigger_word: TriggerWord | None = None


class TrainingSampleView(BaseModel):
    epoch: int
    prompt_index: int
    prompt: str
    download_url: str = Field(description="presigned GET of the PNG")


class TrainingJobView(BaseModel):
    id: str
    name: str
    fm_type: FmType
    base_model_id: str
    components: dict[ComponentRole, str] = Field(default_factory=dict)
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
    # Why a QUEUED job waits, in AWS Batch's words (budget full, capacity, quota); None otherwise.
    queue_reason: str | None = None
    sagemaker_job_name: str
    training_job_name: str | None = Field(
        default=None,
        description="the name SageMaker runs the job under when AWS Batch named it (queued deployments)",
    )
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
    priority: int = 0
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


class TrainingJobList(BaseModel):
    items: list[TrainingJobView]
    next_token: str | None = None
