"""Loading FLUX.1 from the files users upload: transformer, AE, CLIP-L and T5-XXL, offline.

FLUX.1 is not one checkpoint but four files (``FamilySpec.components``), each uploaded once in the
layout sd-scripts loads (library/flux_utils.py: ``load_flow_model``, ``load_ae``, ``load_clip_l``,
``load_t5xxl``): the transformer in BFL's names (``flux1_layout``), the AE in the LDM VAE names
without a prefix, CLIP-L and T5-XXL as transformers' state dicts. Each model is
built from its diffusers config with empty parameters (accelerate's ``init_empty_weights``,
buffers stay real) and given the file's tensors, so a 12B
transformer is never initialised twice in host memory.

Configs: a file may carry its own (``DIFFUSERS_CONFIG_METADATA_KEY``: the tiny test models, whose
sizes cannot be guessed); otherwise the committed full-size ones under ``model_configs/flux1``.
The T5 tokenizer is baked into the image (``bake_assets``) or, for tiny test models, carried by the
T5 file itself (``T5_VOCAB_METADATA_KEY``), so a job never goes online.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from safetensors import safe_open
from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel, T5Tokenizer

from functions.domain.families import ComponentRole
from training_container.clip_tokenizers import (
    CLIP_L_TOKENIZER_REPO,
    T5_TOKENIZER_REPO,
    baked_tokenizer_folder,
    load_clip_tokenizer,
)
from training_container.engines.families.flux1_layout import flux_architecture, flux_from_bfl
from training_container.errors import JobFailure

DIFFUSERS_CONFIG_METADATA_KEY = "lora_on_aws.diffusers_config"  # the same key as model_loading's
T5_VOCAB_METADATA_KEY = "lora_on_aws.t5_vocab"  # [[piece, score], ...] of a test model's tokenizer
T5_MAX_TOKENS = 512  # FLUX.1 dev's t5xxl_max_token_length (flux_train_network.py lines 171-177)
FLUX_CONFIGS_DIR = Path(__file__).parent / "model_configs" / "flux1"


def read_file(path: Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the metadata of a component file; JobFailure naming the component."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (no dict)
            return tensors, dict(handle.metadata() or {})
    except Exception as error:  # safetensors raises several unrelated types for corrupt files
        raise JobFailure(f"{what} {path.name} is not a readable .safetensors file ({error})") from error


def read_metadata(path: Path, what: str) -> dict[str, str]:
    """A file's metadata alone (no tensor is read)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as error:
        raise JobFailure(f"{what} {path.name} is not a readable .safetensors file ({error})") from error


def embedded_config(metadata: Mapping[str, str], name: str) -> dict[str, Any] | None:
    """The config a file carries for ``name`` (tiny test models), or None."""
    embedded = metadata.get(DIFFUSERS_CONFIG_METADATA_KEY)
    bundle = json.loads(embedded) if embedded else {}
    return dict(bundle[name]) if name in bundle else None


def component_config(
    metadata: Mapping[str, str], name: str, committed: Path = FLUX_CONFIGS_DIR
) -> dict[str, Any]:
    """A component's diffusers config: the file's own, else the committed full-size one."""
    own = embedded_config(metadata, name)
    return own if own is not None else dict(json.loads((committed / f"{name}.json").read_text()))


def materialise(
    model: torch.nn.Module, state: Mapping[str, torch.Tensor], dtype: torch.dtype, what: str
) -> Any:
    """Give a meta-device model the file's tensors; refuse a file missing any of them."""
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    if missing:
        raise JobFailure(
            f"{what} lacks {len(missing)} tensor(s) the model needs, e.g. {', '.join(missing[:3])}"
        )
    wrong = sorted(k for k, shape in expected.items() if tuple(state[k].shape) != shape)
    if wrong:
        shown = ", ".join(f"{k} {tuple(state[k].shape)} (expected {expected[k]})" for k in wrong[:2])
        raise JobFailure(
            f"{what} does not match its model's configuration in {len(wrong)} tensor(s), e.g. {shown}"
        )
    model.load_state_dict({k: state[k].to(dtype) for k in expected}, assign=True)
    return model.eval()


def load_flux_transformer(path: Path, dtype: torch.dtype) -> FluxTransformer2DModel:
    tensors, metadata = read_file(path, "the FLUX.1 transformer")
    config = component_config(metadata, "transformer")
    layers, single_layers, guidance = flux_architecture(list(tensors))
    config.update(num_layers=layers, num_single_layers=single_layers, guidance_embeds=guidance)
    with init_empty_weights():
        model = FluxTransformer2DModel.from_config(config)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    try:
        state = flux_from_bfl(tensors, shapes)
    except KeyError as error:
        raise JobFailure(f"the FLUX.1 transformer {path.name} lacks the tensor {error}") from error
    return materialise(model, state, dtype, "the FLUX.1 transformer")


def load_ae(path: Path, dtype: torch.dtype) -> AutoencoderKL:
    tensors, metadata = read_file(path, "the AE")
    config = component_config(metadata, "vae")
    with init_empty_weights():
        model = AutoencoderKL.from_config(config)
    return materialise(model, convert_ldm_vae_checkpoint(tensors, config), dtype, "the AE")


def load_clip_l(path: Path, dtype: torch.dtype) -> CLIPTextModel:
    tensors, metadata = read_file(path, "the CLIP-L text encoder")
    with init_empty_weights():
        model = CLIPTextModel(CLIPTextConfig(**component_config(metadata, "text_encoder")))
    # sd-scripts loads it with strict=False too (flux_utils.py line 352): files differ in extras
    # such as text_projection.weight and position_ids. Files name the layers under ``text_model.``
    # (transformers 4); transformers 5's CLIPTextModel may name them without it.
    if not any(k.startswith("text_model.") for k in model.state_dict()):
        tensors = {k.removeprefix("text_model."): v for k, v in tensors.items()}
    return materialise(model, tensors, dtype, "the CLIP-L text encoder")


def load_t5xxl(path: Path, dtype: torch.dtype) -> tuple[T5EncoderModel, Any]:
    """T5-XXL and its tokenizer (the file's own vocabulary for test models, else the baked one)."""
    tensors, metadata = read_file(path, "the T5-XXL text encoder")
    with init_empty_weights():
        model = T5EncoderModel(T5Config(**component_config(metadata, "text_encoder_2")))
    if "encoder.embed_tokens.weight" not in tensors and "shared.weight" in tensors:
        tensors["encoder.embed_tokens.weight"] = tensors["shared.weight"]  # tied in T5
    encoder = materialise(model, tensors, dtype, "the T5-XXL text encoder")
    return encoder, t5_tokenizer(metadata)


def t5_tokenizer(metadata: Mapping[str, str]) -> Any:
    vocab = metadata.get(T5_VOCAB_METADATA_KEY)
    if vocab:
        pieces = [(str(piece), float(score)) for piece, score in json.loads(vocab)]
        return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=T5_MAX_TOKENS)
    folder = baked_tokenizer_folder(T5_TOKENIZER_REPO)
    if folder is None:
        raise JobFailure(
            f"the T5 tokenizer ({T5_TOKENIZER_REPO}) is not baked into this image; rebuild it with "
            "training_container/bake_assets.py"
        )
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def _component(components: Mapping[ComponentRole, Path], role: ComponentRole) -> Path:
    path = components.get(role)
    if path is None or not path.is_file():
        raise JobFailure(f"the job has no {role.value} component file (FLUX.1 needs ae, clip_l and t5xxl)")
    return path


def load_flux_pipeline(
    model_path: Path, components: Mapping[ComponentRole, Path], dtype: torch.dtype
) -> FluxPipeline:
    """FluxPipeline from the uploaded transformer and its three component files."""
    t5, t5_tokenizer = load_t5xxl(_component(components, ComponentRole.T5XXL), dtype)
    scheduler = component_config(read_metadata(model_path, "the FLUX.1 transformer"), "scheduler")
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_config(scheduler),
        vae=load_ae(_component(components, ComponentRole.AE), dtype),
        text_encoder=load_clip_l(_component(components, ComponentRole.CLIP_L), dtype),
        tokenizer=load_clip_tokenizer(CLIP_L_TOKENIZER_REPO),
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer,
        transformer=load_flux_transformer(model_path, dtype),
    )
