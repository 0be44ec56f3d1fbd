"""The container's code under the training image's own Python stack, not the project's venv.

The image runs sd-scripts' pinned requirements (diffusers 0.32.1, transformers 4.54.1, accelerate
1.6.0), its base image's torch (2.5.1) and what the image adds
(training_container/image-requirements.txt: peft 0.15.2, ...); the project's venv has newer
diffusers and transformers. ``make real-engine-tests`` installs the image's stack into
``SD_SCRIPTS_PYTHON`` (tests/container/real_engine/setup_sd_scripts.sh), and these tests run the
container's code with it: every module imports, and the diffusers engine (``engine: diffusers``
jobs on SageMaker) trains each family from the files users upload through the entrypoint, reading
the T5 tokenizer from the baked cache as in the image. The LoRA must be the one the project's venv
writes, and for FLUX.1 / SD 3.5 exactly what sd-scripts' own lora_flux / lora_sd3 make.

Skipped unless ``SD_SCRIPTS_DIR`` and ``SD_SCRIPTS_PYTHON`` are set; see docs/real-engine-tests.md.
About 2 minutes on 2 CPU cores.
"""

from __future__ import annotations

import functools
import os
import pkgutil
import subprocess
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import training_container
from functions.domain.families import FmType
from tests.container.real_engine.harness import (
    SKIP_REASON,
    SdScriptsSetup,
    sd_scripts_setup,
    write_tokenizer_cache,
)
from tests.container.test_real_sd_scripts_flow_lora import sd_scripts_lora
from tests.container.upload_jobs import lay_out_upload_job
from training_container.clip_tokenizers import TOKENIZER_CACHE_DIR_ENV
from training_container.engines.families.flux1_files import T5_VOCAB_METADATA_KEY
from training_container.entrypoint import run_job
from training_container.testing.tiny_flow_models import save_tiny_model_files

SETUP = sd_scripts_setup()
pytestmark = pytest.mark.skipif(SETUP is None, reason=SKIP_REASON)
FLOW = (FmType.FLUX1, FmType.SD35)
REPO = Path(__file__).resolve().parents[2]


@functools.cache
def _has_the_image_additions(python: Path) -> bool:
    """Asked once per session: each test would otherwise start the interpreter once more."""
    return subprocess.run([str(python), "-c", "import peft"], capture_output=True).returncode == 0


def _run(setup: SdScriptsSetup, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The container's code (this repository on the path) with the image's interpreter."""
    if not _has_the_image_additions(setup.python):
        pytest.skip(
            f"{setup.python} lacks the image's additions (peft, ...): run "
            "tests/container/real_engine/setup_sd_scripts.sh (make real-engine-tests) again"
        )
    return subprocess.run(
        [str(setup.python), "-W", "ignore", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_every_container_module_imports_under_the_image_stack() -> None:
    assert SETUP is not None
    modules = [
        info.name
        for info in pkgutil.walk_packages(training_container.__path__, "training_container.")
        if not info.name.startswith("training_container.testing")  # excluded from the image
    ]
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = _run(SETUP, ["-c", script, *modules], {})
    assert result.returncode == 0, result.stderr[-3000:]


def _as_uploaded_for_the_image(files: dict[str, Path]) -> dict[str, Path]:
    """The tiny files without the T5 vocabulary test models carry, so the engine reads the T5
    tokenizer from the baked cache, as it does with real files in the image."""
    t5 = files.get("t5xxl")
    if t5 is not None:
        with safe_open(str(t5), framework="pt") as handle:
            metadata = dict(handle.metadata())
        metadata.pop(T5_VOCAB_METADATA_KEY)
        save_file(load_file(str(t5)), str(t5), metadata)
    return files


def _shapes(path: Path) -> dict[str, list[int]]:
    return {key: list(tensor.shape) for key, tensor in load_file(str(path)).items()}


PROMPTS = [{"prompt": "demo, a square", "width": 64, "height": 64, "steps": 2, "seed": 1}]


@pytest.mark.parametrize("family", list(FmType))
def test_the_diffusers_engine_trains_under_the_image_stack(
    family: FmType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert SETUP is not None
    files = _as_uploaded_for_the_image(save_tiny_model_files(family, tmp_path / "files"))
    jobs = {
        where: lay_out_upload_job(
            tmp_path / where,
            family,
            files,
            base_name="base.safetensors",
            output_name="lora",
            sample_prompts=PROMPTS,
        )
        for where in ("image", "project")
    }
    tokenizers = write_tokenizer_cache(tmp_path / "tokenizers")

    result = _run(
        SETUP,
        ["-m", "training_container.entrypoint", "--root", str(jobs["image"])],
        {TOKENIZER_CACHE_DIR_ENV: str(tokenizers)},
    )

    failure = jobs["image"] / "output" / "failure"
    assert result.returncode == 0, failure.read_text() if failure.exists() else result.stderr[-3000:]
    image_lora = jobs["image"] / "model" / "lora.safetensors"
    assert list((jobs["image"] / "model" / "samples").rglob("*.png")), "no sample rendered"
    monkeypatch.setenv(TOKENIZER_CACHE_DIR_ENV, str(tokenizers))
    assert run_job(jobs["project"]) == 0
    assert _shapes(image_lora) == _shapes(jobs["project"] / "model" / "lora.safetensors")
    if family in FLOW:
        theirs = sd_scripts_lora(SETUP, family, files["checkpoint"])
        assert _shapes(image_lora) == theirs["lora"]
