"""FLUX.1: a FluxTransformer2DModel on packed 16-channel latents, CLIP-L pooled + T5-XXL conditioning.

sd-scripts v0.10.1 (commit ae72efb) trains FLUX.1 LoRA with flux_train_network.py and
``--network_module networks.lora_flux``; this adapter trains the same layers and writes the same
key names, so a LoRA from either engine loads in ComfyUI, sd-scripts and diffusers alike.

Key names (networks/lora_flux.py)
---------------------------------
``LoRANetwork`` (line 707) wraps every ``Linear`` inside modules of the classes
``FLUX_TARGET_REPLACE_MODULE_DOUBLE = ["DoubleStreamBlock"]`` and
``FLUX_TARGET_REPLACE_MODULE_SINGLE = ["SingleStreamBlock"]`` (lines 709-710; ``train_blocks``
default "all", lines 556 and 951-952) and names each ``lora_unet`` (``LORA_PREFIX_FLUX``, line 712)
+ ``.`` + the module path in BFL's original model (library/flux_models.py), with ``.`` -> ``_``
(lines 826-827). The text encoders get ``lora_te1`` (CLIP-L, line 713) and ``lora_te3`` (T5-XXL,
line 714, only with ``train_t5xxl=True``, default False: lines 575-577 and 940). ``in_dims``
(embedders, lines 494-501) and ``type_dims`` are off by default. Per module the file holds
``<name>.lora_down.weight`` (rank, in), ``<name>.lora_up.weight`` (out, rank) and ``<name>.alpha``
(line 101). ``split_qkv`` defaults to False (lines 561-563): fused layers are single LoRA modules.

BFL module (flux_models.py line)    sd-scripts name      diffusers layer(s)
double_blocks.i.img_mod.lin (638)   lora_unet_double_blocks_i_img_mod_lin <- transformer_blocks.i.norm1.linear
double_blocks.i.img_attn.qkv (612)  ..._img_attn_qkv     .attn.to_q | to_k | to_v (fused)
double_blocks.i.img_attn.proj (614) ..._img_attn_proj    .attn.to_out.0
double_blocks.i.img_mlp.0 / .2      ..._img_mlp_0 / _2   .ff.net.0.proj / .ff.net.2  (661-665)
double_blocks.i.txt_mod.lin         ..._txt_mod_lin      .norm1_context.linear
double_blocks.i.txt_attn.qkv        ..._txt_attn_qkv     .attn.add_q_proj | add_k_proj | add_v_proj (fused)
double_blocks.i.txt_attn.proj       ..._txt_attn_proj    .attn.to_add_out
double_blocks.i.txt_mlp.0 / .2      ..._txt_mlp_0 / _2   .ff_context.net.0.proj / .ff_context.net.2
single_blocks.i.linear1 (783)       lora_unet_single_blocks_i_linear1
                                    <- single_transformer_blocks.i.attn.to_q | to_k | to_v | proj_mlp
                                       (fused in this order: 3 x hidden + 4 x hidden output rows)
single_blocks.i.linear2 (785)       ..._linear2          single_transformer_blocks.i.proj_out
single_blocks.i.modulation.lin      ..._modulation_lin   single_transformer_blocks.i.norm.linear

The modulation outputs are in the same order in both (shift, scale, gate [, shift, scale, gate]:
flux_models.Modulation lines 633-646, diffusers AdaLayerNormZero / AdaLayerNormZeroSingle), so
they map unchanged. The QK norms hold no ``Linear``. diffusers' FLUX LoRA loader reads these names
(loaders/lora_conversion_utils.py ``_convert_kohya_flux_lora_to_diffusers``).

Training follows docs/flux_train_network.md: guidance embedding 1.0 (line 360: "specify
``--guidance_scale 1.0``"), ``--model_prediction_type raw``, ``--timestep_sampling flux_shift``
(the guide's example, lines 144-146) with ``--sigmoid_scale 1.0`` (line 221); T5 tokens 512 for
dev, 256 for schnell (flux_train_network.py lines 171-177).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from diffusers import FluxPipeline

from functions.domain.families import ComponentRole, FmType
from training_container.engines.families.base import NoisyBatch, PromptEmbeddings
from training_container.engines.families.flow_matching import (
    FlowMatchingAdapter,
    LoraRules,
    lora_part_from_rules,
    options_from_config,
)
from training_container.engines.families.flux1_files import load_flux_pipeline
from training_container.engines.families.fused_lora import LoraPart
from training_container.errors import JobFailure
from training_container.model_loading import BasePipeline

TimestepSampling = Literal["uniform", "sigmoid", "shift", "flux_shift"]
# sd-scripts' other choice, "sigma" (its argparse default, flux_train_utils.py line 59), samples the
# shifted scheduler's discrete timesteps; the guides recommend the ones above instead.
TIMESTEP_SAMPLINGS: tuple[str, ...] = ("uniform", "sigmoid", "shift", "flux_shift")

FLUX_RULES: LoraRules = {
    "transformer_blocks.norm1.linear": ("double_blocks.{i}.img_mod.lin", 0, 1),
    "transformer_blocks.attn.to_q": ("double_blocks.{i}.img_attn.qkv", 0, 3),
    "transformer_blocks.attn.to_k": ("double_blocks.{i}.img_attn.qkv", 1, 3),
    "transformer_blocks.attn.to_v": ("double_blocks.{i}.img_attn.qkv", 2, 3),
    "transformer_blocks.attn.to_out.0": ("double_blocks.{i}.img_attn.proj", 0, 1),
    "transformer_blocks.ff.net.0.proj": ("double_blocks.{i}.img_mlp.0", 0, 1),
    "transformer_blocks.ff.net.2": ("double_blocks.{i}.img_mlp.2", 0, 1),
    "transformer_blocks.norm1_context.linear": ("double_blocks.{i}.txt_mod.lin", 0, 1),
    "transformer_blocks.attn.add_q_proj": ("double_blocks.{i}.txt_attn.qkv", 0, 3),
    "transformer_blocks.attn.add_k_proj": ("double_blocks.{i}.txt_attn.qkv", 1, 3),
    "transformer_blocks.attn.add_v_proj": ("double_blocks.{i}.txt_attn.qkv", 2, 3),
    "transformer_blocks.attn.to_add_out": ("double_blocks.{i}.txt_attn.proj", 0, 1),
    "transformer_blocks.ff_context.net.0.proj": ("double_blocks.{i}.txt_mlp.0", 0, 1),
    "transformer_blocks.ff_context.net.2": ("double_blocks.{i}.txt_mlp.2", 0, 1),
    "single_transformer_blocks.norm.linear": ("single_blocks.{i}.modulation.lin", 0, 1),
    "single_transformer_blocks.attn.to_q": ("single_blocks.{i}.linear1", 0, 4),
    "single_transformer_blocks.attn.to_k": ("single_blocks.{i}.linear1", 1, 4),
    "single_transformer_blocks.attn.to_v": ("single_blocks.{i}.linear1", 2, 4),
    "single_transformer_blocks.proj_mlp": ("single_blocks.{i}.linear1", 3, 4),
    "single_transformer_blocks.proj_out": ("single_blocks.{i}.linear2", 0, 1),
}


DEV_T5_TOKENS = 512
SCHNELL_T5_TOKENS = 256


@dataclass(frozen=True)
class FluxTraining:
    """sd-scripts' FLUX.1 training options this adapter honours (library/flux_train_utils.py
    add_flux_train_arguments), with the guide's values as defaults."""

    timestep_sampling: TimestepSampling = "flux_shift"
    sigmoid_scale: float = 1.0
    discrete_flow_shift: float = 3.0  # argparse default (line 81); used by "shift" only
    guidance_scale: float = 1.0
    # None: as sd-scripts decides from the checkpoint (flux_train_network.py lines 171-177):
    # 512 for dev, 256 for schnell, told apart by the guidance embedding (flux_utils.py line 63).
    t5xxl_max_token_length: int | None = None

    def __post_init__(self) -> None:
        if self.timestep_sampling not in TIMESTEP_SAMPLINGS:
            raise JobFailure(
                f"timestep_sampling {self.timestep_sampling!r} is not supported by the diffusers engine; "
                f"use one of {', '.join(TIMESTEP_SAMPLINGS)}"
            )


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """(b, c, h, w) -> (b, h/2 * w/2, 4c): FLUX's 2x2 patches (flux_utils.pack_latents)."""
    b, c, h, w = latents.shape
    patches = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(packed: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The inverse of ``pack_latents`` for latents of ``height`` x ``width``."""
    b, _, channels = packed.shape
    c = channels // 4
    patches = packed.view(b, height // 2, width // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return patches.reshape(b, c, height, width)


def image_ids(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Row/column position ids of the packed latent patches (flux_utils.prepare_img_ids)."""
    ids = torch.zeros(height // 2, width // 2, 3)
    ids[..., 1] = torch.arange(height // 2)[:, None]
    ids[..., 2] = torch.arange(width // 2)[None, :]
    return ids.reshape(-1, 3).to(device, dtype)


def flux_shift_mu(height: int, width: int) -> float:
    """flux_train_utils.get_lin_function(y1=0.5, y2=1.15) at the packed sequence length."""
    slope = (1.15 - 0.5) / (4096 - 256)
    return slope * ((height // 2) * (width // 2)) + (0.5 - slope * 256)


class Flux1Adapter(FlowMatchingAdapter):
    fm_type = FmType.FLUX1
    pipeline_class = FluxPipeline
    lora_block_prefixes = ("transformer_blocks.", "single_transformer_blocks.")
    denoiser_lora_targets = tuple(dict.fromkeys(rule.partition("blocks.")[2] for rule in FLUX_RULES))

    def __init__(self, pipe: BasePipeline, training: FluxTraining | None = None) -> None:
        super().__init__(pipe)
        self.training = training or FluxTraining()

    @classmethod
    def pipeline_from_files(
        cls, model_path: Path, components: Mapping[ComponentRole, Path], dtype: torch.dtype
    ) -> BasePipeline:
        return load_flux_pipeline(model_path, components, dtype)

    def configure(self, config: Mapping[str, Any]) -> None:
        """The job's values for the options sd-scripts reads (fields of ``FluxTraining``)."""
        self.training = options_from_config(FluxTraining, config)

    @property
    def t5_token_length(self) -> int:
        if self.training.t5xxl_max_token_length is not None:
            return self.training.t5xxl_max_token_length
        transformer: Any = self.denoiser
        return DEV_T5_TOKENS if transformer.config.guidance_embeds else SCHNELL_T5_TOKENS

    @property
    def text_encoders(self) -> list[torch.nn.Module]:
        return [self.pipe.text_encoder]  # CLIP-L: lora_te1

    @property
    def frozen_encoders(self) -> list[torch.nn.Module]:
        return [self.pipe.text_encoder_2]  # T5-XXL

    def encode_prompts(
        self, captions: list[str], layer_from_last: int, device: torch.device
    ) -> PromptEmbeddings:
        """CLIP-L's pooled output and T5-XXL's last hidden state (strategy_flux; FLUX takes no
        ``clip_skip``: only the pooled CLIP output is used)."""
        clip_ids = self.token_ids(self.pipe.tokenizer, captions, 77, device)
        pooled = self.pipe.text_encoder(clip_ids).pooler_output
        t5_ids = self.token_ids(self.pipe.tokenizer_2, captions, self.t5_token_length, device)
        with torch.no_grad():
            t5 = self.pipe.text_encoder_2(t5_ids).last_hidden_state
        return {"encoder_hidden_states": t5, "pooled_projections": pooled}

    def conditioning(self, prompts: PromptEmbeddings, bucket: tuple[int, int]) -> dict[str, Any]:
        transformer: Any = self.denoiser
        dtype = transformer.dtype
        embeds = prompts["encoder_hidden_states"]
        conditioning: dict[str, Any] = {
            "encoder_hidden_states": embeds.to(dtype),
            "pooled_projections": prompts["pooled_projections"].to(dtype),
            "txt_ids": torch.zeros(embeds.shape[1], 3, device=embeds.device, dtype=dtype),
        }
        if transformer.config.guidance_embeds:  # dev is guidance-distilled; schnell is not
            conditioning["guidance"] = torch.full(
                (len(embeds),), self.training.guidance_scale, device=embeds.device, dtype=torch.float32
            )
        return conditioning

    def sample_sigmas(self, latents: torch.Tensor) -> torch.Tensor:
        """flux_train_utils.get_noisy_model_input_and_timesteps, lines 477-499."""
        training, batch = self.training, latents.shape[0]
        if training.timestep_sampling == "uniform":
            return torch.rand(batch, device=latents.device)
        sigmas = torch.sigmoid(training.sigmoid_scale * torch.randn(batch, device=latents.device))
        if training.timestep_sampling == "shift":
            shift = training.discrete_flow_shift
            return (sigmas * shift) / (1 + (shift - 1) * sigmas)
        if training.timestep_sampling == "flux_shift":
            mu = flux_shift_mu(latents.shape[-2], latents.shape[-1])
            return math.exp(mu) / (math.exp(mu) + (1 / sigmas - 1))
        return sigmas  # "sigmoid"

    def predict(self, batch: NoisyBatch, conditioning: dict[str, Any]) -> torch.Tensor:
        transformer: Any = self.denoiser
        height, width = batch.noisy.shape[-2:]
        output = transformer(
            hidden_states=pack_latents(batch.noisy.to(transformer.dtype)),
            timestep=(batch.timesteps / 1000.0).to(transformer.dtype),
            img_ids=image_ids(height, width, batch.noisy.device, transformer.dtype),
            return_dict=False,
            **conditioning,
        )[0]
        return unpack_latents(output, height, width).float()

    def denoiser_lora_part(self, module_path: str) -> LoraPart:
        return lora_part_from_rules(module_path, FLUX_RULES)
