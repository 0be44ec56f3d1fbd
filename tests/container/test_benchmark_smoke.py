"""The GPU training benchmark's code path, run on CPU with the tiny models (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_benchmark_runs_every_variation_on_the_tiny_models(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    command = [
        sys.executable, str(ROOT / "benchmarks/bench_training_gpu.py"), "--tiny", "--device", "cpu",
        "--families", "sd15", "--batches", "1", "--steps", "1", "--warmup", "0", "--json", str(out),
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(out.read_text())
    settings = [r["settings"] for r in results]
    assert {s["cache_latents"] for s in settings} == {True, False}
    assert {s["gradient_checkpointing"] for s in settings} == {True, False}
    assert {"AdamW", "AdamW-fused"} <= {s["optimizer"] for s in settings}
    assert all(r["images_per_s"] > 0 and r["tflop_per_step"] > 0 for r in results)
