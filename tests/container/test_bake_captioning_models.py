"""The image's captioning-model bake step, with the hub calls injected."""

from __future__ import annotations

from pathlib import Path

import pytest

from training_container.captioning.bake_models import CAPTIONING_MODELS, bake_captioning_models
from training_container.captioning.captioning_job import CAPTIONER_FOLDER, MODEL_ID_FILENAME, TAGGER_FOLDER

DOCKERFILE = Path(__file__).resolve().parents[2] / "training_container" / "Dockerfile"


def test_models_land_in_their_folders_with_the_resolved_commit_as_id(tmp_path: Path) -> None:
    calls: list[tuple[str, str, str]] = []

    def download(*, repo_id: str, filename: str, revision: str, local_dir: str) -> str:
        calls.append((repo_id, filename, revision))
        (Path(local_dir) / filename).write_bytes(b"x")
        return str(Path(local_dir) / filename)

    folders = bake_captioning_models(
        tmp_path,
        {TAGGER_FOLDER: "v2.0"},
        hub_download=download,
        resolve_revision=lambda repo, revision: f"{'a' if revision == 'v2.0' else 'b'}" * 40,
    )

    assert [f.name for f in folders] == [TAGGER_FOLDER, CAPTIONER_FOLDER]
    tagger_id = (tmp_path / TAGGER_FOLDER / MODEL_ID_FILENAME).read_text()
    assert tagger_id == "SmilingWolf/wd-v1-4-convnext-tagger-v2@" + "a" * 40
    assert (tmp_path / CAPTIONER_FOLDER / MODEL_ID_FILENAME).read_text().endswith("@" + "b" * 40)
    assert {c[2] for c in calls if c[0].startswith("SmilingWolf")} == {"a" * 40}  # files of one commit
    assert len(calls) == sum(len(m.files) for m in CAPTIONING_MODELS)


def test_a_download_that_writes_nothing_fails_the_build(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model\.onnx"):
        bake_captioning_models(
            tmp_path, {}, hub_download=lambda **kwargs: "", resolve_revision=lambda repo, rev: "c" * 40
        )


def test_the_image_bakes_the_captioning_models_and_says_their_licences() -> None:
    text = DOCKERFILE.read_text()
    assert "training_container.captioning.bake_models" in text
    assert "LORA_CAPTIONING_MODELS_DIR=/opt/captioning-models" in text
    for model in CAPTIONING_MODELS:
        assert model.repo_id in text and model.licence in text
