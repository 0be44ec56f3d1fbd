"""Kohya sd-scripts ``train_network`` parameters: the catalogue, per-family defaults, and validation.

sd-scripts silently ignores unknown TOML keys and skips argparse type checks for TOML values
(see shared reference), so the service validates every key, type and range itself before any
money is spent. Keys that name paths, outputs, logging services or code to run are owned by
the service and refused here; the container sets them.

This module is the single source of truth for:
- which parameters a user may set (``USER_PARAMETERS``),
- which are reserved for the service (``RESERVED_PARAMETERS``),
- the recommended defaults per model family (``DEFAULTS``),
- normalisation (e.g. ``resolution`` 512 -> "512", [1024, 768] -> "1024,768").
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.domain.catalog import FmType

ParamValue = bool | int | float | str | list[str]


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one input field; becomes ``{"field", "problem"}`` in error bodies."""

    field: str
    problem: str


@dataclass(frozen=True)
class Param:
    """One user-settable sd-scripts argument: its type, bounds and help text."""

    name: str
    kind: str  # "bool" | "int" | "float" | "enum" | "resolution" | "kv_list"
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[str, ...] = ()
    multiple_of: int | None = None
    families: frozenset[FmType] = field(default_factory=lambda: frozenset(FmType))
    allowed_keys: tuple[str, ...] = ()  # kv_list only


def _p(name: str, kind: str, help_: str, **kw: Any) -> Param:
    return Param(name=name, kind=kind, help=help_, **kw)


OPTIMIZERS = (
    "AdamW",
    "AdamW8bit",
    "PagedAdamW8bit",
    "Lion",
    "Lion8bit",
    "SGDNesterov",
    "Adafactor",
    "Prodigy",
)
LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "adafactor",
)
PRECISIONS = ("no", "fp16", "bf16")
SAVE_PRECISIONS = ("float", "fp16", "bf16")
ALLOWED_NETWORK_MODULES = ("networks.lora",)

USER_PARAMETERS: dict[str, Param] = {
    p.name: p
    for p in (
        # --- the LoRA network
        _p("network_dim", "int", "LoRA rank.", minimum=1, maximum=1024),
        _p(
            "network_alpha",
            "float",
            "LoRA alpha (scale = alpha / dim).",
            minimum=0,
            maximum=1024,
            exclusive_minimum=True,
        ),
        _p("network_dropout", "float", "Dropout on LoRA down outputs.", minimum=0, maximum=1),
        _p("network_train_unet_only", "bool", "Train the UNet LoRA only (no text encoder)."),
        _p("network_train_text_encoder_only", "bool", "Train the text-encoder LoRA only."),
        _p(
            "network_args",
            "kv_list",
            "Extra networks.lora arguments as key=value strings.",
            allowed_keys=("conv_dim", "conv_alpha", "rank_dropout", "module_dropout"),
        ),
        _p(
            "scale_weight_norms",
            "float",
            "Max norm regularisation of LoRA weights.",
            minimum=0,
            maximum=100,
            exclusive_minimum=True,
        ),
        # --- optimisation
        _p("learning_rate", "float", "Base learning rate.", minimum=0, maximum=1, exclusive_minimum=True),
        _p("unet_lr", "float", "UNet LoRA learning rate.", minimum=0, maximum=1, exclusive_minimum=True),
        _p("text_encoder_lr", "float", "Text-encoder LoRA learning rate.", minimum=0, maximum=1),
        _p("optimizer_type", "enum", "Optimizer.", choices=OPTIMIZERS),
        _p(
            "optimizer_args",
            "kv_list",
            "Optimizer keyword arguments as key=value strings.",
            allowed_keys=(
                "weight_decay",
                "betas",
                "eps",
                "decouple",
                "use_bias_correction",
                "safeguard_warmup",
                "d_coef",
                "relative_step",
                "scale_parameter",
                "warmup_init",
                "momentum",
                "nesterov",
            ),
        ),
        _p("lr_scheduler", "enum", "Learning-rate schedule.", choices=LR_SCHEDULERS),
        _p("lr_warmup_steps", "int", "Warm-up steps.", minimum=0, maximum=100_000),
        _p("lr_scheduler_num_cycles", "int", "Restarts for cosine_with_restarts.", minimum=1, maximum=100),
        _p("lr_scheduler_power", "float", "Power for the polynomial schedule.", minimum=0, maximum=10),
        _p("max_grad_norm", "float", "Gradient clipping (0 disables).", minimum=0, maximum=100),
        _p("train_batch_size", "int", "Images per step.", minimum=1, maximum=64),
        _p("gradient_accumulation_steps", "int", "Steps to accumulate.", minimum=1, maximum=1024),
        _p("max_train_epochs", "int", "Epochs (overrides max_train_steps).", minimum=1, maximum=1000),
        _p(
            "max_train_steps", "int", "Steps, when max_train_epochs is not set.", minimum=1, maximum=1_000_000
        ),
        _p("seed", "int", "Random seed.", minimum=0, maximum=2**32 - 1),
        _p(
            "min_snr_gamma",
            "float",
            "Min-SNR weighting gamma.",
            minimum=0,
            maximum=20,
            exclusive_minimum=True,
        ),
        _p("noise_offset", "float", "Noise offset.", minimum=0, maximum=1),
        _p("multires_noise_iterations", "int", "Pyramid noise iterations.", minimum=1, maximum=10),
        _p("multires_noise_discount", "float", "Pyramid noise discount.", minimum=0, maximum=1),
        _p("prior_loss_weight", "float", "Weight of regularisation images.", minimum=0, maximum=10),
        # --- precision and memory
        _p("mixed_precision", "enum", "Training precision.", choices=PRECISIONS),
        _p("save_precision", "enum", "Precision of the saved LoRA.", choices=SAVE_PRECISIONS),
        _p("full_fp16", "bool", "Pure fp16 training (less memory, less stable)."),
        _p("full_bf16", "bool", "Pure bf16 training."),
        _p("gradient_checkpointing", "bool", "Trade compute for memory."),
        _p("cache_latents", "bool", "Encode images with the VAE once, before training."),
        _p("cache_latents_to_disk", "bool", "Keep cached latents on disk."),
        _p(
            "cache_text_encoder_outputs",
            "bool",
            "SDXL: cache text-encoder outputs (UNet-only).",
            families=frozenset({FmType.SDXL}),
        ),
        _p("no_half_vae", "bool", "Run the VAE in fp32 (SDXL's VAE overflows in fp16)."),
        _p("sdpa", "bool", "Use PyTorch scaled-dot-product attention."),
        _p("xformers", "bool", "Use xformers attention."),
        _p("max_data_loader_n_workers", "int", "Data-loader workers.", minimum=0, maximum=16),
        # --- data
        _p(
            "resolution",
            "resolution",
            'Training resolution: 512, "768,512" or [1024, 1024].',
            minimum=256,
            maximum=2048,
            multiple_of=8,
        ),
        _p("enable_bucket", "bool", "Aspect-ratio bucketing."),
        _p("min_bucket_reso", "int", "Smallest bucket side.", minimum=64, maximum=4096, multiple_of=8),
        _p("max_bucket_reso", "int", "Largest bucket side.", minimum=64, maximum=4096, multiple_of=8),
        _p("bucket_reso_steps", "int", "Bucket side step.", minimum=8, maximum=512, multiple_of=8),
        _p("bucket_no_upscale", "bool", "Never upscale images into a bucket."),
        _p("random_crop", "bool", "Random crop instead of center crop."),
        _p("flip_aug", "bool", "Random horizontal flips."),
        _p("color_aug", "bool", "Random color augmentation."),
        _p("shuffle_caption", "bool", "Shuffle comma-separated caption tags."),
        _p(
            "keep_tokens",
            "int",
            "Leading caption tokens kept in place when shuffling.",
            minimum=0,
            maximum=75,
        ),
        _p(
            "caption_dropout_rate",
            "float",
            "Drop the whole caption with this probability.",
            minimum=0,
            maximum=1,
        ),
        _p(
            "caption_tag_dropout_rate",
            "float",
            "Drop each caption tag with this probability.",
            minimum=0,
            maximum=1,
        ),
        _p("clip_skip", "int", "Use the output of the n-th last CLIP layer.", minimum=1, maximum=12),
        _p(
            "max_token_length", "enum", "Caption token budget (75, 150 or 225).", choices=("75", "150", "225")
        ),
        # --- outputs
        _p(
            "save_every_n_epochs",
            "int",
            "Also save an intermediate LoRA every n epochs.",
            minimum=1,
            maximum=1000,
        ),
    )
}

# Keys the service owns. Refusing them (instead of ignoring them) tells users why their value
# would not take effect, and keeps paths, trackers and code loading out of user control.
RESERVED_PARAMETERS: dict[str, str] = {
    "output_dir": "the service writes the LoRA to the job's output folder",
    "output_name": "the service names the LoRA after the job",
    "train_data_dir": "the dataset comes from the job's dataset_id",
    "reg_data_dir": "regularisation folders come from the dataset layout",
    "dataset_config": "the service builds the dataset TOML from the dataset manifest",
    "in_json": "the service builds the dataset TOML from the dataset manifest",
    "pretrained_model_name_or_path": "the base model comes from the job's base_model_id",
    "vae": "the VAE comes from the base model",
    "network_module": "only networks.lora is supported",
    "network_weights": "resuming from arbitrary weights is not supported",
    "base_weights": "merging arbitrary weights is not supported",
    "dim_from_weights": "resuming from arbitrary weights is not supported",
    "logging_dir": "the service collects logs and progress itself",
    "log_with": "external trackers cannot be reached from the training network",
    "log_prefix": "the service collects logs and progress itself",
    "log_tracker_name": "external trackers cannot be reached from the training network",
    "log_tracker_config": "external trackers cannot be reached from the training network",
    "wandb_api_key": "external trackers cannot be reached from the training network",
    "wandb_run_name": "external trackers cannot be reached from the training network",
    "config_file": "the service writes the training TOML",
    "output_config": "the service writes the training TOML",
    "save_model_as": "LoRAs are always saved as safetensors",
    "caption_extension": "captions are always .txt files next to each image",
    "tokenizer_cache_dir": "tokenizers are baked into the training image",
    "save_state": "the service manages checkpoints for stop and spot resume",
    "save_state_on_train_end": "the service manages checkpoints for stop and spot resume",
    "resume": "the service manages checkpoints for stop and spot resume",
    "sample_prompts": "give prompts in the request's sample_prompts field; files are never accepted",
    "sample_every_n_steps": "samples are rendered at each saved epoch (save_every_n_epochs)",
    "sample_every_n_epochs": "samples are rendered at each saved epoch (save_every_n_epochs)",
    "sample_sampler": "the service picks the sampler for sample images",
    "sample_at_first": "samples are rendered at each saved epoch (save_every_n_epochs)",
    "huggingface_repo_id": "uploads to model hubs are not supported",
    "huggingface_token": "uploads to model hubs are not supported",
    "console_log_file": "the service collects logs itself",
    "console_log_level": "the service collects logs itself",
    "console_log_simple": "the service collects logs itself",
    "lowram": "memory settings follow the instance type",
    "highvram": "memory settings follow the instance type",
    "deepspeed": "distributed settings follow the instance type",
    "ddp_timeout": "distributed settings follow the instance type",
    "metadata_title": "metadata is set from the job",
    "training_comment": "metadata is set from the job",
}

# Recommended defaults. Differences from sd-scripts' own defaults are deliberate: its
# learning_rate (2e-6) is far too low for LoRA, mixed_precision "no" and plain attention
# waste the GPU, and its caption extension is ".caption".
_COMMON_DEFAULTS: dict[str, ParamValue] = {
    "network_dim": 32,
    "network_alpha": 16.0,
    "learning_rate": 1e-4,
    "unet_lr": 1e-4,
    "text_encoder_lr": 1e-5,
    "optimizer_type": "AdamW8bit",
    "lr_scheduler": "cosine_with_restarts",
    "lr_scheduler_num_cycles": 1,
    "lr_warmup_steps": 0,
    "train_batch_size": 1,
    "max_train_epochs": 10,
    "seed": 42,
    "save_precision": "fp16",
    "cache_latents": True,
    "sdpa": True,
    "enable_bucket": True,
    "bucket_reso_steps": 64,
    "bucket_no_upscale": True,
    "max_data_loader_n_workers": 2,
    "max_grad_norm": 1.0,
}

DEFAULTS: dict[FmType, dict[str, ParamValue]] = {
    FmType.SD15: {
        **_COMMON_DEFAULTS,
        "resolution": "512",
        "min_bucket_reso": 256,
        "max_bucket_reso": 1024,
        "mixed_precision": "fp16",
        "clip_skip": 1,
        "gradient_checkpointing": False,
    },
    # SDXL at 1024 px (the original tool trained it at 512 px without checkpointing). UNet-only
    # with cached text-encoder outputs keeps it inside 24 GB; its VAE overflows in fp16.
    FmType.SDXL: {
        **_COMMON_DEFAULTS,
        "resolution": "1024,1024",
        "min_bucket_reso": 512,
        "max_bucket_reso": 2048,
        "mixed_precision": "bf16",
        "gradient_checkpointing": True,
        "network_train_unet_only": True,
        "cache_text_encoder_outputs": True,
        "no_half_vae": True,
    },
}

MAX_CONFIG_KEYS = 100
_KV_VALUE = re.compile(r"^[A-Za-z0-9_.+\-(), ]{1,64}$")


def defaults_for(fm_type: FmType) -> dict[str, ParamValue]:
    """A fresh copy of the recommended parameters for a family (callers may edit it)."""
    return dict(DEFAULTS[fm_type])


def suggest_parameter(name: str) -> str | None:
    """The closest known parameter name, for 'did you mean' messages."""
    matches = difflib.get_close_matches(name, list(USER_PARAMETERS), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _check_number(param: Param, value: float) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if param.minimum is not None:
        if param.exclusive_minimum and value <= param.minimum:
            return f"must be greater than {param.minimum:g}"
        if value < param.minimum:
            return f"must be at least {param.minimum:g}"
    if param.maximum is not None and value > param.maximum:
        return f"must be at most {param.maximum:g}"
    if param.multiple_of and int(value) % param.multiple_of:
        return f"must be a multiple of {param.multiple_of}"
    return None


def _normalise_bool(param: Param, value: Any) -> tuple[ParamValue | None, str | None]:
    if isinstance(value, bool):
        return value, None
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true", None
    return None, "must be true or false"


def _normalise_int(param: Param, value: Any) -> tuple[ParamValue | None, str | None]:
    if isinstance(value, bool):
        return None, "must be an integer"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,12}", value.strip()):
        value = int(value)
    if not isinstance(value, int):
        return None, "must be an integer"
    return value, _check_number(param, value)


def _normalise_float(param: Param, value: Any) -> tuple[ParamValue | None, str | None]:
    if isinstance(value, bool):
        return None, "must be a number"
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None, "must be a number"
    if not isinstance(value, int | float):
        return None, "must be a number"
    value = float(value)
    return value, _check_number(param, value)


def _normalise_enum(param: Param, value: Any) -> tuple[ParamValue | None, str | None]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or value not in param.choices:
        return None, f"must be one of {', '.join(param.choices)}"
    return value, None


def _normalise_resolution(param: Param, value: Any) -> tuple[ParamValue | None, str | None]:
    """sd-scripts wants the *string* "512" or "W,H"; an int crashes it later."""
    if isinstance(value, bool):
        return None, 'must be a size like 512, "768,512" or [768, 512]'
    sides: list[Any]
    if isinstance(value, int):
        sides = [value]
    elif isinstance(value, str):
        sides = [s.strip() for s in value.replace("x", ",").split(",")]
    elif isinstance(value, list):
        sides = value
    else:
        return None, 'must be a size like 512, "768,512" or [768, 512]'
    if len(sides) not in (1, 2):
        return None, "must have one or two sides"
    ints: list[int] = []
    for side in sides:
        if isinstance(side, str) and side.isdigit():
            side = int(side)
        if not isinstance(side, int) or isinstance(side, bool):
            return None, "sides must be whole numbers of pixels"
        problem = _check_number(param, side)
        if problem:
            return None, f"each side {problem}"
        ints.append(side)
    if len(ints) == 2 and ints[0] == ints[1] and isinstance(value, int):
        ints = ints[:1]
    return ",".join(str(i) for i in ints), None


def _normalise_kv_list(param: Param, value: Any) -> tuple[ParamValue | None, str | None]:
    """``key=value`` strings, keys from an allow-list, values plain literals (never code)."""
    if isinstance(value, Mapping):
        value = [f"{k}={v}" for k, v in value.items()]
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or len(value) > 16:
        return None, "must be a list of at most 16 key=value strings"
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or "=" not in item:
            return None, "items must be key=value strings"
        key, _, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if key not in param.allowed_keys:
            return None, f"unknown key {key!r}; allowed: {', '.join(param.allowed_keys)}"
        if not _KV_VALUE.fullmatch(raw):
            return None, f"value of {key!r} must be a plain number, word or tuple"
        out.append(f"{key}={raw}")
    return out, None


_NORMALISERS: dict[str, Callable[[Param, Any], tuple[ParamValue | None, str | None]]] = {
    "bool": _normalise_bool,
    "int": _normalise_int,
    "float": _normalise_float,
    "enum": _normalise_enum,
    "resolution": _normalise_resolution,
    "kv_list": _normalise_kv_list,
}


def _check_combination(config: dict[str, ParamValue], fm_type: FmType) -> list[FieldProblem]:
    """Rules that span several keys."""
    problems: list[FieldProblem] = []
    if config.get("network_train_unet_only") and config.get("network_train_text_encoder_only"):
        problems.append(
            FieldProblem(
                "config.network_train_text_encoder_only", "cannot be combined with network_train_unet_only"
            )
        )
    if config.get("full_fp16") and config.get("mixed_precision") != "fp16":
        problems.append(FieldProblem("config.full_fp16", "requires mixed_precision fp16"))
    if config.get("full_bf16") and config.get("mixed_precision") != "bf16":
        problems.append(FieldProblem("config.full_bf16", "requires mixed_precision bf16"))
    if config.get("cache_text_encoder_outputs") and not config.get("network_train_unet_only"):
        problems.append(
            FieldProblem(
                "config.cache_text_encoder_outputs",
                "requires network_train_unet_only (text encoders are frozen)",
            )
        )
    if config.get("cache_latents") and (config.get("random_crop") or config.get("color_aug")):
        problems.append(
            FieldProblem("config.cache_latents", "cannot be combined with random_crop or color_aug")
        )
    if config.get("cache_text_encoder_outputs") and config.get("shuffle_caption"):
        problems.append(
            FieldProblem("config.shuffle_caption", "has no effect with cache_text_encoder_outputs")
        )
    lo, hi = config.get("min_bucket_reso"), config.get("max_bucket_reso")
    if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
        problems.append(FieldProblem("config.min_bucket_reso", "must not exceed max_bucket_reso"))
    if config.get("sdpa") and config.get("xformers"):
        problems.append(FieldProblem("config.xformers", "cannot be combined with sdpa"))
    return problems


def validate_config(
    user_config: Mapping[str, Any], fm_type: FmType, *, merge_defaults: bool = True
) -> tuple[dict[str, ParamValue], list[FieldProblem]]:
    """Normalise a user's Kohya parameters, or list every problem with its field.

    Returns ``(normalised, problems)``; ``normalised`` is only meaningful when ``problems``
    is empty. With ``merge_defaults`` the family defaults fill in whatever the user left
    out, so the result is exactly what the container will run with.
    """
    problems: list[FieldProblem] = []
    if len(user_config) > MAX_CONFIG_KEYS:
        return {}, [FieldProblem("config", f"has more than {MAX_CONFIG_KEYS} keys")]
    normalised: dict[str, ParamValue] = defaults_for(fm_type) if merge_defaults else {}
    for key, value in user_config.items():
        field_name = f"config.{key}"
        if key == "network_module" and value in ALLOWED_NETWORK_MODULES:
            continue  # harmless: the service sets exactly this
        if key in RESERVED_PARAMETERS:
            problems.append(FieldProblem(field_name, f"is set by the service ({RESERVED_PARAMETERS[key]})"))
            continue
        param = USER_PARAMETERS.get(key)
        if param is None:
            hint = suggest_parameter(key)
            suffix = f"; did you mean {hint!r}?" if hint else ""
            problems.append(FieldProblem(field_name, f"is not a known train_network parameter{suffix}"))
            continue
        if fm_type not in param.families:
            problems.append(FieldProblem(field_name, f"does not apply to {fm_type.value} models"))
            continue
        if value is None:
            normalised.pop(key, None)  # explicit null: fall back to sd-scripts' own default
            continue
        result, problem = _NORMALISERS[param.kind](param, value)
        if problem:
            problems.append(FieldProblem(field_name, problem))
            continue
        assert result is not None
        normalised[key] = result
    if merge_defaults:
        _drop_defaults_overruled_by_user(normalised, user_config)
    if not problems:
        problems.extend(_check_combination(normalised, fm_type))
    return normalised, problems


def _drop_defaults_overruled_by_user(normalised: dict[str, ParamValue], user: Mapping[str, Any]) -> None:
    """A default must never silently defeat what the user asked for.

    sd-scripts lets ``max_train_epochs`` override ``max_train_steps``: a user who sets only
    steps means steps. SDXL's default text-encoder caching only works UNet-only: a user who
    turns text-encoder training on must not trip over a default they never chose.
    """
    if "max_train_steps" in user and "max_train_epochs" not in user:
        normalised.pop("max_train_epochs", None)
    if user.get("network_train_unet_only") in (False, "false") and "cache_text_encoder_outputs" not in user:
        normalised.pop("cache_text_encoder_outputs", None)
    if (user.get("random_crop") or user.get("color_aug")) and "cache_latents" not in user:
        normalised["cache_latents"] = False
