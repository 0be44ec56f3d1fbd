"""Record what real sd-scripts (under ``accelerate launch``) prints when a job dies.

The failure classifier (``training_container.errors.classify_engine_failure``) is tested against
these recordings (``tests/container/fixtures/sd_scripts_failures/<case>.log``), so its patterns
come from the real engine, not from a stand-in. Each case writes the TOMLs the service's
wrapper writes for a valid config, then breaks them the way a past bug or a bad dataset did.

Usage (from the repository root, with the project's venv; minutes per case on CPU):

    SD_SCRIPTS_DIR=/work/sd-scripts SD_SCRIPTS_PYTHON=/work/sd-venv/bin/python \\
    SD15_CHECKPOINT=/path/to/random-sd15.safetensors \\
    python -m tests.container.real_engine.record_failures [CASE ...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import toml

from tests.container.real_engine.harness import (
    REAL_RUN_CONFIG,
    accelerate_launcher,
    sd_scripts_setup,
    write_tokenizer_cache,
)
from training_container.dataset_staging import validate_dataset
from training_container.kohya_config import build_kohya_configs
from training_container.testing.tiny_models import make_tiny_dataset

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sd_scripts_failures"
Breaker = Callable[[dict[str, Any], dict[str, Any], Path], None]


def _adafactor_schedule(training: dict[str, Any], dataset: dict[str, Any], images: Path) -> None:
    training["lr_scheduler"] = "adafactor"  # with AdamW: get_scheduler_fix asserts


def _string_token_length(training: dict[str, Any], dataset: dict[str, Any], images: Path) -> None:
    training["max_token_length"] = "150"  # the string the service used to write


def _json_boolean(training: dict[str, Any], dataset: dict[str, Any], images: Path) -> None:
    training["optimizer_type"] = "Prodigy"
    training["optimizer_args"] = ["decouple=true"]  # ast.literal_eval cannot read "true"


def _empty_caption(training: dict[str, Any], dataset: dict[str, Any], images: Path) -> None:
    next(images.rglob("*.txt")).write_text("", encoding="utf-8")


def _out_of_memory(training: dict[str, Any], dataset: dict[str, Any], images: Path) -> None:
    """Nothing to break: the run gets a memory limit below what loading the model needs."""


CASES: dict[str, Breaker] = {
    "adafactor_scheduler": _adafactor_schedule,
    "max_token_length_string": _string_token_length,
    "optimizer_args_json_boolean": _json_boolean,
    "empty_caption": _empty_caption,
    "out_of_memory": _out_of_memory,
}
MEMORY_LIMIT_KIB = 6 * 1024 * 1024  # address space: torch imports fit, the 4 GB model does not


def record(case: str, checkpoint: Path, work: Path) -> Path:
    setup = sd_scripts_setup()
    assert setup is not None, "set SD_SCRIPTS_DIR and SD_SCRIPTS_PYTHON"
    images = make_tiny_dataset(work / "data", concept="demo", repeats=1, n_images=2, size=(64, 64))
    files = build_kohya_configs(
        fm_type=REAL_RUN_CONFIG.fm_type,
        config=REAL_RUN_CONFIG.normalised(),
        dataset=validate_dataset(images),
        model_path=checkpoint,
        output_dir=work / "out",
        output_name="lora",
        work_dir=work / "kohya",
        sd_scripts_dir=setup.directory,
        tokenizer_cache_dir=write_tokenizer_cache(work / "tokenizers"),
        launcher=accelerate_launcher(setup.python),
    )
    training, dataset = toml.load(files.training_config), toml.load(files.dataset_config)
    CASES[case](training, dataset, images)
    files.training_config.write_text(toml.dumps(training), encoding="utf-8")
    files.dataset_config.write_text(toml.dumps(dataset), encoding="utf-8")
    command = files.command
    if case == "out_of_memory":
        command = ["bash", "-c", f'ulimit -v {MEMORY_LIMIT_KIB} && exec "$@"', "limited", *command]
    # One stream, as the engine reads it (stderr merged into stdout, in order).
    result = subprocess.run(
        command, cwd=setup.directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    FIXTURES.mkdir(parents=True, exist_ok=True)
    target = FIXTURES / f"{case}.log"
    output = result.stdout.replace(str(work), "/opt/ml/work")
    target.write_text(f"# exit status {result.returncode}\n{output}", encoding="utf-8")
    return target


def main(cases: list[str]) -> int:
    checkpoint = Path(os.environ["SD15_CHECKPOINT"])
    for case in cases or list(CASES):
        with tempfile.TemporaryDirectory(prefix=f"record-{case}-") as folder:
            print(f"{case}: {record(case, checkpoint, Path(folder))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
