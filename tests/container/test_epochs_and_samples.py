"""Per-epoch LoRAs and sample images from both engines, published where the control plane looks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import toml
from PIL import Image

from functions.domain.catalog import FmType
from functions.domain.training_contract import TrainingSummary
from tests.container.conftest import JobFactory
from tests.container.test_kohya_wrapper import SCRIPT_OPTIONS
from training_container.engines.base import SAMPLE_SUBFOLDER
from training_container.entrypoint import run_job, verify_kohya_lora

FAKE_SD_SCRIPTS = Path(__file__).parent / "fake_sd_scripts"
TWO_EPOCHS = {"max_train_epochs": 2, "save_every_n_epochs": 1}
PROMPTS = [
    {"prompt": "a photo of demo", "width": 64, "height": 64, "steps": 1, "seed": 7},
    {"prompt": "demo on a beach", "negative_prompt": "blurry", "width": 64, "height": 48, "steps": 1},
]


def _summary(root: Path) -> TrainingSummary:
    return TrainingSummary.model_validate_json((root / "model" / "summary.json").read_text())


def test_diffusers_engine_saves_each_epoch_and_renders_samples(make_job: JobFactory) -> None:
    root = make_job(FmType.SD15, config=TWO_EPOCHS, sample_prompts=PROMPTS)

    assert run_job(root) == 0

    model = root / "model"
    epoch_lora = model / "epochs" / "my-lora-000001.safetensors"
    verify_kohya_lora(epoch_lora)  # the same check the final LoRA passes
    assert (model / "my-lora.safetensors").read_bytes() != epoch_lora.read_bytes()
    summary = _summary(root)
    assert [e.epoch for e in summary.epoch_loras] == [1] and summary.epochs == 2
    assert summary.epoch_loras[0].size_bytes == epoch_lora.stat().st_size
    assert sorted((s.epoch, s.prompt_index) for s in summary.samples) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    for epoch in (1, 2):
        for index, size in ((0, (64, 64)), (1, (64, 48))):
            with Image.open(model / "samples" / f"my-lora_e00000{epoch}_0{index}.png") as image:
                assert image.format == "PNG" and image.size == size


def test_without_save_every_only_the_final_lora_and_its_samples(make_job: JobFactory) -> None:
    root = make_job(FmType.SD15, config={"max_train_epochs": 2}, sample_prompts=PROMPTS[:1])

    assert run_job(root) == 0

    summary = _summary(root)
    assert summary.epoch_loras == [] and not (root / "model" / "epochs").exists()
    assert [(s.epoch, s.prompt_index) for s in summary.samples] == [(2, 0)]


@pytest.fixture
def fake_sd_scripts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SD_SCRIPTS_DIR", str(FAKE_SD_SCRIPTS))
    monkeypatch.setenv("LORA_KOHYA_LAUNCHER", json.dumps([sys.executable]))


@pytest.mark.usefixtures("fake_sd_scripts")
def test_kohya_engine_gets_sd_scripts_sample_options_and_its_outputs_are_published(
    make_job: JobFactory,
) -> None:
    root = make_job(FmType.SD15, config=TWO_EPOCHS, sample_prompts=PROMPTS, engine="kohya")

    assert run_job(root) == 0

    training = toml.load(root / "work" / "kohya" / "training_config.toml")
    assert set(training) <= SCRIPT_OPTIONS[FmType.SD15], set(training) - SCRIPT_OPTIONS[FmType.SD15]
    assert training["sample_every_n_epochs"] == 1 and training["sample_sampler"] == "euler_a"
    assert training["save_every_n_epochs"] == 1
    lines = Path(training["sample_prompts"]).read_text().splitlines()
    assert lines == [
        "a photo of demo --w 64 --h 64 --d 7 --s 1 --l 7",
        "demo on a beach --n blurry --w 64 --h 48 --s 1 --l 7",
    ]
    kohya_out = root / "checkpoints" / "kohya"
    assert len(list((kohya_out / SAMPLE_SUBFOLDER).glob("*.png"))) == 4  # sd-scripts' own folder
    summary = _summary(root)
    assert [e.epoch for e in summary.epoch_loras] == [1]
    verify_kohya_lora(root / "model" / "epochs" / "my-lora-000001.safetensors")
    assert len(summary.samples) == 4
    assert (root / "model" / "samples" / "my-lora_e000002_01.png").is_file()


@pytest.mark.usefixtures("fake_sd_scripts")
def test_a_corrupt_intermediate_lora_is_left_out_not_fatal(
    make_job: JobFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SD_SCRIPTS_MODE", "corrupt_epoch")
    root = make_job(FmType.SD15, config=TWO_EPOCHS, engine="kohya")

    assert run_job(root) == 0

    assert _summary(root).epoch_loras == []
    assert not (root / "model" / "epochs" / "my-lora-000001.safetensors").exists()


def test_sdxl_samples_render_with_both_text_encoders(make_job: JobFactory) -> None:
    prompt = {"prompt": "demo", "width": 64, "height": 64, "steps": 1, "cfg_scale": 1.0}
    root = make_job(FmType.SDXL, config={"max_train_epochs": 1}, sample_prompts=[prompt], n_images=1)

    assert run_job(root) == 0

    with Image.open(root / "model" / "samples" / "my-lora_e000001_00.png") as image:
        assert image.size == (64, 64)
