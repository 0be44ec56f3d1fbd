"""SD 3.5: an SD3Transformer2DModel (MMDiT / MMDiT-X), CLIP-L + CLIP-G + T5-XXL conditioning.

sd-scripts v0.10.1 (commit ae72efb) trains SD 3 / 3.5 LoRA with sd3_train_network.py and
``--network_module networks.lora_sd3``; this adapter trains the same layers under the same names.

Key names (networks/lora_sd3.py)
--------------------------------
``LoRANetwork`` (line 230) wraps every ``Linear`` inside modules of the class
``SD3_TARGET_REPLACE_MODULE = ["SingleDiTBlock"]`` (line 231): the ``context_block`` and the
``x_block`` of each ``MMDiTBlock`` (library/sd3_models.py lines 685-692), named ``lora_unet``
(``LORA_PREFIX_SD3``, line 233, applied at line 432) + the MMDiT module path with ``.`` -> ``_``
(lines 333-334). Text encoders: ``lora_te1`` (CLIP-L), ``lora_te2`` (CLIP-G), ``lora_te3``
(T5-XXL, only with ``train_t5xxl=True``, default False: lines 139-141 and 420), lines 234-236.
``emb_dims`` (embedders and final layer, lines 75-82) is off by default; ``split_qkv`` defaults to
False (lines 134-136). Module names keep their case (``adaLN_modulation``).

MMDiT module (sd3_models.py)                      diffusers layer(s) in transformer_blocks.i
joint_blocks.i.x_block.attn.qkv (474)             attn.to_q | to_k | to_v (fused)
joint_blocks.i.x_block.attn.proj (476)            attn.to_out.0
joint_blocks.i.x_block.attn2.qkv / .proj (602)    attn2.to_q | to_k | to_v (fused) / attn2.to_out.0 (MMDiT-X)
joint_blocks.i.x_block.mlp.fc1 / .fc2 (350)       ff.net.0.proj / ff.net.2
joint_blocks.i.x_block.adaLN_modulation.1 (630)   norm1.linear
joint_blocks.i.context_block.attn.qkv             attn.add_q_proj | add_k_proj | add_v_proj (fused)
joint_blocks.i.context_block.attn.proj            attn.to_add_out (absent in the last, pre-only block)
joint_blocks.i.context_block.mlp.fc1 / .fc2       ff_context.net.0.proj / ff_context.net.2
joint_blocks.i.context_block.adaLN_modulation.1   norm1_context.linear

Modulation outputs are in the same order in both (shift, scale, gate, ... and MMDiT-X's nine:
sd3_models.py line 654, diffusers SD35AdaLayerNormZeroX), except the last block's pre-only context
modulation: MMDiT chunks it (shift, scale) (line 645), diffusers' AdaLayerNormContinuous
(scale, shift); its ``lora_up`` rows are swapped on export, as diffusers' single-file converter
swaps the weights (single_file_utils ``swap_scale_shift``).

Training follows docs/sd3_train_network.md: ``--weighting_scheme uniform`` (line 158, the
default), ``--training_shift 1.0`` (line 157), T5 tokens 256 (line 151); CLIP-L and CLIP-G
penultimate hidden states side by side, zero-padded to T5's width and followed by T5's tokens, and
the two pooled projections (strategy_sd3, as diffusers' StableDiffusion3Pipeline encodes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from diffusers import StableDiffusion3Pipeline

from functions.domain.families import ComponentRole, FmType
from training_container.engines.families.base import NoisyBatch, PromptEmbeddings
from training_container.engines.families.flow_matching import (
    FlowMatchingAdapter,
    LoraRules,
    lora_part_from_rules,
    options_from_config,
)
from training_container.engines.families.fused_lora import LoraPart
from training_container.engines.families.sd35_files import load_sd35_pipeline
from training_container.errors import JobFailure
from training_container.model_loading import BasePipeline

WeightingScheme = Literal["uniform", "logit_normal", "mode"]
# sd-scripts' other schemes ("sigma_sqrt", "cosmap") weight the loss instead of the sampling.
WEIGHTING_SCHEMES: tuple[str, ...] = ("uniform", "logit_normal", "mode")

SD35_RULES: LoraRules = {
    "transformer_blocks.attn.to_q": ("joint_blocks.{i}.x_block.attn.qkv", 0, 3),
    "transformer_blocks.attn.to_k": ("joint_blocks.{i}.x_block.attn.qkv", 1, 3),
    "transformer_blocks.attn.to_v": ("joint_blocks.{i}.x_block.attn.qkv", 2, 3),
    "transformer_blocks.attn.to_out.0": ("joint_blocks.{i}.x_block.attn.proj", 0, 1),
    "transformer_blocks.attn2.to_q": ("joint_blocks.{i}.x_block.attn2.qkv", 0, 3),
    "transformer_blocks.attn2.to_k": ("joint_blocks.{i}.x_block.attn2.qkv", 1, 3),
    "transformer_blocks.attn2.to_v": ("joint_blocks.{i}.x_block.attn2.qkv", 2, 3),
    "transformer_blocks.attn2.to_out.0": ("joint_blocks.{i}.x_block.attn2.proj", 0, 1),
    "transformer_blocks.ff.net.0.proj": ("joint_blocks.{i}.x_block.mlp.fc1", 0, 1),
    "transformer_blocks.ff.net.2": ("joint_blocks.{i}.x_block.mlp.fc2", 0, 1),
    "transformer_blocks.norm1.linear": ("joint_blocks.{i}.x_block.adaLN_modulation.1", 0, 1),
    "transformer_blocks.attn.add_q_proj": ("joint_blocks.{i}.context_block.attn.qkv", 0, 3),
    "transformer_blocks.attn.add_k_proj": ("joint_blocks.{i}.context_block.attn.qkv", 1, 3),
    "transformer_blocks.attn.add_v_proj": ("joint_blocks.{i}.context_block.attn.qkv", 2, 3),
    "transformer_blocks.attn.to_add_out": ("joint_blocks.{i}.context_block.attn.proj", 0, 1),
    "transformer_blocks.ff_context.net.0.proj": ("joint_blocks.{i}.context_block.mlp.fc1", 0, 1),
    "transformer_blocks.ff_context.net.2": ("joint_blocks.{i}.context_block.mlp.fc2", 0, 1),
    "transformer_blocks.norm1_context.linear": ("joint_blocks.{i}.context_block.adaLN_modulation.1", 0, 1),
}


@dataclass(frozen=True)
class SD35Training:
    """sd-scripts' SD 3 training options this adapter honours (library/sd3_train_utils.py
    add_sd3_training_arguments), with the guide's defaults."""

    weighting_scheme: WeightingScheme = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    training_shift: float = 1.0
    t5xxl_max_token_length: int = 256

    def __post_init__(self) -> None:
        if self.weighting_scheme not in WEIGHTING_SCHEMES:
            raise JobFailure(
                f"weighting_scheme {self.weighting_scheme!r} is not supported by the diffusers engine; "
                f"use one of {', '.join(WEIGHTING_SCHEMES)}"
            )


class SD35Adapter(FlowMatchingAdapter):
    fm_type = FmType.SD35
    pipeline_class = StableDiffusion3Pipeline
    lora_block_prefixes = ("transformer_blocks.",)
    denoiser_lora_targets = tuple(dict.fromkeys(rule.partition("blocks.")[2] for rule in SD35_RULES))

    def __init__(self, pipe: BasePipeline, training: SD35Training | None = None) -> None:
        super().__init__(pipe)
        self.training = training or SD35Training()

    @classmethod
    def pipeline_from_files(
        cls, model_path: Path, components: Mapping[ComponentRole, Path], dtype: torch.dtype
    ) -> BasePipeline:
        return load_sd35_pipeline(model_path, components, dtype)

    def configure(self, config: Mapping[str, Any]) -> None:
        """The job's values for the options sd-scripts reads (fields of ``SD35Training``)."""
        self.training = options_from_config(SD35Training, config)

    @property
    def t5_token_length(self) -> int:
        return self.training.t5xxl_max_token_length

    @property
    def text_encoders(self) -> list[torch.nn.Module]:
        return [self.pipe.text_encoder, self.pipe.text_encoder_2]  # CLIP-L, CLIP-G: lora_te1, lora_te2

    @property
    def frozen_encoders(self) -> list[torch.nn.Module]:
        return [self.pipe.text_encoder_3]  # T5-XXL

    def encode_prompts(
        self, captions: list[str], layer_from_last: int, device: torch.device
    ) -> PromptEmbeddings:
        clip_states, pooled = [], []
        for tokenizer, encoder in (
            (self.pipe.tokenizer, self.pipe.text_encoder),
            (self.pipe.tokenizer_2, self.pipe.text_encoder_2),
        ):
            output = encoder(self.token_ids(tokenizer, captions, 77, device), output_hidden_states=True)
            clip_states.append(output.hidden_states[-2])
            pooled.append(output.text_embeds)
        t5_ids = self.token_ids(self.pipe.tokenizer_3, captions, self.t5_token_length, device)
        with torch.no_grad():
            t5 = self.pipe.text_encoder_3(t5_ids).last_hidden_state
        clip = torch.cat(clip_states, dim=-1)
        clip = torch.nn.functional.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return {
            "encoder_hidden_states": torch.cat([clip, t5.to(clip.dtype)], dim=-2),
            "pooled_projections": torch.cat(pooled, dim=-1),
        }

    def conditioning(self, prompts: PromptEmbeddings, bucket: tuple[int, int]) -> dict[str, Any]:
        transformer: Any = self.denoiser
        dtype = transformer.dtype
        return {name: prompts[name].to(dtype) for name in ("encoder_hidden_states", "pooled_projections")}

    def sample_sigmas(self, latents: torch.Tensor) -> torch.Tensor:
        """sd3_train_utils.get_noisy_model_input_and_timesteps (lines 918-945) and
        compute_density_for_timestep_sampling: u, shifted, as one of 1000 discrete timesteps."""
        training, batch = self.training, latents.shape[0]
        if training.weighting_scheme == "logit_normal":
            u = torch.sigmoid(torch.normal(training.logit_mean, training.logit_std, size=(batch,)))
        elif training.weighting_scheme == "mode":
            u = torch.rand(batch)
            u = 1 - u - training.mode_scale * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)
        else:
            u = torch.rand(batch)
        shift = training.training_shift
        u = (u * shift) / (1 + (shift - 1) * u)
        return (u * 1000).long().float().to(latents.device) / 1000

    def predict(self, batch: NoisyBatch, conditioning: dict[str, Any]) -> torch.Tensor:
        transformer: Any = self.denoiser
        output = transformer(
            hidden_states=batch.noisy.to(transformer.dtype),
            timestep=batch.timesteps.to(transformer.dtype),
            return_dict=False,
            **conditioning,
        )[0]
        prediction: torch.Tensor = output.float()
        return prediction

    def denoiser_lora_part(self, module_path: str) -> LoraPart:
        part = lora_part_from_rules(module_path, SD35_RULES)
        if module_path.endswith(".norm1_context.linear"):
            block: Any = self.denoiser.get_submodule(module_path.removesuffix(".norm1_context.linear"))
            if block.context_pre_only:
                return LoraPart(part.name, part.index, part.count, swap_output_halves=True)
        return part
