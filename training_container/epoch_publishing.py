"""Stage 5, per-epoch part: publish intermediate LoRAs and sample images into ``/opt/ml/model``.

Engines leave them under sd-scripts' own names (``<name>-000001.safetensors``; ``sample/<name>_
e000001_00_<timestamp>.png``); this module picks the ones the job asked for, checks each LoRA the
way the final one is checked, and copies them to the paths ``training_contract`` defines, so
SageMaker uploads them with the model folder (uncompressed) and the control plane finds them.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from functions.domain.epoch_outputs import parse_epoch_lora_name, parse_sample_name, saved_epochs
from functions.domain.training_contract import (
    EpochLora,
    SampleImage,
    published_epoch_lora_path,
    published_sample_path,
)
from training_container.engines.base import SAMPLE_SUBFOLDER

logger = logging.getLogger(__name__)


@dataclass
class EpochFiles:
    """What an engine left: intermediate LoRAs by epoch, samples by (epoch, prompt index)."""

    loras: dict[int, Path] = field(default_factory=dict)
    samples: dict[tuple[int, int], Path] = field(default_factory=dict)


def collect_epoch_files(folder: Path, output_name: str) -> EpochFiles:
    """Scan an engine's epoch folder; the newest file wins when a name repeats (sd-scripts' timestamps)."""
    found = EpochFiles()
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            epoch = parse_epoch_lora_name(output_name, path.name)
            if epoch is not None and path.is_file():
                found.loras[epoch] = path
    sample_dir = folder / SAMPLE_SUBFOLDER
    if sample_dir.is_dir():
        for path in sorted(sample_dir.iterdir(), key=lambda p: p.stat().st_mtime):
            parsed = parse_sample_name(output_name, path.name)
            if parsed is not None and path.is_file():
                found.samples[parsed] = path
    return found


def sha256_of(path: Path) -> str:
    """The file's SHA-256 (hex), read in 1 MiB blocks; for every LoRA the container publishes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def publish_epoch_files(
    files: EpochFiles,
    model_dir: Path,
    output_name: str,
    *,
    final_epoch: int,
    save_every: int | None,
    prompt_count: int,
    verify_lora: Callable[[Path], None],
) -> tuple[list[EpochLora], list[SampleImage]]:
    """Copy the wanted files into ``model_dir``; returns what ``summary.json`` lists.

    ``verify_lora(path)`` raises for a file that is not a Kohya LoRA; such an epoch is left out
    (logged) rather than failing a job whose final LoRA is fine.
    """
    epochs = saved_epochs(final_epoch, save_every) if save_every else []
    loras: list[EpochLora] = []
    for epoch in epochs[:-1]:
        source = files.loras.get(epoch)
        if source is None:
            logger.warning("epoch %d was to be saved but no LoRA was found for it", epoch)
            continue
        try:
            verify_lora(source)
        except Exception as error:  # safetensors raises several types for a corrupt file
            logger.warning("leaving out epoch %d: %s", epoch, error)
            continue
        target = model_dir / published_epoch_lora_path(output_name, epoch)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        loras.append(EpochLora(epoch=epoch, sha256=sha256_of(target), size_bytes=target.stat().st_size))
    samples: list[SampleImage] = []
    for epoch in epochs or [final_epoch]:
        for index in range(prompt_count):
            source = files.samples.get((epoch, index))
            if source is None:
                continue
            target = model_dir / published_sample_path(output_name, epoch, index)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            samples.append(SampleImage(epoch=epoch, prompt_index=index))
    return loras, samples
