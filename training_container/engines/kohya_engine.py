"""The sd-scripts engine: run the family's script (``train_network.py``, ``sdxl_train_network.py``,
``flux_train_network.py`` or ``sd3_train_network.py``) as a child process and follow its output.

Progress comes from sd-scripts' console: the tqdm bar (``steps:  5%|▊ | 100/2000 [00:57<18:14,
1.74it/s, avr_loss=0.0725]``, redrawn with ``\\r``), ``epoch k/N`` lines and the
``total optimization steps`` banner. sd-scripts exits 0 even when it found no images, so the
output file is checked afterwards. A crash is reported by its real cause: the child's last
exception line, classified by ``training_container.errors.classify_engine_failure`` (accelerate's
own ``CalledProcessError`` wrapper is always the last line and says nothing). A stop request
forwards SIGTERM to the child; sd-scripts' last per-epoch state (``save_state``) in the
checkpoints folder is what a restart resumes from.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from functions.domain.training_contract import Engine, TrainingPhase
from training_container.clip_tokenizers import TOKENIZER_CACHE_DIR_ENV
from training_container.engines.base import EngineRequest, EngineResult
from training_container.errors import JobFailure, classify_engine_failure
from training_container.kohya_config import ACCELERATE_LAUNCH, build_kohya_configs, no_upscale_bucket_problems

logger = logging.getLogger(__name__)

LAUNCHER_ENV = "LORA_KOHYA_LAUNCHER"  # JSON list replacing `accelerate launch ...` (tests, debugging)
STOP_GRACE_SECONDS = 90.0
# Console lines kept for the failure reason: a Python traceback plus accelerate's wrapper around it.
FAILURE_TAIL_LINES = 400
_STEPS_BAR = re.compile(
    r"^steps:\s+\d+%\|[^|]*\|\s*(?P<step>\d+)/(?P<total>\d+)\s*"
    r"\[(?P<elapsed>[\d:]+)<(?P<eta>[\d:?]+)(?P<rest>[^\]]*)\]"
)
_AVR_LOSS = re.compile(r"avr_loss=(?P<loss>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))")
_EPOCH = re.compile(r"^epoch (?P<epoch>\d+)/(?P<total>\d+)\s*$")
_TOTAL_STEPS = re.compile(r"total optimization steps[^:]*:\s*(?P<total>\d+)")
_CACHING = re.compile(r"caching latents|caching text encoder outputs", re.IGNORECASE)


@dataclass
class KohyaProgress:
    step: int = 0
    total_steps: int | None = None
    epoch: int = 0
    total_epochs: int | None = None
    loss: float | None = None
    eta_seconds: float | None = None
    caching: bool = False


def clock_seconds(text: str) -> float | None:
    """tqdm's ``MM:SS`` / ``H:MM:SS`` -> seconds (``?`` -> None)."""
    if "?" in text:
        return None
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds


def parse_kohya_line(line: str, progress: KohyaProgress) -> bool:
    """Update ``progress`` from one console line; True when the line carried progress."""
    line = line.strip()
    if match := _STEPS_BAR.match(line):
        progress.step, progress.total_steps = int(match["step"]), int(match["total"])
        progress.eta_seconds = clock_seconds(match["eta"])
        if loss := _AVR_LOSS.search(match["rest"]):
            progress.loss = float(loss["loss"])
        progress.caching = False
        return True
    if match := _EPOCH.match(line):
        progress.epoch, progress.total_epochs = int(match["epoch"]), int(match["total"])
        return True
    if match := _TOTAL_STEPS.search(line):
        progress.total_steps = int(match["total"])
        return True
    if _CACHING.search(line):
        progress.caching = True
        return True
    return False


def is_step_line(line: str) -> bool:
    """The step bar (the curve's points), not an epoch banner or caching line."""
    return _STEPS_BAR.match(line.strip()) is not None


def _record_point(request: EngineRequest, state: KohyaProgress) -> None:
    """A point of the loss curve; a redraw of the same step (new postfix) replaces it.

    sd-scripts prints only ``avr_loss`` (its moving average) on the console; the learning rate
    goes to TensorBoard alone (``lr/unet`` with ``--logging_dir``), which the image does not read,
    so the curve's ``learning_rate`` is null for this engine.
    """
    if request.metrics is not None and state.step > 0:
        request.metrics.record(
            step=state.step, epoch=state.epoch, loss=state.loss, total_steps=state.total_steps
        )


def console_lines(stream: IO[bytes]) -> Iterator[str]:
    """Lines of a child's output split on ``\\n`` *and* ``\\r`` (tqdm redraws with ``\\r``)."""
    pending = b""
    while chunk := stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096):
        pending += chunk
        *complete, pending = re.split(rb"[\r\n]", pending)
        for raw in complete:
            if raw:
                yield raw.decode("utf-8", errors="replace")
    if pending:
        yield pending.decode("utf-8", errors="replace")


def launcher() -> Sequence[str]:
    configured = os.environ.get(LAUNCHER_ENV)
    return tuple(json.loads(configured)) if configured else ACCELERATE_LAUNCH


def _report(request: EngineRequest, state: KohyaProgress) -> None:
    fields: dict[str, Any] = {
        "phase": TrainingPhase.CACHING if state.caching else TrainingPhase.TRAINING,
        "step": state.step,
        "total_steps": state.total_steps,
        "epoch": state.epoch,
        "total_epochs": state.total_epochs,
        "loss": state.loss,
        "eta_seconds": state.eta_seconds,
    }
    request.progress.update(**{k: v for k, v in fields.items() if v is not None})


def _forward_stop(request: EngineRequest, process: subprocess.Popen[bytes]) -> threading.Thread:
    def watch() -> None:
        while process.poll() is None:
            if request.stop_requested.wait(0.5):
                logger.warning("forwarding stop request to sd-scripts (pid %d)", process.pid)
                process.terminate()
                try:
                    process.wait(STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                return

    thread = threading.Thread(target=watch, name="kohya-stop", daemon=True)
    thread.start()
    return thread


def run_kohya_engine(request: EngineRequest, sd_scripts_dir: Path) -> EngineResult:
    """Write sd-scripts' configs, run it, stream its log, and check that it produced the LoRA."""
    started = time.monotonic()
    too_small = no_upscale_bucket_problems(request.config, request.dataset)
    if too_small:
        steps = request.config.get("bucket_reso_steps", 64)
        raise JobFailure(
            f"data problem: {len(too_small)} image(s) have a side shorter than bucket_reso_steps "
            f"({steps} px) and bucket_no_upscale is on, which sd-scripts cannot bucket: "
            f"{', '.join(too_small[:5])}; "
            "use larger images, a smaller bucket_reso_steps, or bucket_no_upscale false"
        )
    tokenizer_dir = os.environ.get(TOKENIZER_CACHE_DIR_ENV)
    files = build_kohya_configs(
        fm_type=request.fm_type,
        config=request.config,
        dataset=request.dataset,
        model_path=request.model_path,
        output_dir=request.output_dir,
        output_name=request.output_name,
        work_dir=request.work_dir / "kohya",
        sd_scripts_dir=sd_scripts_dir,
        tokenizer_cache_dir=Path(tokenizer_dir) if tokenizer_dir else None,
        launcher=launcher(),
        sample_prompts=request.sample_prompts,
        trigger_word=request.trigger_word,
        component_paths=request.component_paths,
    )
    logger.info("running %s", " ".join(files.command))
    state = KohyaProgress()
    process = subprocess.Popen(
        files.command, cwd=sd_scripts_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    _forward_stop(request, process)
    assert process.stdout is not None
    tail: deque[str] = deque(maxlen=FAILURE_TAIL_LINES)
    for line in console_lines(process.stdout):
        print(line, flush=True)  # the job's log (CloudWatch via stdout)
        tail.append(line)
        if parse_kohya_line(line, state):
            _report(request, state)
            if is_step_line(line):
                _record_point(request, state)
    return_code = process.wait()
    seconds = time.monotonic() - started
    if request.stop_requested.is_set():
        return EngineResult(Engine.KOHYA, None, state.step, state.epoch, state.loss, seconds)
    if return_code != 0:
        failure = classify_engine_failure(list(tail), return_code)
        logger.error("sd-scripts failed (%s): %s", failure.kind.value, failure.cause)
        raise failure.as_exception(return_code)
    lora = request.output_dir / f"{request.output_name}.safetensors"
    if not lora.is_file():
        raise JobFailure(
            "sd-scripts finished without writing the LoRA; it usually means it found no trainable "
            "images in the dataset"
        )
    request.progress.update(phase=TrainingPhase.SAVING, force=True)
    return EngineResult(
        Engine.KOHYA, lora, state.step, state.epoch or state.total_epochs or 0, state.loss, seconds
    )
