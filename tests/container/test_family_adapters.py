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
from training_container.testing.tiny_flow_models import FLUX_T5_WIDTH, SD35_T5_WIDTH
from training_container.testing.tiny_models import TEXT_2_HIDDEN_SIZE, TEXT_HIDDEN_SIZE, build_tiny_pipeline

CPU = torch.device("cpu")
TRAINING_CONTAINER = Path(__file__).resolve().parents[2] / "training_container"
# One LoRA module name per network that sd-scripts v0.10.1 writes for the same architecture
# (networks/lora.py: lora_unet_/lora_te_ prefixes; SDXL UNet names in the SGM layout; FLUX.1 in
# BFL's module names, networks/lora_flux.py lines 707-714 and 826-827; SD 3.5 in MMDiT's,
# networks/lora_sd3.py lines 230-236 and 333-334: fused qkv / linear1, case kept).
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
    FmType.FLUX1: {
        "lora_unet_double_blocks_0_img_attn_qkv",
        "lora_unet_double_blocks_0_txt_attn_proj",
        "lora_unet_double_blocks_0_img_mod_lin",
        "lora_unet_double_blocks_0_txt_mlp_2",
        "lora_unet_single_blocks_0_linear1",
        "lora_unet_single_blocks_0_linear2",
        "lora_unet_single_blocks_0_modulation_lin",
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
    },
    FmType.SD35: {
        "lora_unet_joint_blocks_0_x_block_attn_qkv",
        "lora_unet_joint_blocks_0_x_block_attn2_qkv",  # MMDiT-X (3.5 Medium) dual attention
        "lora_unet_joint_blocks_0_x_block_adaLN_modulation_1",
        "lora_unet_joint_blocks_0_context_block_attn_proj",
        "lora_unet_joint_blocks_0_context_block_mlp_fc1",
        "lora_unet_joint_blocks_1_context_block_adaLN_modulation_1",  # the pre-only block keeps it
        "lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
        "lora_te2_text_model_encoder_layers_1_mlp_fc1",
    },
}
# Names that a sd-scripts module of the family never has: FLUX's split diffusers projections and
# layers outside the blocks lora_flux wraps (final layer, embedders: lines 494-501, off by
# default); SD 3.5's pre-only last context block has no attention output and no MLP
# (library/sd3_models.py lines 475 and 604-610: ``if not pre_only``).
FORBIDDEN_KOHYA_NAMES = {
    FmType.FLUX1: {
        "lora_unet_double_blocks_0_img_attn_q",
        "lora_unet_proj_out",
        "lora_unet_final_layer_linear",
    },
    FmType.SD35: {
        "lora_unet_joint_blocks_1_context_block_attn_proj",
        "lora_unet_joint_blocks_1_context_block_mlp_fc1",
        "lora_unet_final_layer_linear",
    },
}
# The UNet + DDPM families (stable_diffusion.py). FLUX.1 and SD 3.5 (flow matching) have their
# noise and target tested in test_flow_matching_families.py.
UNET_FAMILIES = [FmType.SD15, FmType.SDXL]
# T5 tokens: 512 for FLUX.1 dev (flux_train_network.py lines 171-177), 256 for SD 3.5
# (docs/sd3_train_network.md line 151); SD 3.5 puts CLIP-L + CLIP-G's 77 tokens before T5's.
PROMPT_SHAPES = {
    FmType.SD15: {"encoder_hidden_states": (2, 77, TEXT_HIDDEN_SIZE)},
    FmType.SDXL: {
        "encoder_hidden_states": (2, 77, TEXT_HIDDEN_SIZE + TEXT_2_HIDDEN_SIZE),
        "text_embeds": (2, TEXT_2_HIDDEN_SIZE),
    },
    FmType.FLUX1: {
        "encoder_hidden_states": (2, 512, FLUX_T5_WIDTH),
        "pooled_projections": (2, TEXT_HIDDEN_SIZE),
    },
    FmType.SD35: {
        "encoder_hidden_states": (2, 77 + 256, SD35_T5_WIDTH),
        "pooled_projections": (2, TEXT_HIDDEN_SIZE + TEXT_2_HIDDEN_SIZE),
    },
}
# sd-scripts keeps the module's case in LoRA names (lora_sd3.py line 334 only replaces "."), so
# SD 3.5's ``adaLN_modulation`` stays mixed case.
KOHYA_NAME = re.compile(r"[A-Za-z0-9_]+")


def _adapter(fm_type: FmType) -> FamilyAdapter:
    return ADAPTERS[fm_type](build_tiny_pipeline(fm_type))


def test_every_family_has_an_adapter_chosen_by_its_spec() -> None:
    assert set(ADAPTERS) == set(FmType)
    for fm_type, spec in FAMILIES.items():
        assert adapter_for(spec).fm_type == fm_type


@pytest.mark.parametrize("fm_type", list(FmType))
def test_lora_targets_exist_and_get_sd_scripts_key_names(fm_type: FmType) -> None:
    adapter = _adapter(fm_type)
    for model, targets in [
        (adapter.denoiser, adapter.denoiser_lora_target_modules()),
        *[(encoder, adapter.text_encoder_lora_targets) for encoder in adapter.text_encoders],
    ]:
        module_names = [name for name, _ in model.named_modules()]
        for target in targets:
            assert any(name == target or name.endswith("." + target) for name in module_names), target
        inject_adapter_in_model(LoraConfig(r=2, lora_alpha=1, target_modules=list(targets)), model)
    adapter.share_denoiser_lora_parts()  # as the trainer does

    names_by_network = [
        [name_of(path) for path in lora_modules(model)] for model, name_of in adapter.lora_namers()
    ]
    prefixes = ["lora_unet", *FAMILIES[fm_type].lora_text_encoder_prefixes]
    assert len(names_by_network) == len(prefixes)
    for prefix, names in zip(prefixes, names_by_network, strict=True):
        assert names and all(name.startswith(prefix + "_") for name in names), prefix
        assert all(KOHYA_NAME.fullmatch(name) for name in names), names
        if fm_type in UNET_FAMILIES:  # FLUX.1 / SD 3.5 fuse several layers into one module
            assert len(set(names)) == len(names)  # no two modules share a Kohya name
    all_names = {name for names in names_by_network for name in names}
    assert KNOWN_KOHYA_NAMES[fm_type] <= all_names
    assert not FORBIDDEN_KOHYA_NAMES.get(fm_type, set()) & all_names
    exported = {key.split(".")[0] for key in adapter.kohya_lora_tensors(torch.float32)}
    assert exported == all_names  # every module exported once, fused layers under their one name
    parts = {adapter.denoiser_state_key, *(f"te{i}" for i in range(len(prefixes) - 1))}
    assert set(adapter.model_parts()) == parts


@pytest.mark.parametrize("fm_type", list(FmType))
def test_prompt_embeddings_and_conditioning_have_the_denoiser_shapes(fm_type: FmType) -> None:
    adapter = _adapter(fm_type)
    with torch.no_grad():
        prompts = adapter.encode_prompts(["demo, a square", "demo"], 1, CPU)
        assert {name: tuple(t.shape) for name, t in prompts.items()} == PROMPT_SHAPES[fm_type]

        conditioning = adapter.conditioning(prompts, (320, 256))  # bucket: width, height
        channels = adapter.vae.config.latent_channels  # 4, or 16 for FLUX.1 / SD 3.5
        latents = torch.randn(2, channels, 256 // 8, 320 // 8)
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
FAMILY_ONLY_ATTRIBUTES = {
    "unet",
    "transformer",
    "text_encoder_2",
    "tokenizer_2",
    "text_encoder_3",
    "tokenizer_3",
}
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
            if re.search(r"sd_?(15|xl|3)|StableDiffusion|flux", name, flags=re.IGNORECASE):
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
