"""What the real-engine tests share: where sd-scripts is, its interpreter, tokenizers, a config.

sd-scripts is on no package registry and its pinned requirements (diffusers 0.32.1, transformers
4.54.1, accelerate 1.6.0, voluptuous, opencv, ...) do not suit the project's own venv, so these
tests run it the way the training image does: as a child process, with its own interpreter.
``docs/real-engine-tests.md`` says how to set both up (``make real-engine-tests``).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.domain.catalog import FmType
from functions.domain.kohya_params import ParamValue, validate_config
from training_container.clip_tokenizers import (
    CLIP_L_TOKENIZER_REPO,
    OPEN_CLIP_BIGG_TOKENIZER_REPO,
    T5_TOKENIZER_REPO,
    cache_folder_name,
    write_clip_tokenizer_files,
)
from training_container.kohya_config import SD_SCRIPTS_TAG
from training_container.testing.tiny_flow_models import tiny_t5_tokenizer

SD_SCRIPTS_DIR_ENV = "SD_SCRIPTS_DIR"
SD_SCRIPTS_PYTHON_ENV = "SD_SCRIPTS_PYTHON"
SKIP_REASON = (
    f"real sd-scripts not configured: set {SD_SCRIPTS_DIR_ENV} to a checkout of kohya-ss/sd-scripts "
    f"{SD_SCRIPTS_TAG} and {SD_SCRIPTS_PYTHON_ENV} to a Python with its requirements installed "
    "(`make real-engine-tests` does both; see docs/real-engine-tests.md)"
)


@dataclass(frozen=True)
class SdScriptsSetup:
    directory: Path
    python: Path


def sd_scripts_setup() -> SdScriptsSetup | None:
    """The configured checkout and interpreter, or None (the tests then skip with SKIP_REASON)."""
    directory, python = os.environ.get(SD_SCRIPTS_DIR_ENV), os.environ.get(SD_SCRIPTS_PYTHON_ENV)
    if not directory or not python:
        return None
    setup = SdScriptsSetup(Path(directory), Path(python))
    if not (setup.directory / "train_network.py").is_file() or not setup.python.exists():
        return None
    return setup


def sd_scripts_python(setup: SdScriptsSetup, *args: str, timeout: float = 900) -> str:
    """Run sd-scripts' interpreter on ``args`` from its checkout, with the checkout on the path
    (as the image runs it); returns what it printed, and raises if it failed."""
    result = subprocess.run(
        [str(setup.python), "-W", "ignore", *args],
        cwd=setup.directory,
        env={**os.environ, "PYTHONPATH": str(setup.directory)},
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        timeout=timeout,
    )
    return result.stdout


def accelerate_launcher(python: Path) -> list[str]:
    """``accelerate launch`` from sd-scripts' interpreter, as the image's command line has it."""
    return [str(python.parent / "accelerate"), "launch", "--num_cpu_threads_per_process", "1"]


def write_tokenizer_cache(folder: Path) -> Path:
    """sd-scripts' ``--tokenizer_cache_dir`` layout, built offline: both CLIPs from open_clip's BPE
    file, and the tiny T5 tokenizer (a SentencePiece-style vocabulary; FLUX.1 and SD 3.5 load it
    with ``T5TokenizerFast``, library/strategy_flux.py line 27, strategy_sd3.py line 31)."""
    write_clip_tokenizer_files(folder / cache_folder_name(CLIP_L_TOKENIZER_REPO))
    write_clip_tokenizer_files(folder / cache_folder_name(OPEN_CLIP_BIGG_TOKENIZER_REPO), pad_token="!")
    _write_t5_tokenizer_for_transformers_4(folder / cache_folder_name(T5_TOKENIZER_REPO))
    return folder


def _write_t5_tokenizer_for_transformers_4(folder: Path) -> None:
    """The tiny T5 tokenizer as sd-scripts' transformers (4.54.1) reads it. The project's
    transformers 5 writes ``extra_special_tokens`` as a list, which 4.x's ``from_pretrained`` takes
    for a dict and fails on (``'list' object has no attribute 'keys'``). Only tests meet this: the
    image bakes the real tokenizer with its own transformers (bake_assets.bake_t5_tokenizer)."""
    tiny_t5_tokenizer().save_pretrained(str(folder))
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("extra_special_tokens") == []:
        del config["extra_special_tokens"]
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")


@dataclass(frozen=True)
class RealRunConfig:
    """A config small enough for 2 CPU steps on a full-size SD 1.5 at 64 px."""

    fm_type: FmType = FmType.SD15
    user: dict[str, Any] = field(
        default_factory=lambda: {
            "resolution": 64,
            "min_bucket_reso": 64,
            "max_bucket_reso": 128,
            "network_dim": 4,
            "network_alpha": 1,
            "optimizer_type": "AdamW",
            "lr_scheduler": "constant",
            "mixed_precision": "no",
            "save_precision": "float",
            "max_train_steps": 2,
            "max_data_loader_n_workers": 0,
            "cache_latents": False,
            "seed": 1,
        }
    )

    def normalised(self) -> dict[str, ParamValue]:
        config, problems = validate_config(self.user, self.fm_type)
        assert not problems, problems
        return config


REAL_RUN_CONFIG = RealRunConfig()
