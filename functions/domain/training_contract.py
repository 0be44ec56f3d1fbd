"""The contract between the control plane and the training container.

The job's specification (``TrainingJobSpec``: family, engine, base model file, the normalised
Kohya config, sample prompts) travels as a JSON file in its own input channel, ``job``
(``/opt/ml/input/data/job/job.json``), written by the Lambda to
``trainings/<owner>/<job>/input/job.json`` just before CreateTrainingJob. Why not hyperparameters:
SageMaker limits each hyperparameter value to 2,500 characters and the map to 100 entries
(botocore's sagemaker service model, shapes ``HyperParameterValue`` and ``HyperParameters``), and
a config with long ``network_args``/``optimizer_args`` lists passes the API's own limits but not
that one; a channel file has no limit but the API's (channels: up to 20 per job,
``InputDataConfig``). The hyperparameters only name the job for people reading the console.
Both sides import this module: the Lambda builds ``TrainingJobSpec`` and the container parses it.
The container reports progress by writing ``ProgressReport`` JSON to
``/opt/ml/checkpoints/progress.json``.

Why the checkpoint folder for progress: SageMaker syncs ``/opt/ml/checkpoints`` to the job's
``CheckpointConfig.S3Uri`` while the job runs, even with network isolation on, so the
container needs no network, no AWS credentials and no extra IAM to publish progress; the API
reads the small object on ``GET /trainings/{id}``. Locally the job runner syncs the same
folder into the emulated S3. CloudWatch metrics were rejected (they are not per-job readable
by the API without extra permissions and lag by minutes); a DynamoDB write from the container
would need table access from inside a user-controlled training process.

The loss curve travels the same way: ``MetricsReport`` JSON in
``/opt/ml/checkpoints/metrics.json`` (and a final copy in ``/opt/ml/model/metrics.json``), at
most ``MAX_METRIC_POINTS`` points however long the job (see ``functions.domain.loss_curve``).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from functions.domain.catalog import FmType
from functions.domain.epoch_outputs import SamplePrompt, epoch_lora_filename, sample_filename
from functions.domain.families import ComponentRole

# SageMaker's channel names and container folders (BYOC convention).
MODEL_CHANNEL = "model"
DATASET_CHANNEL = "dataset"
JOB_CHANNEL = "job"
JOB_SPEC_FILENAME = "job.json"
OPT_ML_DEFAULT = "/opt/ml"
# Written by the container on failure; SageMaker shows it as the job's FailureReason.
FAILURE_FILE = "output/failure"
CHECKPOINTS_FOLDER = "checkpoints"
MODEL_FOLDER = "model"
LORA_FILENAME_SUFFIX = ".safetensors"
# Inside MODEL_FOLDER: intermediate LoRAs and sample images (see functions.domain.epoch_outputs).
EPOCHS_FOLDER = "epochs"
SAMPLES_FOLDER = "samples"


def published_epoch_lora_path(output_name: str, epoch: int) -> str:
    """Where the container publishes an intermediate LoRA, relative to ``/opt/ml/model``."""
    return f"{EPOCHS_FOLDER}/{epoch_lora_filename(output_name, epoch)}"


def published_sample_path(output_name: str, epoch: int, prompt_index: int) -> str:
    """Where the container publishes a sample image, relative to ``/opt/ml/model``."""
    return f"{SAMPLES_FOLDER}/{sample_filename(output_name, epoch, prompt_index)}"


class Engine(StrEnum):
    AUTO = "auto"  # kohya when sd-scripts is installed (the image), else diffusers
    KOHYA = "kohya"
    DIFFUSERS = "diffusers"


class TrainingJobSpec(BaseModel):
    """What the control plane tells the container: ``job.json`` in the ``job`` input channel."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    fm_type: FmType
    engine: Engine = Engine.AUTO
    output_name: str = Field(description="LoRA file stem, e.g. the job name")
    base_model_filename: str = Field(description="file name inside the model channel")
    component_filenames: dict[ComponentRole, str] = Field(
        default_factory=dict,
        description="the family's separate component files (FamilySpec.components): role -> file "
        "name inside the input channel named after the role (/opt/ml/input/data/<role>/<file>)",
    )
    config: dict[str, bool | int | float | str | list[str]] = Field(
        description="validated, normalised Kohya parameters (defaults already merged)"
    )
    sample_prompts: list[SamplePrompt] = Field(
        default_factory=list, description="validated sample prompts, rendered at each saved epoch"
    )
    trigger_word: str | None = Field(
        default=None, description="validated; placed first in every caption at staging (trigger_words)"
    )

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> TrainingJobSpec:
        return cls.model_validate_json(text)

    def sagemaker_hyperparameters(self) -> dict[str, str]:
        """A few short, readable values for the SageMaker console; the container reads job.json."""
        return {"job_id": self.job_id, "fm_type": self.fm_type.value, "engine": self.engine.value}


class TrainingPhase(StrEnum):
    STAGING = "staging"
    CACHING = "caching"
    TRAINING = "training"
    SAVING = "saving"
    CAPTIONING = "captioning"  # a captions job (functions.domain.captioning), step = images done
    DONE = "done"


class ProgressReport(BaseModel):
    """Live progress, written by the container at least every 30 s."""

    model_config = ConfigDict(extra="ignore")

    phase: TrainingPhase
    step: int = 0
    total_steps: int | None = None
    epoch: int = 0
    total_epochs: int | None = None
    loss: float | None = None
    eta_seconds: float | None = None
    engine: Engine | None = None
    updated_at: str = Field(description="ISO-8601 UTC time of this report")


class EpochLora(BaseModel):
    """An intermediate LoRA published at ``published_epoch_lora_path(output_name, epoch)``."""

    epoch: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)


class SampleImage(BaseModel):
    """A PNG published at ``published_sample_path(output_name, epoch, prompt_index)``."""

    epoch: int = Field(ge=1)
    prompt_index: int = Field(ge=0)


class TrainingSummary(BaseModel):
    """``summary.json`` published next to the LoRA in ``/opt/ml/model``.

    File locations are not listed: both sides derive them from ``output_name`` and the epoch (and
    prompt index), so the control plane never follows a path the container wrote.
    """

    model_config = ConfigDict(extra="ignore")

    job_id: str
    engine: Engine
    fm_type: FmType
    lora_filename: str
    lora_sha256: str
    lora_size_bytes: int
    base_model_sha256: str | None = None
    steps: int
    epochs: int
    final_loss: float | None
    duration_seconds: float
    training_seconds: float
    epoch_loras: list[EpochLora] = Field(default_factory=list, description="intermediate epochs, ascending")
    samples: list[SampleImage] = Field(default_factory=list)


# A 10,000-step job still writes (and the API still reads) a curve of at most this many points,
# about 60 bytes each: tens of kilobytes, never megabytes.
MAX_METRIC_POINTS = 500


class MetricPoint(BaseModel):
    """One point of the loss curve.

    ``loss`` is what the engine reports at that step: diffusers' mean loss of the step's
    batches; sd-scripts' ``avr_loss`` (its moving average). ``learning_rate`` is the U-Net's
    learning rate after the step, or None when the engine does not expose it (sd-scripts
    prints no learning rate on its console; it only logs ``lr/unet`` to TensorBoard).
    ``elapsed_seconds`` counts training time since the job's first step, resumes included.
    """

    model_config = ConfigDict(extra="ignore")

    step: int = Field(ge=0)
    epoch: int = Field(default=0, ge=0)
    loss: float | None = None
    learning_rate: float | None = None
    elapsed_seconds: float | None = None


class MetricsReport(BaseModel):
    """``metrics.json``: the loss curve, evenly downsampled to at most ``MAX_METRIC_POINTS``."""

    model_config = ConfigDict(extra="ignore")

    engine: Engine | None = None
    total_steps: int | None = None
    stride: int = Field(default=1, ge=1, description="steps between consecutive kept points")
    points: list[MetricPoint] = Field(default_factory=list)
    updated_at: str = Field(description="ISO-8601 UTC time of this report")
