"""What FLUX.1 and SD 3.5 share: a transformer denoiser trained by rectified flow matching.

Both families are trained as sd-scripts v0.10.1 trains them (library/flux_train_utils.py
``get_noisy_model_input_and_timesteps``, library/sd3_train_utils.py of the same name): draw a
noise level sigma in [0, 1] per sample, mix ``x_t = (1 - sigma) * x_0 + sigma * noise``, and train
the transformer to predict the velocity ``noise - x_0`` (``--model_prediction_type raw``, the
guides' setting: docs/flux_train_network.md lines 144-146 and 352). Timesteps handed to the
transformer are ``sigma * 1000`` divided back by 1000, as sd-scripts and diffusers' pipelines do.
Latents are the VAE's ``(latent - shift_factor) * scaling_factor`` (flux_models.AutoEncoder,
sd3_models.SDVAE). Neither script applies ``--noise_offset`` or min-SNR weighting to flow
matching, so the adapters do not either (``loss_weights`` is None: uniform weighting).

The LoRA layers are the ``Linear`` layers inside the transformer blocks sd-scripts wraps, named
after the original (BFL / MMDiT) modules; the diffusers layers that the original fuses share one
down projection and are exported as one module (``training_container.engines.families.fused_lora``).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import torch

from functions.domain.families import ComponentRole
from training_container.engines.families.base import FamilyAdapter, NoisyBatch
from training_container.engines.families.fused_lora import LoraPart, fused_kohya_tensors, share_fused_downs
from training_container.engines.kohya_lora_format import kohya_tensors
from training_container.model_loading import BasePipeline, ensure_family

logger = logging.getLogger(__name__)
OptionsT = TypeVar("OptionsT")

# The Linear layers of Hugging Face CLIP inside sd-scripts' TEXT_ENCODER_TARGET_REPLACE_MODULE
# (CLIPAttention, CLIPMLP): networks/lora_flux.py line 711, networks/lora_sd3.py line 232.
CLIP_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")


class FlowMatchingAdapter(FamilyAdapter):
    """The transformer + rectified-flow part of FLUX.1 and SD 3.5; subclasses add text encoding,
    the transformer's call, the noise-level distribution and the module-name mapping."""

    text_encoder_lora_targets = CLIP_TARGET_MODULES
    denoiser_state_key = "transformer"
    # The diffusers pipeline class the family's folders hold (FluxPipeline, StableDiffusion3Pipeline).
    pipeline_class: ClassVar[Any]
    # Module-path prefixes of the transformer blocks sd-scripts puts LoRA in.
    lora_block_prefixes: ClassVar[tuple[str, ...]]

    def __init__(self, pipe: BasePipeline) -> None:
        super().__init__(pipe)
        # The T5 encoder only encodes: sd-scripts trains it only with --network_args
        # train_t5xxl=True (lora_flux.py line 575, lora_sd3.py line 139), off by default.
        for encoder in self.frozen_encoders:
            encoder.requires_grad_(False)
            encoder.eval()

    @property
    @abstractmethod
    def t5_token_length(self) -> int:
        """T5-XXL's token budget for captions and sample prompts alike: sd-scripts samples through
        the same tokenize strategy it trains with (flux_train_utils.py line 208, sd3_train_utils.py
        line 536)."""

    def sample_pipeline_options(self) -> dict[str, Any]:
        return {"max_sequence_length": self.t5_token_length}

    @classmethod
    def load(
        cls, model_path: Path, dtype: torch.dtype, components: Mapping[ComponentRole, Path] | None = None
    ) -> Self:
        """A diffusers folder, or the files users upload: the main checkpoint and its components."""
        ensure_family(model_path, cls.fm_type)
        if model_path.is_dir():
            return cls.from_folder(model_path, dtype)
        return cls(cls.pipeline_from_files(model_path, components or {}, dtype))

    @classmethod
    @abstractmethod
    def pipeline_from_files(
        cls, model_path: Path, components: Mapping[ComponentRole, Path], dtype: torch.dtype
    ) -> BasePipeline:
        """The family's pipeline from its uploaded main file and component files."""

    @classmethod
    def from_folder(cls, model_path: Path, dtype: torch.dtype) -> Self:
        """The family's pipeline from a diffusers folder, offline."""
        pipe = cls.pipeline_class.from_pretrained(str(model_path), torch_dtype=dtype, local_files_only=True)
        return cls(pipe)

    # --- what is trained
    @property
    def denoiser(self) -> torch.nn.Module:
        transformer: torch.nn.Module = self.pipe.transformer
        return transformer

    @property
    @abstractmethod
    def frozen_encoders(self) -> list[torch.nn.Module]:
        """Text encoders used for conditioning but never given LoRA (T5-XXL)."""

    def denoiser_lora_target_modules(self) -> list[str]:
        """Exact paths of the targeted layers inside the blocks: a bare suffix would also catch
        layers outside them that sd-scripts leaves alone (FLUX's final ``proj_out``)."""
        return [
            path
            for path, module in self.denoiser.named_modules()
            if path.startswith(self.lora_block_prefixes)
            and any(path.endswith("." + target) for target in self.denoiser_lora_targets)
            and isinstance(module, torch.nn.Linear)
        ]

    def encode_latents(self, pixels: torch.Tensor, device: torch.device) -> torch.Tensor:
        vae: Any = self.vae
        with torch.no_grad():
            latents = vae.encode(pixels.to(device, vae.dtype)).latent_dist.sample()
        shift = float(vae.config.shift_factor or 0.0)
        return (latents.float() - shift) * float(vae.config.scaling_factor)

    # --- noise, target, prediction
    @abstractmethod
    def sample_sigmas(self, latents: torch.Tensor) -> torch.Tensor:
        """One noise level in [0, 1] per sample, from the family's training distribution."""

    def noisy_input(self, latents: torch.Tensor, noise_offset: float) -> NoisyBatch:
        if noise_offset:
            logger.warning("noise_offset is not applied to flow-matching families (sd-scripts does not)")
        noise = torch.randn_like(latents)
        sigmas = self.sample_sigmas(latents).to(latents.device, torch.float32)
        mix = sigmas.view(-1, *([1] * (latents.ndim - 1)))
        noisy = (1.0 - mix) * latents + mix * noise
        return NoisyBatch(noisy=noisy, timesteps=sigmas * 1000.0, target=noise - latents)

    def loss_weights(self, batch: NoisyBatch, min_snr_gamma: float | None) -> torch.Tensor | None:
        if min_snr_gamma:
            logger.warning("min_snr_gamma does not apply to flow matching; the loss is unweighted")
        return None

    # --- sd-scripts key names
    @abstractmethod
    def denoiser_lora_part(self, module_path: str) -> LoraPart:
        """The sd-scripts LoRA module a diffusers transformer layer belongs to."""

    def denoiser_lora_name(self, module_path: str) -> str:
        return self.denoiser_lora_part(module_path).name

    def share_denoiser_lora_parts(self) -> None:
        share_fused_downs(self.denoiser, self.denoiser_lora_part)

    def kohya_lora_tensors(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The transformer's layers fused back into sd-scripts' modules; CLIP layers one by one."""
        tensors = fused_kohya_tensors(self.denoiser, self.denoiser_lora_part, dtype)
        for model, name_of in self.lora_namers()[1:]:
            tensors.update(kohya_tensors(model, name_of, dtype))
        return tensors

    # --- helpers for the subclasses
    @staticmethod
    def token_ids(tokenizer: Any, captions: list[str], max_length: int, device: torch.device) -> torch.Tensor:
        """Captions padded and truncated to ``max_length`` tokens, as sd-scripts' strategies do."""
        ids: torch.Tensor = tokenizer(
            captions, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
        ).input_ids
        return ids.to(device)


# diffusers ``<block list>.<suffix>`` (the block index left out) -> the original module path
# (``{i}``: the block index), this layer's place among the fused layer's parts, and their count.
LoraRules = Mapping[str, tuple[str, int, int]]


def options_from_config(options: type[OptionsT], config: Mapping[str, Any]) -> OptionsT:
    """A family's training options (a dataclass of sd-scripts option names) from the job's config:
    the options it sets, the dataclass's defaults for the rest."""
    names = {f.name for f in fields(options)}  # type: ignore[arg-type]
    return options(**{k: v for k, v in config.items() if k in names and v is not None})


def lora_part_from_rules(module_path: str, rules: LoraRules) -> LoraPart:
    """The sd-scripts module of a layer inside a transformer block: ``lora_unet_`` + the original
    module path with ``_`` for ``.`` (lora_flux.py lines 826-827, lora_sd3.py the same)."""
    block_list, _, rest = module_path.partition(".")
    index, _, suffix = rest.partition(".")
    rule = rules.get(f"{block_list}.{suffix}") if index.isdigit() else None
    if rule is None:
        raise ValueError(f"{module_path} has no sd-scripts LoRA module")
    original, part, count = rule
    return LoraPart("lora_unet_" + original.replace("{i}", index).replace(".", "_"), part, count)
