"""Kohya sd-scripts network-training parameters: the catalogue, per-family defaults, and validation.

Each family runs its own script (``FamilySpec.kohya_script``: ``train_network.py``,
``sdxl_train_network.py``, ``flux_train_network.py``, ``sd3_train_network.py``); a parameter is
offered to the families whose script reads it (``Param.families``), and refused for the others
with the reason (``not_for_family``).

sd-scripts silently ignores unknown TOML keys and skips argparse type checks for TOML values
(see shared reference), so the service validates every key, type and range itself before any
money is spent. Keys that name paths, outputs, logging services or code to run are owned by
the service and refused here; the container sets them.

This module is the single source of truth for:
- which parameters a user may set (``USER_PARAMETERS``),
- which are reserved for the service (``RESERVED_PARAMETERS``),
- the recommended defaults per model family (``DEFAULTS``),
- normalisation (e.g. ``resolution`` 512 -> "512", [1024, 768] -> "1024,768"),
- the rules that mirror sd-scripts' own argument checks (``_check_combination``): each cites the
  sd-scripts v0.10.1 function it mirrors, so a job the API accepts never dies on an argument
  sd-scripts refuses after a GPU has been provisioned,
- which parameters the portable diffusers engine ignores (``engine_warnings``).

Types are what sd-scripts expects *after TOML loading*, where argparse's ``type=`` conversion is
skipped (``train_util.read_config_from_file`` passes the TOML values as the namespace): ints are
ints, floats are floats, ``resolution`` is the string "W,H".
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from functions.domain.catalog import INSTANCE_TYPES, FmType
from functions.domain.families import FAMILIES

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


def _p(name: str, kind: str, help_: str, only: frozenset[FmType] | None = None, **kw: Any) -> Param:
    """A parameter, accepted by every family whose spec does not refuse it (of ``only``, when given:
    the families whose script's parser has it)."""
    families = frozenset(
        f
        for f, spec in FAMILIES.items()
        if name not in spec.refused_kohya_params and (only is None or f in only)
    )
    return Param(name=name, kind=kind, help=help_, families=families, **kw)


# The scripts with sd-scripts' DiT options (train_util.add_dit_training_arguments): FLUX.1 and SD 3.5.
DIT_FAMILIES = frozenset(f for f, spec in FAMILIES.items() if spec.block_swap is not None)
FLUX_FAMILIES = frozenset(f for f, spec in FAMILIES.items() if spec.kohya_script == "flux_train_network.py")
SD3_FAMILIES = frozenset(f for f, spec in FAMILIES.items() if spec.kohya_script == "sd3_train_network.py")
TIMESTEP_SAMPLINGS = ("sigma", "uniform", "sigmoid", "shift", "flux_shift")
MODEL_PREDICTION_TYPES = ("raw", "additive", "sigma_scaled")
WEIGHTING_SCHEMES = ("sigma_sqrt", "logit_normal", "mode", "cosmap", "none", "uniform")


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
# The one --network_module each family trains (FamilySpec.network_module): a user may name it.
ALLOWED_NETWORK_MODULES = {f: spec.network_module for f, spec in FAMILIES.items()}
TOKEN_LENGTH_UNSET = 75  # sd-scripts' max_token_length None: one 75-token CLIP chunk

# networks/lora.py create_network reads these from --network_args (train_network.py splits each
# item on the first "=" and passes the value as a string): conv_dim with int(), the rest with
# float(). A value int() or float() cannot read crashes the job after the model has loaded.
NETWORK_ARG_KINDS: dict[str, str] = {
    "conv_dim": "positive_int",
    "conv_alpha": "positive_float",
    "rank_dropout": "probability",
    "module_dropout": "probability",
}

# train_util.get_optimizer parses every --optimizer_args value with ast.literal_eval and passes
# the result as a keyword argument to the optimizer's constructor: the value must be a Python
# literal of the type the constructor expects, and the key one the constructor accepts.
OPTIMIZER_ARG_KINDS: dict[str, str] = {
    "weight_decay": "non_negative_float",
    "betas": "float_pair",
    "eps": "positive_float",  # Adafactor: a pair (see ADAFACTOR_PAIR_ARGS)
    "decouple": "bool",
    "use_bias_correction": "bool",
    "safeguard_warmup": "bool",
    "d_coef": "positive_float",
    "relative_step": "bool",
    "scale_parameter": "bool",
    "warmup_init": "bool",
    "momentum": "positive_float",
}
_ADAM_ARGS = frozenset({"weight_decay", "betas", "eps"})
# The constructors' keyword arguments (torch.optim.AdamW, bitsandbytes.optim.*, lion_pytorch.Lion,
# torch.optim.SGD, transformers.optimization.Adafactor, prodigyopt.Prodigy), as get_optimizer
# builds each optimizer_type.
OPTIMIZER_KEYWORDS: dict[str, frozenset[str]] = {
    "AdamW": _ADAM_ARGS,
    "AdamW8bit": _ADAM_ARGS,
    "PagedAdamW8bit": _ADAM_ARGS,
    "Lion": frozenset({"weight_decay", "betas"}),
    "Lion8bit": frozenset({"weight_decay", "betas"}),
    # get_optimizer passes nesterov=True itself: a user "nesterov" would be a duplicate keyword.
    "SGDNesterov": frozenset({"weight_decay", "momentum"}),
    "Adafactor": frozenset({"weight_decay", "eps", "relative_step", "scale_parameter", "warmup_init"}),
    "Prodigy": frozenset(
        {"weight_decay", "betas", "eps", "decouple", "use_bias_correction", "safeguard_warmup", "d_coef"}
    ),
}
ADAFACTOR_PAIR_ARGS = frozenset({"eps"})  # transformers' Adafactor: eps=(1e-30, 1e-3)

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
            "network_args",
            "Extra networks.lora arguments as key=value strings: conv_dim (int), conv_alpha, "
            "rank_dropout, module_dropout.",
            allowed_keys=tuple(NETWORK_ARG_KINDS),
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
            "optimizer_args",
            "Optimizer keyword arguments as key=value strings, values as Python literals "
            "(true/false are accepted for True/False); the keys allowed depend on optimizer_type.",
            allowed_keys=tuple(OPTIMIZER_ARG_KINDS),
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
            "Encode captions once, before training (SDXL: U-Net-only; FLUX.1 and SD 3.5 may still "
            "train CLIP on top).",
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
            minimum=64,  # sd-scripts sets no lower bound; 64 px is one 8x8 latent
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
        _p(
            "clip_skip",
            "int",
            "Use the output of the n-th last CLIP layer.",
            minimum=1,
            maximum=12,
        ),
        # train_util.add_training_arguments: type=int, choices=[None, 150, 225]; None means 75.
        # From TOML it must be the int itself: strategy_sd.SdTokenizeStrategy does max_length + 2.
        _p(
            "max_token_length",
            "int_choice",
            "Caption token budget: 75 (sd-scripts' default), 150 or 225.",
            choices=("75", "150", "225"),
        ),
        # --- FLUX.1 and SD 3.5 (flux_train_network.py, sd3_train_network.py; sd-scripts v0.10.1).
        # argparse gives types and choices but no bounds: the bounds here are the service's,
        # wide around the guides' values, except where noted.
        # library/flux_train_utils.py add_flux_train_arguments (lines 617-690):
        _p(
            "guidance_scale",
            "float",
            "FLUX.1 dev's distilled guidance during training; the guide recommends 1.0 (sd-scripts: 3.5).",
            only=FLUX_FAMILIES,
            minimum=0,
            maximum=30,
        ),
        _p(
            "timestep_sampling",
            "enum",
            "How training timesteps are drawn (docs/flux_train_network.md 6.2).",
            only=FLUX_FAMILIES,
            choices=TIMESTEP_SAMPLINGS,
        ),
        _p(
            "sigmoid_scale",
            "float",
            "Scale of the sigmoid, shift and flux_shift timestep sampling.",
            only=FLUX_FAMILIES,
            minimum=0,
            maximum=20,
            exclusive_minimum=True,
        ),
        _p(
            "model_prediction_type",
            "enum",
            "How the model's prediction is read: raw (the guide's recommendation), additive, sigma_scaled.",
            only=FLUX_FAMILIES,
            choices=MODEL_PREDICTION_TYPES,
        ),
        _p(
            "discrete_flow_shift",
            "float",
            "Flow shift of the shift (and sigma) timestep sampling; the guide recommends 3.1582.",
            only=FLUX_FAMILIES,
            minimum=0,
            maximum=20,
            exclusive_minimum=True,
        ),
        # flux_train_utils.py line 635 (None: 512 for dev) and sd3_train_utils.py line 187 (256).
        _p(
            "t5xxl_max_token_length",
            "int",
            "T5-XXL caption token budget (sd-scripts: 512 for FLUX.1 dev, 256 for SD 3.5).",
            only=DIT_FAMILIES,
            minimum=1,
            maximum=512,
        ),
        _p(
            "apply_t5_attn_mask", "bool", "Mask T5-XXL padding in the encoder and the DiT.", only=DIT_FAMILIES
        ),
        # library/sd3_train_utils.py add_sd3_training_arguments (lines 143-242):
        _p(
            "training_shift",
            "float",
            "Shift of SD 3.5's training timestep distribution (sd-scripts: 1.0).",
            only=SD3_FAMILIES,
            minimum=0,
            maximum=20,
            exclusive_minimum=True,
        ),
        _p("apply_lg_attn_mask", "bool", "Mask CLIP-L/CLIP-G padding (zero embeddings).", only=SD3_FAMILIES),
        # library/train_util.py add_dit_training_arguments (lines 4251-4315):
        _p(
            "weighting_scheme",
            "enum",
            "Timestep density / loss weighting (sd-scripts: uniform).",
            only=DIT_FAMILIES,
            choices=WEIGHTING_SCHEMES,
        ),
        _p(
            "logit_mean",
            "float",
            "Mean of the logit_normal weighting.",
            only=DIT_FAMILIES,
            minimum=-10,
            maximum=10,
        ),
        _p(
            "logit_std",
            "float",
            "Standard deviation of the logit_normal weighting.",
            only=DIT_FAMILIES,
            minimum=0,
            maximum=10,
            exclusive_minimum=True,
        ),
        # sd3_train_utils.compute_density_for_timestep_sampling "mode": u' = 1 - u - s*(cos^2(pi*u/2) - 1 + u)
        # stays in [0, 1] for every u only with -1 <= s <= 7.2; outside it FLUX's sigma sampling
        # indexes past its 1000 timesteps (flux_train_utils.py line 510-511).
        _p(
            "mode_scale",
            "float",
            "Scale of the mode weighting (sd-scripts: 1.29).",
            only=DIT_FAMILIES,
            minimum=-1,
            maximum=7,
        ),
        # The per-family limit (FamilySpec.block_swap.maximum) is checked in _memory_problems.
        _p(
            "blocks_to_swap",
            "int",
            "Transformer blocks kept in host memory and swapped in per step: less GPU memory, slower. "
            "Unset: chosen for the instance type's GPU. At most 35 for FLUX.1, 36 for SD 3.5 Large "
            "(22 for 3.5 Medium).",
            only=DIT_FAMILIES,
            minimum=0,
            maximum=max(spec.block_swap.maximum for spec in FAMILIES.values() if spec.block_swap),
        ),
        # train_util.py add_training_arguments line 3998 and train_network.py line 1772: every script's
        # parser has them; the service offers them where the guides use them (FLUX.1, SD 3.5).
        _p(
            "fp8_base",
            "bool",
            "Keep the base model in fp8 (needs mixed_precision fp16 or bf16).",
            only=DIT_FAMILIES,
        ),
        _p(
            "fp8_base_unet",
            "bool",
            "fp8 for the DiT only; text encoders in fp16/bf16 (sd-scripts then sets fp8_base too).",
            only=DIT_FAMILIES,
        ),
        # train_network.py line 1747; only FLUX.1's model takes it (FamilySpec.refused_kohya_params).
        _p(
            "cpu_offload_checkpointing",
            "bool",
            "Offload gradient checkpoints to host memory "
            "(needs gradient_checkpointing; not with blocks_to_swap).",
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
    # The component files (functions.domain.families.ComponentRole): --ae and --clip_l, --t5xxl of
    # flux_train_utils.add_flux_train_arguments; --clip_g of sd3_train_utils.add_sd3_training_arguments.
    "ae": "comes from the job's components",
    "clip_l": "comes from the job's components",
    "clip_g": "comes from the job's components",
    "t5xxl": "comes from the job's components",
    "model_type": "the family (fm_type) decides the model; Chroma is not offered",
    "controlnet_model_name_or_path": "ControlNet training is not offered",
    "split_mode": "deprecated in sd-scripts (flux_train_network.py); set blocks_to_swap",
    "network_module": "the service sets the family's network module",
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
    "metadata_trigger_phrase": "give the request's trigger_word: it is also placed first in every caption",
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
    f: {**_COMMON_DEFAULTS, **spec.kohya_defaults} for f, spec in FAMILIES.items()
}

# sd-scripts' own value for each parameter it reads when the request leaves it unset (an explicit
# null removes the service's default, see validate_config): what both engines fall back to. Read
# from sd-scripts v0.10.1 (training_container.kohya_config.SD_SCRIPTS_COMMIT). None: unset, with
# the meaning sd-scripts gives it (noted where it is not "off").
SD_SCRIPTS_DEFAULTS: Mapping[str, ParamValue | None] = {
    # train_network.py setup_parser; networks/lora.py create_network: dim None -> 4, alpha None -> 1.0
    "network_dim": 4,
    "network_alpha": 1.0,
    "network_dropout": None,
    "network_train_unet_only": False,
    "network_train_text_encoder_only": False,
    "unet_lr": None,  # None: learning_rate
    "text_encoder_lr": None,  # None: learning_rate
    # library/train_util.py add_optimizer_arguments
    "learning_rate": 2.0e-6,
    "optimizer_type": "AdamW",  # "" there; get_optimizer: "" -> "AdamW" (without --use_8bit_adam)
    "optimizer_args": None,
    "lr_scheduler": "constant",
    "lr_warmup_steps": 0,
    "lr_scheduler_num_cycles": 1,
    "lr_scheduler_power": 1.0,
    "max_grad_norm": 1.0,
    # library/train_util.py add_training_arguments
    "train_batch_size": 1,
    "gradient_accumulation_steps": 1,
    "max_train_epochs": None,
    "max_train_steps": 1600,
    "seed": None,  # None: a random seed (train_network.py: random.randint(0, 2**32))
    "min_snr_gamma": None,
    "noise_offset": None,
    "mixed_precision": "no",
    "save_precision": None,  # None: the trained dtype (float32 LoRA weights)
    "gradient_checkpointing": False,
    "cache_latents": False,
    "no_half_vae": False,
    "clip_skip": None,  # None: the last layer, i.e. 1
    "save_every_n_epochs": None,
    # library/train_util.py add_dataset_arguments (--resolution has no default: it is required)
    "resolution": None,
    "enable_bucket": False,
    "min_bucket_reso": 256,
    "max_bucket_reso": 1024,
    "bucket_reso_steps": 64,
    "bucket_no_upscale": False,
    "random_crop": False,
    "flip_aug": False,
    "shuffle_caption": False,
    "keep_tokens": 0,
    "caption_dropout_rate": 0.0,
}

MAX_CONFIG_KEYS = 100
MAX_LIST_ITEMS = 16
_KV_VALUE = re.compile(r"^[A-Za-z0-9_.+\-(), \[\]]{1,64}$")
# sd-scripts' bucket steps per family (see FamilySpec.bucket_step_multiple).
BUCKET_STEP_MULTIPLE = {f: spec.bucket_step_multiple for f, spec in FAMILIES.items()}
POLYNOMIAL_LR_END = 1e-7  # transformers.get_polynomial_decay_schedule_with_warmup's lr_end default


@dataclass(frozen=True)
class FieldWarning:
    """A parameter that is valid but will not do what the user expects; never blocks a job."""

    field: str
    warning: str


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


def _normalise_int_choice(param: Param, value: Any) -> tuple[ParamValue | None, str | None]:
    """An int from a fixed set (max_token_length); strings of digits are read as ints."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or str(value) not in param.choices:
        return None, f"must be one of {', '.join(param.choices)}"
    return value, None


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


def _key_values(value: Any) -> tuple[list[tuple[str, str]] | None, str | None]:
    """``["k=v", ...]``, ``{"k": v}`` or ``"k=v k2=v2"`` -> ``[(k, raw v), ...]``."""
    if isinstance(value, Mapping):
        value = [f"{k}={_literal_text(v)}" for k, v in value.items()]
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or len(value) > MAX_LIST_ITEMS:
        return None, f"must be a list of at most {MAX_LIST_ITEMS} key=value strings"
    pairs: list[tuple[str, str]] = []
    for item in value:
        if not isinstance(item, str) or "=" not in item:
            return None, "items must be key=value strings"
        key, _, raw = item.partition("=")
        pairs.append((key.strip(), raw.strip()))
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        return None, "each key may appear once"
    return pairs, None


def _literal_text(value: Any) -> str:
    """A JSON value from a ``{"key": value}`` form, as the text a user would have typed."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _python_literal(raw: str) -> tuple[Any, str | None]:
    """What ``ast.literal_eval`` reads from ``raw`` (sd-scripts' parser), with true/false accepted.

    Users write JSON-style ``true``/``false``; ``ast.literal_eval`` only knows ``True``/``False``
    and raises ValueError on anything else (train_util.get_optimizer), so they are normalised.
    """
    if not _KV_VALUE.fullmatch(raw):
        return None, "must be a plain number, true/false or a tuple of numbers"
    text = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", raw, flags=re.I), flags=re.I)
    try:
        return ast.literal_eval(text), None
    except (ValueError, SyntaxError):
        return None, f"{raw!r} is not a Python literal sd-scripts can read (ast.literal_eval)"


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _typed_value(kind: str, value: Any) -> tuple[Any, str | None]:
    """Check one parsed value against its kind; returns the value in its canonical type."""
    if kind == "bool":
        return (value, None) if isinstance(value, bool) else (None, "must be true or false")
    if kind == "float_pair":
        if isinstance(value, tuple | list) and len(value) == 2 and all(_is_number(v) for v in value):
            if all(0 <= v < 1 for v in value):
                return tuple(float(v) for v in value), None
            return None, "values must be at least 0 and below 1"
        return None, "must be two numbers, e.g. 0.9,0.999"
    if kind == "positive_int":
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1024:
            return value, None
        return None, "must be a whole number from 1 to 1024"
    if not _is_number(value):
        return None, "must be a number"
    value = float(value)
    if kind == "probability" and not 0 <= value <= 1:
        return None, "must be from 0 to 1"
    if kind == "positive_float" and value <= 0:
        return None, "must be greater than 0"
    if kind == "non_negative_float" and value < 0:
        return None, "must be at least 0"
    return value, None


def _normalise_network_args(param: Param, value: Any) -> tuple[ParamValue | None, str | None]:
    """networks.lora's ``key=value`` strings, each value readable by its ``int()``/``float()``."""
    pairs, problem = _key_values(value)
    if pairs is None:
        return None, problem
    out: list[str] = []
    for key, raw in pairs:
        kind = NETWORK_ARG_KINDS.get(key)
        if kind is None:
            return None, f"unknown key {key!r}; allowed: {', '.join(param.allowed_keys)}"
        parsed, problem = _python_literal(raw)
        if problem is None:
            parsed, problem = _typed_value(kind, parsed)
        if problem:
            return None, f"{key}: {problem}"
        out.append(f"{key}={parsed!r}")
    return out, None


def _normalise_optimizer_args(param: Param, value: Any) -> tuple[ParamValue | None, str | None]:
    """Keyword arguments as ``key=<Python literal>``: what ``ast.literal_eval`` reads back."""
    pairs, problem = _key_values(value)
    if pairs is None:
        return None, problem
    out: list[str] = []
    for key, raw in pairs:
        kind = OPTIMIZER_ARG_KINDS.get(key)
        if kind is None:
            return None, f"unknown key {key!r}; allowed: {', '.join(param.allowed_keys)}"
        parsed, problem = _python_literal(raw)
        if problem is None and key in ADAFACTOR_PAIR_ARGS and isinstance(parsed, tuple | list):
            parsed, problem = _positive_pair(parsed)
        elif problem is None:
            parsed, problem = _typed_value(kind, parsed)
        if problem:
            return None, f"{key}: {problem}"
        out.append(f"{key}={parsed!r}")
    return out, None


def _positive_pair(value: tuple[Any, ...] | list[Any]) -> tuple[Any, str | None]:
    if len(value) == 2 and all(_is_number(v) and v > 0 for v in value):
        return tuple(float(v) for v in value), None
    return None, "must be a positive number (or two, for Adafactor)"


_NORMALISERS: dict[str, Callable[[Param, Any], tuple[ParamValue | None, str | None]]] = {
    "bool": _normalise_bool,
    "int": _normalise_int,
    "float": _normalise_float,
    "enum": _normalise_enum,
    "int_choice": _normalise_int_choice,
    "resolution": _normalise_resolution,
    "network_args": _normalise_network_args,
    "optimizer_args": _normalise_optimizer_args,
}


def resolution_sides(config: Mapping[str, Any]) -> tuple[int, int] | None:
    """(width, height) as ``train_util.prepare_dataset_args`` reads the resolution string."""
    value = config.get("resolution")
    if not isinstance(value, str):
        return None
    sides = [int(side) for side in value.split(",")]
    return (sides[0], sides[-1]) if sides else None


def optimizer_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """The optimizer_args as ``train_util.get_optimizer`` reads them (``ast.literal_eval``)."""
    items = config.get("optimizer_args")
    kwargs: dict[str, Any] = {}
    for item in items if isinstance(items, list) else []:
        key, _, raw = item.partition("=")
        kwargs[key] = ast.literal_eval(raw)
    return kwargs


def _problem(key: str, text: str) -> FieldProblem:
    return FieldProblem(f"config.{key}", text)


def _network_problems(config: dict[str, ParamValue]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    # train_network.py NetworkTrainer.train: train_unet = not text_encoder_only, and the text
    # encoder is trained unless unet_only; both leaves nothing to train.
    if config.get("network_train_unet_only") and config.get("network_train_text_encoder_only"):
        problems.append(
            _problem("network_train_text_encoder_only", "cannot be combined with network_train_unet_only")
        )
    # train_network.py NetworkTrainer.train: assert mixed_precision == "fp16" / "bf16".
    if config.get("full_fp16") and config.get("mixed_precision") != "fp16":
        problems.append(_problem("full_fp16", "requires mixed_precision fp16 (sd-scripts asserts it)"))
    if config.get("full_bf16") and config.get("mixed_precision") != "bf16":
        problems.append(_problem("full_bf16", "requires mixed_precision bf16 (sd-scripts asserts it)"))
    # train_util.replace_unet_modules imports xformers ("No xformers" ImportError otherwise); the
    # training image (training_container/Dockerfile) installs sd-scripts' requirements, which
    # do not include it. sdpa is the memory-efficient attention the image supports.
    if config.get("xformers"):
        problems.append(
            _problem("xformers", "is not installed in the training image; use sdpa (on by default) instead")
        )
    return problems


@dataclass(frozen=True)
class OnlyReadWhen:
    """``key`` is read by sd-scripts only when ``controller`` (unset: ``controller_default``, the
    script's own default) is one of ``values``; otherwise setting it silently does nothing."""

    key: str
    controller: str
    controller_default: str
    values: tuple[str, ...]
    source: str  # where sd-scripts reads it

    def is_read(self, config: Mapping[str, Any]) -> bool:
        return config.get(self.controller, self.controller_default) in self.values


_ONLY_READ_WHEN = (
    # library/flux_train_utils.py get_noisy_model_input_and_timesteps (lines 477-512) and
    # flux_train_network.py get_noise_scheduler (FlowMatchEulerDiscreteScheduler shift, read by the
    # sigma branch's noise_scheduler.timesteps); the guide: "only applies when ... shift" (line 338).
    OnlyReadWhen(
        "discrete_flow_shift",
        "timestep_sampling",
        "sigma",
        ("shift", "sigma"),
        "flux_train_utils.get_noisy_model_input_and_timesteps",
    ),
    OnlyReadWhen(
        "sigmoid_scale",
        "timestep_sampling",
        "sigma",
        ("sigmoid", "shift", "flux_shift"),
        "flux_train_utils.get_noisy_model_input_and_timesteps",
    ),
    # library/sd3_train_utils.py compute_density_for_timestep_sampling: logit_mean/logit_std only
    # for "logit_normal", mode_scale only for "mode".
    OnlyReadWhen(
        "logit_mean",
        "weighting_scheme",
        "uniform",
        ("logit_normal",),
        "sd3_train_utils.compute_density_for_timestep_sampling",
    ),
    OnlyReadWhen(
        "logit_std",
        "weighting_scheme",
        "uniform",
        ("logit_normal",),
        "sd3_train_utils.compute_density_for_timestep_sampling",
    ),
    OnlyReadWhen(
        "mode_scale",
        "weighting_scheme",
        "uniform",
        ("mode",),
        "sd3_train_utils.compute_density_for_timestep_sampling",
    ),
)


def _unread_problems(config: dict[str, ParamValue], fm_type: FmType) -> list[FieldProblem]:
    """A value sd-scripts would never read: refused, so the user learns it does nothing."""
    problems = [
        _problem(
            rule.key,
            f"has no effect unless {rule.controller} is {' or '.join(rule.values)} "
            f"(sd-scripts reads it only then: {rule.source})",
        )
        for rule in _ONLY_READ_WHEN
        if rule.key in config and not rule.is_read(config)
    ]
    # FLUX.1 reads weighting_scheme only to draw "sigma" timesteps (flux_train_utils.py lines
    # 500-509) and to weight a "sigma_scaled" prediction's loss (lines 539-545).
    flux_reads_weighting = config.get("timestep_sampling", "sigma") == "sigma" or (
        config.get("model_prediction_type", "sigma_scaled") == "sigma_scaled"
    )
    if fm_type in FLUX_FAMILIES and "weighting_scheme" in config and not flux_reads_weighting:
        problems.append(
            _problem(
                "weighting_scheme",
                "has no effect on FLUX.1 unless timestep_sampling is sigma or model_prediction_type "
                "is sigma_scaled (flux_train_utils.get_noisy_model_input_and_timesteps, "
                "apply_model_prediction_type)",
            )
        )
    return problems


def _memory_problems(config: dict[str, ParamValue], fm_type: FmType) -> list[FieldProblem]:
    """The DiT scripts' memory options, as flux_train_network.py / sd3_train_network.py check them."""
    problems: list[FieldProblem] = []
    blocks, block_swap = config.get("blocks_to_swap"), FAMILIES[fm_type].block_swap
    if block_swap is not None and isinstance(blocks, int) and blocks > block_swap.maximum:
        # library/flux_models.py Flux.enable_block_swap / sd3_models.py MMDiT.enable_block_swap assert it.
        problems.append(
            _problem(
                "blocks_to_swap",
                f"must be at most {block_swap.maximum} for {FAMILIES[fm_type].display_name} "
                "(sd-scripts' enable_block_swap asserts it)",
            )
        )
    offload = config.get("cpu_offload_checkpointing")
    # flux_train_network.py assert_extra_args (lines 77-79), sd3_train_network.py (lines 60-62).
    if offload and isinstance(blocks, int) and blocks > 0:
        problems.append(
            _problem(
                "cpu_offload_checkpointing",
                "cannot be combined with blocks_to_swap (sd-scripts asserts it); set blocks_to_swap to 0 "
                "or null to offload checkpoints",
            )
        )
    # train_network.py lines 716-718 read it only inside `if args.gradient_checkpointing`.
    if offload and not config.get("gradient_checkpointing"):
        problems.append(
            _problem("cpu_offload_checkpointing", "has no effect without gradient_checkpointing (sd-scripts)")
        )
    # train_network.py lines 829-833: fp8 weights need autocast to fp16 or bf16.
    for key in ("fp8_base", "fp8_base_unet"):
        if config.get(key) and config.get("mixed_precision", "no") == "no":
            problems.append(_problem(key, "requires mixed_precision fp16 or bf16 (sd-scripts asserts it)"))
    return problems


def _caching_problems(config: dict[str, ParamValue], fm_type: FmType) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    # train_util.verify_training_args turns cache_latents on with cache_latents_to_disk; then
    # train_network.py NetworkTrainer.train asserts dataset.is_latent_cacheable().
    if (config.get("cache_latents") or config.get("cache_latents_to_disk")) and (
        config.get("random_crop") or config.get("color_aug")
    ):
        problems.append(
            _problem(
                "cache_latents",
                "cannot be combined with random_crop or color_aug: cached latents are computed "
                "once, before any augmentation (sd-scripts asserts it)",
            )
        )
    if not config.get("cache_text_encoder_outputs"):
        return problems
    # sdxl_train_network.py assert_extra_args (FLUX.1 and SD 3.5 cache partially instead).
    if FAMILIES[fm_type].text_encoder_cache_needs_unet_only and not config.get("network_train_unet_only"):
        problems.append(
            _problem(
                "cache_text_encoder_outputs",
                "requires network_train_unet_only: a text encoder whose outputs are cached cannot "
                "be trained (sd-scripts asserts it)",
            )
        )
    # sdxl_train_network.py, flux_train_network.py (lines 65-68), sd3_train_network.py (lines 48-51)
    # assert_extra_args -> DatasetGroup.is_text_encoder_output_cacheable.
    for key in ("shuffle_caption", "caption_dropout_rate", "caption_tag_dropout_rate"):
        value = config.get(key)
        if value is True or (_is_number(value) and float(value) > 0):
            problems.append(
                _problem(
                    key,
                    "cannot be used with cache_text_encoder_outputs: captions are encoded once, "
                    "before training, so they cannot change per step (sd-scripts asserts it); "
                    "set cache_text_encoder_outputs to false",
                )
            )
    return problems


def _bucket_problems(config: dict[str, ParamValue], fm_type: FmType) -> list[FieldProblem]:
    """Mirrors of sd-scripts' bucket checks; they only run when bucketing is on."""
    if not config.get("enable_bucket"):
        return []
    problems: list[FieldProblem] = []
    steps = config.get("bucket_reso_steps", 64)  # config_util's dataset default
    multiple = BUCKET_STEP_MULTIPLE[fm_type]
    if isinstance(steps, int) and steps % multiple:
        problems.append(
            _problem("bucket_reso_steps", f"must be a multiple of {multiple} for {fm_type.value} models")
        )
        return problems
    sides = resolution_sides(config)
    lo, hi = config.get("min_bucket_reso", 256), config.get("max_bucket_reso", 1024)
    if sides is None or not isinstance(steps, int) or not isinstance(lo, int) or not isinstance(hi, int):
        return problems
    # BaseDataset.adjust_min_max_bucket_reso_by_steps rounds min down and max up to the step,
    # then asserts min(resolution) >= min_bucket_reso and max(resolution) <= max_bucket_reso.
    lo_adjusted, hi_adjusted = lo - lo % steps, hi + (-hi) % steps
    if lo > hi:
        problems.append(_problem("min_bucket_reso", "must not exceed max_bucket_reso"))
    elif lo_adjusted > min(sides):
        problems.append(
            _problem(
                "min_bucket_reso",
                f"({lo_adjusted} after rounding to bucket_reso_steps) must not exceed the resolution's "
                f"smaller side {min(sides)} (sd-scripts asserts it)",
            )
        )
    elif max(sides) > hi_adjusted:
        problems.append(
            _problem(
                "max_bucket_reso",
                f"({hi_adjusted} after rounding to bucket_reso_steps) must be at least the resolution's "
                f"larger side {max(sides)} (sd-scripts asserts it)",
            )
        )
    return problems


def _optimizer_problems(config: dict[str, ParamValue]) -> list[FieldProblem]:
    """train_util.get_optimizer and get_scheduler_fix, for the optimizer and schedule chosen."""
    problems: list[FieldProblem] = []
    optimizer = str(config.get("optimizer_type") or "AdamW")  # get_optimizer's default
    kwargs = optimizer_kwargs(config)
    accepted = OPTIMIZER_KEYWORDS.get(optimizer, frozenset())
    for key in kwargs:
        if key not in accepted:
            problems.append(
                _problem(
                    "optimizer_args",
                    f"{key!r} is not an argument of {optimizer}; it takes {', '.join(sorted(accepted))}",
                )
            )
    if optimizer != "Adafactor" and isinstance(kwargs.get("eps"), tuple):
        problems.append(_problem("optimizer_args", f"eps of {optimizer} must be one number"))
    # transformers' Adafactor reads eps[0] and eps[1] at its first step: a single number would
    # pass construction and crash the first training step.
    if optimizer == "Adafactor" and "eps" in kwargs and not isinstance(kwargs["eps"], tuple):
        problems.append(_problem("optimizer_args", "eps of Adafactor must be two numbers, e.g. 1e-30,1e-3"))
    if optimizer == "SGDNesterov" and kwargs.get("momentum", 0.9) <= 0:
        problems.append(_problem("optimizer_args", "SGDNesterov needs a momentum above 0 (torch.optim.SGD)"))
    schedule = config.get("lr_scheduler", "constant")  # add_optimizer_arguments' default
    warmup = config.get("lr_warmup_steps", 0)
    if schedule == "adafactor" and optimizer != "Adafactor":
        problems.append(
            _problem(
                "lr_scheduler",
                "adafactor can only be used with optimizer_type Adafactor "
                "(sd-scripts: 'adafactor scheduler must be used with Adafactor optimizer')",
            )
        )
    # get_optimizer: Adafactor with relative_step (its default, forced on by warmup_init) replaces
    # the schedule with "adafactor:<lr>"; without relative_step a plain "adafactor" schedule has no
    # initial learning rate and get_scheduler_fix fails reading it.
    relative_step = bool(kwargs.get("relative_step", True) or kwargs.get("warmup_init", False))
    if optimizer == "Adafactor" and schedule == "adafactor" and not relative_step:
        problems.append(
            _problem("lr_scheduler", "adafactor needs Adafactor's relative_step (drop relative_step=False)")
        )
    # get_scheduler_fix -> transformers' get_polynomial_decay_schedule_with_warmup raises unless its
    # lr_end (1e-7, sd-scripts passes no other) is below the optimizer's initial learning rate.
    learning_rate = config.get("learning_rate", 2e-6)  # add_optimizer_arguments' default
    if schedule == "polynomial" and _is_number(learning_rate) and learning_rate <= POLYNOMIAL_LR_END:
        problems.append(
            _problem(
                "learning_rate",
                f"must be above {POLYNOMIAL_LR_END:g} with the polynomial schedule, "
                "which decays to that value",
            )
        )
    # get_scheduler_fix: constant and adafactor schedules raise "does not require num_warmup_steps".
    takes_no_warmup = schedule == "constant" or (optimizer == "Adafactor" and relative_step)
    if takes_no_warmup and isinstance(warmup, int) and warmup > 0:
        active = "adafactor (Adafactor with relative_step)" if optimizer == "Adafactor" else schedule
        problems.append(
            _problem(
                "lr_warmup_steps",
                f"must be 0 with the {active} schedule, which has no warm-up; "
                "use constant_with_warmup (and, for Adafactor, relative_step=False) to warm up",
            )
        )
    return problems


def _check_combination(config: dict[str, ParamValue], fm_type: FmType) -> list[FieldProblem]:
    """Rules that span several keys; each mirrors a check sd-scripts makes (cited in each)."""
    return [
        *_network_problems(config),
        *_caching_problems(config, fm_type),
        *_memory_problems(config, fm_type),
        *_unread_problems(config, fm_type),
        *_bucket_problems(config, fm_type),
        *_optimizer_problems(config),
    ]


def validate_config(
    user_config: Mapping[str, Any],
    fm_type: FmType,
    *,
    merge_defaults: bool = True,
    instance_type: str | None = None,
) -> tuple[dict[str, ParamValue], list[FieldProblem]]:
    """Normalise a user's Kohya parameters, or list every problem with its field.

    Returns ``(normalised, problems)``; ``normalised`` is only meaningful when ``problems``
    is empty. With ``merge_defaults`` the family defaults fill in whatever the user left
    out, so the result is exactly what the container will run with; given the job's
    ``instance_type`` too, that includes the ``blocks_to_swap`` its GPU needs (``fit_to_gpu``).
    """
    problems: list[FieldProblem] = []
    if len(user_config) > MAX_CONFIG_KEYS:
        return {}, [FieldProblem("config", f"has more than {MAX_CONFIG_KEYS} keys")]
    normalised: dict[str, ParamValue] = defaults_for(fm_type) if merge_defaults else {}
    for key, value in user_config.items():
        field_name = f"config.{key}"
        if key == "network_module" and value == ALLOWED_NETWORK_MODULES[fm_type]:
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
            problems.append(FieldProblem(field_name, not_for_family(key, fm_type)))
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
    if normalised.get("max_token_length") == TOKEN_LENGTH_UNSET:
        del normalised["max_token_length"]  # sd-scripts' unset value; 75 itself is not a choice
    if merge_defaults:
        _drop_defaults_overruled_by_user(normalised, user_config, fm_type)
        _buckets_follow_resolution(normalised, user_config)
        if instance_type is not None:
            fit_to_gpu(normalised, user_config, fm_type, instance_type)
    if not problems:
        problems.extend(_check_combination(normalised, fm_type))
    return normalised, problems


def _user_sets(user: Mapping[str, Any], key: str) -> bool:
    """The user turned ``key`` on (true, or a rate above 0)."""
    value = user.get(key)
    if isinstance(value, str):
        value = value.strip().lower()
        return value == "true" or (value.replace(".", "", 1).isdigit() and float(value) > 0)
    return value is True or (_is_number(value) and float(value) > 0)


def not_for_family(key: str, fm_type: FmType) -> str:
    """Why ``key`` is refused for the family: its spec's reason, else its script lacks the option."""
    spec = FAMILIES[fm_type]
    reason = spec.refused_kohya_params.get(key)
    if reason is None:
        reason = f"{spec.kohya_script} has no --{key}"
    return f"does not apply to {spec.display_name} models: {reason}"


def fit_to_gpu(
    normalised: dict[str, ParamValue], user: Mapping[str, Any], fm_type: FmType, instance_type: str
) -> None:
    """Unset ``blocks_to_swap`` becomes what the instance type's GPU needs (FamilySpec.block_swap).

    Only a value the user left out is chosen (an explicit null keeps sd-scripts' "no swapping"),
    and never next to cpu_offload_checkpointing, which sd-scripts refuses with block swapping.
    An instance type outside the catalogue is left to the API's instance check.
    """
    block_swap, instance = FAMILIES[fm_type].block_swap, INSTANCE_TYPES.get(instance_type)
    if block_swap is None or instance is None or "blocks_to_swap" in user:
        return
    if normalised.get("cpu_offload_checkpointing"):
        return
    blocks = block_swap.fitting(instance.gpu_memory_gb)
    if blocks:
        normalised["blocks_to_swap"] = blocks


def _drop_defaults_overruled_by_user(
    normalised: dict[str, ParamValue], user: Mapping[str, Any], fm_type: FmType
) -> None:
    """A default must never silently defeat what the user asked for.

    sd-scripts lets ``max_train_epochs`` override ``max_train_steps``: a user who sets only
    steps means steps. SDXL's default text-encoder caching only works UNet-only and with fixed
    captions: a user who turns text-encoder training, caption shuffling or caption dropout on
    must not trip over a default they never chose.
    """
    if "max_train_steps" in user and "max_train_epochs" not in user:
        normalised.pop("max_train_epochs", None)
    trains_text_encoder = user.get("network_train_unet_only") in (False, "false")
    if _user_sets(user, "network_train_text_encoder_only") and "network_train_unet_only" not in user:
        normalised.pop("network_train_unet_only", None)  # SDXL's default; text-encoder-only wins
        trains_text_encoder = True
    # FLUX.1 and SD 3.5 cache text-encoder outputs partially while CLIP trains; SDXL cannot.
    cache_blocks_training = FAMILIES[fm_type].text_encoder_cache_needs_unet_only and trains_text_encoder
    if "cache_text_encoder_outputs" not in user and (
        cache_blocks_training
        or any(
            _user_sets(user, key)
            for key in ("shuffle_caption", "caption_dropout_rate", "caption_tag_dropout_rate")
        )
    ):
        normalised.pop("cache_text_encoder_outputs", None)
    if (_user_sets(user, "random_crop") or _user_sets(user, "color_aug")) and "cache_latents" not in user:
        normalised["cache_latents"] = False
    # FLUX.1's default fp8 base needs mixed precision (train_network.py lines 829-833).
    if normalised.get("mixed_precision") == "no" and "fp8_base" not in user:
        normalised.pop("fp8_base", None)
    for rule in _ONLY_READ_WHEN:
        if rule.key not in user and rule.key in normalised and not rule.is_read(normalised):
            del normalised[rule.key]  # a default the user's choice of rule.controller makes moot


def _buckets_follow_resolution(normalised: dict[str, ParamValue], user: Mapping[str, Any]) -> None:
    """Default bucket bounds widen to include a resolution the user chose.

    sd-scripts asserts ``min_bucket_reso <= min(resolution)`` and ``max(resolution) <=
    max_bucket_reso`` (BaseDataset.adjust_min_max_bucket_reso_by_steps): SDXL at 256 px, or
    SD 1.5 at 1536 px, would crash with the family's default bounds. Bounds the user set
    themselves are kept (and checked).
    """
    sides = resolution_sides(normalised)
    if sides is None or "resolution" not in user:
        return
    lo, hi = normalised.get("min_bucket_reso"), normalised.get("max_bucket_reso")
    if "min_bucket_reso" not in user and isinstance(lo, int) and lo > min(sides):
        normalised["min_bucket_reso"] = min(sides)
    if "max_bucket_reso" not in user and isinstance(hi, int) and hi < max(sides):
        normalised["max_bucket_reso"] = max(sides)


# Parameters the portable diffusers engine (training_container/engines/diffusers_engine.py)
# honours; any other parameter is accepted (sd-scripts uses it) but has no effect there.
DIFFUSERS_ENGINE_PARAMETERS = frozenset(
    {
        "network_dim", "network_alpha", "network_dropout", "network_train_unet_only",
        "network_train_text_encoder_only", "learning_rate", "unet_lr", "text_encoder_lr",
        "optimizer_type", "optimizer_args", "lr_scheduler", "lr_warmup_steps", "lr_scheduler_num_cycles",
        "lr_scheduler_power", "max_grad_norm", "train_batch_size", "gradient_accumulation_steps",
        "max_train_epochs", "max_train_steps", "seed", "min_snr_gamma", "noise_offset", "mixed_precision",
        "save_precision", "gradient_checkpointing", "cache_latents", "cache_latents_to_disk",
        "cache_text_encoder_outputs", "no_half_vae", "sdpa", "max_data_loader_n_workers", "resolution",
        "enable_bucket", "min_bucket_reso", "max_bucket_reso", "bucket_reso_steps", "bucket_no_upscale",
        "random_crop", "flip_aug", "shuffle_caption", "keep_tokens", "caption_dropout_rate", "clip_skip",
        "save_every_n_epochs",
        # FLUX.1 / SD 3.5 adapters (training_container/engines/families/flux1.py FluxTraining,
        # sd35.py SD35Training)
        "guidance_scale", "timestep_sampling", "sigmoid_scale", "discrete_flow_shift",
        "model_prediction_type", "t5xxl_max_token_length", "weighting_scheme", "logit_mean", "logit_std",
        "mode_scale", "training_shift",
    }
)  # fmt: skip
# Values of those parameters the diffusers engine does not implement (it trains raw predictions,
# flow_matching.py, and refuses sd-scripts' "sigma" sampling, flux1.py TIMESTEP_SAMPLINGS).
DIFFUSERS_ENGINE_VALUES: Mapping[str, tuple[str, ...]] = {
    "model_prediction_type": ("raw",),
    "timestep_sampling": ("uniform", "sigmoid", "shift", "flux_shift"),
}
# How sd-scripts fits FLUX.1 / SD 3.5 into GPU memory: they change memory and speed, not what is
# learned; the diffusers engine (local runs, tiny models) has no use for them, so no warning.
MEMORY_ONLY_PARAMETERS = frozenset(
    {"fp8_base", "fp8_base_unet", "blocks_to_swap", "cpu_offload_checkpointing"}
)


def engine_warnings(config: Mapping[str, Any], engine: str) -> list[FieldWarning]:
    """Parameters the job's engine will ignore, so the user hears it before paying.

    ``engine`` is the deployment's training engine ("kohya", "diffusers" or "auto": kohya when
    the image has sd-scripts, which AWS images do). sd-scripts honours every catalogue parameter.
    """
    if engine not in ("diffusers", "auto"):
        return []
    where = (
        "the diffusers engine"
        if engine == "diffusers"
        else "the diffusers engine (used when sd-scripts is absent)"
    )
    warnings = [
        FieldWarning(f"config.{key}", f"is ignored by {where}; sd-scripts would apply it")
        for key in sorted(config)
        if key not in DIFFUSERS_ENGINE_PARAMETERS and key not in MEMORY_ONLY_PARAMETERS
    ]
    warnings += [
        FieldWarning(
            f"config.{key}",
            f"{config[key]} is not implemented by {where} (it supports {', '.join(values)}); "
            "sd-scripts would apply it",
        )
        for key, values in DIFFUSERS_ENGINE_VALUES.items()
        if key in config and config[key] not in values
    ]
    return warnings
