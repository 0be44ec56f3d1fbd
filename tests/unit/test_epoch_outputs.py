"""Domain rules of per-epoch LoRAs and sample images: no emulator, no engine."""

from __future__ import annotations

import pytest

from functions.domain.catalog import FmType
from functions.domain.epoch_outputs import (
    MAX_SAMPLE_PROMPTS,
    SamplePrompt,
    VersionInfo,
    epoch_lora_filename,
    epoch_output_problems,
    is_saved_epoch,
    parse_epoch_lora_name,
    parse_sample_name,
    sample_cadence,
    sample_filename,
    sample_prompt_problems,
    saved_epochs,
    sd_scripts_prompt_file,
    select_version,
)
from functions.domain.training_contract import TrainingJobSpec


def _fields(prompts: list[SamplePrompt], fm_type: FmType = FmType.SD15) -> list[str]:
    return [p.field for p in sample_prompt_problems(prompts, fm_type)]


def test_good_prompts_have_no_problems() -> None:
    prompts = [
        SamplePrompt(prompt="a cat, 1girl (smiling:1.2)", negative_prompt="lowres", width=768, height=512)
    ]
    assert _fields(prompts) == []
    assert _fields([SamplePrompt(prompt="x", width=1536, height=2048)], FmType.SDXL) == []


@pytest.mark.parametrize(
    ("prompt", "field"),
    [
        (SamplePrompt(prompt="a cat --n dog"), "sample_prompts[0].prompt"),
        (SamplePrompt(prompt="# a comment"), "sample_prompts[0].prompt"),
        (SamplePrompt(prompt="line\nbreak"), "sample_prompts[0].prompt"),
        (SamplePrompt(prompt="zero\u200bwidth"), "sample_prompts[0].prompt"),
        (SamplePrompt(prompt="   "), "sample_prompts[0].prompt"),
        (SamplePrompt(prompt="ok", negative_prompt="a --s 900"), "sample_prompts[0].negative_prompt"),
        (SamplePrompt(prompt="ok", width=1536), "sample_prompts[0].width"),
        (SamplePrompt(prompt="ok", height=516), "sample_prompts[0].height"),
        (SamplePrompt(prompt="ok", height=32), "sample_prompts[0].height"),
    ],
)
def test_each_bad_prompt_field_is_named(prompt: SamplePrompt, field: str) -> None:
    assert _fields([prompt]) == [field]


@pytest.mark.parametrize("fm_type", [FmType.FLUX1, FmType.SD35])
def test_flow_families_take_sample_sides_in_multiples_of_16(fm_type: FmType) -> None:
    """Latents patched 2x2 after the VAE's 8x: a side of 520 would render at 512 (sd-scripts' FLUX
    sampler) or fail (diffusers' SD 3 pipeline), so the API refuses it naming the multiple."""
    assert _fields([SamplePrompt(prompt="x", width=512, height=528)], fm_type) == []
    (problem,) = sample_prompt_problems([SamplePrompt(prompt="x", width=520)], fm_type)
    assert problem.field == "sample_prompts[0].width"
    assert f"multiple of 16 for {fm_type.value} models" in problem.problem
    assert _fields([SamplePrompt(prompt="x", width=520)], FmType.SDXL) == []  # 8 is enough there


def test_count_and_total_length_are_bounded() -> None:
    assert _fields([SamplePrompt(prompt="x")] * (MAX_SAMPLE_PROMPTS + 1)) == ["sample_prompts"]
    long = [SamplePrompt(prompt="p" * 400, negative_prompt="n" * 400)] * 4
    assert _fields(long) == ["sample_prompts"]  # fits the request, not one SageMaker hyperparameter


def test_validated_prompts_travel_in_the_job_spec() -> None:
    prompts = [SamplePrompt(prompt="p" * 400, negative_prompt="n" * 400, seed=2**32 - 1, width=1024)] * 2
    assert _fields(prompts) == []
    spec = TrainingJobSpec(
        job_id="j",
        fm_type=FmType.SD15,
        output_name="o",
        base_model_filename="b",
        config={},
        sample_prompts=prompts,
    )
    assert TrainingJobSpec.from_json(spec.to_json()).sample_prompts == prompts
    assert "sample_prompts" not in spec.sagemaker_hyperparameters()  # the container reads job.json


def test_prompt_file_follows_sd_scripts_format() -> None:
    prompts = [
        SamplePrompt(prompt=" a cat ", negative_prompt="blurry, lowres", seed=5, steps=12, cfg_scale=6.5),
        SamplePrompt(prompt="a dog", width=640, height=448),
    ]
    assert sd_scripts_prompt_file(prompts, FmType.SD15).splitlines() == [
        "a cat --n blurry, lowres --w 512 --h 512 --d 5 --s 12 --l 6.5",
        "a dog --w 640 --h 448 --s 20 --l 7",
    ]
    assert (
        sd_scripts_prompt_file([SamplePrompt(prompt="x")], FmType.SDXL)
        == "x --w 1024 --h 1024 --s 20 --l 7\n"
    )


@pytest.mark.parametrize(
    ("total", "every", "expected"),
    [
        (10, None, [10]),
        (10, 1, list(range(1, 11))),
        (10, 3, [3, 6, 9, 10]),
        (4, 4, [4]),
        (3, 5, [3]),
        (0, 1, []),
    ],
)
def test_saved_epochs_follow_sd_scripts(total: int, every: int | None, expected: list[int]) -> None:
    assert saved_epochs(total, every) == expected
    assert [e for e in range(-1, total + 3) if is_saved_epoch(e, total, every)] == expected


@pytest.mark.parametrize(
    ("total", "every", "cadence"), [(10, 3, 1), (10, 2, 2), (9, 3, 3), (6, None, 6), (None, 4, 4)]
)
def test_sample_cadence_covers_every_saved_epoch_and_the_last(
    total: int | None, every: int | None, cadence: int
) -> None:
    assert sample_cadence(total, every) == cadence
    if total:
        assert all(epoch % cadence == 0 for epoch in saved_epochs(total, every))


def test_file_names_round_trip_and_match_sd_scripts() -> None:
    assert epoch_lora_filename("job", 3) == "job-000003.safetensors"
    assert parse_epoch_lora_name("job", "job-000003.safetensors") == 3
    assert parse_epoch_lora_name("job", "job.safetensors") is None
    assert parse_epoch_lora_name("job", "other-000003.safetensors") is None
    assert parse_sample_name("job", sample_filename("job", 2, 1)) == (2, 1)
    assert parse_sample_name("job", "job_e000002_01_20261125040000_42.png") == (2, 1)  # sd-scripts' own
    assert parse_sample_name("job", "job_e000002_01_../../x.png") is None


def test_version_selection_defaults_to_the_final_lora() -> None:
    versions = [VersionInfo(epoch=1), VersionInfo(epoch=2), VersionInfo(epoch=3, is_default=True)]
    assert select_version(versions, None) == versions[2]
    assert select_version(versions, 1) == versions[0]
    assert select_version(versions, 4) is None
    assert select_version([], None) is None


def test_saved_epochs_and_sample_images_are_bounded() -> None:
    assert epoch_output_problems(10, 1, 8) == []
    assert [p.field for p in epoch_output_problems(1000, 1, 0)] == ["config.save_every_n_epochs"]
    assert [p.field for p in epoch_output_problems(100, 1, 4)] == ["sample_prompts"]
