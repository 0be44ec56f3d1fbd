"""The image's captioning mode, through the entrypoint, with tiny random-weight models built offline:
an ONNX WD14-interface tagger and a BLIP captioner (training_container/testing/tiny_captioners.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from functions.domain.captioning import (
    CACHE_CHANNEL,
    CAPTIONED_DATASET_FOLDER,
    CAPTIONING_SUMMARY_FILENAME,
    NEW_CACHE_FOLDER,
    CaptioningJobSpec,
    CaptioningSummary,
    CaptionMode,
    TaggerSettings,
)
from functions.domain.training_contract import JOB_CHANNEL, JOB_SPEC_FILENAME, ProgressReport, TrainingPhase
from training_container.captioning import captioning_job
from training_container.captioning.wd14_tagger import preprocess_image
from training_container.entrypoint import EXIT_OK, EXIT_USER_ERROR, run_job
from training_container.testing.tiny_captioners import install_tiny_captioning_models
from training_container.testing.tiny_models import make_tiny_dataset


@pytest.fixture(scope="module")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_tiny_captioning_models(tmp_path_factory.mktemp("captioning-models"))


@pytest.fixture(autouse=True)
def use_tiny_models(tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(captioning_job.MODELS_DIR_ENV, str(tiny_models_dir))


def lay_out_job(root: Path, spec: CaptioningJobSpec, *, keep_captions: int = 0, n_images: int = 3) -> Path:
    """A SageMaker-layout root whose dataset keeps captions for its first ``keep_captions`` images."""
    dataset = make_tiny_dataset(
        root / "input" / "data" / "dataset", concept="cat", repeats=2, n_images=n_images
    )
    for index, caption in enumerate(sorted(dataset.glob("*/*.txt"))):
        if index >= keep_captions:
            caption.unlink()
    (root / "input" / "data" / JOB_CHANNEL).mkdir(parents=True)
    (root / "input" / "data" / JOB_CHANNEL / JOB_SPEC_FILENAME).write_text(spec.to_json(), encoding="utf-8")
    return root


def summary_of(root: Path) -> CaptioningSummary:
    return CaptioningSummary.model_validate_json((root / "model" / CAPTIONING_SUMMARY_FILENAME).read_text())


def captions_of(root: Path) -> dict[str, str]:
    folder = root / "model" / CAPTIONED_DATASET_FOLDER
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.glob("*/*.txt"))}


def test_preprocessing_pads_white_to_a_square_bgr_448() -> None:
    image = Image.new("RGB", (200, 100), (255, 0, 0))
    pixels = preprocess_image(image)
    assert pixels.shape == (448, 448, 3)
    assert pixels.dtype == np.float32
    assert pixels[0, 224].tolist() == [255.0, 255.0, 255.0]  # the padding band at the top is white
    assert pixels[224, 224].tolist() == [0.0, 0.0, 255.0]  # red in RGB is (0, 0, 255) in BGR
    small = preprocess_image(Image.new("RGB", (64, 64), (0, 255, 0)))
    assert small.shape == (448, 448, 3)


def test_tagger_and_captioner_caption_every_image_with_the_trigger_word_first(tmp_path: Path) -> None:
    spec = CaptioningJobSpec(job_id="c1", mode=CaptionMode.OVERWRITE, trigger_word="sks", use_captioner=True)
    root = lay_out_job(tmp_path / "opt_ml", spec, keep_captions=1)

    assert run_job(root) == EXIT_OK

    captions = captions_of(root)
    assert sorted(captions) == ["2_cat/img_0.txt", "2_cat/img_1.txt", "2_cat/img_2.txt"]
    for caption in captions.values():
        parts = caption.split(", ")
        assert parts[0] == "sks"
        assert {"1girl", "solo", "hatsune miku"} <= set(parts)  # the tiny tagger's certain tags
    assert sorted(p.name for p in (root / "model" / CAPTIONED_DATASET_FOLDER / "2_cat").glob("*.png")) == [
        "img_0.png",
        "img_1.png",
        "img_2.png",
    ]
    summary = summary_of(root)
    assert (summary.images, summary.captioned, summary.cache_hits, summary.model_runs) == (3, 3, 0, 6)
    assert summary.failures == []
    assert len(list((root / "model" / NEW_CACHE_FOLDER).glob("*/*.txt"))) == 6
    assert (root / "input" / "data" / "dataset" / "2_cat" / "img_0.txt").is_file()  # input untouched
    progress = ProgressReport.model_validate_json((root / "checkpoints" / "progress.json").read_text())
    assert (progress.phase, progress.step, progress.total_steps) == (TrainingPhase.DONE, 3, 3)


def test_a_second_job_on_the_same_images_is_served_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = CaptioningJobSpec(job_id="c1", mode=CaptionMode.OVERWRITE, trigger_word="sks")
    first = lay_out_job(tmp_path / "first", spec)
    assert run_job(first) == EXIT_OK

    second = lay_out_job(tmp_path / "second", spec.model_copy(update={"job_id": "c2"}))
    shutil.copytree(first / "model" / NEW_CACHE_FOLDER, second / "input" / "data" / CACHE_CHANNEL)

    def no_model_may_run(self: captioning_job.CaptionModel, image: Image.Image) -> str:
        raise AssertionError(f"{self.model_id} ran although every caption was cached")

    monkeypatch.setattr(captioning_job.CaptionModel, "run", no_model_may_run)
    assert run_job(second) == EXIT_OK
    summary = summary_of(second)
    assert (summary.cache_hits, summary.model_runs) == (3, 0)
    assert captions_of(second) == captions_of(first)
    assert not (second / "model" / NEW_CACHE_FOLDER).exists()


def test_other_tagger_settings_do_not_reuse_cached_tags(tmp_path: Path) -> None:
    spec = CaptioningJobSpec(job_id="c1", mode=CaptionMode.OVERWRITE)
    first = lay_out_job(tmp_path / "first", spec, n_images=1)
    assert run_job(first) == EXIT_OK
    other = spec.model_copy(update={"tagger": TaggerSettings(excluded_tags=["solo"])})
    second = lay_out_job(tmp_path / "second", other, n_images=1)
    shutil.copytree(first / "model" / NEW_CACHE_FOLDER, second / "input" / "data" / CACHE_CHANNEL)
    assert run_job(second) == EXIT_OK
    assert (summary_of(second).cache_hits, summary_of(second).model_runs) == (0, 1)
    assert "solo" not in next(iter(captions_of(second).values())).split(", ")


def test_missing_mode_keeps_existing_captions_and_runs_no_model_for_them(tmp_path: Path) -> None:
    root = lay_out_job(tmp_path / "opt_ml", CaptioningJobSpec(job_id="c1"), keep_captions=2)
    assert run_job(root) == EXIT_OK
    captions = captions_of(root)
    assert captions["2_cat/img_0.txt"].startswith("cat, a square")
    assert captions["2_cat/img_2.txt"].startswith("1girl")
    summary = summary_of(root)
    assert (summary.kept, summary.captioned, summary.model_runs) == (2, 1, 1)


def test_a_broken_image_is_reported_and_the_others_are_captioned(tmp_path: Path) -> None:
    root = lay_out_job(tmp_path / "opt_ml", CaptioningJobSpec(job_id="c1", trigger_word="sks"))
    (root / "input" / "data" / "dataset" / "2_cat" / "img_1.png").write_bytes(b"not a png")
    assert run_job(root) == EXIT_OK
    summary = summary_of(root)
    assert [f.path for f in summary.failures] == ["2_cat/img_1.png"]
    assert "UnidentifiedImageError" in summary.failures[0].reason
    assert sorted(captions_of(root)) == ["2_cat/img_0.txt", "2_cat/img_2.txt"]


def test_an_uninstalled_model_fails_the_job_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(captioning_job.MODELS_DIR_ENV, str(tmp_path / "nothing"))
    root = lay_out_job(tmp_path / "opt_ml", CaptioningJobSpec(job_id="c1"))
    assert run_job(root) == EXIT_USER_ERROR
    assert "wd14-tagger is not installed" in (root / "output" / "failure").read_text()


def test_a_spec_without_kind_is_still_a_training_spec(tmp_path: Path) -> None:
    spec_file = tmp_path / "job.json"
    spec_file.write_text(json.dumps({"job_id": "x", "fm_type": "sd15"}))
    from training_container.entrypoint import is_captioning_spec

    assert not is_captioning_spec(spec_file)
    spec_file.write_text(CaptioningJobSpec(job_id="x").to_json())
    assert is_captioning_spec(spec_file)


def test_a_model_that_cannot_load_fails_the_job_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "models"
    install_tiny_captioning_models(broken)
    (broken / captioning_job.TAGGER_FOLDER / "model.onnx").write_bytes(b"not onnx")
    monkeypatch.setenv(captioning_job.MODELS_DIR_ENV, str(broken))
    root = lay_out_job(tmp_path / "opt_ml", CaptioningJobSpec(job_id="c1"))
    assert run_job(root) == EXIT_USER_ERROR
    assert (
        "could not load captioning model tiny/wd14-tagger@random" in (root / "output" / "failure").read_text()
    )
