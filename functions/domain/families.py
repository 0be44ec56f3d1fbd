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
    FLUX_TRANSFORMER,
    FLUX_TRANSFORMER_PART,
    SD3_MMDIT,
    SD3_MMDIT_PART,
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
    FLUX1 = "flux1"  # FLUX.1 dev (and schnell): sd-scripts flux_train_network.py
    SD35 = "sd35"  # Stable Diffusion 3.5 Medium and Large: sd-scripts sd3_train_network.py


class ComponentRole(StrEnum):
    """A file a family loads besides its main checkpoint, uploaded once as its own model.

    The values are sd-scripts' own option names (``--ae``, ``--clip_l``, ``--clip_g``,
    ``--t5xxl``: flux_train_network.py / library/sd3_train_utils.py add_sd3_training_arguments),
    the SageMaker input channel the file arrives in, and the key of ``components`` in
    ``POST /trainings``. CLIP-L and T5-XXL are the same files for FLUX.1 and SD 3.5, so one
    upload serves every job of either family.
    """

    AE = "ae"
    CLIP_L = "clip_l"
    CLIP_G = "clip_g"
    T5XXL = "t5xxl"


@dataclass(frozen=True)
class ComponentSlot:
    """A component a family's jobs take (``FamilySpec.components``).

    ``required``: the job cannot run without it. When False, the main checkpoint may carry the
    component itself (SD 3.5 files with text encoders included); a job whose checkpoint lacks it
    must name one.
    """

    role: ComponentRole
    description: str  # in messages and docs: "the T5-XXL text encoder (t5xxl_fp16.safetensors)"
    required: bool


@dataclass(frozen=True)
class BlockSwap:
    """sd-scripts' ``--blocks_to_swap`` for a DiT family: its limit and the value that fits a GPU.

    ``maximum``: the most blocks the model's ``enable_block_swap`` accepts. ``by_gpu_memory``:
    (least GPU memory in GB, blocks to swap) rows, largest memory first, from the family's guide;
    a GPU smaller than every row gets the last row's value.
    """

    maximum: int
    by_gpu_memory: tuple[tuple[int, int], ...]

    def fitting(self, gpu_memory_gb: int) -> int:
        """The blocks to swap so training fits ``gpu_memory_gb`` (0: no swapping needed)."""
        for least_memory, blocks in self.by_gpu_memory:
            if gpu_memory_gb >= least_memory:
                return blocks
        return self.by_gpu_memory[-1][1]


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
    # Catalogue parameters this family's script does not take, or takes and ignores: the reason
    # (with the sd-scripts source that shows it) is the message the API answers with.
    refused_kohya_params: Mapping[str, str]
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
    # Separate component files its jobs load (empty: everything is in the one checkpoint).
    components: tuple[ComponentSlot, ...] = ()
    # Host (CPU) memory the instance needs: sd-scripts loads each file into host memory before
    # moving it to the GPU, so FLUX.1 plus T5-XXL need more than the 16 GiB some GPU instances
    # have. The API also checks the actual file sizes (see functions.domain.catalog).
    min_host_memory_gb: int = 16
    # --blocks_to_swap (train_util.add_dit_training_arguments): None where the script has no blocks.
    block_swap: BlockSwap | None = None
    # sdxl_train_network.py assert_extra_args refuses cached text-encoder outputs unless only the
    # U-Net is trained; flux_train_network.py and sd3_train_network.py cache them partially and
    # train CLIP on top (their get_text_encoder_outputs_caching_strategy: is_partial).
    text_encoder_cache_needs_unet_only: bool = False
    # The sample prompt's guidance is FLUX.1 dev's distilled guidance (sd-scripts' prompt option
    # --g, library/flux_train_utils.py sample_image_inference "guidance_scale", default 3.5),
    # not classifier-free guidance (--l, "scale", which FLUX samples at 1.0: no negative pass).
    sample_guidance_embedded: bool = False
    # Sample sides must be a multiple of this: 8 = the VAE's downscale, which sd-scripts rounds
    # down to (library/train_util.py lines 6540-6541). FLUX.1 and SD 3.5 also patch latents 2x2:
    # sd-scripts rounds FLUX's to 16 (library/flux_train_utils.py lines 180-181) and diffusers'
    # SD3 pipeline refuses other sizes (check_inputs: vae_scale_factor * patch_size), so both
    # engines render the size asked for only at multiples of 16; the API refuses the rest.
    sample_side_multiple: int = 8

    @property
    def native_pixels(self) -> int:
        return self.native_side * self.native_side

    @property
    def default_sample_side(self) -> int:
        return self.native_side


_T5XXL = ComponentSlot(
    ComponentRole.T5XXL,
    "the T5-XXL text encoder (t5xxl_fp16.safetensors or t5xxl_fp8_e4m3fn.safetensors)",
    True,
)
_CLIP_L = ComponentSlot(ComponentRole.CLIP_L, "the CLIP-L text encoder (clip_l.safetensors)", True)

# sd-scripts v0.10.1: the SD 1.x and SDXL U-Nets' enable_gradient_checkpointing takes no cpu_offload
# (library/original_unet.py, library/sdxl_original_unet.py), which train_network.py passes with it.
_NO_CPU_OFFLOAD_UNET = (
    "the U-Net cannot offload checkpoints (sd-scripts library/original_unet.py and "
    "sdxl_original_unet.py enable_gradient_checkpointing take no cpu_offload; train_network.py "
    "passes it and crashes)"
)
# What flux_train_network.py and sd3_train_network.py (v0.10.1) ignore of train_network.py's options.
_DIT_REFUSED = MappingProxyType(
    {
        "clip_skip": "the script ignores it: its CLIP and T5 encoding strategies (library/strategy_flux.py, "
        "strategy_sd3.py) always use the last layer (docs/sd3_train_network.md: not used)",
        "max_token_length": "the script ignores it (assert_extra_args, flux_train_network.py line 74, "
        "sd3_train_network.py line 57: 'max_token_length is not used'); set t5xxl_max_token_length",
        "noise_offset": "the script ignores it: get_noise_pred_and_target draws plain noise "
        "(flux_train_network.py line 327, sd3_train_network.py line 329)",
        "multires_noise_iterations": "the script ignores it: get_noise_pred_and_target draws plain noise "
        "(flux_train_network.py line 327, sd3_train_network.py line 329)",
        "multires_noise_discount": "the script ignores it: get_noise_pred_and_target draws plain noise "
        "(flux_train_network.py line 327, sd3_train_network.py line 329)",
        "min_snr_gamma": "the script ignores it: its post_process_loss returns the loss unweighted "
        "(flux_train_network.py line 436, sd3_train_network.py line 395); see weighting_scheme",
    }
)

# Per-instance throughputs for the flow-matching families are estimates, not measurements: no
# GPU was available to measure them (benchmarks/RESULTS.md). FLUX.1 at 1024 px with fp8 base on
# a 24 GB card runs at about a fifth of SDXL's speed; T4s (16 GB) cannot hold it.
_FLUX_STEPS_PER_SECOND = MappingProxyType(
    {
        "ml.g4dn.xlarge": 0.0,
        "ml.g4dn.2xlarge": 0.0,
        "ml.g5.xlarge": 0.16,
        "ml.g5.2xlarge": 0.17,
        "ml.g5.4xlarge": 0.17,
        "ml.g6.xlarge": 0.13,
        "ml.g6.2xlarge": 0.14,
        "ml.g6e.xlarge": 0.45,
        "ml.g6e.2xlarge": 0.45,
        "ml.p4d.24xlarge": 0.6,
    }
)
_SD35_STEPS_PER_SECOND = MappingProxyType(
    {
        "ml.g4dn.xlarge": 0.0,
        "ml.g4dn.2xlarge": 0.0,
        "ml.g5.xlarge": 0.22,
        "ml.g5.2xlarge": 0.23,
        "ml.g5.4xlarge": 0.23,
        "ml.g6.xlarge": 0.18,
        "ml.g6.2xlarge": 0.19,
        "ml.g6e.xlarge": 0.6,
        "ml.g6e.2xlarge": 0.6,
        "ml.p4d.24xlarge": 0.8,
    }
)

# What the FLUX.1 and SD 3.5 guides share (docs/flux_train_network.md lines 124-150,
# docs/sd3_train_network.md): 1024 px, bf16 with gradient checkpointing, a transformer-only LoRA
# with cached text-encoder outputs, dim 16 / alpha 1 at 1e-4 with a constant schedule.
_DIT_DEFAULTS: Mapping[str, FamilyDefault] = MappingProxyType(
    {
        "resolution": "1024,1024",
        "min_bucket_reso": 256,
        "max_bucket_reso": 2048,
        "mixed_precision": "bf16",
        "gradient_checkpointing": True,
        "network_train_unet_only": True,
        "cache_text_encoder_outputs": True,
        "network_dim": 16,
        "network_alpha": 1.0,
        "learning_rate": 1e-4,
        "unet_lr": 1e-4,
        "lr_scheduler": "constant",
    }
)


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
                refused_kohya_params=MappingProxyType(
                    {
                        "cache_text_encoder_outputs": "train_network.py has no --cache_text_encoder_outputs "
                        "(only the SDXL, FLUX.1 and SD 3.5 scripts add it)",
                        "cpu_offload_checkpointing": _NO_CPU_OFFLOAD_UNET,
                    }
                ),
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
                refused_kohya_params=MappingProxyType(
                    {
                        "clip_skip": "SDXL ignores it (sd-scripts library/sdxl_train_util.py "
                        "verify_sdxl_training_args: 'clip_skip will be unexpected')",
                        "cpu_offload_checkpointing": _NO_CPU_OFFLOAD_UNET,
                    }
                ),
                text_encoder_cache_needs_unet_only=True,
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
            # FLUX.1 from sd-scripts' docs/flux_train_network.md (v0.10.1): its example command
            # (lines 124-150) and recommendations: guidance 1.0 (dev is guidance-distilled),
            # shift sampling, raw prediction, fp8 base, cached latents and text-encoder
            # outputs, U-Net-only LoRA (training CLIP-L is optional, T5-XXL is not trained).
            FamilySpec(
                fm_type=FmType.FLUX1,
                display_name="FLUX.1",
                native_side=1024,
                kohya_script="flux_train_network.py",
                network_module="networks.lora_flux",
                # flux_train_network.py assert_extra_args first calls train_network.py's (line 46),
                # which verifies bucket_reso_steps against 64 (lines 174-176); its own check of 32
                # (line 95) is then the weaker one. (sd3_train_network.py does not call it.) Found
                # by the real-engine contract test (tests/container/test_sd_scripts_contract.py).
                bucket_step_multiple=64,
                kohya_defaults=MappingProxyType(
                    {
                        **_DIT_DEFAULTS,
                        "fp8_base": True,
                        # "Recommended Settings" (lines 350-353): "--timestep_sampling shift
                        # --discrete_flow_shift 3.1582 --model_prediction_type raw --guidance_scale 1.0";
                        # discrete_flow_shift "only applies when --timestep_sampling is set to shift" (338).
                        "guidance_scale": 1.0,
                        "timestep_sampling": "shift",
                        "sigmoid_scale": 1.0,
                        "model_prediction_type": "raw",
                        "discrete_flow_shift": 3.1582,
                    }
                ),
                refused_kohya_params=MappingProxyType({**_DIT_REFUSED}),
                # networks/lora_flux.py: LORA_PREFIX_TEXT_ENCODER_CLIP "lora_te1" (T5-XXL's "lora_te3"
                # only with train_t5xxl, which the service does not offer).
                lora_text_encoder_prefixes=("lora_te1",),
                lora_unet_ldm_names=False,
                # networks/lora_flux.py / library/sai_model_spec.py: ARCH_FLUX_1_DEV + "/lora".
                base_model_version="flux1",
                modelspec_architecture="flux-1-dev/lora",
                modelspec_implementation="https://github.com/black-forest-labs/flux",
                # docs/flux_train_network.md: 24 GB with --fp8_base; less only with block swapping.
                min_gpu_memory_gb=24,
                steps_per_second=_FLUX_STEPS_PER_SECOND,
                sample_side_limits=(256, 2048),
                sample_side_multiple=16,
                diffusers_pipeline="FluxPipeline",
                checkpoint_marker=f"{FLUX_TRANSFORMER}double_blocks.",
                tokenizer_repos=("openai/clip-vit-large-patch14", "google/t5-v1_1-xxl"),
                checkpoint_parts=(FLUX_TRANSFORMER_PART,),
                checkpoint_text_parts=(),
                checkpoint_foreign_prefixes=(),
                components=(
                    ComponentSlot(ComponentRole.AE, "the FLUX.1 autoencoder (ae.safetensors)", True),
                    _CLIP_L,
                    _T5XXL,
                ),
                # flux1-dev (23.8 GB) + t5xxl_fp16 (9.8 GB) are loaded into host memory first.
                min_host_memory_gb=32,
                # library/flux_models.py Flux.enable_block_swap: n // 2 of the 19 double blocks and
                # (n - n // 2) * 2 of the 38 single blocks, each at most 2 short of all: 35 at most
                # (docs/flux_train_network.md line 296). Its VRAM table (lines 285-291, with fp8_base):
                # 24 GB needs no swapping; 16 GB "use --blocks_to_swap" (no number given: the 12 GB
                # row's 16, which fits 12 GB, fits 16 GB too); 12 GB: 16; 10 GB: 22; 8 GB: 28.
                block_swap=BlockSwap(maximum=35, by_gpu_memory=((24, 0), (12, 16), (10, 22), (8, 28))),
                sample_guidance_embedded=True,
            ),
            # SD 3.5 from sd-scripts' docs/sd3_train_network.md (v0.10.1).
            FamilySpec(
                fm_type=FmType.SD35,
                display_name="SD 3.5",
                native_side=1024,
                kohya_script="sd3_train_network.py",
                network_module="networks.lora_sd3",
                # sd3_train_network.py assert_extra_args: verify_bucket_reso_steps(32) (lines 64-66;
                # its call of train_network.py's, which checks 64, is commented out at line 36)
                bucket_step_multiple=32,
                kohya_defaults=MappingProxyType(
                    {
                        **_DIT_DEFAULTS,
                        "weighting_scheme": "uniform",
                        "training_shift": 1.0,
                    }
                ),
                refused_kohya_params=MappingProxyType(
                    {
                        **_DIT_REFUSED,
                        "cpu_offload_checkpointing": "SD 3.5's MMDiT cannot offload checkpoints "
                        "(sd-scripts library/sd3_models.py MMDiT.enable_gradient_checkpointing takes no "
                        "cpu_offload; train_network.py passes it and crashes); use blocks_to_swap",
                    }
                ),
                # networks/lora_sd3.py: LORA_PREFIX_TEXT_ENCODER_CLIP_L "lora_te1", CLIP_G "lora_te2".
                lora_text_encoder_prefixes=("lora_te1", "lora_te2"),
                lora_unet_ldm_names=False,
                # library/sai_model_spec.py: ARCH_SD3_M + "-" + the model type ("5-large" or "5-medium",
                # library/sd3_utils.py analyze_state_dict_state); sd3_train_network.py
                # writes the model's version as ss_base_model_version ("5-large", "5-medium").
                base_model_version="5-large",
                modelspec_architecture="stable-diffusion-3-5-large/lora",
                modelspec_implementation="https://github.com/Stability-AI/generative-models",
                min_gpu_memory_gb=24,
                steps_per_second=_SD35_STEPS_PER_SECOND,
                sample_side_limits=(256, 2048),
                sample_side_multiple=16,
                diffusers_pipeline="StableDiffusion3Pipeline",
                checkpoint_marker=f"{SD3_MMDIT}joint_blocks.",
                tokenizer_repos=(
                    "openai/clip-vit-large-patch14",
                    "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k",
                    "google/t5-v1_1-xxl",
                ),
                checkpoint_parts=(SD3_MMDIT_PART, VAE_PART),
                checkpoint_text_parts=(),
                checkpoint_foreign_prefixes=(),
                # sd3.5_large.safetensors ships without text encoders; some SD3 files include them
                # under text_encoders.{clip_l,clip_g,t5xxl}.transformer. (library/sd3_utils.py).
                components=(
                    ComponentSlot(
                        ComponentRole.CLIP_L, "the CLIP-L text encoder (clip_l.safetensors)", False
                    ),
                    ComponentSlot(
                        ComponentRole.CLIP_G, "the CLIP-G text encoder (clip_g.safetensors)", False
                    ),
                    ComponentSlot(ComponentRole.T5XXL, _T5XXL.description, False),
                ),
                min_host_memory_gb=32,
                # library/sd3_models.py MMDiT.enable_block_swap asserts blocks_to_swap <= depth - 2:
                # 36 for 3.5 Large (38 joint blocks), 22 for 3.5 Medium (24; depth from
                # sd3_utils.analyze_state_dict_state). docs/sd3_train_network.md has no VRAM table; its
                # example swaps 32 (Large only). The service's choice must suit both sizes: no
                # swapping from 40 GB (Large's 16 GB of bf16 weights fit with room for activations),
                # else 22, the most Medium allows (leaves 16 of Large's 38 blocks on the GPU).
                block_swap=BlockSwap(maximum=36, by_gpu_memory=((40, 0), (24, 22))),
            ),
        )
    }
)
