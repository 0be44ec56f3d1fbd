"""Loading the base model offline: family detection, single-file checkpoints, diffusers folders.

Users upload single-file checkpoints in the original (LDM/SGM) key layout. diffusers'
``from_single_file`` converts them, but needs the diffusers config of every component; jobs run
with network isolation, so the full-size SD 1.5 and SDXL configs are committed under
``model_configs/`` and tokenizers come from ``clip_tokenizers``. A checkpoint may carry its own
config bundle in the safetensors metadata (``DIFFUSERS_CONFIG_METADATA_KEY``, used by the tiny
test models, whose architecture cannot be inferred from keys); it wins when present.
"""

from __future__ import annotations

import inspect
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import diffusers
import torch
from safetensors import safe_open

from functions.domain.catalog import FmType
from functions.domain.checkpoint_family import FLOW_FAMILIES
from functions.domain.families import FAMILIES, ComponentRole
from training_container.clip_tokenizers import load_clip_tokenizer
from training_container.errors import JobFailure

DIFFUSERS_CONFIG_METADATA_KEY = "lora_on_aws.diffusers_config"
MODEL_CONFIGS_DIR = Path(__file__).parent / "model_configs"
# diffusers registers pipeline components at runtime (no declared ``unet``/``vae`` attributes),
# so type checkers cannot follow them; the runtime classes are StableDiffusion(XL)Pipeline.
BasePipeline: TypeAlias = Any

_SD2_TEXT_MARKER = "cond_stage_model.model."
_UNET_MARKER = "model.diffusion_model."
_COMPONENT_FILES = {"model_index": "model_index.json", "scheduler": "scheduler/scheduler_config.json"}
FAMILY_NAMES = {f: spec.display_name for f, spec in FAMILIES.items()}


def _component_file(name: str) -> str:
    return _COMPONENT_FILES.get(name, f"{name}/config.json")


def family_config_bundle(fm_type: FmType) -> dict[str, Any]:
    """The committed full-size diffusers configs of a family, keyed by component."""
    folder = MODEL_CONFIGS_DIR / FmType(fm_type).value
    bundle = {"model_index": json.loads((folder / "model_index.json").read_text())}
    for name in bundle["model_index"]:
        path = folder / _component_file(name)
        if not name.startswith("_") and path.is_file():
            bundle[name] = json.loads(path.read_text())
    return bundle


def write_config_bundle(bundle: dict[str, Any], folder: Path) -> Path:
    """Lay a config bundle out as a diffusers model folder without weights (what ``config=`` takes)."""
    for name, config in bundle.items():
        path = folder / _component_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config))
    return folder


def read_checkpoint_header(path: Path, what: str = "base model") -> tuple[list[str], dict[str, str]]:
    """Tensor names and metadata of a safetensors file, without loading any tensor; a JobFailure
    naming ``what`` the file is (the base model, a component) when it cannot be read."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return list(handle.keys()), dict(handle.metadata() or {})
    except Exception as error:  # safetensors raises several unrelated types for corrupt files
        raise JobFailure(f"{what} {path.name} is not a readable .safetensors file ({error})") from error


_SUPPORTED = " or ".join(spec.display_name for spec in FAMILIES.values())


def _has_marker(keys: list[str], marker: str) -> bool:
    """A key under the family's marker, also below ComfyUI's ``model.diffusion_model.`` prefix that
    FLUX.1 transformer files may carry (sd-scripts library/flux_utils.py lines 59-60 strip it)."""
    return any(key.startswith((marker, _UNET_MARKER + marker)) for key in keys)


def detect_checkpoint_family(keys: list[str]) -> FmType:
    """The family from a single file's key names; anything else is refused."""
    has_unet = any(key.startswith(_UNET_MARKER) for key in keys)
    for family, spec in FAMILIES.items():
        # SD 1.5 / SDXL files must hold a UNet beside the text encoder their marker names.
        if (has_unet or family in FLOW_FAMILIES) and _has_marker(keys, spec.checkpoint_marker):
            return family
    if has_unet and any(key.startswith(_SD2_TEXT_MARKER) for key in keys):
        raise JobFailure(f"base model is a Stable Diffusion 2.x checkpoint; only {_SUPPORTED} are supported")
    raise JobFailure(
        "base model is not a Stable Diffusion checkpoint (no UNet and text-encoder weights in the "
        "original single-file layout)"
    )


def detect_folder_family(folder: Path) -> FmType:
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise JobFailure(f"base model folder {folder.name} has no model_index.json")
    class_name = json.loads(index_path.read_text()).get("_class_name", "")
    for family, spec in FAMILIES.items():
        if class_name == spec.diffusers_pipeline:
            return family
    raise JobFailure(f"base model folder holds a {class_name or 'unknown'} pipeline; expected {_SUPPORTED}")


def detect_family(model_path: Path) -> FmType:
    return (
        detect_folder_family(model_path)
        if model_path.is_dir()
        else (detect_checkpoint_family(read_checkpoint_header(model_path)[0]))
    )


def ensure_family(model_path: Path, expected: FmType) -> None:
    """Fail fast (before any download of weights into memory) when the model is another family."""
    found = detect_family(model_path)
    if found != expected:
        raise JobFailure(
            f"the job trains a {FAMILY_NAMES[expected]} LoRA but the base model {model_path.name} "
            f"is a {FAMILY_NAMES[found]} checkpoint"
        )


def _tokenizers(fm_type: FmType) -> dict[str, Any]:
    """``tokenizer``, ``tokenizer_2``…: the family's CLIP tokenizers, baked into the image."""
    repos = FAMILIES[fm_type].tokenizer_repos
    return {f"tokenizer_{i + 1}" if i else "tokenizer": load_clip_tokenizer(r) for i, r in enumerate(repos)}


def _pipeline_class(fm_type: FmType) -> Any:
    """The diffusers pipeline class the family's spec names (``FamilySpec.diffusers_pipeline``)."""
    return getattr(diffusers, FAMILIES[fm_type].diffusers_pipeline)


def _without_safety_checker(pipeline_class: Any) -> dict[str, Any]:
    """Pipelines that expect a safety checker (SD 1.x's) are built without one: a training job
    renders samples for its owner, and the checker's weights are not part of a checkpoint."""
    if "safety_checker" not in inspect.signature(pipeline_class).parameters:
        return {}
    return {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}


def load_base_pipeline(
    model_path: Path,
    fm_type: FmType,
    dtype: torch.dtype = torch.float32,
    components: Mapping[ComponentRole, Path] | None = None,
) -> BasePipeline:
    """The family's base pipeline as users upload it, fully offline: a single-file checkpoint (SD
    1.5 / SDXL; SD 3.5's SAI file, its text encoders inside or in ``components``), FLUX.1's
    transformer with its ``ae`` / ``clip_l`` / ``t5xxl`` component files, or a diffusers folder.

    The family's adapter does the loading (``FamilyAdapter.load``): it alone knows how its files
    fit together. Training and the demo's renders with and without a LoRA go through here."""
    # Imported here: the adapters build on this module (BasePipeline, load_single_file_pipeline).
    from training_container.engines.families import ADAPTERS

    return ADAPTERS[FmType(fm_type)].load(model_path, dtype, components or {}).pipe


def load_single_file_pipeline(
    model_path: Path, fm_type: FmType, dtype: torch.dtype = torch.float32
) -> BasePipeline:
    """A one-file family's pipeline from a single ``.safetensors`` checkpoint or a diffusers
    folder, offline, with ``from_single_file`` and the family's configs."""
    ensure_family(model_path, fm_type)
    pipeline_class = _pipeline_class(fm_type)
    extra = _without_safety_checker(pipeline_class)
    if model_path.is_dir():
        return pipeline_class.from_pretrained(
            str(model_path), torch_dtype=dtype, local_files_only=True, **_tokenizers(fm_type), **extra
        )
    _, metadata = read_checkpoint_header(model_path)
    embedded = metadata.get(DIFFUSERS_CONFIG_METADATA_KEY)
    bundle = json.loads(embedded) if embedded else family_config_bundle(fm_type)
    with tempfile.TemporaryDirectory(prefix="model-config-") as config_dir:
        write_config_bundle(bundle, Path(config_dir))
        return pipeline_class.from_single_file(
            str(model_path),
            config=config_dir,
            torch_dtype=dtype,
            local_files_only=True,
            **_tokenizers(fm_type),
            **extra,
        )
