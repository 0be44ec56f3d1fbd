"""The real sd-scripts trains 2 steps on CPU through the container's entrypoint (kohya engine).

A full-size, random-weight SD 1.5 checkpoint (about 1.07 B parameters, 4.3 GB) at 64 px: sd-scripts
builds its architectures in code and loads state dicts strictly, so nothing smaller can exercise
it. The LoRA it writes must hold exactly the keys sd-scripts' own ``networks/lora.py`` gives the
same architecture. Measured on 2 CPU cores: the job 63 s, the whole test 3 min 7 s (45 s of it to
make the checkpoint, unless ``SD15_CHECKPOINT`` names one made before), 8.8 GB peak memory.

Skipped unless ``SD_SCRIPTS_DIR`` and ``SD_SCRIPTS_PYTHON`` are set; see docs/real-engine-tests.md.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors import safe_open

from functions.domain.training_contract import JOB_CHANNEL, JOB_SPEC_FILENAME, Engine, TrainingJobSpec
from tests.container.real_engine.harness import (
    REAL_RUN_CONFIG,
    SKIP_REASON,
    accelerate_launcher,
    sd_scripts_python,
    sd_scripts_setup,
    write_tokenizer_cache,
)
from training_container.testing.tiny_models import make_tiny_dataset

REAL_ENGINE = Path(__file__).parent / "real_engine"
SETUP = sd_scripts_setup()
CHECKPOINT_ENV = "SD15_CHECKPOINT"  # reuse a checkpoint make_random_sd15.py wrote before
pytestmark = [pytest.mark.slow, pytest.mark.skipif(SETUP is None, reason=SKIP_REASON)]


@pytest.fixture(scope="module")
def random_sd15(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get(CHECKPOINT_ENV)
    if configured and Path(configured).is_file():
        return Path(configured)
    assert SETUP is not None
    path = tmp_path_factory.mktemp("sd15") / "random-sd15.safetensors"
    sd_scripts_python(SETUP, str(REAL_ENGINE / "make_random_sd15.py"), str(path))
    return path


def _job_root(root: Path, checkpoint: Path) -> Path:
    model_channel = root / "input" / "data" / "model"
    model_channel.mkdir(parents=True)
    (model_channel / "base.safetensors").symlink_to(checkpoint)
    make_tiny_dataset(
        root / "input" / "data" / "dataset", concept="demo", repeats=1, n_images=2, size=(64, 64)
    )
    spec = TrainingJobSpec(
        job_id="real-1",
        fm_type=REAL_RUN_CONFIG.fm_type,
        engine=Engine.KOHYA,
        output_name="real-lora",
        base_model_filename="base.safetensors",
        config=REAL_RUN_CONFIG.normalised(),
    )
    (root / "input" / "data" / JOB_CHANNEL).mkdir(parents=True)
    (root / "input" / "data" / JOB_CHANNEL / JOB_SPEC_FILENAME).write_text(spec.to_json())
    return root


def test_two_real_steps_write_the_lora_sd_scripts_itself_would(random_sd15: Path, tmp_path: Path) -> None:
    assert SETUP is not None
    root = _job_root(tmp_path / "opt_ml", random_sd15)
    env = {
        **os.environ,
        "SD_SCRIPTS_DIR": str(SETUP.directory),
        "LORA_TOKENIZER_CACHE_DIR": str(write_tokenizer_cache(tmp_path / "tokenizers")),
        "LORA_KOHYA_LAUNCHER": json.dumps(accelerate_launcher(SETUP.python)),
    }
    started = time.monotonic()

    result = subprocess.run(
        [sys.executable, "-m", "training_container.entrypoint", "--root", str(root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1800,
        check=False,
    )

    seconds = time.monotonic() - started
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    print(f"real sd-scripts, 2 CPU steps at 64 px: {seconds:.0f} s, largest process {peak_gib:.1f} GiB")
    assert result.returncode == 0, result.stdout[-4000:]
    summary = json.loads((root / "model" / "summary.json").read_text())
    assert summary["engine"] == "kohya" and summary["steps"] == 2 and summary["final_loss"] is not None
    with safe_open(str(root / "model" / "real-lora.safetensors"), framework="pt") as lora:
        keys = sorted(lora.keys())
        metadata = lora.metadata()
    assert metadata["ss_network_module"] == "networks.lora" and metadata["ss_base_model_version"] == "sd_v1"
    config = REAL_RUN_CONFIG.normalised()
    expected = json.loads(
        sd_scripts_python(
            SETUP, str(REAL_ENGINE / "lora_keys.py"), str(config["network_dim"]), str(config["network_alpha"])
        ).splitlines()[-1]
    )
    assert keys == expected
