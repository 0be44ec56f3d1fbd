"""The Kohya catalogue for FLUX.1 and SD 3.5 (flux_train_network.py, sd3_train_network.py, v0.10.1).

Which family takes which option, the refusals with their sd-scripts reason, the checks that mirror
the scripts' own (assert_extra_args, enable_block_swap, train_network.py's fp8 and offload rules),
values sd-scripts would never read, and blocks_to_swap chosen for the instance type's GPU.
"""

from __future__ import annotations

from typing import Any

import pytest

from functions.domain.catalog import INSTANCE_TYPES, FmType
from functions.domain.epoch_outputs import SamplePrompt, sd_scripts_prompt_line
from functions.domain.families import FAMILIES, BlockSwap
from functions.domain.kohya_params import (
    DEFAULTS,
    DIT_FAMILIES,
    USER_PARAMETERS,
    engine_warnings,
    validate_config,
)

FLUX, SD35 = FmType.FLUX1, FmType.SD35
FLOW = (FLUX, SD35)


def problems_of(config: dict[str, Any], fm_type: FmType, **kw: Any) -> dict[str, str]:
    _, problems = validate_config(config, fm_type, **kw)
    return {p.field: p.problem for p in problems}


def normalised(config: dict[str, Any], fm_type: FmType, **kw: Any) -> dict[str, Any]:
    result, problems = validate_config(config, fm_type, **kw)
    assert not problems, problems
    return result


# --- which family takes which option


@pytest.mark.parametrize(
    ("name", "families"),
    [
        # library/flux_train_utils.py add_flux_train_arguments
        ("guidance_scale", {FLUX}),
        ("timestep_sampling", {FLUX}),
        ("sigmoid_scale", {FLUX}),
        ("model_prediction_type", {FLUX}),
        ("discrete_flow_shift", {FLUX}),
        # both add_flux_train_arguments and sd3_train_utils.add_sd3_training_arguments
        ("t5xxl_max_token_length", {FLUX, SD35}),
        ("apply_t5_attn_mask", {FLUX, SD35}),
        # sd3_train_utils.add_sd3_training_arguments only
        ("training_shift", {SD35}),
        ("apply_lg_attn_mask", {SD35}),
        # train_util.add_dit_training_arguments
        ("weighting_scheme", {FLUX, SD35}),
        ("logit_mean", {FLUX, SD35}),
        ("logit_std", {FLUX, SD35}),
        ("mode_scale", {FLUX, SD35}),
        ("blocks_to_swap", {FLUX, SD35}),
        ("cache_text_encoder_outputs", {FmType.SDXL, FLUX, SD35}),
        ("fp8_base", {FLUX, SD35}),
        ("fp8_base_unet", {FLUX, SD35}),
        # only FLUX.1's model offloads checkpoints (Flux.enable_gradient_checkpointing(cpu_offload))
        ("cpu_offload_checkpointing", {FLUX}),
        # what the DiT scripts ignore stays with the SD families
        ("clip_skip", {FmType.SD15}),
        ("max_token_length", {FmType.SD15, FmType.SDXL}),
        ("noise_offset", {FmType.SD15, FmType.SDXL}),
        ("min_snr_gamma", {FmType.SD15, FmType.SDXL}),
        ("multires_noise_iterations", {FmType.SD15, FmType.SDXL}),
    ],
)
def test_each_option_belongs_to_the_families_whose_script_uses_it(name: str, families: set[FmType]) -> None:
    assert USER_PARAMETERS[name].families == families


def test_the_guides_choices_are_the_argparse_choices() -> None:
    # flux_train_utils.py lines 655-676, train_util.py lines 4277-4284
    assert USER_PARAMETERS["timestep_sampling"].choices == (
        "sigma",
        "uniform",
        "sigmoid",
        "shift",
        "flux_shift",
    )
    assert USER_PARAMETERS["model_prediction_type"].choices == ("raw", "additive", "sigma_scaled")
    assert set(USER_PARAMETERS["weighting_scheme"].choices) == {
        "sigma_sqrt", "logit_normal", "mode", "cosmap", "none", "uniform",
    }  # fmt: skip
    assert problems_of({"timestep_sampling": "karras"}, FLUX) == {
        "config.timestep_sampling": "must be one of sigma, uniform, sigmoid, shift, flux_shift"
    }


@pytest.mark.parametrize("fm_type", FLOW)
@pytest.mark.parametrize("name", ["clip_skip", "max_token_length", "noise_offset", "min_snr_gamma"])
def test_options_the_dit_scripts_ignore_are_refused_with_the_reason(fm_type: FmType, name: str) -> None:
    value = {"clip_skip": 2, "max_token_length": 150, "noise_offset": 0.1, "min_snr_gamma": 5}[name]
    problem = problems_of({name: value}, fm_type)[f"config.{name}"]
    assert problem.startswith(f"does not apply to {FAMILIES[fm_type].display_name} models: ")
    assert "ignores it" in problem and ("sd-scripts" in problem or ".py" in problem)


def test_max_token_length_points_to_the_t5_option() -> None:
    assert "t5xxl_max_token_length" in problems_of({"max_token_length": 225}, FLUX)["config.max_token_length"]


def test_an_option_the_script_lacks_names_the_script() -> None:
    sd35 = "does not apply to SD 3.5 models: sd3_train_network.py has no --guidance_scale"
    assert problems_of({"guidance_scale": 1.0}, SD35) == {"config.guidance_scale": sd35}
    sdxl = "does not apply to SDXL models: sdxl_train_network.py has no --blocks_to_swap"
    assert problems_of({"blocks_to_swap": 4}, FmType.SDXL) == {"config.blocks_to_swap": sdxl}


@pytest.mark.parametrize("fm_type", [FmType.SD15, FmType.SDXL, SD35])
def test_cpu_offload_checkpointing_is_refused_where_the_model_cannot_offload(fm_type: FmType) -> None:
    problem = problems_of({"cpu_offload_checkpointing": True}, fm_type)["config.cpu_offload_checkpointing"]
    assert "enable_gradient_checkpointing" in problem and "cpu_offload" in problem


@pytest.mark.parametrize("fm_type", list(FmType))
@pytest.mark.parametrize("role", ["ae", "clip_l", "clip_g", "t5xxl"])
def test_component_files_come_from_the_job(fm_type: FmType, role: str) -> None:
    assert problems_of({role: "/tmp/x.safetensors"}, fm_type) == {
        f"config.{role}": "is set by the service (comes from the job's components)"
    }


def test_only_the_familys_network_module_may_be_named() -> None:
    assert "network_module" not in normalised({"network_module": "networks.lora_flux"}, FLUX)
    assert "network_module" not in normalised({"network_module": "networks.lora_sd3"}, SD35)
    assert "config.network_module" in problems_of({"network_module": "networks.lora"}, FLUX)
    assert "config.network_module" in problems_of({"network_module": "networks.lora_flux"}, FmType.SD15)


# --- the families' defaults (docs/flux_train_network.md, docs/sd3_train_network.md)


@pytest.mark.parametrize("fm_type", FLOW)
def test_the_defaults_pass_every_check(fm_type: FmType) -> None:
    assert normalised({}, fm_type) == DEFAULTS[fm_type]


def test_flux_defaults_are_the_guides_recommendation() -> None:
    defaults = DEFAULTS[FLUX]
    # "Recommended Settings": --timestep_sampling shift --discrete_flow_shift 3.1582
    # --model_prediction_type raw --guidance_scale 1.0; the VRAM table assumes --fp8_base.
    assert (defaults["timestep_sampling"], defaults["discrete_flow_shift"]) == ("shift", 3.1582)
    assert (defaults["model_prediction_type"], defaults["guidance_scale"]) == ("raw", 1.0)
    assert defaults["fp8_base"] is True and defaults["mixed_precision"] == "bf16"
    assert defaults["cache_text_encoder_outputs"] is True and defaults["cache_latents"] is True
    assert (defaults["network_dim"], defaults["network_alpha"]) == (16, 1.0)


def test_sd35_defaults_are_its_guides() -> None:
    defaults = DEFAULTS[SD35]
    assert (defaults["weighting_scheme"], defaults["training_shift"]) == ("uniform", 1.0)
    assert (defaults["network_dim"], defaults["network_alpha"], defaults["learning_rate"]) == (16, 1.0, 1e-4)


# --- checks mirroring the scripts' own


@pytest.mark.parametrize(("fm_type", "limit"), [(FLUX, 35), (SD35, 36)])
def test_blocks_to_swap_is_limited_per_model(fm_type: FmType, limit: int) -> None:
    assert normalised({"blocks_to_swap": limit}, fm_type)["blocks_to_swap"] == limit
    problem = problems_of({"blocks_to_swap": limit + 1}, fm_type)["config.blocks_to_swap"]
    assert f"at most {limit}" in problem


def test_flux_block_swap_limit_follows_enable_block_swap() -> None:
    """flux_models.Flux.enable_block_swap: n // 2 double and (n - n // 2) * 2 single blocks, each at
    most 2 short of FLUX.1's 19 double and 38 single blocks."""
    fits = [n for n in range(60) if n // 2 <= 19 - 2 and (n - n // 2) * 2 <= 38 - 2]
    assert max(fits) == FAMILIES[FLUX].block_swap.maximum == 35  # type: ignore[union-attr]


def test_cpu_offload_is_refused_next_to_block_swapping() -> None:
    config = {"cpu_offload_checkpointing": True, "blocks_to_swap": 8}
    problem = problems_of(config, FLUX)["config.cpu_offload_checkpointing"]
    assert "blocks_to_swap" in problem and "asserts" in problem
    assert normalised({"cpu_offload_checkpointing": True, "blocks_to_swap": 0}, FLUX)["blocks_to_swap"] == 0


def test_cpu_offload_needs_gradient_checkpointing() -> None:
    config = {"cpu_offload_checkpointing": True, "gradient_checkpointing": False}
    assert "gradient_checkpointing" in problems_of(config, FLUX)["config.cpu_offload_checkpointing"]


@pytest.mark.parametrize("fm_type", FLOW)
@pytest.mark.parametrize("key", ["fp8_base", "fp8_base_unet"])
def test_fp8_needs_mixed_precision(fm_type: FmType, key: str) -> None:
    problem = problems_of({key: True, "mixed_precision": "no"}, fm_type)[f"config.{key}"]
    assert problem == "requires mixed_precision fp16 or bf16 (sd-scripts asserts it)"
    assert normalised({key: True, "mixed_precision": "fp16"}, fm_type)[key] is True


def test_full_precision_drops_the_default_fp8_base() -> None:
    assert "fp8_base" not in normalised({"mixed_precision": "no"}, FLUX)
    assert "config.fp8_base" in problems_of({"mixed_precision": "no", "fp8_base": True}, FLUX)


@pytest.mark.parametrize("fm_type", FLOW)
def test_dit_scripts_cache_text_encoder_outputs_while_clip_trains(fm_type: FmType) -> None:
    config = normalised({"network_train_unet_only": False}, fm_type)
    assert config["cache_text_encoder_outputs"] is True and config["network_train_unet_only"] is False
    sdxl = normalised({"network_train_unet_only": False}, FmType.SDXL)
    assert "cache_text_encoder_outputs" not in sdxl  # sdxl_train_network.py refuses it
    assert "config.cache_text_encoder_outputs" in problems_of(
        {"network_train_unet_only": False, "cache_text_encoder_outputs": True}, FmType.SDXL
    )


@pytest.mark.parametrize("fm_type", FLOW)
def test_cached_text_encoder_outputs_exclude_changing_captions(fm_type: FmType) -> None:
    config = {"cache_text_encoder_outputs": True, "shuffle_caption": True}
    assert "cache_text_encoder_outputs" in problems_of(config, fm_type)["config.shuffle_caption"]
    # Left at its default, caching gives way to the user's shuffling.
    assert "cache_text_encoder_outputs" not in normalised({"shuffle_caption": True}, fm_type)


def test_flux_bucket_steps_are_multiples_of_64() -> None:
    """flux_train_network.py's assert_extra_args runs train_network.py's first, which checks 64
    (lines 46 and 174-176); a step of 32 or 96 crashes the real script."""
    for steps in (32, 96):
        problem = problems_of({"bucket_reso_steps": steps}, FLUX)["config.bucket_reso_steps"]
        assert "must be a multiple of 64 for flux1 models" in problem
    assert normalised({"bucket_reso_steps": 128}, FLUX)["bucket_reso_steps"] == 128


def test_sd35_bucket_steps_are_multiples_of_32() -> None:
    """sd3_train_network.py checks 32 only (lines 64-66; the call of train_network.py's is
    commented out)."""
    problem = problems_of({"bucket_reso_steps": 48}, FmType.SD35)["config.bucket_reso_steps"]
    assert "multiple of 32" in problem
    assert normalised({"bucket_reso_steps": 96}, FmType.SD35)["bucket_reso_steps"] == 96


# --- values sd-scripts would never read


def test_flow_shift_only_with_shift_or_sigma_sampling() -> None:
    problem = problems_of({"timestep_sampling": "uniform", "discrete_flow_shift": 2.0}, FLUX)
    assert "has no effect unless timestep_sampling is shift or sigma" in problem["config.discrete_flow_shift"]
    # The family's default shift goes away with the user's other sampling, and sigmoid_scale with it.
    uniform = normalised({"timestep_sampling": "uniform"}, FLUX)
    assert "discrete_flow_shift" not in uniform and "sigmoid_scale" not in uniform
    assert normalised({"timestep_sampling": "flux_shift"}, FLUX)["sigmoid_scale"] == 1.0


@pytest.mark.parametrize("fm_type", FLOW)
def test_logit_and_mode_settings_need_their_weighting(fm_type: FmType) -> None:
    extra = {"timestep_sampling": "sigma"} if fm_type == FLUX else {}
    assert "logit_normal" in problems_of({**extra, "logit_mean": 0.5}, fm_type)["config.logit_mean"]
    assert "mode" in problems_of({**extra, "mode_scale": 1.0}, fm_type)["config.mode_scale"]
    config = normalised(
        {**extra, "weighting_scheme": "logit_normal", "logit_mean": 0.5, "logit_std": 2}, fm_type
    )
    assert (config["logit_mean"], config["logit_std"]) == (0.5, 2.0)


def test_mode_scale_keeps_timesteps_in_range() -> None:
    assert (
        "at most 7" in problems_of({"weighting_scheme": "mode", "mode_scale": 8}, SD35)["config.mode_scale"]
    )


def test_flux_reads_the_weighting_only_for_sigma_sampling_or_scaled_prediction() -> None:
    problem = problems_of({"weighting_scheme": "logit_normal"}, FLUX)["config.weighting_scheme"]
    assert "timestep_sampling is sigma or model_prediction_type is sigma_scaled" in problem
    assert normalised({"weighting_scheme": "cosmap", "timestep_sampling": "sigma"}, FLUX)
    assert normalised({"weighting_scheme": "cosmap", "model_prediction_type": "sigma_scaled"}, FLUX)


# --- blocks_to_swap for the chosen GPU


def test_block_swap_rows_follow_the_flux_guide() -> None:
    table = FAMILIES[FLUX].block_swap
    assert table is not None
    # docs/flux_train_network.md lines 285-291: 24 GB basic; 16 GB swap; 12 GB 16; 10 GB 22; 8 GB 28.
    assert [table.fitting(gb) for gb in (80, 24, 16, 12, 10, 8, 6)] == [0, 0, 16, 16, 22, 28, 28]


@pytest.mark.parametrize("family", list(FmType))
def test_block_swap_tables_are_consistent(family: FmType) -> None:
    table = FAMILIES[family].block_swap
    assert (table is not None) == (family in DIT_FAMILIES)
    if table is None:
        return
    memories = [gb for gb, _ in table.by_gpu_memory]
    blocks = [n for _, n in table.by_gpu_memory]
    assert memories == sorted(memories, reverse=True) and blocks == sorted(blocks)
    assert all(0 <= n <= table.maximum for n in blocks)


@pytest.mark.parametrize(
    ("fm_type", "instance_type", "expected"),
    [
        (FLUX, "ml.g5.2xlarge", None),  # A10G 24 GB: the guide's "basic settings work fine"
        (FLUX, "ml.g6e.xlarge", None),
        (SD35, "ml.g5.2xlarge", 22),  # 24 GB: the most both 3.5 sizes accept
        (SD35, "ml.g6.xlarge", 22),
        (SD35, "ml.p4d.24xlarge", None),  # 40 GB
        (SD35, "ml.g6e.2xlarge", None),
        (SD35, "ml.unknown.xlarge", None),  # the API's instance check reports it
    ],
)
def test_blocks_to_swap_fits_the_instance_gpu(
    fm_type: FmType, instance_type: str, expected: int | None
) -> None:
    config = normalised({}, fm_type, instance_type=instance_type)
    assert config.get("blocks_to_swap") == expected


def test_a_smaller_gpu_gets_more_blocks_swapped(monkeypatch: pytest.MonkeyPatch) -> None:
    t4 = INSTANCE_TYPES["ml.g4dn.xlarge"]  # 16 GB (below FLUX's minimum, which the API checks)
    assert t4.gpu_memory_gb == 16
    assert normalised({}, FLUX, instance_type=t4.name)["blocks_to_swap"] == 16


def test_the_users_own_block_swap_is_kept() -> None:
    assert normalised({"blocks_to_swap": 4}, SD35, instance_type="ml.g5.2xlarge")["blocks_to_swap"] == 4
    assert "blocks_to_swap" not in normalised({"blocks_to_swap": None}, SD35, instance_type="ml.g5.2xlarge")
    offload = normalised({"cpu_offload_checkpointing": True}, FLUX, instance_type="ml.g4dn.xlarge")
    assert "blocks_to_swap" not in offload  # sd-scripts refuses both together
    assert "blocks_to_swap" not in normalised({}, SD35)  # no instance type: nothing to fit
    assert "blocks_to_swap" not in normalised({}, FmType.SDXL, instance_type="ml.g4dn.xlarge")


def test_block_swap_below_every_row_gets_the_last_row() -> None:
    assert BlockSwap(maximum=10, by_gpu_memory=((24, 0), (12, 6))).fitting(4) == 6


# --- sample prompts and the diffusers engine


def test_flux_sample_prompts_carry_the_distilled_guidance() -> None:
    prompt = SamplePrompt(prompt="a cat", negative_prompt="blurry", seed=3, cfg_scale=4.0)
    line = sd_scripts_prompt_line(prompt, FLUX)
    assert line == "a cat --w 1024 --h 1024 --d 3 --s 20 --g 4"  # --l stays sd-scripts' 1.0: no --n pass
    assert sd_scripts_prompt_line(SamplePrompt(prompt="a cat"), FLUX).endswith("--g 3.5")
    assert sd_scripts_prompt_line(prompt, SD35) == "a cat --n blurry --w 1024 --h 1024 --d 3 --s 20 --l 4"


@pytest.mark.parametrize("fm_type", FLOW)
def test_defaults_draw_no_diffusers_engine_warning(fm_type: FmType) -> None:
    config = normalised({}, fm_type, instance_type="ml.g5.2xlarge")
    assert engine_warnings(config, "diffusers") == []


def test_the_diffusers_engine_warns_of_values_it_does_not_implement() -> None:
    config = normalised({"model_prediction_type": "sigma_scaled", "timestep_sampling": "sigma"}, FLUX)
    fields = {w.field for w in engine_warnings(config, "diffusers")}
    assert fields == {"config.model_prediction_type", "config.timestep_sampling"}
    assert engine_warnings(config, "kohya") == []
