"""Loading SD 3.5 from the files users upload: the SAI single file and, for text encoders it does
not carry, the clip_l / clip_g / t5xxl component files; offline.

The single file holds the MMDiT (``model.diffusion_model.``, sd35_layout) and the VAE
(``first_stage_model.``); text encoders are optional inside it under
``text_encoders.{clip_l,clip_g,t5xxl}.transformer.`` (sd-scripts library/sd3_utils.py lines 109-113,
169-173, 224-228). A component file wins over a copy inside the checkpoint, as the job named it.
The MMDiT's config is read from its tensors; the VAE's and the text encoders' come from the file's
embedded config (tiny test models) or the committed full-size ones in ``model_configs/sd35``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
)
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from functions.domain.checkpoint_layout import VAE
from functions.domain.families import ComponentRole
from training_container.clip_tokenizers import (
    CLIP_L_TOKENIZER_REPO,
    OPEN_CLIP_BIGG_TOKENIZER_REPO,
    load_clip_tokenizer,
)
from training_container.engines.families.flux1_files import (
    component_config,
    embedded_config,
    materialise,
    read_file,
    t5_tokenizer,
)
from training_container.engines.families.sd35_layout import sd35_architecture, sd35_from_sai
from training_container.errors import JobFailure

SD35_CONFIGS_DIR = Path(__file__).resolve().parents[2] / "model_configs" / "sd35"
TEXT_ENCODER_PREFIX = "text_encoders.{role}.transformer."
# The pipeline's name for each text encoder's config (StableDiffusion3Pipeline's components).
_CONFIG_NAMES = {
    ComponentRole.CLIP_L: "text_encoder",
    ComponentRole.CLIP_G: "text_encoder_2",
    ComponentRole.T5XXL: "text_encoder_3",
}
_NAMES = {
    ComponentRole.CLIP_L: "the CLIP-L text encoder",
    ComponentRole.CLIP_G: "the CLIP-G text encoder",
    ComponentRole.T5XXL: "the T5-XXL text encoder",
}


def _text_encoder_tensors(
    role: ComponentRole,
    checkpoint: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str],
    components: Mapping[ComponentRole, Path],
) -> tuple[dict[str, torch.Tensor], Mapping[str, str]]:
    """The encoder's tensors and the metadata that describes them: its component file, else the
    copy inside the checkpoint; JobFailure naming the component when there is neither."""
    if role in components:
        return read_file(components[role], _NAMES[role])
    prefix = TEXT_ENCODER_PREFIX.format(role=role.value)
    inside = {k.removeprefix(prefix): v for k, v in checkpoint.items() if k.startswith(prefix)}
    if not inside:
        raise JobFailure(
            f"the SD 3.5 checkpoint does not include {_NAMES[role]} and the job has no {role.value} component"
        )
    return inside, metadata


def _clip(tensors: dict[str, torch.Tensor], config: dict[str, Any], dtype: torch.dtype, what: str) -> Any:
    with init_empty_weights():
        model = CLIPTextModelWithProjection(CLIPTextConfig(**config))
    expected = set(model.state_dict())
    if not any(k.startswith("text_model.") for k in expected):
        tensors = {k.removeprefix("text_model."): v for k, v in tensors.items()}
    if "text_projection.weight" in expected and "text_projection.weight" not in tensors:
        # CLIP-L files may lack it; sd-scripts adds an identity projection (sd3_utils.py line 153).
        width = int(config["hidden_size"])
        tensors["text_projection.weight"] = torch.eye(width, int(config["projection_dim"]))
    return materialise(model, tensors, dtype, what)


def _t5(tensors: dict[str, torch.Tensor], config: dict[str, Any], dtype: torch.dtype) -> Any:
    with init_empty_weights():
        model = T5EncoderModel(T5Config(**config))
    if "encoder.embed_tokens.weight" not in tensors and "shared.weight" in tensors:
        tensors["encoder.embed_tokens.weight"] = tensors["shared.weight"]  # tied in T5
    return materialise(model, tensors, dtype, "the T5-XXL text encoder")


def load_sd35_pipeline(
    model_path: Path, components: Mapping[ComponentRole, Path], dtype: torch.dtype
) -> StableDiffusion3Pipeline:
    """StableDiffusion3Pipeline from the uploaded SAI single file and any component files."""
    checkpoint, metadata = read_file(model_path, "the SD 3.5 checkpoint")
    config = {**sd35_architecture(checkpoint), **(embedded_config(metadata, "transformer") or {})}
    with init_empty_weights():
        transformer = SD3Transformer2DModel.from_config(config)
    state = sd35_from_sai(checkpoint, {k: v.shape for k, v in transformer.state_dict().items()})
    vae_config = component_config(metadata, "vae", SD35_CONFIGS_DIR)
    with init_empty_weights():
        vae = AutoencoderKL.from_config(vae_config)
    vae_state = convert_ldm_vae_checkpoint(
        {k: v for k, v in checkpoint.items() if k.startswith(VAE)}, vae_config
    )
    encoders = {}
    for role, name in _CONFIG_NAMES.items():
        tensors, source = _text_encoder_tensors(role, checkpoint, metadata, components)
        encoders[role] = (tensors, source, component_config(source, name, SD35_CONFIGS_DIR))
    t5_tensors, t5_source, t5_config = encoders[ComponentRole.T5XXL]
    return StableDiffusion3Pipeline(
        transformer=materialise(transformer, state, dtype, "the SD 3.5 MMDiT"),
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(
            component_config(metadata, "scheduler", SD35_CONFIGS_DIR)
        ),
        vae=materialise(vae, vae_state, dtype, "the SD 3.5 VAE"),
        text_encoder=_clip(
            *_without_source(encoders[ComponentRole.CLIP_L]), dtype, _NAMES[ComponentRole.CLIP_L]
        ),
        tokenizer=load_clip_tokenizer(CLIP_L_TOKENIZER_REPO),
        text_encoder_2=_clip(
            *_without_source(encoders[ComponentRole.CLIP_G]), dtype, _NAMES[ComponentRole.CLIP_G]
        ),
        tokenizer_2=load_clip_tokenizer(OPEN_CLIP_BIGG_TOKENIZER_REPO),
        text_encoder_3=_t5(t5_tensors, t5_config, dtype),
        tokenizer_3=t5_tokenizer(t5_source),
    )


def _without_source(
    entry: tuple[dict[str, torch.Tensor], Any, dict[str, Any]],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    return entry[0], entry[2]
