"""What a SageMaker training job is launched with, in domain values (no request dict).

The service layer decides every value (names, channels, limits, network); the launcher adapter
alone knows how CreateTrainingJob spells them (see functions.adapters.training_launcher).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Room for the base model, the dataset and the checkpoints (the largest SDXL checkpoint is ~7 GB).
TRAINING_VOLUME_GB = 100


@dataclass(frozen=True)
class InputChannel:
    """One S3 prefix SageMaker copies into /opt/ml/input/data/<name> before the job starts."""

    name: str
    s3_uri: str


@dataclass(frozen=True)
class LaunchSpec:
    """Everything one training job runs with; ``max_wait_seconds`` is set only for spot jobs."""

    job_name: str
    image_uri: str
    role_arn: str
    hyperparameters: dict[str, str]
    channels: tuple[InputChannel, ...]
    output_uri: str
    checkpoint_uri: str
    instance_type: str
    max_runtime_seconds: int
    use_spot: bool
    network_isolation: bool
    tags: dict[str, str]
    max_wait_seconds: int | None = None
    volume_size_gb: int = TRAINING_VOLUME_GB
    subnet_ids: tuple[str, ...] = field(default_factory=tuple)
    security_group_ids: tuple[str, ...] = field(default_factory=tuple)
    # Queued launches only (functions.domain.batch_queue): the owner's fair share and the job's
    # priority within it; a direct launch ignores both.
    share_identifier: str = ""
    priority: int = 0
