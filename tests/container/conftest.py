"""Fixtures for the training container: tiny checkpoints and SageMaker-layout job folders."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from functions.domain.catalog import FmType
from functions.domain.kohya_params import validate_config
from functions.domain.training_contract import JOB_CHANNEL, JOB_SPEC_FILENAME, TrainingJobSpec
from training_container.testing.tiny_models import (
    SINGLE_FILE_FAMILIES,
    make_tiny_dataset,
    save_tiny_checkpoint,
)

# Small enough for a few CPU steps per test, valid for the service's parameter validation.
FAST_CONFIG: dict[str, Any] = {
    "resolution": 256,
    "min_bucket_reso": 256,
    "max_bucket_reso": 512,
    "network_dim": 4,
    "network_alpha": 2,
    "learning_rate": 1e-3,
    "unet_lr": 1e-3,
    "text_encoder_lr": 1e-4,
    "max_train_steps": 3,
    "max_data_loader_n_workers": 0,
}
SDXL_WITH_TEXT_ENCODERS = {"network_train_unet_only": False}


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[FmType, Path]:
    folder = tmp_path_factory.mktemp("checkpoints")
    # The single-file families (FLUX.1 and SD 3.5 checkpoints come with component files).
    return {
        fm: save_tiny_checkpoint(fm, folder / f"tiny-{fm.value}.safetensors") for fm in SINGLE_FILE_FAMILIES
    }


JobFactory = Callable[..., Path]


@pytest.fixture
def make_job(tmp_path: Path, tiny_checkpoints: dict[FmType, Path]) -> JobFactory:
    """Lay out ``<tmp>/opt_ml`` like SageMaker does for one job; returns the root."""

    def factory(
        fm_type: FmType = FmType.SD15,
        config: dict[str, Any] | None = None,
        checkpoint_family: FmType | None = None,
        n_images: int = 2,
        engine: str = "diffusers",
        sample_prompts: list[dict[str, Any]] | None = None,
        trigger_word: str | None = None,
    ) -> Path:
        root = tmp_path / "opt_ml"
        model_channel = root / "input" / "data" / "model"
        model_channel.mkdir(parents=True)
        shutil.copyfile(tiny_checkpoints[checkpoint_family or fm_type], model_channel / "base.safetensors")
        make_tiny_dataset(root / "input" / "data" / "dataset", concept="demo", repeats=1, n_images=n_images)
        user_config = {**FAST_CONFIG, **(SDXL_WITH_TEXT_ENCODERS if fm_type == FmType.SDXL else {})}
        normalised, problems = validate_config({**user_config, **(config or {})}, fm_type)
        assert not problems, problems
        spec = TrainingJobSpec(
            job_id="job-1",
            fm_type=fm_type,
            engine=engine,
            output_name="my-lora",
            base_model_filename="base.safetensors",
            config=normalised,
            sample_prompts=sample_prompts or [],
            trigger_word=trigger_word,
        )
        job_channel = root / "input" / "data" / JOB_CHANNEL
        job_channel.mkdir(parents=True)
        (job_channel / JOB_SPEC_FILENAME).write_text(spec.to_json())
        return root

    return factory
