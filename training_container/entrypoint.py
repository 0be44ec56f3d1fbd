"""The training container's entrypoint: SageMaker's contract, one function per stage.

    read_job_inputs -> stage_dataset -> (build_kohya_configs) -> run_engine -> publish_outputs

Usage: ``python -m training_container.entrypoint [--root /opt/ml]`` (the image's ``train``
command). The root defaults to ``$LORA_OPT_ML_ROOT`` or ``/opt/ml``; the local runtime points it
at a job folder with the same layout.

Exit status: 0 when the LoRA is published, and also when a stop request (SIGTERM: StopTrainingJob,
spot interruption) was honoured after saving resumable state to ``<root>/checkpoints`` — SageMaker
decides the job's final status (Stopped, or restarted on a new spot instance, which then
resumes); 1 for a problem the user can fix (reason in ``<root>/output/failure``); 2 for an
internal error (reason in the same file).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from pydantic import ValidationError
from safetensors import safe_open

from functions.domain.captioning import CACHE_CHANNEL, CAPTIONING_JOB_KIND, CaptioningJobSpec
from functions.domain.families import FAMILIES, ComponentRole
from functions.domain.kohya_params import ParamValue, validate_config
from functions.domain.storage_layout import SUMMARY_FILENAME
from functions.domain.training_contract import (
    CHECKPOINTS_FOLDER,
    DATASET_CHANNEL,
    FAILURE_FILE,
    JOB_CHANNEL,
    JOB_SPEC_FILENAME,
    LORA_FILENAME_SUFFIX,
    MODEL_CHANNEL,
    MODEL_FOLDER,
    OPT_ML_DEFAULT,
    Engine,
    TrainingJobSpec,
    TrainingPhase,
    TrainingSummary,
)
from training_container.dataset_staging import StagedDataset
from training_container.dataset_staging import stage_dataset as stage_dataset_folder
from training_container.engines.base import EngineRequest, EngineResult
from training_container.epoch_publishing import (
    EpochFiles,
    collect_epoch_files,
    publish_epoch_files,
    sha256_of,
)
from training_container.errors import JobFailure
from training_container.metrics import MetricsRecorder
from training_container.model_loading import ensure_family, read_checkpoint_header
from training_container.progress import ProgressReporter, write_json_atomically

logger = logging.getLogger("training_container")

ROOT_ENV = "LORA_OPT_ML_ROOT"
WORK_DIR_ENV = "LORA_WORK_DIR"  # scratch space; defaults to <root>/work
SD_SCRIPTS_DIR_ENV = "SD_SCRIPTS_DIR"  # set in the image; kohya is used when train_network.py is there
JOB_SPEC_FILE = f"input/data/{JOB_CHANNEL}/{JOB_SPEC_FILENAME}"  # the job channel (training_contract)
EXIT_OK, EXIT_USER_ERROR, EXIT_INTERNAL_ERROR = 0, 1, 2
# sd-scripts' key prefixes: lora_unet_ for the denoiser, and each family's text-encoder prefixes.
KOHYA_LORA_PREFIXES = (
    "lora_unet_",
    *sorted({f"{prefix}_" for spec in FAMILIES.values() for prefix in spec.lora_text_encoder_prefixes}),
)
DIFFUSERS_EPOCH_FOLDER = "diffusers_epochs"  # inside the checkpoints folder: survives spot restarts


@dataclass(frozen=True)
class JobPaths:
    """The SageMaker folder layout under one root."""

    root: Path

    @property
    def job_spec(self) -> Path:
        return self.root / JOB_SPEC_FILE

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.root / MODEL_FOLDER

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / CHECKPOINTS_FOLDER

    @property
    def failure_file(self) -> Path:
        return self.root / FAILURE_FILE

    @property
    def work_dir(self) -> Path:
        return Path(os.environ.get(WORK_DIR_ENV) or self.root / "work")


@dataclass(frozen=True)
class JobInputs:
    spec: TrainingJobSpec
    config: dict[str, ParamValue]
    model_path: Path
    dataset_dir: Path
    component_paths: dict[ComponentRole, Path] = field(default_factory=dict)


def component_paths(spec: TrainingJobSpec, paths: JobPaths) -> dict[ComponentRole, Path]:
    """Each component file of the job, in the input channel named after its role.

    Every component the family requires must be named and present (the API checks the names
    first; this is the container's own check, before anything is loaded).
    """
    slots = {slot.role: slot for slot in FAMILIES[spec.fm_type].components}
    unknown = sorted(role.value for role in spec.component_filenames if role not in slots)
    if unknown:
        raise JobFailure(f"{FAMILIES[spec.fm_type].display_name} jobs take no component {', '.join(unknown)}")
    missing = [
        slot.description
        for slot in slots.values()
        if slot.required and slot.role not in spec.component_filenames
    ]
    if missing:
        raise JobFailure(f"the job spec names no file for {'; '.join(missing)}")
    found: dict[ComponentRole, Path] = {}
    for role, filename in spec.component_filenames.items():
        path = paths.channel(role.value) / filename
        if not path.is_file():
            raise JobFailure(f"component {role.value} file {filename} not found in the {role.value} channel")
        found[role] = path
    return found


def ensure_components_readable(components: dict[ComponentRole, Path]) -> None:
    """Read each component's safetensors header (no tensor): a truncated or foreign file fails
    the job before the long load of the base model, with a message naming its role."""
    for role, path in components.items():
        read_checkpoint_header(path, what=f"component {role.value} file")


def _problems_text(problems: Sequence[object]) -> str:
    return "; ".join(f"{getattr(p, 'field', '?')} {getattr(p, 'problem', p)}" for p in problems)


def read_job_inputs(root: Path) -> JobInputs:
    """Stage 1: the job spec (config re-validated: defence in depth) and the input channels."""
    paths = JobPaths(root)
    try:
        spec = TrainingJobSpec.from_json(paths.job_spec.read_bytes())
    except FileNotFoundError as error:
        raise JobFailure(f"job spec file {JOB_SPEC_FILE} is missing") from error
    except ValidationError as error:
        raise JobFailure(f"job spec is invalid: {error}".splitlines()[0]) from error
    config, problems = validate_config(spec.config, spec.fm_type, merge_defaults=False)
    if problems:
        raise JobFailure(f"training parameters are invalid: {_problems_text(problems)}")
    model_channel = paths.channel(MODEL_CHANNEL)
    model_path = model_channel / spec.base_model_filename
    if model_channel.is_dir() and not model_path.exists() and (model_channel / "model_index.json").is_file():
        model_path = model_channel  # the channel itself is a diffusers folder
    if not model_path.exists():
        present = sorted(p.name for p in model_channel.iterdir()) if model_channel.is_dir() else []
        raise JobFailure(
            f"base model {spec.base_model_filename} not found in the model channel "
            f"(found: {', '.join(present) or 'nothing'})"
        )
    return JobInputs(spec, config, model_path, paths.channel(DATASET_CHANNEL), component_paths(spec, paths))


def stage_dataset(inputs: JobInputs, work_dir: Path) -> StagedDataset:
    """Stage 2: a writable, validated copy of the dataset channel."""
    return stage_dataset_folder(inputs.dataset_dir, work_dir, inputs.spec.trigger_word)


def sd_scripts_dir() -> Path | None:
    """sd-scripts' checkout when installed (the GPU image), else None."""
    configured = os.environ.get(SD_SCRIPTS_DIR_ENV)
    if configured and (Path(configured) / "train_network.py").is_file():
        return Path(configured)
    return None


def choose_engine(requested: Engine) -> Engine:
    if requested == Engine.AUTO:
        return Engine.KOHYA if sd_scripts_dir() else Engine.DIFFUSERS
    if requested == Engine.KOHYA and sd_scripts_dir() is None:
        raise JobFailure(f"engine kohya requested but sd-scripts is not installed (${SD_SCRIPTS_DIR_ENV})")
    return requested


def run_engine(request: EngineRequest, engine: Engine) -> EngineResult:
    """Stage 3+4: build the engine's configuration and train."""
    if engine == Engine.KOHYA:
        from training_container.engines.kohya_engine import run_kohya_engine

        scripts = sd_scripts_dir()
        assert scripts is not None  # choose_engine checked it
        return run_kohya_engine(request, scripts)
    from training_container.engines.diffusers_engine import run_diffusers_engine

    return run_diffusers_engine(request)


def verify_kohya_lora(path: Path) -> None:
    """The published file must be a Kohya-format LoRA with sd-scripts metadata."""
    with safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
        metadata = handle.metadata() or {}
    if not keys or not all(key.startswith(KOHYA_LORA_PREFIXES) for key in keys):
        raise RuntimeError(f"{path.name} does not hold Kohya-format LoRA keys")
    if "ss_network_module" not in metadata:
        raise RuntimeError(f"{path.name} lacks sd-scripts (ss_*) metadata")


def publish_outputs(
    result: EngineResult,
    inputs: JobInputs,
    paths: JobPaths,
    started: float,
    epoch_dir: Path | None = None,
) -> TrainingSummary:
    """Stage 5: ``<root>/model/<output_name>.safetensors`` + ``summary.json``.

    With ``save_every_n_epochs`` or sample prompts, also the intermediate LoRAs and sample images
    the engine left in ``epoch_dir`` (see ``training_container.epoch_publishing``).
    """
    spec = inputs.spec
    if result.lora_path is None or not result.lora_path.is_file():
        raise JobFailure("training finished without writing a LoRA (no images were trained?)")
    target = paths.model_dir / f"{spec.output_name}{LORA_FILENAME_SUFFIX}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if result.lora_path.resolve() != target.resolve():
        shutil.copyfile(result.lora_path, target)
    verify_kohya_lora(target)
    save_every = inputs.config.get("save_every_n_epochs")
    epoch_loras, samples = publish_epoch_files(
        collect_epoch_files(epoch_dir, spec.output_name) if epoch_dir else EpochFiles(),
        paths.model_dir,
        spec.output_name,
        final_epoch=result.epochs,
        save_every=save_every if isinstance(save_every, int) else None,
        prompt_count=len(spec.sample_prompts),
        verify_lora=verify_kohya_lora,
    )
    summary = TrainingSummary(
        job_id=spec.job_id,
        engine=result.engine,
        fm_type=spec.fm_type,
        lora_filename=target.name,
        lora_sha256=sha256_of(target),
        lora_size_bytes=target.stat().st_size,
        base_model_sha256=sha256_of(inputs.model_path) if inputs.model_path.is_file() else None,
        steps=result.steps,
        epochs=result.epochs,
        final_loss=result.final_loss,
        duration_seconds=round(time.monotonic() - started, 3),
        training_seconds=round(result.training_seconds, 3),
        epoch_loras=epoch_loras,
        samples=samples,
    )
    write_json_atomically(paths.model_dir / SUMMARY_FILENAME, summary.model_dump_json(indent=2))
    return summary


def write_failure(paths: JobPaths, reason: str) -> None:
    """SageMaker shows the first 1 KiB of this file as the job's FailureReason."""
    paths.failure_file.parent.mkdir(parents=True, exist_ok=True)
    paths.failure_file.write_text(reason.strip() + "\n", encoding="utf-8")


def install_stop_handler(stop: threading.Event) -> None:
    """SIGTERM (StopTrainingJob, spot interruption) asks the engine to save state and return."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        logger.warning("received signal %d: saving state and stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_sigterm)


def is_captioning_spec(spec_file: Path) -> bool:
    """A captions job's spec says ``"kind": "captioning"``; a training spec has no ``kind``."""
    try:
        return bool(json.loads(spec_file.read_bytes()).get("kind") == CAPTIONING_JOB_KIND)
    except (OSError, ValueError, AttributeError):
        return False  # read_job_inputs reports a missing or broken spec


def run_captioning_stage(paths: JobPaths, progress: ProgressReporter) -> None:
    """Captioning mode: dataset channel -> captions (cache first) -> new dataset in /opt/ml/model."""
    from training_container.captioning.captioning_job import caption_models, models_dir, run_captioning

    try:
        spec = CaptioningJobSpec.model_validate_json(paths.job_spec.read_bytes())
    except ValidationError as error:
        raise JobFailure(f"job spec is invalid: {error}".splitlines()[0]) from error
    cache = paths.channel(CACHE_CHANNEL)
    progress.update(phase=TrainingPhase.CAPTIONING, force=True)
    summary = run_captioning(
        spec,
        paths.channel(DATASET_CHANNEL),
        cache if cache.is_dir() else None,
        paths.model_dir,
        caption_models(spec, models_dir()),
        on_progress=lambda done, total: progress.update(step=done, total_steps=total),
    )
    progress.update(phase=TrainingPhase.DONE, step=summary.images, total_steps=summary.images, force=True)
    logger.info(
        "captions job %s: %d images, %d captioned, %d cache hits, %d model runs, %d failures",
        spec.job_id,
        summary.images,
        summary.captioned,
        summary.cache_hits,
        summary.model_runs,
        len(summary.failures),
    )


def run_job(root: Path, stop: threading.Event | None = None) -> int:
    """Run every stage under ``root``; returns the process exit status."""
    paths, started = JobPaths(root), time.monotonic()
    stop = stop or threading.Event()
    progress = ProgressReporter(paths.checkpoints_dir)
    progress.update(phase=TrainingPhase.STAGING, force=True)
    progress.start_heartbeat()
    metrics: MetricsRecorder | None = None
    try:
        if is_captioning_spec(paths.job_spec):  # the same image, in its captioning mode
            run_captioning_stage(paths, progress)
            return EXIT_OK
        inputs = read_job_inputs(root)
        spec = inputs.spec
        ensure_family(inputs.model_path, spec.fm_type)
        ensure_components_readable(inputs.component_paths)
        engine = choose_engine(spec.engine)
        progress.update(engine=engine, force=True)
        metrics = MetricsRecorder(paths.checkpoints_dir, engine)
        paths.work_dir.mkdir(parents=True, exist_ok=True)
        dataset = stage_dataset(inputs, paths.work_dir)
        logger.info(
            "job %s: %s LoRA with %s on %d images (%d per epoch)",
            spec.job_id,
            spec.fm_type.value,
            engine.value,
            dataset.image_count,
            dataset.images_with_repeats,
        )
        request = EngineRequest(
            fm_type=spec.fm_type,
            config=inputs.config,
            model_path=inputs.model_path,
            dataset=dataset,
            work_dir=paths.work_dir,
            output_dir=paths.model_dir if engine == Engine.DIFFUSERS else paths.checkpoints_dir / "kohya",
            output_name=spec.output_name,
            checkpoints_dir=paths.checkpoints_dir,
            progress=progress,
            stop_requested=stop,
            job_id=spec.job_id,
            metrics=metrics,
            sample_prompts=spec.sample_prompts,
            trigger_word=spec.trigger_word,
            epoch_dir=paths.checkpoints_dir / DIFFUSERS_EPOCH_FOLDER if engine == Engine.DIFFUSERS else None,
            component_paths=inputs.component_paths,
        )
        result = run_engine(request, engine)
        if result.stopped:
            logger.warning("stopped at step %d; state saved in %s", result.steps, paths.checkpoints_dir)
            return EXIT_OK
        summary = publish_outputs(result, inputs, paths, started, request.epoch_output_dir)
        metrics.publish(paths.model_dir)
        progress.update(phase=TrainingPhase.DONE, step=summary.steps, force=True)
        logger.info("published %s (%d bytes)", summary.lora_filename, summary.lora_size_bytes)
        return EXIT_OK
    except JobFailure as failure:
        logger.error("job failed: %s", failure)
        write_failure(paths, str(failure))
        return EXIT_USER_ERROR
    except Exception as error:
        logger.error("internal error:\n%s", traceback.format_exc())
        write_failure(paths, f"internal error: {type(error).__name__}: {error}")
        return EXIT_INTERNAL_ERROR
    finally:
        if metrics is not None:
            metrics.close()
        progress.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="LoRA training job (SageMaker training container contract)")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(os.environ.get(ROOT_ENV) or OPT_ML_DEFAULT),
        help=f"the SageMaker folder root (default: ${ROOT_ENV} or {OPT_ML_DEFAULT})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parse_args(argv)
    stop = threading.Event()
    install_stop_handler(stop)
    return run_job(args.root, stop)


if __name__ == "__main__":
    sys.exit(main())
