"""CPU benchmark of the diffusers engine on the tiny models, through the full entrypoint.

Prints, per model family: seconds per training step, the fixed cost of a job (model loading,
caching, staging) and the entrypoint's overhead outside the engine (reading inputs, staging and
validating the dataset, publishing) as a share of the job's total time. Two runs with different
step counts separate the per-step
cost from the fixed cost.

Usage: ``.venv/bin/python benchmarks/bench_training_cpu.py [--steps 20]``
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from functions.domain.catalog import FmType
from functions.domain.kohya_params import validate_config
from functions.domain.training_contract import (
    JOB_CHANNEL,
    JOB_SPEC_FILENAME,
    TrainingJobSpec,
    TrainingSummary,
)
from training_container.entrypoint import run_job
from training_container.testing.tiny_models import make_tiny_dataset, save_tiny_checkpoint

BENCH_CONFIG = {
    "resolution": 256,
    "min_bucket_reso": 256,
    "network_dim": 4,
    "network_alpha": 2,
    "network_train_unet_only": False,
}


def prepare_job(root: Path, fm_type: FmType, steps: int) -> Path:
    save_tiny_checkpoint(fm_type, root / "input/data/model/base.safetensors")
    make_tiny_dataset(root / "input/data/dataset", repeats=2, n_images=4)
    config, problems = validate_config({**BENCH_CONFIG, "max_train_steps": steps}, fm_type)
    if problems:
        raise SystemExit(f"invalid benchmark config: {problems}")
    spec = TrainingJobSpec(
        job_id="bench",
        fm_type=fm_type,
        engine="diffusers",
        output_name="bench",
        base_model_filename="base.safetensors",
        config=config,
    )
    (root / "input/data" / JOB_CHANNEL).mkdir(parents=True)
    (root / "input/data" / JOB_CHANNEL / JOB_SPEC_FILENAME).write_text(spec.to_json())
    return root


def timed_job(fm_type: FmType, steps: int) -> tuple[float, TrainingSummary]:
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        root = prepare_job(Path(folder), fm_type, steps)
        started = time.perf_counter()
        if run_job(root) != 0:
            raise SystemExit((root / "output/failure").read_text())
        wall = time.perf_counter() - started
        return wall, TrainingSummary.model_validate_json((root / "model/summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {args.steps} steps per run")
    print(f"{'family':8} {'s/step':>8} {'fixed s':>8} {'total s':>8} {'overhead':>9}")
    for fm_type in FmType:
        short_wall, _ = timed_job(fm_type, 2)
        long_wall, summary = timed_job(fm_type, args.steps + 2)
        per_step = (long_wall - short_wall) / args.steps
        fixed = long_wall - per_step * summary.steps
        outside_loop = long_wall - summary.training_seconds
        share = outside_loop / long_wall
        print(f"{fm_type.value:8} {per_step:8.3f} {fixed:8.2f} {long_wall:8.2f} {share:8.1%}")


if __name__ == "__main__":
    main()
