"""FLUX.1 / SD 3.5 files told apart from their safetensors headers (functions.domain.flow_checkpoints),
in the layouts sd-scripts loads, at real and at tiny widths."""

from __future__ import annotations

import pytest

from functions.domain.checkpoint_family import checkpoint_problems, model_file_problems, recognise
from functions.domain.families import ComponentRole, FmType
from functions.domain.flow_checkpoints import is_flux_schnell, sd35_included_components


def _header(shapes: dict[str, list[int]]) -> dict[str, object]:
    return {name: {"dtype": "BF16", "shape": shape, "data_offsets": [0, 0]} for name, shape in shapes.items()}


def flux_transformer(width: int = 3072, prefix: str = "", guidance: bool = True) -> dict[str, list[int]]:
    shapes = {
        "img_in.weight": [width, 64],
        "double_blocks.0.img_attn.qkv.weight": [3 * width, width],
        "single_blocks.0.linear1.weight": [7 * width, width],
        "final_layer.linear.weight": [64, width],
    }
    if guidance:
        shapes["guidance_in.in_layer.weight"] = [width, 256]
    return {prefix + k: v for k, v in shapes.items()}


def flux_ae(latent: int = 16) -> dict[str, list[int]]:
    return {
        "encoder.conv_in.weight": [128, 3, 3, 3],
        "encoder.conv_out.weight": [2 * latent, 512, 3, 3],
        "decoder.conv_in.weight": [512, latent, 3, 3],
        "decoder.conv_out.weight": [3, 128, 3, 3],
    }


def clip(width: int, projection: bool) -> dict[str, list[int]]:
    shapes = {
        "text_model.embeddings.token_embedding.weight": [49408, width],
        "text_model.embeddings.position_embedding.weight": [77, width],
        "text_model.final_layer_norm.weight": [width],
    }
    if projection:
        shapes["text_projection.weight"] = [width, width]
    return shapes


def t5(width: int = 4096) -> dict[str, list[int]]:
    return {
        "shared.weight": [32128, width],
        "encoder.block.0.layer.0.SelfAttention.q.weight": [width, width],
        "encoder.block.0.layer.0.SelfAttention.k.weight": [width, width],
        "encoder.final_layer_norm.weight": [width],
    }


def sd35(latent: int = 16, text_encoders: tuple[str, ...] = ()) -> dict[str, list[int]]:
    shapes = {
        "model.diffusion_model.joint_blocks.0.context_block.adaLN_modulation.1.bias": [6 * 2432],
        "model.diffusion_model.x_embedder.proj.weight": [2432, latent, 2, 2],
        "model.diffusion_model.final_layer.linear.weight": [64, 2432],
        "first_stage_model.encoder.conv_in.weight": [128, 3, 3, 3],
        "first_stage_model.decoder.conv_in.weight": [512, latent, 3, 3],
    }
    parts = {"clip_l": clip(768, False), "clip_g": clip(1280, True), "t5xxl": t5()}
    for role in text_encoders:
        shapes.update({f"text_encoders.{role}.transformer.{k}": v for k, v in parts[role].items()})
    return shapes


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
@pytest.mark.parametrize("width", [3072, 32])
def test_a_flux_transformer_is_recognised_with_or_without_comfyui_prefix(prefix: str, width: int) -> None:
    header = _header(flux_transformer(width, prefix))
    assert recognise(header) is FmType.FLUX1
    assert checkpoint_problems(header, FmType.FLUX1) == []


def test_schnell_is_the_transformer_without_guidance_embedding() -> None:
    assert is_flux_schnell(flux_transformer(guidance=False))
    assert not is_flux_schnell(flux_transformer(prefix="model.diffusion_model."))


@pytest.mark.parametrize(
    ("role", "shapes"),
    [
        (ComponentRole.AE, flux_ae()),
        (ComponentRole.CLIP_L, clip(768, projection=False)),
        (ComponentRole.CLIP_L, clip(768, projection=True)),  # some clip_l files carry a projection
        (ComponentRole.CLIP_G, clip(1280, projection=True)),
        (ComponentRole.CLIP_L, clip(32, projection=False)),  # a tiny test model
        (ComponentRole.T5XXL, t5()),
        (ComponentRole.T5XXL, t5(32)),
    ],
)
def test_each_component_is_recognised(role: ComponentRole, shapes: dict[str, list[int]]) -> None:
    assert model_file_problems(_header(shapes), FmType.FLUX1, role) == []


@pytest.mark.parametrize(
    ("role", "shapes", "says"),
    [
        (ComponentRole.T5XXL, clip(768, False), "not a T5-XXL text encoder: it is a CLIP-L text encoder"),
        (ComponentRole.CLIP_L, clip(1280, True), "not a CLIP-L text encoder: it is a CLIP-G text encoder"),
        (ComponentRole.AE, flux_transformer(), "it is a FLUX.1 transformer (upload it without component)"),
        (ComponentRole.AE, flux_ae(latent=4), "takes 4 latent channels, not 16"),
        (ComponentRole.CLIP_L, {"foo.weight": [1]}, "its tensors are not those of"),
    ],
)
def test_a_wrong_component_is_refused_naming_what_it_is(
    role: ComponentRole, shapes: dict[str, list[int]], says: str
) -> None:
    (problem,) = model_file_problems(_header(shapes), FmType.FLUX1, role)
    assert says in problem


def test_a_component_uploaded_as_the_main_checkpoint_is_named() -> None:
    assert checkpoint_problems(_header(t5()), FmType.FLUX1) == [
        "not a FLUX.1 checkpoint: it is a T5-XXL text encoder"
    ]
    assert checkpoint_problems(_header(flux_transformer()), FmType.SD15) == [
        "not an SD 1.5 checkpoint: it is a FLUX.1 transformer"
    ]


def test_an_sd35_checkpoint_and_the_text_encoders_it_carries() -> None:
    plain = sd35()
    assert recognise(_header(plain)) is FmType.SD35
    assert sd35_included_components(plain) == frozenset()
    full = sd35(text_encoders=("clip_l", "clip_g", "t5xxl"))
    assert checkpoint_problems(_header(full), FmType.SD35) == []
    assert sd35_included_components(full) == {ComponentRole.CLIP_L, ComponentRole.CLIP_G, ComponentRole.T5XXL}


def test_an_sd35_file_with_a_4_channel_vae_is_refused() -> None:
    (problem,) = checkpoint_problems(_header(sd35(latent=4)), FmType.SD35)
    assert "latent channels, not 16" in problem
