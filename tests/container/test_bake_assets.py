"""The image's build-time download step, with the hub call injected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from training_container.bake_assets import TOKENIZER_FILES, bake_tokenizers, main
from training_container.clip_tokenizers import (
    OPEN_CLIP_BIGG_TOKENIZER_REPO,
    TOKENIZER_CACHE_DIR_ENV,
    load_clip_tokenizer,
    write_clip_tokenizer_files,
)


def _fake_hub(source: Path, calls: list[tuple[str, str]]) -> Any:
    def download(*, repo_id: str, filename: str, local_dir: str) -> str:
        calls.append((repo_id, filename))
        target = Path(local_dir) / filename
        target.write_bytes((source / filename).read_bytes())
        return str(target)

    return download


def test_tokenizers_land_in_the_layout_sd_scripts_expects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_clip_tokenizer_files(tmp_path / "source", pad_token="!")
    calls: list[tuple[str, str]] = []

    folders = bake_tokenizers(tmp_path / "baked", hub_download=_fake_hub(source, calls))

    assert [f.name for f in folders] == [
        "openai_clip-vit-large-patch14",
        "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k",
    ]
    assert len(calls) == 2 * len(TOKENIZER_FILES)
    monkeypatch.setenv(TOKENIZER_CACHE_DIR_ENV, str(tmp_path / "baked"))
    tokenizer = load_clip_tokenizer(OPEN_CLIP_BIGG_TOKENIZER_REPO)
    assert tokenizer("a cat").input_ids == [49406, 320, 2368, 49407]


def test_a_download_that_writes_nothing_fails_the_build(tmp_path: Path) -> None:
    def broken(*, repo_id: str, filename: str, local_dir: str) -> str:
        return str(Path(local_dir) / filename)

    with pytest.raises(FileNotFoundError, match=r"openai/clip-vit-large-patch14/vocab\.json"):
        bake_tokenizers(tmp_path, hub_download=broken)


def test_usage_is_printed_without_a_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "Usage" in capsys.readouterr().err


def test_the_t5_tokenizer_is_saved_where_sd_scripts_and_the_engine_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sd-scripts' strategy_base._load_tokenizer loads ``<dir>/google_t5-v1_1-xxl`` before going
    online; the diffusers engine reads the same folder (flux1_files._t5_tokenizer)."""
    from training_container.bake_assets import bake_t5_tokenizer
    from training_container.clip_tokenizers import T5_TOKENIZER_REPO, baked_tokenizer_folder
    from training_container.testing.tiny_flow_models import tiny_t5_tokenizer

    loaded: list[str] = []

    def load(repo_id: str) -> object:
        loaded.append(repo_id)
        return tiny_t5_tokenizer()  # the real one is converted from spiece.model at build time

    folder = bake_t5_tokenizer(tmp_path, load)
    assert loaded == [T5_TOKENIZER_REPO] and folder.name == "google_t5-v1_1-xxl"
    monkeypatch.setenv(TOKENIZER_CACHE_DIR_ENV, str(tmp_path))
    assert baked_tokenizer_folder(T5_TOKENIZER_REPO) == folder
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(str(folder)).tokenize("a cat") == tiny_t5_tokenizer().tokenize(
        "a cat"
    )
