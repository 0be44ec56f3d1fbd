"""The diffusers engine's parameters: one typed, frozen value built once from the normalised config.

Whatever the request leaves unset takes sd-scripts' own default from the parameter catalogue
(functions.domain.kohya_params.SD_SCRIPTS_DEFAULTS), so the two engines train one request the
same way; nothing in the engine reads the raw config with a fallback of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from functions.domain.catalog import FmType
from functions.domain.families import FAMILIES
from functions.domain.kohya_params import SD_SCRIPTS_DEFAULTS, ParamValue


@dataclass(frozen=True)
class EngineConfig:
    """Every parameter the diffusers engine acts on; None keeps sd-scripts' meaning of "unset"."""

    network_dim: int
    network_alpha: float
    network_dropout: float | None
    network_train_unet_only: bool
    network_train_text_encoder_only: bool
    unet_lr: float | None
    text_encoder_lr: float | None
    learning_rate: float
    optimizer_type: str
    optimizer_args: tuple[str, ...] | None
    lr_scheduler: str
    lr_warmup_steps: int
    lr_scheduler_num_cycles: int
    lr_scheduler_power: float
    max_grad_norm: float
    train_batch_size: int
    gradient_accumulation_steps: int
    max_train_epochs: int | None
    max_train_steps: int
    seed: int | None
    min_snr_gamma: float | None
    noise_offset: float | None
    mixed_precision: str
    save_precision: str | None
    gradient_checkpointing: bool
    cache_latents: bool
    no_half_vae: bool
    clip_skip: int | None
    save_every_n_epochs: int | None
    resolution: str | None
    enable_bucket: bool
    min_bucket_reso: int
    max_bucket_reso: int
    bucket_reso_steps: int
    bucket_no_upscale: bool
    random_crop: bool
    flip_aug: bool
    shuffle_caption: bool
    keep_tokens: int
    caption_dropout_rate: float

    @classmethod
    def from_parameters(cls, config: Mapping[str, ParamValue]) -> EngineConfig:
        """The normalised config over sd-scripts' defaults, each value in its field's type."""
        merged = {**SD_SCRIPTS_DEFAULTS, **config}
        values: dict[str, Any] = {f.name: _typed(str(f.type), merged.get(f.name)) for f in fields(cls)}
        return cls(**values)

    # sd-scripts' readings of "unset"
    @property
    def unet_learning_rate(self) -> float:
        return self.learning_rate if self.unet_lr is None else self.unet_lr

    @property
    def text_encoder_learning_rate(self) -> float:
        return self.learning_rate if self.text_encoder_lr is None else self.text_encoder_lr

    @property
    def layer_from_last(self) -> int:
        """CLIP layer counted from the last (``clip_skip``; unset: the last, 1)."""
        return 1 if self.clip_skip is None else self.clip_skip

    def resolution_or_native(self, fm_type: FmType) -> str:
        """The training resolution; sd-scripts requires one, the family's native side stands in."""
        return self.resolution or str(FAMILIES[fm_type].native_side)

    def seed_for(self, job_id: str) -> int:
        """The seed; unset, sd-scripts draws a random one. Here it is drawn from the job id, so a
        resumed (spot-interrupted) job continues the same data order."""
        if self.seed is not None:
            return self.seed
        return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big")


def _typed(annotation: str, value: ParamValue | None) -> object:
    """``value`` converted to the field's type (validated already: only the number kind may differ)."""
    if value is None:
        if "None" not in annotation:
            raise ValueError(f"a required engine parameter has no value ({annotation})")
        return None
    base = annotation.split(" |")[0]
    if base == "bool":
        return bool(value)
    if base == "int":
        return int(value)  # type: ignore[arg-type]
    if base == "float":
        return float(value)  # type: ignore[arg-type]
    if base == "str":
        return str(value)
    if base == "tuple[str, ...]":
        return tuple(str(item) for item in value) if isinstance(value, list) else (str(value),)
    raise TypeError(f"no conversion for {annotation}")
