"""Model families, model kinds and the GPU instance-type catalogue: defined once, used everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FmType(StrEnum):
    """Base-model family ("FM type" in the original tool)."""

    SD15 = "sd15"
    SDXL = "sdxl"


class ModelKind(StrEnum):
    CHECKPOINT = "checkpoint"
    LORA = "lora"


class ResourceStatus(StrEnum):
    """Lifecycle of an uploaded model or dataset."""

    UPLOADING = "uploading"
    READY = "ready"
    INVALID = "invalid"  # datasets only: uploaded, but the manifest found problems
    PROCESSING = "processing"  # a background task is producing it (a crop, an import from a URL)
    VALIDATING = "validating"  # datasets only: complete; every file is being decoded in the background
    FAILED = "failed"  # its background task failed; ``failure_reason`` says why


# SDXL LoRA training at 1024 px needs >= 24 GB even with gradient checkpointing and
# cached text-encoder outputs at the service's default settings.
MIN_GPU_MEMORY_GB: dict[FmType, int] = {FmType.SD15: 16, FmType.SDXL: 24}


@dataclass(frozen=True)
class InstanceType:
    """A SageMaker training instance the service can launch.

    ``price_per_hour_usd`` is the us-east-1 on-demand list price and only feeds estimates;
    operators may override it per deployment (CDK context ``instancePrices``).
    ``steps_per_second`` are rough batch-1 throughputs (SD 1.5 at 512 px, SDXL at 1024 px)
    used for duration estimates; benchmarks/RESULTS.md says where they come from.
    """

    name: str
    gpu: str
    gpu_count: int
    gpu_memory_gb: int
    vcpus: int
    price_per_hour_usd: float
    sd15_steps_per_second: float
    sdxl_steps_per_second: float
    supports_bf16: bool


INSTANCE_TYPES: dict[str, InstanceType] = {
    it.name: it
    for it in (
        InstanceType("ml.g4dn.xlarge", "NVIDIA T4", 1, 16, 4, 0.736, 1.1, 0.0, False),
        InstanceType("ml.g4dn.2xlarge", "NVIDIA T4", 1, 16, 8, 0.94, 1.1, 0.0, False),
        InstanceType("ml.g5.xlarge", "NVIDIA A10G", 1, 24, 4, 1.408, 2.6, 0.65, True),
        InstanceType("ml.g5.2xlarge", "NVIDIA A10G", 1, 24, 8, 1.515, 2.7, 0.67, True),
        InstanceType("ml.g5.4xlarge", "NVIDIA A10G", 1, 24, 16, 2.03, 2.7, 0.67, True),
        InstanceType("ml.g6.xlarge", "NVIDIA L4", 1, 24, 4, 1.0056, 2.2, 0.55, True),
        InstanceType("ml.g6.2xlarge", "NVIDIA L4", 1, 24, 8, 1.2152, 2.2, 0.56, True),
        InstanceType("ml.g6e.xlarge", "NVIDIA L40S", 1, 48, 4, 2.3350, 5.5, 1.5, True),
        InstanceType("ml.g6e.2xlarge", "NVIDIA L40S", 1, 48, 8, 2.8153, 5.5, 1.5, True),
        InstanceType("ml.p4d.24xlarge", "NVIDIA A100 40GB", 8, 40, 96, 25.25, 6.0, 2.0, True),
    )
}

DEFAULT_INSTANCE_TYPE = "ml.g5.2xlarge"

# Managed spot typically costs 60-70 % less than on-demand for these families; estimates use this.
SPOT_PRICE_FACTOR = 0.35

# Fixed overhead before the first step (instance provisioning, image pull, data download).
ESTIMATED_STARTUP_SECONDS = 300


def instance_supports(instance: InstanceType, fm_type: FmType) -> bool:
    """True when the instance's GPU memory is enough for the model family."""
    return instance.gpu_memory_gb >= MIN_GPU_MEMORY_GB[fm_type]
