"""What every engine is given and returns; the entrypoint only talks to engines through these."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from functions.domain.catalog import FmType
from functions.domain.epoch_outputs import SamplePrompt
from functions.domain.families import ComponentRole
from functions.domain.kohya_params import ParamValue
from functions.domain.training_contract import Engine
from training_container.dataset_staging import StagedDataset
from training_container.metrics import MetricsRecorder
from training_container.progress import ProgressReporter

SAMPLE_SUBFOLDER = "sample"  # sd-scripts writes sample images to <output_dir>/sample/


@dataclass
class EngineRequest:
    fm_type: FmType
    config: dict[str, ParamValue]
    model_path: Path
    dataset: StagedDataset
    work_dir: Path  # writable scratch space (TOML files, caches)
    output_dir: Path  # where the engine leaves <output_name>.safetensors
    output_name: str
    checkpoints_dir: Path  # synced to S3 while running; resumable state lives here
    progress: ProgressReporter
    stop_requested: threading.Event = field(default_factory=threading.Event)
    job_id: str = ""
    metrics: MetricsRecorder | None = None  # the loss curve; engines record a point per step
    sample_prompts: list[SamplePrompt] = field(default_factory=list)
    # Already first in every staged caption; engines record it as modelspec.trigger_phrase.
    trigger_word: str | None = None
    # Where intermediate LoRAs (<output_name>-000001.safetensors) and, under sample/, sample images
    # (<output_name>_e000001_00*.png) are left: sd-scripts' own names and layout, for every engine.
    # None: output_dir. Inside the checkpoints folder they survive a spot restart.
    epoch_dir: Path | None = None
    # The family's separate component files (FamilySpec.components): role -> its file in the input
    # channel named after the role (TrainingJobSpec.component_filenames); empty for SD 1.5/SDXL.
    component_paths: dict[ComponentRole, Path] = field(default_factory=dict)

    @property
    def epoch_output_dir(self) -> Path:
        return self.epoch_dir or self.output_dir


@dataclass(frozen=True)
class EngineResult:
    engine: Engine
    lora_path: Path | None  # None when the run stopped early (state saved for a resume)
    steps: int
    epochs: int
    final_loss: float | None
    training_seconds: float

    @property
    def stopped(self) -> bool:
        return self.lora_path is None
