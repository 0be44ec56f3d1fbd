"""The parts of a single-file (original LDM layout) checkpoint, named by their tensor prefixes.

Each ``FamilySpec`` (functions.domain.families) lists the parts its checkpoints must have;
functions.domain.checkpoint_family reads a safetensors header against them. The names are
those sd-scripts loads: ``library/model_util.py`` (``convert_ldm_unet_checkpoint``,
``convert_ldm_clip_checkpoint_v1``) and ``library/sdxl_model_util.py``
(``load_models_from_sdxl_checkpoint``: ``conditioner.embedders.0.transformer.``,
``conditioner.embedders.1.model.``).
"""

from __future__ import annotations

from dataclasses import dataclass

UNET = "model.diffusion_model."
VAE = "first_stage_model."
SD15_TEXT = "cond_stage_model.transformer."
SD2_TEXT = "cond_stage_model.model."  # SD 2.x: OpenCLIP ViT-H (not a supported family)
SDXL_TEXT_1 = "conditioner.embedders.0.transformer."
SDXL_TEXT_2 = "conditioner.embedders.1.model."
# FLUX.1's transformer as Black Forest Labs ship it (flux1-dev.safetensors: no prefix; files saved
# by ComfyUI carry UNET's prefix), sd-scripts library/flux_utils.py load_flow_model.
FLUX_TRANSFORMER = ""
# SD 3.5's MMDiT inside an SAI single file (sd3.5_large.safetensors), sd-scripts
# library/sd3_utils.py load_mmdit (state dict prefix "model.diffusion_model.").
SD3_MMDIT = UNET


@dataclass(frozen=True)
class CheckpointPart:
    """A part of a checkpoint and the tensors that prove it is there.

    For a text encoder, ``keys[0]`` is its token embedding, whose second axis is the width of
    the embeddings it gives the UNet's cross-attention.
    """

    name: str
    keys: tuple[str, ...]


UNET_PART = CheckpointPart(
    "the UNet",
    (f"{UNET}input_blocks.0.0.weight", f"{UNET}time_embed.0.weight", f"{UNET}out.2.weight"),
)
VAE_PART = CheckpointPart(
    "the VAE",
    (f"{VAE}encoder.conv_in.weight", f"{VAE}decoder.conv_out.weight", f"{VAE}quant_conv.weight"),
)
SD15_TEXT_PART = CheckpointPart(
    "the CLIP text encoder",
    (
        f"{SD15_TEXT}text_model.embeddings.token_embedding.weight",
        f"{SD15_TEXT}text_model.final_layer_norm.weight",
    ),
)
SDXL_TEXT_1_PART = CheckpointPart(
    "the first (CLIP ViT-L) text encoder",
    (
        f"{SDXL_TEXT_1}text_model.embeddings.token_embedding.weight",
        f"{SDXL_TEXT_1}text_model.final_layer_norm.weight",
    ),
)
SDXL_TEXT_2_PART = CheckpointPart(
    "the second (OpenCLIP ViT-bigG) text encoder",
    (
        f"{SDXL_TEXT_2}token_embedding.weight",
        f"{SDXL_TEXT_2}ln_final.weight",
        f"{SDXL_TEXT_2}text_projection",
    ),
)
SDXL_CONDITIONING_PART = CheckpointPart(
    "the UNet's size conditioning (label_emb)", (f"{UNET}label_emb.0.0.weight",)
)
FLUX_TRANSFORMER_PART = CheckpointPart(
    "the FLUX.1 transformer",
    (
        f"{FLUX_TRANSFORMER}double_blocks.0.img_attn.qkv.weight",
        f"{FLUX_TRANSFORMER}single_blocks.0.linear1.weight",
        f"{FLUX_TRANSFORMER}img_in.weight",
    ),
)
SD3_MMDIT_PART = CheckpointPart(
    "the SD 3.5 MMDiT",
    (
        f"{SD3_MMDIT}joint_blocks.0.context_block.adaLN_modulation.1.bias",
        f"{SD3_MMDIT}x_embedder.proj.weight",
        f"{SD3_MMDIT}final_layer.linear.weight",
    ),
)
