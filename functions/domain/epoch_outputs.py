"""Per-epoch LoRAs and sample images: the rules both the control plane and the container follow.

Owns the sample-prompt rules (what a request may carry, checked once here so the API answers a
4xx naming the field before any money is spent), the sd-scripts prompt-file rendering, which
epochs are saved and sampled, the file names engines write, and which version of a job's LoRA a
download gets.

Why prompts only: a prompt line of sd-scripts' ``--sample_prompts`` file can carry options; the
service renders that file itself from validated fields, so a user can never smuggle an option
(``--`` is refused inside prompts) or name a file on the training host.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from functions.domain.catalog import FmType
from functions.domain.families import FAMILIES
from functions.domain.json_types import JsonFloat, JsonRequestModel
from functions.domain.kohya_params import FieldProblem

MAX_SAMPLE_PROMPTS = 8
MAX_PROMPT_LENGTH = 400
MAX_SAMPLE_STEPS = 50
DEFAULT_SAMPLE_STEPS = 20
MAX_CFG_SCALE = 30.0
DEFAULT_CFG_SCALE = 7.0
# FLUX.1 dev's distilled guidance for samples: sd-scripts' (flux_train_utils.sample_image_inference,
# prompt option --g) and diffusers FluxPipeline's default.
DEFAULT_EMBEDDED_GUIDANCE = 3.5
# Smallest and largest sample side per family; the default is the family's native size.
SAMPLE_SIZE_LIMITS: dict[FmType, tuple[int, int]] = {f: s.sample_side_limits for f, s in FAMILIES.items()}
DEFAULT_SAMPLE_SIZE: dict[FmType, int] = {f: s.default_sample_side for f, s in FAMILIES.items()}
# SageMaker caps one hyperparameter value at 2,500 characters; prompts travel as one JSON value.
MAX_PROMPTS_JSON_LENGTH = 2400
SD_SCRIPTS_SAMPLER = "euler_a"
EPOCH_DIGITS = 6  # sd-scripts names epoch files <output_name>-000001.safetensors
SAFETENSORS_SUFFIX = ".safetensors"
SAMPLE_SUFFIX = ".png"


class SamplePrompt(JsonRequestModel):
    """One sample image to render at each saved epoch: text and rendering settings, no paths."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_LENGTH)
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_LENGTH)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    steps: int | None = Field(default=None, ge=1, le=MAX_SAMPLE_STEPS)
    width: int | None = Field(default=None, ge=8, le=4096, description="pixels; family limits apply")
    height: int | None = Field(default=None, ge=8, le=4096, description="pixels; family limits apply")
    cfg_scale: JsonFloat | None = Field(default=None, ge=1.0, le=MAX_CFG_SCALE)


def _text_problem(text: str) -> str | None:
    """Prompt text must fit on one line of sd-scripts' prompt file and carry no options."""
    if not text.strip():
        return "must not be blank"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in text):
        return "must not contain line breaks, control or invisible characters"
    if "--" in text:
        return "must not contain '--' (it starts an option in sd-scripts' prompt file)"
    if text.lstrip().startswith("#"):
        return "must not start with '#' (a comment in sd-scripts' prompt file)"
    return None


def _size_problem(value: int | None, fm_type: FmType) -> str | None:
    if value is None:
        return None
    low, high = SAMPLE_SIZE_LIMITS[fm_type]
    if not low <= value <= high:
        return f"must be between {low} and {high} pixels for {fm_type.value} models"
    multiple = FAMILIES[fm_type].sample_side_multiple
    if value % multiple:
        return f"must be a multiple of {multiple} for {fm_type.value} models"
    return None


def sample_prompt_problems(prompts: Sequence[SamplePrompt], fm_type: FmType) -> list[FieldProblem]:
    """Every problem with a request's sample prompts, each naming its field."""
    if len(prompts) > MAX_SAMPLE_PROMPTS:
        return [FieldProblem("sample_prompts", f"must hold at most {MAX_SAMPLE_PROMPTS} prompts")]
    problems: list[FieldProblem] = []
    for index, item in enumerate(prompts):
        where = f"sample_prompts[{index}]"
        for name in ("prompt", "negative_prompt"):
            text = getattr(item, name)
            problem = _text_problem(text) if text is not None else None
            if problem:
                problems.append(FieldProblem(f"{where}.{name}", problem))
        for name in ("width", "height"):
            problem = _size_problem(getattr(item, name), fm_type)
            if problem:
                problems.append(FieldProblem(f"{where}.{name}", problem))
    if not problems and len(prompts_json(prompts)) > MAX_PROMPTS_JSON_LENGTH:
        problems.append(
            FieldProblem(
                "sample_prompts", f"are too long together (at most {MAX_PROMPTS_JSON_LENGTH} characters)"
            )
        )
    return problems


def prompts_json(prompts: Sequence[SamplePrompt]) -> str:
    """The compact form the prompts travel in (one SageMaker hyperparameter)."""
    return json.dumps([p.model_dump(mode="json", exclude_none=True) for p in prompts], separators=(",", ":"))


def sample_size(prompt: SamplePrompt, fm_type: FmType) -> tuple[int, int]:
    """(width, height) of a sample: the prompt's own, else the family's native size."""
    default = DEFAULT_SAMPLE_SIZE[fm_type]
    return prompt.width or default, prompt.height or default


def sd_scripts_prompt_line(prompt: SamplePrompt, fm_type: FmType) -> str:
    """One line of sd-scripts' ``--sample_prompts`` file: ``--n --w --h --d --s`` and ``--l`` or ``--g``.

    sd-scripts v0.10.1 library/train_util.py line_to_prompt_dict reads each option. For FLUX.1
    (``FamilySpec.sample_guidance_embedded``) the prompt's guidance is the distilled guidance,
    ``--g`` (flux_train_utils.sample_image_inference: "guidance_scale", default 3.5); its
    classifier-free ``--l`` stays at sd-scripts' 1.0, which renders without a negative pass and
    ignores ``--n`` (so none is written).
    """
    width, height = sample_size(prompt, fm_type)
    embedded = FAMILIES[fm_type].sample_guidance_embedded
    parts = [prompt.prompt.strip()]
    if prompt.negative_prompt and not embedded:
        parts.append(f"--n {prompt.negative_prompt.strip()}")
    parts += [f"--w {width}", f"--h {height}"]
    if prompt.seed is not None:
        parts.append(f"--d {prompt.seed}")
    parts.append(f"--s {prompt.steps or DEFAULT_SAMPLE_STEPS}")
    if embedded:
        guidance = prompt.cfg_scale if prompt.cfg_scale is not None else DEFAULT_EMBEDDED_GUIDANCE
        parts.append(f"--g {guidance:g}")
    else:
        parts.append(f"--l {prompt.cfg_scale if prompt.cfg_scale is not None else DEFAULT_CFG_SCALE:g}")
    return " ".join(parts)


def sd_scripts_prompt_file(prompts: Sequence[SamplePrompt], fm_type: FmType) -> str:
    """The whole prompt file, one prompt per line in request order (its line index = prompt index)."""
    return "".join(sd_scripts_prompt_line(p, fm_type) + "\n" for p in prompts)


# ---------------------------------------------------------------- epochs


def saved_epochs(total_epochs: int, save_every: int | None) -> list[int]:
    """Epochs that leave a LoRA: every ``save_every``-th before the end (sd-scripts' rule), and the last."""
    if total_epochs < 1:
        return []
    intermediate = range(save_every, total_epochs, save_every) if save_every else range(0)
    return [*intermediate, total_epochs]


def is_saved_epoch(epoch: int, total_epochs: int, save_every: int | None) -> bool:
    """``epoch in saved_epochs(total_epochs, save_every)`` without building the list."""
    if not 1 <= epoch <= total_epochs:
        return False
    return epoch == total_epochs or bool(save_every and epoch % save_every == 0)


def sample_cadence(total_epochs: int | None, save_every: int | None) -> int:
    """sd-scripts' ``sample_every_n_epochs`` so that every saved epoch *and* the last one is sampled.

    sd-scripts samples when ``epoch % n == 0``; the greatest common divisor of the save interval and
    the epoch count divides both. Without a known epoch count, the save interval (or every epoch).
    """
    if total_epochs is None:
        return save_every or 1
    return math.gcd(save_every or total_epochs, total_epochs)


def epoch_lora_filename(output_name: str, epoch: int) -> str:
    """sd-scripts' intermediate-LoRA name: ``<output_name>-000001.safetensors``."""
    return f"{output_name}-{epoch:0{EPOCH_DIGITS}d}{SAFETENSORS_SUFFIX}"


def sample_filename(output_name: str, epoch: int, prompt_index: int) -> str:
    """sd-scripts' sample name without its timestamp/seed tail: ``<output_name>_e000001_00.png``."""
    return f"{output_name}_e{epoch:0{EPOCH_DIGITS}d}_{prompt_index:02d}{SAMPLE_SUFFIX}"


def parse_epoch_lora_name(output_name: str, name: str) -> int | None:
    """The epoch of an intermediate LoRA file name, or None when the name is not one."""
    match = re.fullmatch(re.escape(output_name) + r"-(\d{6})" + re.escape(SAFETENSORS_SUFFIX), name)
    return int(match[1]) if match else None


def parse_sample_name(output_name: str, name: str) -> tuple[int, int] | None:
    """(epoch, prompt index) of a sample image name, sd-scripts' or ours; None otherwise.

    sd-scripts writes ``<output_name>_e000001_00_<timestamp>[_<seed>].png``.
    """
    match = re.fullmatch(re.escape(output_name) + r"_e(\d{6})_(\d{2})(?:_[0-9_]+)?\.png", name)
    return (int(match[1]), int(match[2])) if match else None


class VersionInfo(BaseModel):
    """What version selection needs to know of one stored LoRA version."""

    epoch: int
    is_default: bool = False


V = TypeVar("V", bound=VersionInfo)


def select_version(versions: Sequence[V], epoch: int | None) -> V | None:
    """The version a download gets: the given epoch's, or the default (the final LoRA) when None."""
    if epoch is None:
        return next((v for v in versions if v.is_default), versions[-1] if versions else None)
    return next((v for v in versions if v.epoch == epoch), None)


MAX_SAVED_EPOCHS = 100  # versions of one LoRA; each is verified and copied on completion
MAX_SAMPLE_IMAGES = 200  # per job; each costs GPU time and is listed on GET /trainings/{id}


def epoch_output_problems(total_epochs: int, save_every: int | None, prompt_count: int) -> list[FieldProblem]:
    """Bounds on what a planned job would save and render, named by the field to change."""
    epochs = saved_epochs(total_epochs, save_every)
    problems: list[FieldProblem] = []
    if len(epochs) > MAX_SAVED_EPOCHS:
        problems.append(
            FieldProblem(
                "config.save_every_n_epochs",
                f"would save {len(epochs)} epochs; at most {MAX_SAVED_EPOCHS} per job",
            )
        )
    elif len(epochs) * prompt_count > MAX_SAMPLE_IMAGES:
        problems.append(
            FieldProblem(
                "sample_prompts",
                f"would render {len(epochs) * prompt_count} images ({len(epochs)} saved epochs x "
                f"{prompt_count} prompts); at most {MAX_SAMPLE_IMAGES} per job",
            )
        )
    return problems
