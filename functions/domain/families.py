"""Base-model families: every per-family fact in one ``FamilySpec``, and ``FAMILIES`` holding one each.

Every per-family table in the project (planning, catalogue, Kohya defaults and script, LoRA key
format and metadata, sample sizes, checkpoint names, model loading) is derived from these specs,
so a new family (FLUX.1, SD 3.5) is one new spec here plus one family adapter in the container.
tests/unit/test_family_specs.py requires a complete spec for every ``FmType``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from functions.domain.checkpoint_layout import (
    SD15_TEXT_PART,
    SDXL_CONDITIONING_PART,
    SDXL_TEXT_1_PART,
    SDXL_TEXT_2_PART,
    UNET,
    UNET_PART,
    VAE_PART,
    CheckpointPart,
)

# A parameter value as the Kohya parameter catalogue stores it (functions.domain.kohya_params).
FamilyDefault = str | int | float | bool


class FmType(StrEnum):
    """Base-model family ("FM type" in the original tool)."""

    SD15 = "sd15"
    SDXL = "sdxl"


@dataclass(frozen=True)
class FamilySpec:
    """What differs between families; nothing here may be computed by branching on the family."""

    fm_type: FmType
    display_name: str  # in messages: "not an SD 1.5 checkpoint"
    native_side: int  # the resolution the family was trained at (square), in pixels
    # sd-scripts: the training script and the LoRA network module it loads (--network_module).
    kohya_script: str
    network_module: str
    # sd-scripts' bucket step check: train_network.py assert_extra_args -> verify_bucket_reso_steps(64),
    # sdxl_train_network.py assert_extra_args -> verify_bucket_reso_steps(32).
    bucket_step_multiple: int
    kohya_defaults: Mapping[str, FamilyDefault]  # this family's part of the service's defaults
    refused_kohya_params: frozenset[str]  # catalogue parameters this family's script does not take
    # LoRA key format (sd-scripts networks/lora.py): text-encoder prefixes, and whether UNet keys
    # use the original (LDM) module names (SDXL) rather than diffusers' (SD 1.5).
    lora_text_encoder_prefixes: tuple[str, ...]
    lora_unet_ldm_names: bool
    # Metadata written into the LoRA: sd-scripts' ss_base_model_version and modelspec.architecture
    # (library/sai_model_spec.py ARCH_SD_V1 / ARCH_SD_XL_V1_BASE + "/lora").
    base_model_version: str
    modelspec_architecture: str
    modelspec_implementation: str  # sai_model_spec.py: IMPL_DIFFUSERS or IMPL_STABILITY_AI
    # SDXL LoRA training at 1024 px needs >= 24 GB even with gradient checkpointing and
    # cached text-encoder outputs at the service's default settings.
    min_gpu_memory_gb: int
    # Step-time model: batch-1 optimizer steps per second on each catalogue instance type at the
    # native resolution (benchmarks/RESULTS.md; 0.0: cannot run there); planning scales them by
    # the pixel count and the batch size.
    steps_per_second: Mapping[str, float]
    sample_side_limits: tuple[int, int]  # smallest and largest sample side
    # Model loading hints: the diffusers pipeline class of a folder, the key prefix that marks a
    # single-file checkpoint as this family, and the CLIP tokenizer repositories in order.
    diffusers_pipeline: str
    checkpoint_marker: str
    tokenizer_repos: tuple[str, ...]
    # A single-file checkpoint of this family (functions.domain.checkpoint_family): the parts it
    # must have, its text encoders in the order their outputs are concatenated into the UNet's
    # cross-attention input, and tensor prefixes that rule the family out (another family's parts).
    checkpoint_parts: tuple[CheckpointPart, ...]
    checkpoint_text_parts: tuple[CheckpointPart, ...]
    checkpoint_foreign_prefixes: tuple[str, ...]

    @property
    def native_pixels(self) -> int:
        return self.native_side * self.native_side

    @property
    def default_sample_side(self) -> int:
        return self.native_side


FAMILIES: Mapping[FmType, FamilySpec] = MappingProxyType(
    {
        spec.fm_type: spec
        for spec in (
            FamilySpec(
                fm_type=FmType.SD15,
                display_name="SD 1.5",
                native_side=512,
                kohya_script="train_network.py",
                network_module="networks.lora",
                bucket_step_multiple=64,
                kohya_defaults=MappingProxyType(
                    {
                        "resolution": "512",
                        "min_bucket_reso": 256,
                        "max_bucket_reso": 1024,
                        "mixed_precision": "fp16",
                        "clip_skip": 1,
                        "gradient_checkpointing": False,
                    }
                ),
                # --cache_text_encoder_outputs exists only in sdxl_train_network.py's arguments.
                refused_kohya_params=frozenset({"cache_text_encoder_outputs"}),
                lora_text_encoder_prefixes=("lora_te",),
                lora_unet_ldm_names=False,
                base_model_version="sd_v1",
                modelspec_architecture="stable-diffusion-v1/lora",
                modelspec_implementation="diffusers",
                min_gpu_memory_gb=16,
                steps_per_second=MappingProxyType(
                    {
                        "ml.g4dn.xlarge": 1.1,
                        "ml.g4dn.2xlarge": 1.1,
                        "ml.g5.xlarge": 2.6,
                        "ml.g5.2xlarge": 2.7,
                        "ml.g5.4xlarge": 2.7,
                        "ml.g6.xlarge": 2.2,
                        "ml.g6.2xlarge": 2.2,
                        "ml.g6e.xlarge": 5.5,
                        "ml.g6e.2xlarge": 5.5,
                        "ml.p4d.24xlarge": 6.0,
                    }
                ),
                sample_side_limits=(64, 1024),
                diffusers_pipeline="StableDiffusionPipeline",
                checkpoint_marker="cond_stage_model.transformer.",
                tokenizer_repos=("openai/clip-vit-large-patch14",),
                checkpoint_parts=(UNET_PART, VAE_PART, SD15_TEXT_PART),
                checkpoint_text_parts=(SD15_TEXT_PART,),
                checkpoint_foreign_prefixes=("conditioner.", f"{UNET}label_emb."),
            ),
            # SDXL at 1024 px (the original tool trained it at 512 px without checkpointing).
            # UNet-only with cached text-encoder outputs keeps it inside 24 GB; its VAE overflows
            # in fp16.
            FamilySpec(
                fm_type=FmType.SDXL,
                display_name="SDXL",
                native_side=1024,
                kohya_script="sdxl_train_network.py",
                network_module="networks.lora",
                bucket_step_multiple=32,
                kohya_defaults=MappingProxyType(
                    {
                        "resolution": "1024,1024",
                        "min_bucket_reso": 512,
                        "max_bucket_reso": 2048,
                        "mixed_precision": "bf16",
                        "gradient_checkpointing": True,
                        "network_train_unet_only": True,
                        "cache_text_encoder_outputs": True,
                        "no_half_vae": True,
                    }
                ),
                # sdxl_train_util.verify_sdxl_training_args warns "clip_skip will be unexpected".
                refused_kohya_params=frozenset({"clip_skip"}),
                lora_text_encoder_prefixes=("lora_te1", "lora_te2"),
                lora_unet_ldm_names=True,
                base_model_version="sdxl_base_v1-0",
                modelspec_architecture="stable-diffusion-xl-v1-base/lora",
                modelspec_implementation="https://github.com/Stability-AI/generative-models",
                min_gpu_memory_gb=24,
                steps_per_second=MappingProxyType(
                    {
                        "ml.g4dn.xlarge": 0.0,
                        "ml.g4dn.2xlarge": 0.0,
                        "ml.g5.xlarge": 0.65,
                        "ml.g5.2xlarge": 0.67,
                        "ml.g5.4xlarge": 0.67,
                        "ml.g6.xlarge": 0.55,
                        "ml.g6.2xlarge": 0.56,
                        "ml.g6e.xlarge": 1.5,
                        "ml.g6e.2xlarge": 1.5,
                        "ml.p4d.24xlarge": 2.0,
                    }
                ),
                sample_side_limits=(64, 2048),
                diffusers_pipeline="StableDiffusionXLPipeline",
                checkpoint_marker="conditioner.embedders.",
                tokenizer_repos=("openai/clip-vit-large-patch14", "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"),
                checkpoint_parts=(
                    UNET_PART,
                    VAE_PART,
                    SDXL_TEXT_1_PART,
                    SDXL_TEXT_2_PART,
                    SDXL_CONDITIONING_PART,
                ),
                checkpoint_text_parts=(SDXL_TEXT_1_PART, SDXL_TEXT_2_PART),
                checkpoint_foreign_prefixes=(),
            ),
        )
    }
)
