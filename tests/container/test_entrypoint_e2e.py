"""The full entrypoint on CPU with tiny models: SageMaker layout in, Kohya LoRA out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from functions.domain.catalog import FmType
from functions.domain.training_contract import ProgressReport, TrainingPhase, TrainingSummary
from tests.container.conftest import JobFactory
from training_container.engines.kohya_lora_format import lora_modules
from training_container.entrypoint import run_job
from training_container.testing.tiny_models import build_tiny_pipeline

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]


def _read_lora(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
        return tensors, dict(handle.metadata() or {})


def _generate(pipe: object, seed: int = 0) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    result = pipe(  # type: ignore[operator]
        "demo, a square", num_inference_steps=2, generator=generator, output_type="np", height=64, width=64
    )
    return np.asarray(result.images)


def _assert_kohya_keys(keys: list[str], fm_type: FmType) -> None:
    module_names = {
        key.rsplit(".", 2)[0] if key.endswith("weight") else key.rsplit(".", 1)[0] for key in keys
    }
    for name in module_names:
        assert (
            f"{name}.lora_down.weight" in keys
            and f"{name}.lora_up.weight" in keys
            and f"{name}.alpha" in keys
        )
    te_prefixes = (
        ("lora_te1_text_model_", "lora_te2_text_model_")
        if fm_type == FmType.SDXL
        else ("lora_te_text_model_",)
    )
    assert all(name.startswith(("lora_unet_", *te_prefixes)) for name in module_names)
    for prefix in te_prefixes:
        assert any(name.startswith(prefix) for name in module_names), prefix
    if fm_type == FmType.SDXL:
        # SGM layout, as sd-scripts names SDXL modules
        assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q" in module_names
        assert not any(name.startswith("lora_unet_down_blocks") for name in module_names)
    else:
        assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q" in module_names


@pytest.mark.parametrize("fm_type", [FmType.SD15, FmType.SDXL])
def test_full_job_publishes_a_kohya_lora_that_diffusers_loads(make_job: JobFactory, fm_type: FmType) -> None:
    root = make_job(fm_type, config={"max_train_steps": 3, "seed": 7, "noise_offset": 0.05})

    assert run_job(root) == 0

    lora_path = root / "model" / "my-lora.safetensors"
    tensors, metadata = _read_lora(lora_path)
    _assert_kohya_keys(list(tensors), fm_type)
    assert metadata["ss_network_module"] == "networks.lora"
    assert metadata["ss_network_dim"] == "4" and metadata["ss_network_alpha"] == "2.0"
    assert metadata["ss_base_model_version"] == ("sdxl_base_v1-0" if fm_type == FmType.SDXL else "sd_v1")
    assert metadata["ss_seed"] == "7" and metadata["ss_max_train_steps"] == "3"
    assert metadata["ss_num_train_images"] == "2" and metadata["ss_resolution"] == "(256, 256)"
    assert json.loads(metadata["ss_tag_frequency"])["1_demo"]["demo"] == 2
    assert metadata["modelspec.architecture"].endswith("/lora")
    summary = TrainingSummary.model_validate_json((root / "model" / "summary.json").read_text())
    assert summary.steps == 3 and summary.lora_filename == "my-lora.safetensors"
    assert summary.final_loss is not None and np.isfinite(summary.final_loss)
    progress = ProgressReport.model_validate_json((root / "checkpoints" / "progress.json").read_text())
    assert progress.phase == TrainingPhase.DONE and progress.total_steps == 3
    assert not (root / "output" / "failure").exists()

    pipe = build_tiny_pipeline(fm_type)
    before = _generate(pipe)
    pipe.load_lora_weights(str(lora_path))
    injected = sum(len(lora_modules(m)) for m in (pipe.unet, pipe.text_encoder))
    injected += len(lora_modules(pipe.text_encoder_2)) if fm_type == FmType.SDXL else 0
    assert injected == sum(1 for key in tensors if key.endswith(".alpha"))  # every module was loaded
    assert not np.allclose(before, _generate(pipe))


def test_cli_runs_the_job_with_a_root_argument(make_job: JobFactory) -> None:
    root = make_job(FmType.SD15, config={"max_train_steps": 1, "cache_latents": False, "flip_aug": True})
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    completed = subprocess.run(
        [sys.executable, "-m", "training_container.entrypoint", "--root", str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert (root / "model" / "my-lora.safetensors").is_file()
    assert "published my-lora.safetensors" in completed.stdout
