"""Tiny FLUX.1 and SD 3.5 pipelines with random weights, built offline on a CPU.

They keep what the flow-matching adapters rely on: FLUX's double and single stream blocks, its
guidance embedding and 2x2 latent packing, a 16-channel AutoencoderKL with the real 8x downscale,
shift and scaling factors; SD 3.5's joint blocks with a dual-attention (MMDiT-X) block, QK RMS
norms and the pre-only context block last; CLIP-L (and CLIP-G) with the real vocabulary, and a T5
encoder with a small Unigram vocabulary (T5's tokenizer class, no sentencepiece model needed).

Public API::

    build_tiny_flux_pipeline(seed=0) -> FluxPipeline
    build_tiny_sd35_pipeline(seed=0) -> StableDiffusion3Pipeline
    tiny_flux_transformer(head_dim, heads, ...) -> FluxTransformer2DModel
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
)
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel, T5Tokenizer

from functions.domain.families import ComponentRole, FmType
from training_container.clip_tokenizers import (
    CLIP_L_TOKENIZER_REPO,
    OPEN_CLIP_BIGG_TOKENIZER_REPO,
    load_clip_tokenizer,
)
from training_container.engines.families.flux1_files import (
    DIFFUSERS_CONFIG_METADATA_KEY,
    T5_VOCAB_METADATA_KEY,
)
from training_container.engines.families.flux1_layout import flux_to_bfl
from training_container.engines.families.sd35_layout import sd35_to_sai
from training_container.ldm_layout import UNET_PREFIX, VAE_PREFIX, clip_to_ldm, vae_to_ldm
from training_container.testing.tiny_models import (
    SINGLE_FILE_FAMILIES,
    TEXT_2_HIDDEN_SIZE,
    TEXT_HIDDEN_SIZE,
    TINY_RESOLUTION,
    _text_config,
    save_tiny_checkpoint,
)

T5_MAX_LENGTH = 16  # the tiny models' T5 token length (512 / 256 in the real ones)
FLUX_T5_WIDTH = 32
# SD 3's joint attention takes CLIP-L + CLIP-G side by side, zero-padded to T5's width.
SD35_T5_WIDTH = 96


def tiny_t5_tokenizer() -> T5Tokenizer:
    """A T5 tokenizer over letters, digits and a few word pieces (T5's special tokens first)."""
    pieces = ["▁" + letter for letter in string.ascii_lowercase] + list(
        string.ascii_lowercase + string.digits
    )
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0), *[(piece, -3.0) for piece in pieces]]
    vocab += [(",", -3.0), (".", -3.0)]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=T5_MAX_LENGTH)


def tiny_t5_encoder(width: int, vocab_size: int) -> T5EncoderModel:
    config = T5Config(
        vocab_size=vocab_size,
        d_model=width,
        d_kv=8,
        d_ff=2 * width,
        num_layers=1,
        num_heads=4,
        feed_forward_proj="gated-gelu",  # T5 v1.1 (T5-XXL): T5DenseGatedActDense
    )
    return T5EncoderModel(config)


def tiny_flow_vae(scaling_factor: float, shift_factor: float) -> AutoencoderKL:
    """FLUX / SD 3's 16-channel VAE geometry (no quant convs), 8x downscale."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=8,
        sample_size=TINY_RESOLUTION,
        scaling_factor=scaling_factor,
        shift_factor=shift_factor,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def tiny_flux_transformer(
    head_dim: int = 16,
    heads: int = 2,
    num_layers: int = 1,
    num_single_layers: int = 1,
    axes_dims_rope: tuple[int, int, int] = (4, 6, 6),  # sums to head_dim; FLUX.1: (16, 56, 56)
    guidance_embeds: bool = True,
) -> FluxTransformer2DModel:
    """A FLUX.1 transformer of ``heads * head_dim`` channels: dev (guidance-distilled), or
    schnell with ``guidance_embeds=False``."""
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,  # 16 latent channels in 2x2 patches
        num_layers=num_layers,
        num_single_layers=num_single_layers,
        attention_head_dim=head_dim,
        num_attention_heads=heads,
        joint_attention_dim=FLUX_T5_WIDTH,
        pooled_projection_dim=TEXT_HIDDEN_SIZE,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=axes_dims_rope,
    )


def flux_scheduler() -> FlowMatchEulerDiscreteScheduler:
    # FLUX.1 dev's scheduler_config.json values
    return FlowMatchEulerDiscreteScheduler(
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )


def build_tiny_flux_pipeline(seed: int = 0, *, schnell: bool = False) -> Any:
    torch.manual_seed(seed)
    tokenizer_2 = tiny_t5_tokenizer()
    return FluxPipeline(
        scheduler=flux_scheduler(),
        vae=tiny_flow_vae(0.3611, 0.1159),  # FLUX.1's ae: flux_models.AutoEncoderParams
        text_encoder=CLIPTextModel(_text_config(with_projection=False)),
        tokenizer=load_clip_tokenizer(CLIP_L_TOKENIZER_REPO),
        text_encoder_2=tiny_t5_encoder(FLUX_T5_WIDTH, len(tokenizer_2)),
        tokenizer_2=tokenizer_2,
        transformer=tiny_flux_transformer(guidance_embeds=not schnell),
    )


def build_tiny_sd35_pipeline(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    tokenizer_3 = tiny_t5_tokenizer()
    transformer = SD3Transformer2DModel(
        sample_size=TINY_RESOLUTION // 8,
        patch_size=2,
        in_channels=16,
        # sd-scripts reads the depth off the width (hidden = 64 * depth, one 64-wide head per
        # block: library/sd3_utils.py line 35, sd3_models.MMDiT), as in 3.5 Medium (24 x 64) and
        # Large (38 x 64); the tiny model keeps that rule.
        num_layers=2,
        attention_head_dim=64,
        num_attention_heads=2,
        joint_attention_dim=SD35_T5_WIDTH,
        caption_projection_dim=128,
        pooled_projection_dim=TEXT_HIDDEN_SIZE + TEXT_2_HIDDEN_SIZE,
        out_channels=16,
        pos_embed_max_size=TINY_RESOLUTION // 8,
        dual_attention_layers=(0,),  # SD 3.5 medium's MMDiT-X blocks
        qk_norm="rms_norm",
    )
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),  # SD 3.5's scheduler_config.json
        vae=tiny_flow_vae(1.5305, 0.0609),  # SD 3's VAE: sd3_models.SDVAE
        text_encoder=CLIPTextModelWithProjection(_text_config(with_projection=False)),
        tokenizer=load_clip_tokenizer(CLIP_L_TOKENIZER_REPO),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(with_projection=True)),
        tokenizer_2=load_clip_tokenizer(OPEN_CLIP_BIGG_TOKENIZER_REPO),
        text_encoder_3=tiny_t5_encoder(SD35_T5_WIDTH, len(tokenizer_3)),
        tokenizer_3=tokenizer_3,
    )


def _t5_vocab(tokenizer: Any) -> list[tuple[str, float]]:
    """The tiny tokenizer's pieces and scores, carried in the T5 file (flux1_files.T5_VOCAB_METADATA_KEY)."""
    pieces = ["<pad>", "</s>", "<unk>", "▁", *["▁" + c for c in string.ascii_lowercase]]
    pieces += [*string.ascii_lowercase, *string.digits, ",", "."]
    scores = {"<pad>": 0.0, "</s>": 0.0, "<unk>": 0.0, "▁": -2.0}
    vocab = [(piece, scores.get(piece, -3.0)) for piece in pieces]
    assert len(vocab) == len(tokenizer), "keep in step with tiny_t5_tokenizer"
    return vocab


def _save(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(path), metadata=metadata)
    return path


def _bundle(**configs: Any) -> dict[str, str]:
    return {DIFFUSERS_CONFIG_METADATA_KEY: json.dumps(configs, default=list)}


def _clip_state(model: Any) -> dict[str, torch.Tensor]:
    """A CLIP text model as clip_l.safetensors / clip_g.safetensors hold it: transformers 4's names,
    the encoder under ``text_model.`` and ``text_projection.weight`` beside it (what sd-scripts'
    transformers 4.54 loads)."""
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    projection = {k: v for k, v in state.items() if k.startswith("text_projection.")}
    return {**clip_to_ldm({k: v for k, v in state.items() if k not in projection}, ""), **projection}


def _save_flux_files(folder: Path, seed: int) -> dict[str, Path]:
    """flux1-dev.safetensors, ae.safetensors, clip_l.safetensors and t5xxl.safetensors, tiny."""
    pipe = build_tiny_flux_pipeline(seed)
    transformer, vae = pipe.transformer, pipe.vae
    ae = {k.removeprefix(VAE_PREFIX): v for k, v in vae_to_ldm(vae.state_dict(), vae.config).items()}
    t5 = pipe.text_encoder_2
    return {
        "checkpoint": _save(
            flux_to_bfl(transformer.state_dict(), transformer.config),
            folder / "flux1-dev.safetensors",
            _bundle(transformer=dict(transformer.config), scheduler=dict(pipe.scheduler.config)),
        ),
        ComponentRole.AE.value: _save(ae, folder / "ae.safetensors", _bundle(vae=dict(vae.config))),
        ComponentRole.CLIP_L.value: _save(
            _clip_state(pipe.text_encoder),
            folder / "clip_l.safetensors",
            _bundle(text_encoder=pipe.text_encoder.config.to_dict()),
        ),
        ComponentRole.T5XXL.value: _save(
            {k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"},
            folder / "t5xxl.safetensors",
            {
                **_bundle(text_encoder_2=t5.config.to_dict()),
                T5_VOCAB_METADATA_KEY: json.dumps(_t5_vocab(pipe.tokenizer_2)),
            },
        ),
    }


def _t5_file(t5: Any, tokenizer: Any, config_name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    state = {k: v for k, v in t5.state_dict().items() if k != "encoder.embed_tokens.weight"}
    metadata = {config_name: t5.config.to_dict()}
    return state, {T5_VOCAB_METADATA_KEY: json.dumps(_t5_vocab(tokenizer)), **_bundle(**metadata)}


def _save_sd35_files(folder: Path, seed: int, include_text_encoders: bool) -> dict[str, Path]:
    """sd3.5 single file (MMDiT + VAE in SAI's layout), and clip_l / clip_g / t5xxl files unless
    ``include_text_encoders`` puts them inside it (sd-scripts library/sd3_utils.py prefixes)."""
    pipe = build_tiny_sd35_pipeline(seed)
    transformer, vae = pipe.transformer, pipe.vae
    encoders = {
        ComponentRole.CLIP_L: (_clip_state(pipe.text_encoder), {}, "text_encoder", pipe.text_encoder),
        ComponentRole.CLIP_G: (_clip_state(pipe.text_encoder_2), {}, "text_encoder_2", pipe.text_encoder_2),
        ComponentRole.T5XXL: (
            *_t5_file(pipe.text_encoder_3, pipe.tokenizer_3, "text_encoder_3"),
            "text_encoder_3",
            pipe.text_encoder_3,
        ),
    }
    state = {**sd35_to_sai(transformer.state_dict(), transformer.config)}
    state.update(vae_to_ldm(vae.state_dict(), vae.config))
    configs: dict[str, Any] = {
        "transformer": dict(transformer.config),
        "vae": dict(vae.config),
        "scheduler": dict(pipe.scheduler.config),
    }
    metadata: dict[str, str] = {}
    files: dict[str, Path] = {}
    for role, (tensors, extra, name, model) in encoders.items():
        if include_text_encoders:
            state.update({f"text_encoders.{role.value}.transformer.{k}": v for k, v in tensors.items()})
            configs[name] = model.config.to_dict()
            metadata.update({k: v for k, v in extra.items() if k != DIFFUSERS_CONFIG_METADATA_KEY})
        else:
            file_metadata = {**extra, **_bundle(**{name: model.config.to_dict()})}
            files[role.value] = _save(tensors, folder / f"{role.value}.safetensors", file_metadata)
    main = _save(state, folder / "sd3.5_tiny.safetensors", {**metadata, **_bundle(**configs)})
    return {"checkpoint": main, **files}


def save_tiny_model_files(
    fm_type: FmType | str, folder: Path | str, seed: int = 0, include_text_encoders: bool = False
) -> dict[str, Path]:
    """The files a user uploads for a family, tiny: ``checkpoint`` plus one per component role.

    SD 1.5 / SDXL: the one single-file checkpoint. FLUX.1: the transformer in BFL's layout and its
    AE, CLIP-L and T5-XXL files, as sd-scripts loads them (library/flux_utils.py). SD 3.5: the SAI
    single file with its text encoders as separate files, like sd3.5_large's distribution (or
    inside it, ``include_text_encoders``).
    """
    family, target = FmType(fm_type), Path(folder)
    if family is FmType.FLUX1:
        return _save_flux_files(target, seed)
    if family is FmType.SD35:
        return _save_sd35_files(target, seed, include_text_encoders)
    if family in SINGLE_FILE_FAMILIES:
        return {"checkpoint": save_tiny_checkpoint(family, target / f"tiny-{family.value}.safetensors", seed)}
    raise ValueError(f"no tiny files for {family.value}")


def merge_kohya_lora_into_bfl(
    bfl: dict[str, torch.Tensor], lora: dict[str, torch.Tensor], scale: float = 1.0
) -> dict[str, torch.Tensor]:
    """Original-layout transformer weights (FLUX.1's BFL file, SD 3.5's SAI file) with a sd-scripts
    ``lora_flux`` / ``lora_sd3`` LoRA merged in, as ComfyUI and sd-scripts apply it:
    ``W += up @ down * alpha / rank`` on the fused original layer, found by its name (``lora_unet_``
    + the module path with ``.`` -> ``_``: networks/lora_flux.py lines 826-827, lora_sd3.py alike).
    Used to render with a LoRA at widths diffusers' LoRA loaders cannot split (its FLUX loader
    assumes FLUX.1's real 3072-wide single blocks; it has no loader for lora_sd3 names)."""
    merged = dict(bfl)
    for key, weight in bfl.items():
        if not key.endswith(".weight"):
            continue
        name = "lora_unet_" + key.removeprefix(UNET_PREFIX).removesuffix(".weight").replace(".", "_")
        down, up = lora.get(f"{name}.lora_down.weight"), lora.get(f"{name}.lora_up.weight")
        if down is None or up is None:
            continue
        rank = down.shape[0]
        alpha = float(lora[f"{name}.alpha"]) if f"{name}.alpha" in lora else float(rank)
        merged[key] = weight + (up.float() @ down.float()).to(weight.dtype) * (alpha / rank) * scale
    return merged
