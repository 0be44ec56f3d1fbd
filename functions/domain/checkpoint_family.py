"""Which model family a single-file checkpoint is, read from its safetensors header alone.

A header lists every tensor's name and shape, so the family can be told before any paid job
loads the file: the original (LDM / "single file") layout that Kohya's sd-scripts and the
training container load names each component by prefix, and the components' widths must agree.

    SD 1.5   model.diffusion_model.*  (UNet)    first_stage_model.*  (VAE)
             cond_stage_model.transformer.[text_model.]*  (CLIP ViT-L text encoder)
    SDXL     the same UNet and VAE prefixes, plus model.diffusion_model.label_emb.* (size and
             crop conditioning) and two text encoders: conditioner.embedders.0.transformer.*
             (CLIP ViT-L) and conditioner.embedders.1.model.* (OpenCLIP ViT-bigG)

Sources: sd-scripts ``library/model_util.py`` (``convert_ldm_unet_checkpoint``,
``convert_ldm_clip_checkpoint_v1``) and ``library/sdxl_model_util.py``
(``load_models_from_sdxl_checkpoint``: ``conditioner.embedders.0.transformer.``,
``conditioner.embedders.1.model.``), and the container's
``training_container/ldm_layout.py``. The parts each family needs are in its ``FamilySpec``
(functions.domain.checkpoint_layout names them).

Recognition is by key structure plus shapes that must agree (latent channels, cross-attention
width = text-embedding width), never by exact sizes: the project's tiny test models are these
architectures with small widths and must be recognised as their family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from functions.domain.catalog import FmType
from functions.domain.checkpoint_layout import SD2_TEXT, SD15_TEXT, UNET, CheckpointPart
from functions.domain.families import FAMILIES, ComponentRole
from functions.domain.flow_checkpoints import a_family, component_problems, describe, main_checkpoint_problems

# Families whose main file is not an LDM-layout UNet checkpoint (functions.domain.flow_checkpoints).
FLOW_FAMILIES = frozenset({FmType.FLUX1, FmType.SD35})

LATENT_CHANNELS = 4  # SD 1.5 and SDXL VAEs: 4 latent channels (an inpainting UNet takes 9)

FAMILY_NAMES = {f: spec.display_name for f, spec in FAMILIES.items()}

Shapes = Mapping[str, Sequence[int]]


def tensor_shapes(header: Mapping[str, object]) -> dict[str, list[int]]:
    """Tensor name -> shape from a parsed safetensors header (metadata and malformed entries skipped)."""
    shapes: dict[str, list[int]] = {}
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        shape = info.get("shape")
        if isinstance(shape, list) and all(isinstance(n, int) for n in shape):
            shapes[name] = shape
    return shapes


def _with_legacy_text_keys(shapes: Shapes) -> Shapes:
    """Older SD 1.5 files store the CLIP text model without the ``text_model.`` level
    (transformers < 4.x layout); sd-scripts accepts both, so read them as the new layout."""
    legacy = f"{SD15_TEXT}embeddings.token_embedding.weight"
    if legacy not in shapes:
        return shapes
    renamed = dict(shapes)
    for name, shape in shapes.items():
        if name.startswith(SD15_TEXT) and not name.startswith(f"{SD15_TEXT}text_model."):
            renamed[f"{SD15_TEXT}text_model.{name[len(SD15_TEXT) :]}"] = shape
    return renamed


def _missing(shapes: Shapes, components: Sequence[CheckpointPart]) -> list[str]:
    """Each absent component, named with the tensors that are missing."""
    out = []
    for component in components:
        absent = [key for key in component.keys if key not in shapes]
        if absent:
            out.append(f"{component.name} ({', '.join(absent)})")
    return out


def _width(shapes: Shapes, key: str, axis: int) -> int | None:
    shape = shapes.get(key)
    return shape[axis] if shape is not None and len(shape) > axis else None


def _text_width(shapes: Shapes, family: FmType) -> int | None:
    """The width of the text embeddings the UNet's cross-attention receives."""
    widths = [_width(shapes, part.keys[0], 1) for part in FAMILIES[family].checkpoint_text_parts]
    return None if None in widths else sum(w for w in widths if w is not None)


def _shape_problems(shapes: Shapes, family: FmType) -> list[str]:
    """Disagreements between components that the family's architecture rules out."""
    problems = []
    in_channels = _width(shapes, f"{UNET}input_blocks.0.0.weight", 1)
    out_channels = _width(shapes, f"{UNET}out.2.weight", 0)
    if in_channels != LATENT_CHANNELS or out_channels != LATENT_CHANNELS:
        problems.append(
            f"its UNet takes {in_channels} and gives {out_channels} latent channels, not {LATENT_CHANNELS} "
            "(an inpainting or other variant)"
        )
    text_width = _text_width(shapes, family)
    context = {
        shape[1]
        for name, shape in shapes.items()
        if name.startswith(UNET) and name.endswith("attn2.to_k.weight") and len(shape) == 2
    }
    if not context:
        problems.append(f"its UNet has no cross-attention layers ({UNET}...attn2.to_k.weight)")
    elif context != {text_width}:
        widths = ", ".join(str(w) for w in sorted(context))
        problems.append(
            f"its UNet's cross-attention expects {widths}-wide text embeddings but its text encoder "
            f"gives {text_width}"
        )
    return problems


def _family_of(shapes: Shapes) -> FmType | None:
    for family, spec in FAMILIES.items():  # at most one matches: foreign prefixes keep them apart
        if family in FLOW_FAMILIES:
            if not main_checkpoint_problems(shapes, family):
                return family
            continue
        if _missing(shapes, spec.checkpoint_parts) or _shape_problems(shapes, family):
            continue
        foreign = spec.checkpoint_foreign_prefixes
        if foreign and any(k.startswith(foreign) for k in shapes):
            continue  # one family's parts plus another's: neither
        return family
    return None


def recognise(header: Mapping[str, object]) -> FmType | None:
    """The supported family whose structure the checkpoint has, or None (other or unknown)."""
    return _family_of(_with_legacy_text_keys(tensor_shapes(header)))


def _what_it_is(shapes: Shapes, expected: FmType) -> str | None:
    """A plain description of a checkpoint that is clearly something else than ``expected``."""
    family = _family_of(shapes)
    if family in FLOW_FAMILIES:
        return f"it is {(describe(shapes) or '').split(' (')[0]}"
    if family is not None and family is not expected:
        return f"it is {a_family(family)} checkpoint"
    if any(name.startswith(SD2_TEXT) for name in shapes):
        return "it has an OpenCLIP text encoder under cond_stage_model.model. (an SD 2.x checkpoint)"
    if shapes and all("lora_" in name for name in shapes):
        return "it is a LoRA, not a checkpoint"
    flow_file = describe(shapes)
    return f"it is {flow_file.split(' (')[0]}" if flow_file is not None else None


def checkpoint_problems(header: Mapping[str, object], expected: FmType) -> list[str]:
    """Why a checkpoint is not a usable ``expected``-family checkpoint; empty when it is.

    The one problem reads "not an SD 1.5 checkpoint: ..." followed by what it is instead, what is
    missing (component and tensor names), or which shapes disagree.
    """
    shapes = _with_legacy_text_keys(tensor_shapes(header))
    if expected in FLOW_FAMILIES:
        return main_checkpoint_problems(shapes, expected)
    if _family_of(shapes) is expected:
        return []
    label = FAMILY_NAMES[expected]
    instead = _what_it_is(shapes, expected)
    if instead is not None:
        return [f"not an {label} checkpoint: {instead}"]
    missing = _missing(shapes, FAMILIES[expected].checkpoint_parts)
    if missing:
        return [f"not an {label} checkpoint: missing {'; '.join(missing)}"]
    problems = _shape_problems(shapes, expected)
    if not problems:  # all of the family's parts, plus another family's (see _family_of)
        problems = ["it also has SDXL parts (conditioner.embedders.*, label_emb)"]
    return [f"not an {label} checkpoint: {'; '.join(problems)}"]


def model_file_problems(
    header: Mapping[str, object], family: FmType, component: ComponentRole | None
) -> list[str]:
    """Why an uploaded checkpoint file is not what its record says: ``family``'s main checkpoint,
    or (with ``component``) that component of it (functions.domain.flow_checkpoints)."""
    if component is None:
        return checkpoint_problems(header, family)
    return component_problems(_with_legacy_text_keys(tensor_shapes(header)), component)
