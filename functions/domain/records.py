"""Stored records, as pydantic v2 models: what the repository writes and reads.

Records carry internal fields (owner, S3 keys, upload ids); what callers send and see (requests,
``*View`` models, the error body) is the API's, in ``functions.api.schemas``, so internals never
leak. The parts a record holds (``TrainingOutput``, ``StatusChange``, ...) are stored as they are
shown, so the views reuse them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from functions.domain.captioning import CaptioningPlan, CaptioningSummary, CaptionMode, TaggerSettings
from functions.domain.catalog import FmType, ModelKind, ResourceStatus
from functions.domain.dataset_preparation import CropMode
from functions.domain.dataset_rules import DatasetManifest
from functions.domain.epoch_outputs import SamplePrompt, VersionInfo
from functions.domain.families import ComponentRole
from functions.domain.kohya_params import ParamValue
from functions.domain.planning import TrainingPlan
from functions.domain.statuses import JobStatus
from functions.domain.training_contract import Engine

# ---------------------------------------------------------------- models


class ModelVersion(VersionInfo):
    """One stored file of a trained LoRA: an intermediate epoch or the final (default) one."""

    filename: str
    size_bytes: int
    sha256: str | None = None
    s3_key: str


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
    # FLUX.1 / SD 3.5: a component file (FamilySpec.components) rather than the main checkpoint,
    # and the text encoders an SD 3.5 checkpoint carries itself (read from its header).
    component: ComponentRole | None = None
    included_components: list[ComponentRole] = Field(default_factory=list)
    created_at: str
    updated_at: str


# ---------------------------------------------------------------- datasets


class CropParameters(BaseModel):
    """How a dataset was (or is being) cropped from another one."""

    source_dataset_id: str
    width: int
    height: int
    mode: CropMode
    upscale: bool


class CaptionsJob(BaseModel):
    """The captions job that makes a dataset from another one (POST /datasets/{id}/captions).

    Kept on the new dataset's record, not in a record of its own: the job exists only to fill
    that dataset, so one conditional write moves both, and GET /datasets/{id} shows the job.
    """

    source_dataset_id: str
    sagemaker_job_name: str
    # The name SageMaker runs the job under when AWS Batch named it (queued deployments: see
    # TrainingJobRecord.training_job_name); its output is under that name.
    training_job_name: str | None = None
    mode: CaptionMode
    trigger_word: str | None = None
    use_tagger: bool
    use_captioner: bool
    tagger: TaggerSettings | None = Field(None, description="the WD14 settings, when the tagger is used")
    max_caption_tokens: int
    plan: CaptioningPlan
    state: str = Field("Starting", description="SageMaker's status of the job, as last reported")
    progress: TrainingProgress | None = Field(None, description="live: images done of total")
    summary: CaptioningSummary | None = Field(
        None, description="what the job did (cache hits, model runs, failures), once it completed"
    )


class DatasetRecord(BaseModel):
    id: str
    owner: str
    name: str
    status: ResourceStatus
    file_count: int
    total_bytes: int
    manifest: DatasetManifest | None = None
    crop: CropParameters | None = None
    captions: CaptionsJob | None = None
    failure_reason: str | None = None
    file_errors: list[str] = Field(default_factory=list)
    created_at: str
    updated_at: str
    source_url: str | None = None
    source_repeats: int | None = None
    source_concept: str | None = None


# ---------------------------------------------------------------- trainings


class TrainingProgress(BaseModel):
    phase: str | None = None
    step: int = 0
    total_steps: int | None = None
    epoch: int = 0
    total_epochs: int | None = None
    loss: float | None = None
    eta_seconds: float | None = None
    updated_at: str | None = None


CaptionsJob.model_rebuild()
DatasetRecord.model_rebuild()


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
    components: dict[ComponentRole, str] = Field(default_factory=dict)  # role -> model id
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
    # The name SageMaker runs the job under when it is not ``sagemaker_job_name``: AWS Batch names
    # the training jobs it creates itself (functions.domain.batch_queue.JOB_NAME_TAG). Set once
    # Batch reports the job's TrainingJobArn; None on a direct launch and while the job is queued.
    training_job_name: str | None = None
    progress: TrainingProgress | None = None
    output: TrainingOutput | None = None
    history: list[StatusChange] = Field(default_factory=list)
    sample_prompts: list[SamplePrompt] = Field(default_factory=list)
    created_at: str
    updated_at: str
    webhook_url: str | None = None
    priority: int = 0  # schedulingPriority within the owner's share (queued deployments)
    trigger_word: str | None = None

    @property
    def sagemaker_name(self) -> str:
        """The name SageMaker knows the training job by: its log streams and its output prefix
        (``S3OutputPath/<name>/output/model/``) carry it. The files in that prefix are still named
        after ``sagemaker_job_name`` (the container's ``output_name``)."""
        return self.training_job_name or self.sagemaker_job_name
