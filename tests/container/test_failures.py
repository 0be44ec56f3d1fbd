"""Bad inputs fail fast, with the reason in output/failure and a non-zero exit status."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from functions.domain.catalog import FmType
from tests.container.conftest import JobFactory
from training_container.entrypoint import EXIT_USER_ERROR, run_job

DATASET = Path("input/data/dataset/1_demo")


def _failure(root: Path) -> str:
    return (root / "output" / "failure").read_text()


def _remove_caption(folder: Path) -> None:
    (folder / "img_0.txt").unlink()


def _empty_caption(folder: Path) -> None:
    (folder / "img_1.txt").write_text("   ")


def _orphan_caption(folder: Path) -> None:
    (folder / "ghost.txt").write_text("no image for me")


def _corrupt_image(folder: Path) -> None:
    (folder / "img_0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)


def _bad_folder_name(folder: Path) -> None:
    folder.rename(folder.parent / "demo_without_repeats")


def _empty_dataset(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


@pytest.mark.parametrize(
    ("break_dataset", "expected"),
    [
        (_remove_caption, "1_demo/img_0.png: missing caption img_0.txt"),
        (_empty_caption, "1_demo/img_1.txt: caption is empty"),
        (_orphan_caption, "1_demo/ghost.txt: caption without an image"),
        (_corrupt_image, "1_demo/img_0.png: not a readable image"),
        (_bad_folder_name, "demo_without_repeats: folder name must be <repeats>_<concept>"),
        (_empty_dataset, "the dataset is empty"),
    ],
)
def test_dataset_problems_fail_with_their_reason(
    make_job: JobFactory, break_dataset: Callable[[Path], None], expected: str
) -> None:
    root = make_job(FmType.SD15)
    break_dataset(root / DATASET)

    assert run_job(root) == EXIT_USER_ERROR

    reason = _failure(root)
    assert reason.startswith("dataset is invalid:") and expected in reason
    assert not (root / "model" / "my-lora.safetensors").exists()


def test_every_dataset_problem_is_listed_at_once(make_job: JobFactory) -> None:
    root = make_job(FmType.SD15)
    _remove_caption(root / DATASET)
    _orphan_caption(root / DATASET)

    assert run_job(root) == EXIT_USER_ERROR

    assert "missing caption" in _failure(root) and "caption without an image" in _failure(root)


def test_sdxl_job_given_an_sd15_checkpoint_fails_fast(make_job: JobFactory) -> None:
    root = make_job(FmType.SDXL, checkpoint_family=FmType.SD15)

    assert run_job(root) == EXIT_USER_ERROR

    assert _failure(root).strip() == (
        "the job trains a SDXL LoRA but the base model base.safetensors is a SD 1.5 checkpoint"
    )


def test_a_file_that_is_not_safetensors_is_refused(make_job: JobFactory) -> None:
    root = make_job(FmType.SD15)
    (root / "input/data/model/base.safetensors").write_bytes(io.BytesIO(b"not a model").getvalue())

    assert run_job(root) == EXIT_USER_ERROR

    assert "base.safetensors is not a readable .safetensors file" in _failure(root)


def test_missing_base_model_names_what_the_channel_holds(make_job: JobFactory) -> None:
    root = make_job(FmType.SD15)
    (root / "input/data/model/base.safetensors").rename(root / "input/data/model/other.safetensors")

    assert run_job(root) == EXIT_USER_ERROR

    assert "base model base.safetensors not found in the model channel (found: other.safetensors)" in (
        _failure(root)
    )


def test_invalid_parameters_are_refused_again_in_the_container(make_job: JobFactory) -> None:
    root = make_job(FmType.SD15)
    spec_file = root / "input/data/job/job.json"
    raw = json.loads(spec_file.read_text())
    raw["config"] = {**raw["config"], "output_dir": "/tmp/x", "network_dim": 0}
    spec_file.write_text(json.dumps(raw))

    assert run_job(root) == EXIT_USER_ERROR

    reason = _failure(root)
    assert (
        "config.output_dir is set by the service" in reason
        and "config.network_dim must be at least 1" in reason
    )


def test_missing_job_spec_file_is_reported(make_job: JobFactory) -> None:
    root = make_job(FmType.SD15)
    (root / "input/data/job/job.json").unlink()

    assert run_job(root) == EXIT_USER_ERROR

    assert "job spec file input/data/job/job.json is missing" in _failure(root)
