"""What a FLUX.1 / SD 3.5 file is, read from its safetensors header alone.

These families load several files (``FamilySpec.components``): the main checkpoint plus an
autoencoder and text encoders that users upload once and share between jobs. Each upload says
what it is meant to be (``component``); the header must agree, so a wrong file is refused at
upload instead of failing inside a billed job. Layouts are those sd-scripts v0.10.1 loads:

    FLUX.1 transformer  BFL names (double_blocks.*, single_blocks.*, img_in.*), optionally under
                        ``model.diffusion_model.`` (library/flux_utils.py analyze_checkpoint_state,
                        lines 59-63); schnell has no ``guidance_in.*`` (line 63)
    SD 3.5 checkpoint   ``model.diffusion_model.`` MMDiT + ``first_stage_model.`` VAE, text encoders
                        optionally under ``text_encoders.{clip_l,clip_g,t5xxl}.transformer.``
                        (library/sd3_utils.py lines 83, 109-113, 169-173, 224-228, 251-253)
    AE                  BFL ae.safetensors: encoder.* / decoder.*, 16 latent channels
    CLIP-L / CLIP-G     transformers' CLIPTextModel state dict (text_model.*); CLIP-L may lack
                        text_projection.weight (sd3_utils.py line 151 adds an identity one)
    T5-XXL              transformers' T5EncoderModel state dict (encoder.block.*)

As in functions.domain.checkpoint_family, recognition goes by names and agreeing shapes, never by
exact sizes, so the tiny test models of these architectures are recognised too; the one use of a
real width is telling CLIP-L (768) from CLIP-G (1280) where a file has one of those widths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from functions.domain.checkpoint_layout import FLUX_TRANSFORMER_PART, SD3_MMDIT_PART, UNET, VAE
from functions.domain.families import FAMILIES, ComponentRole, FmType

Shapes = Mapping[str, Sequence[int]]

FLOW_LATENT_CHANNELS = 16  # FLUX.1 and SD 3.5 autoencoders: 16 latent channels (SD 1.5/SDXL: 4)
SD3_TEXT_ENCODER_PREFIX = "text_encoders.{role}.transformer."
# A key that proves each text encoder is inside an SD 3.5 file (sd3_utils.py lines 109, 169, 224).
_SD3_INCLUDED_MARKERS = {
    ComponentRole.CLIP_L: "text_model.embeddings.position_embedding.weight",
    ComponentRole.CLIP_G: "text_model.embeddings.position_embedding.weight",
    ComponentRole.T5XXL: "encoder.block.0.layer.0.SelfAttention.k.weight",
}
_CLIP_TOKEN_EMBEDDING = "text_model.embeddings.token_embedding.weight"
_REAL_CLIP_WIDTHS = {768: ComponentRole.CLIP_L, 1280: ComponentRole.CLIP_G}
_ANY_CLIP = "clip"  # a CLIP text encoder of a width that is neither CLIP-L's nor CLIP-G's
_CLIP_ROLES = (ComponentRole.CLIP_L, ComponentRole.CLIP_G)
_ROLE_NAMES: dict[ComponentRole | str, str] = {
    _ANY_CLIP: "a CLIP text encoder",
    ComponentRole.AE: "an autoencoder (AE)",
    ComponentRole.CLIP_L: "a CLIP-L text encoder",
    ComponentRole.CLIP_G: "a CLIP-G text encoder",
    ComponentRole.T5XXL: "a T5-XXL text encoder",
}


def a_family(family: FmType) -> str:
    """The family's name with its article, as spoken: "an SD 1.5", "an SDXL", "a FLUX.1"."""
    name = FAMILIES[family].display_name
    return f"{'an' if name.startswith('S') else 'a'} {name}"


def _strip_prefix(shapes: Shapes, prefix: str) -> dict[str, Sequence[int]]:
    return {k[len(prefix) :]: v for k, v in shapes.items() if k.startswith(prefix)}


def flux_transformer_shapes(shapes: Shapes) -> Shapes:
    """The transformer's tensors without ComfyUI's ``model.diffusion_model.`` prefix, if any."""
    prefixed = _strip_prefix(shapes, UNET)
    return prefixed if FLUX_TRANSFORMER_PART.keys[0] in prefixed else shapes


def is_flux_schnell(shapes: Shapes) -> bool:
    """sd-scripts' own test (flux_utils.py line 63): schnell has no guidance embedding."""
    return not any(k.startswith("guidance_in.") for k in flux_transformer_shapes(shapes))


def _width(shapes: Shapes, key: str, axis: int) -> int | None:
    shape = shapes.get(key)
    return shape[axis] if shape is not None and len(shape) > axis else None


def _component_role(shapes: Shapes) -> ComponentRole | str | None:
    """Which component a file's tensors are, or None (not one of them)."""
    if "encoder.conv_in.weight" in shapes and "decoder.conv_in.weight" in shapes:
        return ComponentRole.AE
    if (
        "encoder.block.0.layer.0.SelfAttention.q.weight" in shapes
        and "encoder.final_layer_norm.weight" in shapes
    ):
        return ComponentRole.T5XXL
    if _CLIP_TOKEN_EMBEDDING in shapes and "text_model.final_layer_norm.weight" in shapes:
        width = _width(shapes, _CLIP_TOKEN_EMBEDDING, 1)
        # A width no real CLIP has (a test model) cannot tell L from G: _ANY_CLIP accepts either.
        return _REAL_CLIP_WIDTHS.get(width or 0, _ANY_CLIP)
    return None


def _main_file_kind(shapes: Shapes) -> FmType | None:
    """The flow family whose main checkpoint these tensors are, or None."""
    if all(k in flux_transformer_shapes(shapes) for k in FLUX_TRANSFORMER_PART.keys):
        return FmType.FLUX1
    if all(k in shapes for k in SD3_MMDIT_PART.keys):
        return FmType.SD35
    return None


def describe(shapes: Shapes) -> str | None:
    """What a file is, in words, when it is a flow-family file of any kind."""
    family = _main_file_kind(shapes)
    if family is FmType.FLUX1:
        return "a FLUX.1 transformer (upload it without component)"
    if family is FmType.SD35:
        return "an SD 3.5 checkpoint (upload it without component)"
    role = _component_role(shapes)
    return _ROLE_NAMES[role] if role is not None else None


def _ae_problems(shapes: Shapes) -> list[str]:
    channels = _width(shapes, "decoder.conv_in.weight", 1)
    if channels != FLOW_LATENT_CHANNELS:
        return [
            f"its decoder takes {channels} latent channels, not {FLOW_LATENT_CHANNELS} "
            "(an SD 1.5/SDXL VAE, not the FLUX.1 ae.safetensors)"
        ]
    return []


def component_problems(shapes: Shapes, role: ComponentRole) -> list[str]:
    """Why a file is not the ``role`` component; empty when it is."""
    found = _component_role(shapes)
    label = _ROLE_NAMES[role].split(" ", 1)[1]
    if found is role or (found == _ANY_CLIP and role in _CLIP_ROLES):
        problems = _ae_problems(shapes) if role is ComponentRole.AE else []
        return [f"not {_ROLE_NAMES[role]}: {p}" for p in problems]
    what = describe(shapes)
    if what is not None:
        return [f"not {_ROLE_NAMES[role]}: it is {what}"]
    return [
        f"not {_ROLE_NAMES[role]}: its tensors are not those of {label} (a safetensors file of another model)"
    ]


def _flux_problems(shapes: Shapes) -> list[str]:
    model = flux_transformer_shapes(shapes)
    hidden = _width(model, "img_in.weight", 0)
    qkv = _width(model, FLUX_TRANSFORMER_PART.keys[0], 0)
    if hidden is None or qkv != 3 * hidden:
        return [f"its attention (qkv {qkv} rows) does not match its width ({hidden})"]
    return []


def _sd35_problems(shapes: Shapes) -> list[str]:
    problems = []
    latent_in = _width(shapes, f"{UNET}x_embedder.proj.weight", 1)
    vae_latent = _width(shapes, f"{VAE}decoder.conv_in.weight", 1)
    if vae_latent is None:
        problems.append(f"it has no VAE ({VAE}decoder.conv_in.weight)")
    elif latent_in != FLOW_LATENT_CHANNELS or vae_latent != FLOW_LATENT_CHANNELS:
        problems.append(
            f"its MMDiT takes {latent_in} and its VAE gives {vae_latent} latent channels, "
            f"not {FLOW_LATENT_CHANNELS}"
        )
    return problems


def main_checkpoint_problems(shapes: Shapes, family: FmType) -> list[str]:
    """Why a file is not ``family``'s main checkpoint (FLUX.1 / SD 3.5); empty when it is."""
    label = a_family(family)
    found = _main_file_kind(shapes)
    if found is not family:
        what = describe(shapes)
        if what is not None:
            return [f"not {label} checkpoint: it is {what.split(' (')[0]}"]
        part = FAMILIES[family].checkpoint_parts[0]
        return [f"not {label} checkpoint: missing {part.name} ({', '.join(part.keys)})"]
    problems = _flux_problems(shapes) if family is FmType.FLUX1 else _sd35_problems(shapes)
    return [f"not {label} checkpoint: {p}" for p in problems]


def sd35_included_components(shapes: Shapes) -> frozenset[ComponentRole]:
    """The text encoders an SD 3.5 file carries itself (the rest must come as components)."""
    return frozenset(
        role
        for role, marker in _SD3_INCLUDED_MARKERS.items()
        if SD3_TEXT_ENCODER_PREFIX.format(role=role.value) + marker in shapes
    )
