"""Stage 3 (kohya engine): sd-scripts' dataset TOML, training TOML and command line.

The service owns paths, names, the network module, the tokenizer cache, caption handling and
state saving: they are set here, after the user's parameters, so a user value can never
override them (``functions.domain.kohya_params`` also refuses them up front). sd-scripts
silently ignores unknown keys, so ``tests/container`` checks every key emitted here against
the option list extracted from the pinned sd-scripts release.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import toml
from PIL import Image

from functions.domain.catalog import FmType
from functions.domain.epoch_outputs import (
    SD_SCRIPTS_SAMPLER,
    SamplePrompt,
    sample_cadence,
    sd_scripts_prompt_file,
)
from functions.domain.families import FAMILIES, ComponentRole
from functions.domain.kohya_params import ParamValue, resolution_sides
from training_container.dataset_staging import CAPTION_EXTENSION, StagedDataset
from training_container.errors import JobFailure

# The pinned release (Dockerfile and the options fixture must agree).
SD_SCRIPTS_TAG = "v0.10.1"
SD_SCRIPTS_COMMIT = "ae72efb92babe89ff8e70f057e42db68440e8d61"
TRAINING_SCRIPT = {f: spec.kohya_script for f, spec in FAMILIES.items()}
ACCELERATE_LAUNCH = ("accelerate", "launch", "--num_cpu_threads_per_process", "1")
STATE_FOLDER = "kohya_state"
SAMPLE_PROMPTS_FILE = "sample_prompts.txt"

# User parameters that sd-scripts reads from the dataset TOML's [general] section (argparse
# name -> dataset schema name). Everything else goes to the training TOML.
DATASET_PARAMETERS = {
    "resolution": "resolution",
    "train_batch_size": "batch_size",
    "enable_bucket": "enable_bucket",
    "min_bucket_reso": "min_bucket_reso",
    "max_bucket_reso": "max_bucket_reso",
    "bucket_reso_steps": "bucket_reso_steps",
    "bucket_no_upscale": "bucket_no_upscale",
    "random_crop": "random_crop",
    "flip_aug": "flip_aug",
    "color_aug": "color_aug",
    "shuffle_caption": "shuffle_caption",
    "keep_tokens": "keep_tokens",
    "caption_dropout_rate": "caption_dropout_rate",
    "caption_tag_dropout_rate": "caption_tag_dropout_rate",
}


@dataclass(frozen=True)
class KohyaFiles:
    dataset_config: Path
    training_config: Path
    command: list[str]


def _dataset_resolution(value: ParamValue) -> int | list[int]:
    """The dataset schema wants an int or [w, h] (the argparse option wants the string form)."""
    sides = [int(side) for side in str(value).split(",")]
    return sides[0] if len(sides) == 1 else sides


def dataset_toml(config: dict[str, ParamValue], dataset: StagedDataset) -> dict[str, Any]:
    general: dict[str, Any] = {"caption_extension": CAPTION_EXTENSION}
    for argparse_name, schema_name in DATASET_PARAMETERS.items():
        if argparse_name in config:
            value = config[argparse_name]
            general[schema_name] = _dataset_resolution(value) if argparse_name == "resolution" else value
    subsets = [
        {
            "image_dir": str(concept.folder),
            "num_repeats": concept.repeats,
            "caption_extension": CAPTION_EXTENSION,
        }
        for concept in dataset.concepts
    ]
    return {"general": general, "datasets": [{"subsets": subsets}]}


def no_upscale_bucket_problems(config: dict[str, ParamValue], dataset: StagedDataset) -> list[str]:
    """Images sd-scripts cannot bucket without upscaling: a short side below ``bucket_reso_steps``.

    With ``bucket_no_upscale`` sd-scripts (train_util.BucketManager.select_bucket) shrinks an image
    only to the resolution's area and rounds each side *down* to the step: a side shorter than the
    step becomes 0 and it crashes with ZeroDivisionError. Image sizes are only known here, in the
    container, so this is checked before sd-scripts starts (found by the real-engine contract test).
    """
    steps, sides = config.get("bucket_reso_steps", 64), resolution_sides(config)
    if not (config.get("enable_bucket") and config.get("bucket_no_upscale")) or not isinstance(steps, int):
        return []
    max_area = sides[0] * sides[1] if sides else 512 * 512
    problems = []
    for concept in dataset.concepts:
        for image in concept.images:
            with Image.open(image.path) as opened:
                width, height = opened.size
            scale = min(1.0, math.sqrt(max_area / (width * height)))
            if min(width, height) * scale < steps:
                problems.append(f"{concept.folder.name}/{image.path.name} ({width}x{height})")
    return problems


def latest_state(state_dir: Path) -> Path | None:
    """The newest ``*-state`` folder sd-scripts saved (spot/stop resume), if any."""
    states = sorted(
        (p for p in state_dir.glob("*-state") if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True
    )
    return states[0] if states else None


def component_parameters(fm_type: FmType, component_paths: Mapping[ComponentRole, Path]) -> dict[str, str]:
    """``--ae``/``--clip_l``/``--clip_g``/``--t5xxl``: each component file the job was given.

    The roles are the scripts' own option names (flux_train_utils.add_flux_train_arguments,
    sd3_train_utils.add_sd3_training_arguments). Only the family's components are passed, and
    for SD 3.5 only those given: an option left out makes sd3_train_network.py read that text
    encoder from the checkpoint itself (its help: "if not specified, use ckpt's state_dict").
    """
    roles = [slot.role for slot in FAMILIES[fm_type].components]
    missing = [role.value for role in roles if role not in component_paths and _required(fm_type, role)]
    if missing:
        raise JobFailure(
            f"the job spec names no {', '.join(missing)} file, which {FAMILIES[fm_type].kohya_script} needs"
        )
    return {role.value: str(component_paths[role]) for role in roles if role in component_paths}


def _required(fm_type: FmType, role: ComponentRole) -> bool:
    return any(slot.role == role and slot.required for slot in FAMILIES[fm_type].components)


def service_parameters(
    *,
    model_path: Path,
    output_dir: Path,
    output_name: str,
    tokenizer_cache_dir: Path | None,
    fm_type: FmType,
    trigger_word: str | None = None,
    component_paths: Mapping[ComponentRole, Path] | None = None,
) -> dict[str, Any]:
    """Keys the service owns; applied last so they always win."""
    parameters: dict[str, Any] = {
        "pretrained_model_name_or_path": str(model_path),
        **component_parameters(fm_type, component_paths or {}),
        "output_dir": str(output_dir),
        "output_name": output_name,
        "save_model_as": "safetensors",
        "network_module": FAMILIES[fm_type].network_module,
        "caption_extension": CAPTION_EXTENSION,
        # Save resumable state each epoch into the synced folder; keep only the latest one.
        "save_state": True,
        "save_last_n_epochs_state": 1,
    }
    if tokenizer_cache_dir is not None:
        parameters["tokenizer_cache_dir"] = str(tokenizer_cache_dir)
    if trigger_word is not None:
        # sd-scripts v0.10.1 library/sai_model_spec.py add_model_spec_arguments: --metadata_trigger_phrase,
        # written to the LoRA as "modelspec.trigger_phrase" (get_sai_model_spec collects metadata_* args).
        parameters["metadata_trigger_phrase"] = trigger_word
    resume = latest_state(output_dir)
    if resume is not None:
        parameters["resume"] = str(resume)
    return parameters


def sample_parameters(
    config: dict[str, ParamValue], prompts: Sequence[SamplePrompt], fm_type: FmType, work_dir: Path
) -> dict[str, Any]:
    """sd-scripts' own sampling options: a prompt file we render, sampled on every saved epoch.

    The cadence divides both the save interval and the epoch count, so the last epoch is sampled
    too (sd-scripts samples when ``epoch % sample_every_n_epochs == 0``).
    """
    if not prompts:
        return {}
    prompt_file = work_dir / SAMPLE_PROMPTS_FILE
    prompt_file.write_text(sd_scripts_prompt_file(prompts, fm_type), encoding="utf-8")
    epochs, save_every = config.get("max_train_epochs"), config.get("save_every_n_epochs")
    return {
        "sample_prompts": str(prompt_file),
        "sample_every_n_epochs": sample_cadence(
            epochs if isinstance(epochs, int) else None, save_every if isinstance(save_every, int) else None
        ),
        "sample_sampler": SD_SCRIPTS_SAMPLER,
    }


def training_toml(config: dict[str, ParamValue], service: dict[str, Any]) -> dict[str, Any]:
    user = {key: value for key, value in config.items() if key not in DATASET_PARAMETERS}
    if "resolution" in config:
        user["resolution"] = str(config["resolution"])  # argparse type=str; an int crashes sd-scripts
    user.setdefault("save_every_n_epochs", 1)
    return {**user, **service}


def kohya_command(
    script: Path, training_config: Path, dataset_config: Path, launcher: Sequence[str] = ACCELERATE_LAUNCH
) -> list[str]:
    """The argv (never a shell string) that runs sd-scripts."""
    return [
        *launcher,
        str(script),
        "--config_file",
        str(training_config),
        "--dataset_config",
        str(dataset_config),
    ]


def build_kohya_configs(
    *,
    fm_type: FmType,
    config: dict[str, ParamValue],
    dataset: StagedDataset,
    model_path: Path,
    output_dir: Path,
    output_name: str,
    work_dir: Path,
    sd_scripts_dir: Path,
    tokenizer_cache_dir: Path | None,
    launcher: Sequence[str] = ACCELERATE_LAUNCH,
    sample_prompts: Sequence[SamplePrompt] = (),
    trigger_word: str | None = None,
    component_paths: Mapping[ComponentRole, Path] | None = None,
) -> KohyaFiles:
    """Write both TOML files into ``work_dir`` and return them with the command line.

    The family's script (``FamilySpec.kohya_script``) runs its network module
    (``FamilySpec.network_module``) with the job's component files (``component_parameters``).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    dataset_path = work_dir / "dataset_config.toml"
    training_path = work_dir / "training_config.toml"
    dataset_path.write_text(toml.dumps(dataset_toml(config, dataset)), encoding="utf-8")
    service = service_parameters(
        model_path=model_path,
        output_dir=output_dir,
        output_name=output_name,
        tokenizer_cache_dir=tokenizer_cache_dir,
        trigger_word=trigger_word,
        fm_type=fm_type,
        component_paths=component_paths,
    ) | sample_parameters(config, sample_prompts, fm_type, work_dir)
    training_path.write_text(toml.dumps(training_toml(config, service)), encoding="utf-8")
    script = sd_scripts_dir / TRAINING_SCRIPT[fm_type]
    return KohyaFiles(
        dataset_path, training_path, kohya_command(script, training_path, dataset_path, launcher)
    )
