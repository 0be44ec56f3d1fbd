"""A stand-in training container for the local SageMaker's tests: follows the same folder
contract as ``training_container.entrypoint`` in milliseconds, without torch.

Its behaviour comes from the ``behaviour`` hyperparameter: ``succeed`` (write progress and a
model file), ``fail`` (write ``output/failure`` and exit 1), ``sleep`` (report progress until
SIGTERM, then save a checkpoint and exit 0, as the real entrypoint does on a stop request),
``finish_despite_stop`` (on SIGTERM publish the model and ``summary.json`` and exit 0: a stop
racing completion).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    root = parser.parse_args().root
    started = time.monotonic()
    hyperparameters = json.loads((root / "input/config/hyperparameters.json").read_text())
    behaviour = hyperparameters.get("behaviour", "succeed")
    dataset_files = sorted(p.name for p in (root / "input/data").rglob("*") if p.is_file())
    (root / "checkpoints/progress.json").write_text(
        json.dumps({"phase": "training", "step": 1, "files": dataset_files})
    )
    if behaviour == "fail":
        (root / "output/failure").write_text("the dataset has no images (fake container)")
        return 1
    if behaviour == "sleep":
        stopping = False

        def on_term(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, on_term)
        step = 1
        while not stopping:
            step += 1
            (root / "checkpoints/progress.json").write_text(json.dumps({"phase": "training", "step": step}))
            time.sleep(0.1)
        (root / "checkpoints/state.bin").write_bytes(b"resume")
        return 0
    if behaviour == "finish_despite_stop":  # the stop arrives while it writes its final outputs
        stop_arrived = False

        def finish(signum: int, frame: FrameType | None) -> None:
            nonlocal stop_arrived
            stop_arrived = True

        signal.signal(signal.SIGTERM, finish)
        (root / "checkpoints/ready").write_text("handler installed")
        while not stop_arrived and time.monotonic() < started + 30:
            time.sleep(0.05)
        (root / "model/out.safetensors").write_bytes(b"fake lora")
        (root / "model/summary.json").write_text(json.dumps({"steps": 2}))
        return 0
    print("fake container: training", flush=True)
    sys.stdout.write("steps: 1/2\rsteps: 2/2\n")  # a tqdm bar redrawn with carriage returns
    sys.stdout.flush()
    print("fake container: saved " + "x" * 100_000, file=sys.stderr, flush=True)  # longer than an event
    (root / "model/out.safetensors").write_bytes(b"fake lora")
    return 0


if __name__ == "__main__":
    sys.exit(main())
