"""Tiny Stable Diffusion 1.5 / SDXL architectures with random weights, and tiny Kohya datasets.

The models keep every structural feature the engine relies on (cross-attention UNet, a real
AutoencoderKL with the 8x latent downscale, CLIP text encoder(s) with the real 49,408-token
vocabulary, SDXL's pooled embeddings and time ids) at a few hundred kilobytes of channels, so a
training step takes well under a second on a CPU.

Public API::

    build_tiny_pipeline(fm_type) -> the family's pipeline (FLUX.1 / SD 3.5 from tiny_flow_models)
    save_tiny_checkpoint(fm_type, path) -> Path        # single file, original LDM/SGM key layout
    save_tiny_diffusers_folder(fm_type, path) -> Path  # diffusers folder layout
    make_tiny_dataset(path, concept="demo", repeats=2, n_images=4) -> Path

Single files carry their diffusers config in the safetensors metadata key
``DIFFUSERS_CONFIG_METADATA_KEY``: diffusers cannot infer a tiny architecture from its keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

import diffusers
import torch
from diffusers import (
    AutoencoderKL,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from PIL import Image, ImageDraw
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from functions.domain.catalog import FmType
from training_container import ldm_layout as ldm_export
from training_container.clip_tokenizers import (
    CLIP_L_TOKENIZER_REPO,
    CLIP_VOCAB_SIZE,
    OPEN_CLIP_BIGG_TOKENIZER_REPO,
    load_clip_tokenizer,
)
from training_container.model_loading import DIFFUSERS_CONFIG_METADATA_KEY, family_config_bundle

TinyPipeline: TypeAlias = Any  # StableDiffusion(XL)Pipeline; components are registered at runtime
TEXT_HIDDEN_SIZE = 32
# SDXL's encoders must differ in width (768 vs 1280 in the real model): diffusers' single-file
# loader tells them apart by the width of their position embeddings.
TEXT_2_HIDDEN_SIZE = 48
TINY_RESOLUTION = 256  # the smallest resolution the service's parameter validation accepts
# Where each family's single-file checkpoints keep their text encoders.
SD15_TEXT_PREFIX = "cond_stage_model.transformer."
SDXL_TEXT_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."


def _text_config(*, with_projection: bool) -> CLIPTextConfig:
    width = TEXT_2_HIDDEN_SIZE if with_projection else TEXT_HIDDEN_SIZE
    return CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=width,
        hidden_act="gelu" if with_projection else "quick_gelu",
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=0 if with_projection else 49407,
    )


def _tiny_vae(scaling_factor: float) -> AutoencoderKL:
    # Four blocks: the same 8x downscale as the real VAE, so latents have the real geometry.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=TINY_RESOLUTION,
        scaling_factor=scaling_factor,
    )


def _tiny_sd15_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=TINY_RESOLUTION // 8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_HIDDEN_SIZE,
        attention_head_dim=8,
        norm_num_groups=32,
    )


def _tiny_sdxl_unet() -> UNet2DConditionModel:
    # layers_per_block=2 as in SDXL, so SGM block numbers (input_blocks.4.1, ...) match real ones.
    time_embed_dim = 8
    return UNet2DConditionModel(
        sample_size=TINY_RESOLUTION // 8,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        cross_attention_dim=TEXT_HIDDEN_SIZE + TEXT_2_HIDDEN_SIZE,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=time_embed_dim * 6 + TEXT_2_HIDDEN_SIZE,
        norm_num_groups=32,
    )


def _scheduler(fm_type: FmType) -> Any:
    """The family's noise scheduler, of the class its committed config names."""
    config = family_config_bundle(fm_type)["scheduler"]
    return getattr(diffusers, config["_class_name"]).from_config(config)


def _tiny_sd15_pipeline() -> TinyPipeline:
    return StableDiffusionPipeline(
        vae=_tiny_vae(0.18215),
        text_encoder=CLIPTextModel(_text_config(with_projection=False)),
        tokenizer=load_clip_tokenizer(CLIP_L_TOKENIZER_REPO),
        unet=_tiny_sd15_unet(),
        scheduler=_scheduler(FmType.SD15),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _tiny_sdxl_pipeline() -> TinyPipeline:
    return StableDiffusionXLPipeline(
        vae=_tiny_vae(0.13025),
        text_encoder=CLIPTextModel(_text_config(with_projection=False)),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(with_projection=True)),
        tokenizer=load_clip_tokenizer(CLIP_L_TOKENIZER_REPO),
        tokenizer_2=load_clip_tokenizer(OPEN_CLIP_BIGG_TOKENIZER_REPO),
        unet=_tiny_sdxl_unet(),
        scheduler=_scheduler(FmType.SDXL),
    )


def _tiny_flux1_pipeline() -> TinyPipeline:
    # Imported when called: tiny_flow_models builds on this module's CLIP encoders.
    from training_container.testing.tiny_flow_models import build_tiny_flux_pipeline

    return build_tiny_flux_pipeline(seed=torch.initial_seed())


def _tiny_sd35_pipeline() -> TinyPipeline:
    from training_container.testing.tiny_flow_models import build_tiny_sd35_pipeline

    return build_tiny_sd35_pipeline(seed=torch.initial_seed())


# One tiny architecture per family: a new family adds its builder here (and its adapter under
# training_container/engines/families/); tests/container/test_family_adapters.py runs every
# adapter on the family's tiny pipeline. FLUX.1 and SD 3.5 are built in tiny_flow_models.
TINY_PIPELINES: Mapping[FmType, Callable[[], TinyPipeline]] = MappingProxyType(
    {
        FmType.SD15: _tiny_sd15_pipeline,
        FmType.SDXL: _tiny_sdxl_pipeline,
        FmType.FLUX1: _tiny_flux1_pipeline,
        FmType.SD35: _tiny_sd35_pipeline,
    }
)
# The families whose users upload one single file in the original LDM/SGM layout, which
# ``save_tiny_checkpoint`` writes; FLUX.1 and SD 3.5 files come from
# tiny_flow_models.save_tiny_model_files (a checkpoint plus component files).
SINGLE_FILE_FAMILIES: frozenset[FmType] = frozenset({FmType.SD15, FmType.SDXL})


def build_tiny_pipeline(fm_type: FmType | str, seed: int = 0) -> TinyPipeline:
    """A tiny pipeline of the family's architecture, with reproducible random weights."""
    torch.manual_seed(seed)
    return TINY_PIPELINES[FmType(fm_type)]()


def pipeline_config_bundle(pipe: TinyPipeline) -> dict[str, Any]:
    """The diffusers configs of a pipeline's components, as the single-file loader wants them."""
    bundle: dict[str, Any] = {
        "model_index": {"_class_name": type(pipe).__name__, **family_model_index(pipe)},
        "unet": dict(pipe.unet.config),
        "vae": dict(pipe.vae.config),
        "scheduler": dict(pipe.scheduler.config),
        "text_encoder": pipe.text_encoder.config.to_dict(),
    }
    if hasattr(pipe, "text_encoder_2"):
        bundle["text_encoder_2"] = pipe.text_encoder_2.config.to_dict()
    return json.loads(json.dumps(bundle, default=list))  # tuples -> lists, plain JSON types


def family_model_index(pipe: TinyPipeline) -> dict[str, list[str | None]]:
    index: dict[str, list[str | None]] = {
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", type(pipe.scheduler).__name__],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
    }
    if hasattr(pipe, "text_encoder_2"):
        index["text_encoder_2"] = ["transformers", "CLIPTextModelWithProjection"]
        index["tokenizer_2"] = ["transformers", "CLIPTokenizer"]
    else:
        index["safety_checker"] = [None, None]
        index["feature_extractor"] = [None, None]
    return index


def checkpoint_state_dict(pipe: TinyPipeline) -> dict[str, torch.Tensor]:
    """All weights of a pipeline in the original single-file key layout."""
    state = ldm_export.unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config)
    state.update(ldm_export.vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config))
    if hasattr(pipe, "text_encoder_2"):
        state.update(ldm_export.clip_to_ldm(pipe.text_encoder.state_dict(), SDXL_TEXT_PREFIX))
        state.update(ldm_export.clip_to_open_clip(pipe.text_encoder_2.state_dict(), SDXL_OPEN_CLIP_PREFIX))
    else:
        state.update(ldm_export.clip_to_ldm(pipe.text_encoder.state_dict(), SD15_TEXT_PREFIX))
    return {key: tensor.detach().contiguous().clone() for key, tensor in state.items()}


def save_tiny_checkpoint(fm_type: FmType | str, path: Path | str, seed: int = 0) -> Path:
    """Write a tiny single-file ``.safetensors`` checkpoint like the ones users upload."""
    if FmType(fm_type) not in SINGLE_FILE_FAMILIES:
        raise ValueError(f"{FmType(fm_type).value} is uploaded as several files: use save_tiny_model_files")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    pipe = build_tiny_pipeline(fm_type, seed=seed)
    metadata = {DIFFUSERS_CONFIG_METADATA_KEY: json.dumps(pipeline_config_bundle(pipe))}
    save_file(checkpoint_state_dict(pipe), str(target), metadata=metadata)
    return target


def save_tiny_diffusers_folder(fm_type: FmType | str, path: Path | str, seed: int = 0) -> Path:
    """Write a tiny pipeline in the diffusers folder layout (``model_index.json`` + subfolders)."""
    target = Path(path)
    build_tiny_pipeline(fm_type, seed=seed).save_pretrained(str(target), safe_serialization=True)
    return target


_PALETTE = ((200, 40, 40), (40, 160, 60), (40, 60, 200), (220, 180, 30), (150, 40, 170), (30, 170, 170))


def make_tiny_dataset(
    path: Path | str,
    concept: str = "demo",
    repeats: int = 2,
    n_images: int = 4,
    size: tuple[int, int] = (TINY_RESOLUTION, TINY_RESOLUTION),
) -> Path:
    """A Kohya-layout dataset: ``<path>/<repeats>_<concept>/img_<i>.png`` + ``.txt`` captions.

    Images are simple coloured shapes (deterministic), captions name the concept first, as
    trigger-word datasets do. Returns ``path``.
    """
    root = Path(path)
    folder = root / f"{repeats}_{concept}"
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(n_images):
        image = Image.new("RGB", size, _PALETTE[index % len(_PALETTE)])
        draw = ImageDraw.Draw(image)
        inset = 16 + 8 * index
        shape = draw.ellipse if index % 2 else draw.rectangle
        shape((inset, inset, size[0] - inset, size[1] - inset), fill=_PALETTE[(index + 3) % len(_PALETTE)])
        image.save(folder / f"img_{index}.png")
        caption = f"{concept}, a {'circle' if index % 2 else 'square'}, flat colours"
        (folder / f"img_{index}.txt").write_text(caption, encoding="utf-8")
    return root
