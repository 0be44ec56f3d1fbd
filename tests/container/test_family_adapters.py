"""The family adapters of the diffusers engine, each on its tiny model: one per family, the LoRA
targets and Kohya key names sd-scripts uses, conditioning shapes, noise and target, refusals."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch
from diffusers import EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler
from peft import LoraConfig, inject_adapter_in_model

from functions.domain.families import FAMILIES, FmType
from training_container.engines.families import ADAPTERS, adapter_for
from training_container.engines.families.base import FamilyAdapter
from training_container.engines.kohya_lora_format import lora_modules
from training_container.errors import JobFailure
from training_container.testing.tiny_models import TEXT_2_HIDDEN_SIZE, TEXT_HIDDEN_SIZE, build_tiny_pipeline

CPU = torch.device("cpu")
TRAINING_CONTAINER = Path(__file__).resolve().parents[2] / "training_container"
# One LoRA module name per network that sd-scripts v0.10.1 writes for the same architecture
# (networks/lora.py: lora_unet_/lora_te_ prefixes; SDXL UNet names in the SGM layout).
KNOWN_KOHYA_NAMES = {
    FmType.SD15: {
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
        "lora_unet_up_blocks_1_attentions_0_proj_out",
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
        "lora_te_text_model_encoder_layers_1_mlp_fc2",
    },
    FmType.SDXL: {
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q",
        "lora_unet_input_blocks_4_1_transformer_blocks_1_ff_net_0_proj",
        "lora_unet_output_blocks_0_1_proj_in",
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
        "lora_te2_text_model_encoder_layers_1_mlp_fc1",
    },
}
# The UNet + DDPM families (stable_diffusion.py). FLUX.1 and SD 3.5 (flow matching) have their
# key names, conditioning, noise and target tested in test_flow_matching_families.py.
UNET_FAMILIES = [FmType.SD15, FmType.SDXL]
PROMPT_SHAPES = {
    FmType.SD15: {"encoder_hidden_states": (2, 77, TEXT_HIDDEN_SIZE)},
    FmType.SDXL: {
        "encoder_hidden_states": (2, 77, TEXT_HIDDEN_SIZE + TEXT_2_HIDDEN_SIZE),
        "text_embeds": (2, TEXT_2_HIDDEN_SIZE),
    },
}


def _adapter(fm_type: FmType) -> FamilyAdapter:
    return ADAPTERS[fm_type](build_tiny_pipeline(fm_type))


def test_every_family_has_an_adapter_chosen_by_its_spec() -> None:
    assert set(ADAPTERS) == set(FmType)
    for fm_type, spec in FAMILIES.items():
        assert adapter_for(spec).fm_type == fm_type


@pytest.mark.parametrize("fm_type", UNET_FAMILIES)
def test_lora_targets_exist_and_get_sd_scripts_key_names(fm_type: FmType) -> None:
    adapter = _adapter(fm_type)
    for model, targets in [
        (adapter.denoiser, adapter.denoiser_lora_targets),
        *[(encoder, adapter.text_encoder_lora_targets) for encoder in adapter.text_encoders],
    ]:
        module_names = [name for name, _ in model.named_modules()]
        for target in targets:
            assert any(name.endswith("." + target) for name in module_names), target
        inject_adapter_in_model(LoraConfig(r=2, lora_alpha=1, target_modules=list(targets)), model)

    names_by_network = [
        [name_of(path) for path in lora_modules(model)] for model, name_of in adapter.lora_namers()
    ]
    prefixes = ["lora_unet", *FAMILIES[fm_type].lora_text_encoder_prefixes]
    assert len(names_by_network) == len(prefixes)
    for prefix, names in zip(prefixes, names_by_network, strict=True):
        assert names and all(name.startswith(prefix + "_") for name in names), prefix
        assert all(re.fullmatch(r"[a-z0-9_]+", name) for name in names)
        assert len(set(names)) == len(names)  # no two modules share a Kohya name
    all_names = {name for names in names_by_network for name in names}
    assert KNOWN_KOHYA_NAMES[fm_type] <= all_names
    assert set(adapter.model_parts()) == {"unet", *(f"te{i}" for i in range(len(prefixes) - 1))}


@pytest.mark.parametrize("fm_type", UNET_FAMILIES)
def test_prompt_embeddings_and_conditioning_have_the_denoiser_shapes(fm_type: FmType) -> None:
    adapter = _adapter(fm_type)
    with torch.no_grad():
        prompts = adapter.encode_prompts(["demo, a square", "demo"], 1, CPU)
        assert {name: tuple(t.shape) for name, t in prompts.items()} == PROMPT_SHAPES[fm_type]

        conditioning = adapter.conditioning(prompts, (320, 256))  # bucket: width, height
        latents = torch.randn(2, 4, 256 // 8, 320 // 8)
        batch = adapter.noisy_input(latents, noise_offset=0.05)
        prediction = adapter.predict(batch, conditioning)

    assert prediction.shape == latents.shape == batch.target.shape == batch.noisy.shape
    assert prediction.dtype == torch.float32 and batch.timesteps.shape == (2,)
    assert torch.equal(conditioning["encoder_hidden_states"], prompts["encoder_hidden_states"])
    extra: dict[str, torch.Tensor] | None = conditioning.get("added_cond_kwargs")
    if extra is not None or fm_type == FmType.SDXL:
        assert extra is not None  # original size, crop origin, target size, height first
        assert extra["time_ids"].tolist() == [[256.0, 320.0, 0.0, 0.0, 256.0, 320.0]] * 2
        assert torch.equal(extra["text_embeds"], prompts["text_embeds"])
    else:
        assert extra is None


def test_sd15_clip_skip_takes_an_earlier_layer() -> None:
    adapter = _adapter(FmType.SD15)
    with torch.no_grad():
        last = adapter.encode_prompts(["demo"], 1, CPU)["encoder_hidden_states"]
        skipped = adapter.encode_prompts(["demo"], 2, CPU)["encoder_hidden_states"]
    assert last.shape == skipped.shape and not torch.allclose(last, skipped)


@pytest.mark.parametrize("fm_type", UNET_FAMILIES)
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_the_target_follows_the_scheduler_prediction_type(fm_type: FmType, prediction_type: str) -> None:
    pipe = build_tiny_pipeline(fm_type)
    pipe.scheduler = EulerDiscreteScheduler.from_config(
        pipe.scheduler.config, prediction_type=prediction_type
    )
    adapter = ADAPTERS[fm_type](pipe)
    latents = torch.randn(2, 4, 8, 8)

    torch.manual_seed(3)
    batch = adapter.noisy_input(latents, noise_offset=0.0)
    torch.manual_seed(3)
    noise = torch.randn_like(latents)

    scheduler = adapter.noise_scheduler  # type: ignore[attr-defined]
    expected = (
        noise if prediction_type == "epsilon" else scheduler.get_velocity(latents, noise, batch.timesteps)
    )
    assert torch.equal(batch.target, expected)
    assert torch.equal(batch.noisy, scheduler.add_noise(latents, noise, batch.timesteps))
    weights = adapter.loss_weights(batch, 5.0)
    assert adapter.loss_weights(batch, None) is None
    assert weights is not None and weights.shape == (2,) and bool((weights > 0).all())


@pytest.mark.parametrize("fm_type", UNET_FAMILIES)
def test_a_flow_matching_or_sample_predicting_scheduler_is_refused_not_trained_as_epsilon(
    fm_type: FmType,
) -> None:
    pipe = build_tiny_pipeline(fm_type)
    original = pipe.scheduler.config
    pipe.scheduler = FlowMatchEulerDiscreteScheduler()
    with pytest.raises(JobFailure, match="declares no prediction type"):
        ADAPTERS[fm_type](pipe)
    pipe.scheduler = EulerDiscreteScheduler.from_config(original, prediction_type="sample")
    with pytest.raises(JobFailure, match="'sample'"):
        ADAPTERS[fm_type](pipe)


# The seam is the only place that knows the families: nothing else in the container names a
# family, a family's pipeline class, or a component only some families have (the tiny test models
# under testing/ are one architecture per family by design).
FAMILY_ONLY_ATTRIBUTES = {"unet", "transformer", "text_encoder_2", "tokenizer_2"}
FAMILY_VALUES = {fm_type.value for fm_type in FmType}


def family_branches(source: str) -> list[str]:
    """Every place in ``source`` that names a family or a family-only component."""
    found = []
    for node in ast.walk(ast.parse(source)):
        named = ""
        if isinstance(node, ast.Attribute) and node.attr in FAMILY_ONLY_ATTRIBUTES:
            named = "." + node.attr
        elif (
            isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "FmType"
        ):
            named = "FmType." + node.attr
        elif isinstance(node, ast.Constant) and node.value in FAMILY_VALUES:
            named = repr(node.value)
        elif isinstance(node, ast.Name | ast.FunctionDef | ast.ClassDef | ast.alias):
            name = str(getattr(node, "id", None) or getattr(node, "name", ""))
            if re.search(r"sd_?(15|xl)|StableDiffusion", name, flags=re.IGNORECASE):
                named = name
        if named:
            found.append(f"line {getattr(node, 'lineno', '?')}: {named}")
    return found


def test_the_branch_finder_finds_the_branches_it_forbids() -> None:
    source = (
        "from diffusers import StableDiffusionXLPipeline\n"
        "def is_sdxl_pipeline(pipe): return isinstance(pipe, StableDiffusionXLPipeline)\n"
        "x = pipe.unet if fm_type == FmType.SD15 else pipe.transformer\n"
        "y = 'sdxl'\n"
    )
    assert len(family_branches(source)) == 7


@pytest.mark.parametrize(
    "path",
    sorted(
        path
        for path in TRAINING_CONTAINER.rglob("*.py")
        if "families" not in path.parts and "testing" not in path.parts
    ),
    ids=lambda path: str(path.relative_to(TRAINING_CONTAINER)),
)
def test_no_per_family_branching_outside_the_family_adapters(path: Path) -> None:
    assert family_branches(path.read_text()) == []
