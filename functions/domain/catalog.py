"""Model families, model kinds and the GPU instance-type catalogue: defined once, used everywhere."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from functions.domain.families import FAMILIES, FmType


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


MIN_GPU_MEMORY_GB: Mapping[FmType, int] = {f: spec.min_gpu_memory_gb for f, spec in FAMILIES.items()}


@dataclass(frozen=True)
class InstanceType:
    """A SageMaker training instance the service can launch.

    ``price_per_hour_usd`` is the us-east-1 on-demand list price and only feeds estimates;
    operators may override it per deployment (CDK context ``instancePrices``).
    ``steps_per_second`` are rough batch-1 throughputs per family at the family's native
    resolution (SD 1.5 at 512 px, SDXL at 1024 px) used for duration estimates;
    benchmarks/RESULTS.md says where they come from.
    """

    name: str
    gpu: str
    gpu_count: int
    gpu_memory_gb: int
    vcpus: int
    price_per_hour_usd: float
    steps_per_second: Mapping[FmType, float]
    supports_bf16: bool
    # Host memory in GiB, from AWS's accelerated-computing instance tables (Amazon EC2 G4dn, G5,
    # G6, G6e and P4d product pages: g5.xlarge 16, g5.2xlarge 32, g5.4xlarge 64, g6e.xlarge 32 ...).
    # https://aws.amazon.com/ec2/instance-types/{g4,g5,g6,g6e,p4}/ (the "Memory (GiB)" column).
    memory_gib: int


def _rates(instance_type: str) -> Mapping[FmType, float]:
    """Each family's measured throughput on ``instance_type`` (FamilySpec.steps_per_second)."""
    return {f: spec.steps_per_second[instance_type] for f, spec in FAMILIES.items()}


INSTANCE_TYPES: dict[str, InstanceType] = {
    it.name: it
    for it in (
        InstanceType("ml.g4dn.xlarge", "NVIDIA T4", 1, 16, 4, 0.736, _rates("ml.g4dn.xlarge"), False, 16),
        InstanceType("ml.g4dn.2xlarge", "NVIDIA T4", 1, 16, 8, 0.94, _rates("ml.g4dn.2xlarge"), False, 32),
        InstanceType("ml.g5.xlarge", "NVIDIA A10G", 1, 24, 4, 1.408, _rates("ml.g5.xlarge"), True, 16),
        InstanceType("ml.g5.2xlarge", "NVIDIA A10G", 1, 24, 8, 1.515, _rates("ml.g5.2xlarge"), True, 32),
        InstanceType("ml.g5.4xlarge", "NVIDIA A10G", 1, 24, 16, 2.03, _rates("ml.g5.4xlarge"), True, 64),
        InstanceType("ml.g6.xlarge", "NVIDIA L4", 1, 24, 4, 1.0056, _rates("ml.g6.xlarge"), True, 16),
        InstanceType("ml.g6.2xlarge", "NVIDIA L4", 1, 24, 8, 1.2152, _rates("ml.g6.2xlarge"), True, 32),
        InstanceType("ml.g6e.xlarge", "NVIDIA L40S", 1, 48, 4, 2.3350, _rates("ml.g6e.xlarge"), True, 32),
        InstanceType("ml.g6e.2xlarge", "NVIDIA L40S", 1, 48, 8, 2.8153, _rates("ml.g6e.2xlarge"), True, 64),
        InstanceType(
            "ml.p4d.24xlarge", "NVIDIA A100 40GB", 8, 40, 96, 25.25, _rates("ml.p4d.24xlarge"), True, 1152
        ),
    )
}

DEFAULT_INSTANCE_TYPE = "ml.g5.2xlarge"

# Managed spot typically costs 60-70 % less than on-demand for these families; estimates use this.
SPOT_PRICE_FACTOR = 0.35

# Fixed overhead before the first step (instance provisioning, image pull, data download).
ESTIMATED_STARTUP_SECONDS = 300


# Room in host memory beside the model files: the Python process, CUDA context, data loader
# workers and cached latents (sd-scripts loads every model file into host memory first).
HOST_MEMORY_HEADROOM_GIB = 8


def host_memory_needed_gib(fm_type: FmType, model_bytes: int) -> int:
    """Host memory a job needs: its family's floor, or its model files plus headroom if more."""
    files_gib = -(-model_bytes // 1024**3)  # ceiling
    return max(FAMILIES[fm_type].min_host_memory_gb, files_gib + HOST_MEMORY_HEADROOM_GIB)


def instance_supports(instance: InstanceType, fm_type: FmType) -> bool:
    """True when the instance's GPU memory is enough for the model family."""
    return instance.gpu_memory_gb >= MIN_GPU_MEMORY_GB[fm_type]


def instance_fits(instance: InstanceType, fm_type: FmType) -> bool:
    """Enough GPU memory and the family's host-memory floor (the files' own sizes are checked per
    job: functions.domain.job_rules.host_memory_problems)."""
    return (
        instance_supports(instance, fm_type) and instance.memory_gib >= FAMILIES[fm_type].min_host_memory_gb
    )
