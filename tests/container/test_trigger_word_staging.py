"""A job's trigger word at staging (both engines) and in the LoRA's metadata.

sd-scripts reads the staged ``.txt`` files itself, so the staged copy is what is checked; the
channel (the user's dataset) is never modified.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import toml
from safetensors import safe_open

from functions.domain.catalog import FmType
from functions.domain.kohya_params import defaults_for
from tests.container.conftest import JobFactory
from training_container.dataset_staging import stage_dataset
from training_container.entrypoint import run_job
from training_container.errors import JobFailure
from training_container.kohya_config import SD_SCRIPTS_TAG, build_kohya_configs
from training_container.testing.tiny_models import make_tiny_dataset

FIXTURES = Path(__file__).parent / "fixtures"
FAKE_SD_SCRIPTS = Path(__file__).parent / "fake_sd_scripts"


def _channel(tmp_path: Path) -> Path:
    channel = make_tiny_dataset(tmp_path / "channel", concept="cat", repeats=1, n_images=4)
    folder = channel / "1_cat"
    (folder / "img_0.txt").write_text("sks cat, a square", encoding="utf-8")  # already first
    (folder / "img_1.txt").write_text("SKS Cat , on a sofa", encoding="utf-8")  # first, other case
    (folder / "img_2.txt").unlink()  # no caption at all
    (folder / "img_3.txt").write_text("a cat, sks cat", encoding="utf-8")  # present, not first
    return channel


def test_every_staged_caption_starts_with_the_trigger_word_exactly_once(tmp_path: Path) -> None:
    channel = _channel(tmp_path)

    staged = stage_dataset(channel, tmp_path / "work", "sks cat")

    captions = {image.path.name: image.caption for image in staged.concepts[0].images}
    assert captions == {
        "img_0.png": "sks cat, a square",
        "img_1.png": "SKS Cat , on a sofa",
        "img_2.png": "sks cat",
        "img_3.png": "sks cat, a cat, sks cat",
    }
    staged_folder = tmp_path / "work" / "dataset" / "1_cat"
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in staged_folder.glob("*.txt")}
    assert on_disk == {name.replace(".png", ".txt"): text for name, text in captions.items()}
    assert not (channel / "1_cat" / "img_2.txt").exists()  # the channel is left as it was
    assert (channel / "1_cat" / "img_3.txt").read_text(encoding="utf-8") == "a cat, sks cat"


def test_without_a_trigger_word_a_missing_caption_is_still_a_problem(tmp_path: Path) -> None:
    with pytest.raises(JobFailure, match=r"missing caption img_2\.txt"):
        stage_dataset(_channel(tmp_path), tmp_path / "work")


def test_kohya_gets_the_trigger_as_metadata_trigger_phrase(tmp_path: Path) -> None:
    options = json.loads((FIXTURES / f"sd_scripts_{SD_SCRIPTS_TAG}_options.json").read_text())
    staged = stage_dataset(_channel(tmp_path), tmp_path / "work", "sks cat")
    files = build_kohya_configs(
        fm_type=FmType.SD15,
        config={**defaults_for(FmType.SD15), "keep_tokens": 1},
        dataset=staged,
        model_path=tmp_path / "base.safetensors",
        output_dir=tmp_path / "out",
        output_name="lora",
        work_dir=tmp_path / "kohya",
        sd_scripts_dir=Path("/sd-scripts"),
        tokenizer_cache_dir=None,
        trigger_word="sks cat",
    )
    training = toml.load(files.training_config)
    assert training["metadata_trigger_phrase"] == "sks cat"
    assert "metadata_trigger_phrase" in options["train_network"]  # an option of the pinned release
    assert toml.load(files.dataset_config)["general"]["keep_tokens"] == 1


def test_diffusers_lora_records_the_trigger_phrase(make_job: JobFactory) -> None:
    root = make_job(FmType.SD15, engine="diffusers", trigger_word="sks demo", config={"keep_tokens": 1})

    assert run_job(root) == 0

    with safe_open(str(root / "model" / "my-lora.safetensors"), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    assert metadata["modelspec.trigger_phrase"] == "sks demo" and metadata["ss_keep_tokens"] == "1"
    staged = sorted((root / "work" / "dataset" / "1_demo").glob("*.txt"))
    assert staged and all(p.read_text(encoding="utf-8").startswith("sks demo, demo, ") for p in staged)


def test_kohya_job_stages_captions_with_the_trigger_word(
    make_job: JobFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SD_SCRIPTS_DIR", str(FAKE_SD_SCRIPTS))
    monkeypatch.setenv("LORA_KOHYA_LAUNCHER", json.dumps([sys.executable]))
    root = make_job(FmType.SD15, engine="kohya", trigger_word="sks demo")

    assert run_job(root) == 0

    training = toml.load(root / "work" / "kohya" / "training_config.toml")
    assert training["metadata_trigger_phrase"] == "sks demo"
    staged = sorted((root / "work" / "dataset" / "1_demo").glob("*.txt"))
    assert staged and all(p.read_text(encoding="utf-8").startswith("sks demo, ") for p in staged)
