"""The validator mirrors sd-scripts v0.10.1's own argument checks (issue 12's confirmed crashes).

Each test names the sd-scripts check it mirrors; the contract test in
``tests/container/test_sd_scripts_contract.py`` runs the real checks over generated configs.
"""

from __future__ import annotations

import ast
from typing import Any

import pytest

from functions.domain.catalog import FmType
from functions.domain.kohya_params import (
    DEFAULTS,
    DIFFUSERS_ENGINE_PARAMETERS,
    OPTIMIZER_KEYWORDS,
    OPTIMIZERS,
    USER_PARAMETERS,
    engine_warnings,
    validate_config,
)


def _problems(config: dict[str, Any], fm: FmType = FmType.SD15) -> dict[str, str]:
    return {p.field: p.problem for p in validate_config(config, fm)[1]}


def _valid(config: dict[str, Any], fm: FmType = FmType.SD15) -> dict[str, Any]:
    normalised, problems = validate_config(config, fm)
    assert problems == [], problems
    return normalised


class TestMaxTokenLength:
    """Case 1: sd-scripts reads TOML values without argparse's type=int; it does max_length + 2."""

    @pytest.mark.parametrize("value", [150, "150", 150.0])
    def test_is_an_int_after_normalisation(self, value: object) -> None:
        assert _valid({"max_token_length": value})["max_token_length"] == 150
        assert type(_valid({"max_token_length": value})["max_token_length"]) is int

    def test_225_is_the_other_choice(self) -> None:
        assert _valid({"max_token_length": "225"}, FmType.SDXL)["max_token_length"] == 225

    @pytest.mark.parametrize("value", [75, "75"])
    def test_75_means_unset(self, value: object) -> None:
        assert "max_token_length" not in _valid({"max_token_length": value})

    @pytest.mark.parametrize("value", [100, "300", True, "abc"])
    def test_other_values_are_refused(self, value: object) -> None:
        assert "75, 150, 225" in _problems({"max_token_length": value})["config.max_token_length"]


class TestOptimizerArgs:
    """Case 2: train_util.get_optimizer parses each value with ast.literal_eval."""

    def test_json_booleans_become_python_literals(self) -> None:
        config = _valid(
            {"optimizer_type": "Prodigy", "optimizer_args": ["decouple=true", "safeguard_warmup=FALSE"]}
        )
        assert config["optimizer_args"] == ["decouple=True", "safeguard_warmup=False"]

    def test_every_normalised_value_is_read_back_by_literal_eval(self) -> None:
        config = _valid(
            {
                "optimizer_type": "Prodigy",
                "optimizer_args": {
                    "betas": [0.9, 0.99],
                    "weight_decay": "0.01",
                    "d_coef": 2,
                    "decouple": True,
                },
            }
        )
        parsed = {}
        for item in config["optimizer_args"]:
            key, value = item.split("=")  # sd-scripts splits on "=" and expects exactly two parts
            parsed[key] = ast.literal_eval(value)
        assert parsed == {"betas": (0.9, 0.99), "weight_decay": 0.01, "d_coef": 2.0, "decouple": True}

    @pytest.mark.parametrize("item", ["weight_decay=abc", "betas=0.9,,0.99", "eps=1e-8e3"])
    def test_values_literal_eval_cannot_read_are_refused(self, item: str) -> None:
        problem = _problems({"optimizer_args": [item]})["config.optimizer_args"]
        assert "ast.literal_eval" in problem or "must be" in problem

    def test_code_is_never_accepted(self) -> None:
        assert "config.optimizer_args" in _problems({"optimizer_args": ["weight_decay=__import__('os')"]})

    def test_a_key_the_optimizer_does_not_take_is_refused(self) -> None:
        # AdamW8bit(decouple=True) would raise TypeError in the optimizer's constructor.
        assert (
            "not an argument of AdamW8bit"
            in _problems({"optimizer_args": ["decouple=true"]})["config.optimizer_args"]
        )

    def test_nesterov_is_refused_because_sd_scripts_passes_it(self) -> None:
        problems = _problems({"optimizer_type": "SGDNesterov", "optimizer_args": ["nesterov=true"]})
        assert "config.optimizer_args" in problems

    def test_types_are_checked(self) -> None:
        assert "config.optimizer_args" in _problems({"optimizer_args": ["betas=0.9"]})
        assert "config.optimizer_args" in _problems(
            {"optimizer_type": "Prodigy", "optimizer_args": ["decouple=1.5"]}
        )

    def test_adafactor_eps_is_a_pair(self) -> None:
        config = _valid(
            {"optimizer_type": "Adafactor", "lr_scheduler": "adafactor", "optimizer_args": ["eps=1e-30,1e-3"]}
        )
        assert config["optimizer_args"] == ["eps=(1e-30, 0.001)"]

    def test_adafactor_eps_must_be_a_pair_and_others_a_number(self) -> None:
        assert "config.optimizer_args" in _problems(
            {"optimizer_type": "Adafactor", "optimizer_args": ["eps=1e-30"]}
        )
        assert "config.optimizer_args" in _problems(
            {"optimizer_type": "AdamW", "optimizer_args": ["eps=1e-8,1e-3"]}
        )

    def test_every_optimizer_has_its_keywords(self) -> None:
        assert set(OPTIMIZER_KEYWORDS) == set(OPTIMIZERS)


class TestTextEncoderOutputCaching:
    """Case 3: sdxl_train_network.assert_extra_args -> is_text_encoder_output_cacheable."""

    @pytest.mark.parametrize(
        ("key", "value"),
        [("shuffle_caption", True), ("caption_dropout_rate", 0.1), ("caption_tag_dropout_rate", 0.2)],
    )
    def test_explicit_caching_with_changing_captions_is_refused_with_the_reason(
        self, key: str, value: object
    ) -> None:
        problem = _problems({key: value, "cache_text_encoder_outputs": True}, FmType.SDXL)[f"config.{key}"]
        assert "captions are encoded once" in problem and "has no effect" not in problem

    @pytest.mark.parametrize(
        ("key", "value"),
        [("shuffle_caption", True), ("caption_dropout_rate", "0.1"), ("caption_tag_dropout_rate", 0.2)],
    )
    def test_the_caching_default_gives_way_to_what_the_user_asked_for(self, key: str, value: object) -> None:
        config = _valid({key: value}, FmType.SDXL)
        assert "cache_text_encoder_outputs" not in config

    def test_zero_rates_keep_the_cache(self) -> None:
        assert _valid({"caption_dropout_rate": 0.0}, FmType.SDXL)["cache_text_encoder_outputs"] is True

    def test_caching_requires_unet_only(self) -> None:
        problems = _problems(
            {"cache_text_encoder_outputs": True, "network_train_unet_only": False}, FmType.SDXL
        )
        assert "config.cache_text_encoder_outputs" in problems


class TestBuckets:
    """Case 4: BaseDataset.adjust_min_max_bucket_reso_by_steps asserts min/max vs the resolution."""

    def test_sdxl_at_256_px_lowers_the_default_min_bucket(self) -> None:
        config = _valid({"resolution": 256}, FmType.SDXL)
        assert config["min_bucket_reso"] == 256

    def test_sd15_at_1536_px_raises_the_default_max_bucket(self) -> None:
        config = _valid({"resolution": 1536}, FmType.SD15)
        assert config["max_bucket_reso"] == 1536

    def test_non_square_resolution_uses_each_side(self) -> None:
        config = _valid({"resolution": "1280,192"}, FmType.SD15)
        assert (config["min_bucket_reso"], config["max_bucket_reso"]) == (192, 1280)

    def test_user_bounds_that_exclude_the_resolution_are_named(self) -> None:
        problems = _problems({"resolution": 256, "min_bucket_reso": 512}, FmType.SDXL)
        assert "must not exceed the resolution's smaller side 256" in problems["config.min_bucket_reso"]
        problems = _problems({"resolution": 1536, "max_bucket_reso": 1024})
        assert "at least the resolution's larger side 1536" in problems["config.max_bucket_reso"]

    def test_rounding_to_the_step_is_mirrored(self) -> None:
        # 520 rounds down to 512 <= 512: sd-scripts accepts it (with a warning).
        assert _problems({"resolution": 512, "min_bucket_reso": 520, "max_bucket_reso": 1024}) == {}
        # 1000 rounds up to 1024 >= 1024: accepted too.
        assert _problems({"resolution": 1024, "max_bucket_reso": 1000}) == {}

    def test_no_bucket_checks_without_bucketing(self) -> None:
        assert _problems({"resolution": 1536, "max_bucket_reso": 1024, "enable_bucket": False}) == {}

    def test_bucket_steps_follow_the_family(self) -> None:
        # train_network: verify_bucket_reso_steps(64); sdxl_train_network: verify_bucket_reso_steps(32).
        assert "multiple of 64" in _problems({"bucket_reso_steps": 32})["config.bucket_reso_steps"]
        assert _problems({"bucket_reso_steps": 32}, FmType.SDXL) == {}


class TestSchedules:
    """Case 5: train_util.get_scheduler_fix and get_optimizer's Adafactor handling."""

    @pytest.mark.parametrize("optimizer", [o for o in OPTIMIZERS if o != "Adafactor"])
    def test_adafactor_schedule_needs_the_adafactor_optimizer(self, optimizer: str) -> None:
        problem = _problems({"lr_scheduler": "adafactor", "optimizer_type": optimizer})["config.lr_scheduler"]
        assert "adafactor scheduler must be used with Adafactor optimizer" in problem

    def test_adafactor_schedule_with_adafactor_is_accepted(self) -> None:
        _valid({"lr_scheduler": "adafactor", "optimizer_type": "Adafactor"})

    def test_adafactor_schedule_without_relative_step_is_refused(self) -> None:
        problems = _problems(
            {
                "lr_scheduler": "adafactor",
                "optimizer_type": "Adafactor",
                "optimizer_args": ["relative_step=false"],
            }
        )
        assert "relative_step" in problems["config.lr_scheduler"]

    def test_polynomial_decay_needs_a_learning_rate_above_its_end(self) -> None:
        # Found by the contract test: transformers raises "lr_end (1e-07) must be smaller than initial lr".
        assert "config.learning_rate" in _problems({"lr_scheduler": "polynomial", "learning_rate": 1e-8})
        _valid({"lr_scheduler": "polynomial", "learning_rate": 1e-4})

    def test_schedules_without_warmup_refuse_warmup_steps(self) -> None:
        assert "config.lr_warmup_steps" in _problems({"lr_scheduler": "constant", "lr_warmup_steps": 10})
        assert "config.lr_warmup_steps" in _problems({"optimizer_type": "Adafactor", "lr_warmup_steps": 10})
        _valid({"lr_scheduler": "constant_with_warmup", "lr_warmup_steps": 10})


class TestOtherMirroredChecks:
    def test_cache_latents_to_disk_counts_as_caching(self) -> None:
        # verify_training_args turns cache_latents on; is_latent_cacheable then fails with color_aug.
        assert "config.cache_latents" in _problems({"cache_latents_to_disk": True, "color_aug": True})

    def test_network_args_values_are_what_int_and_float_read(self) -> None:
        assert _valid({"network_args": ["conv_dim=8", "conv_alpha=4"]})["network_args"] == [
            "conv_dim=8",
            "conv_alpha=4.0",
        ]
        assert "config.network_args" in _problems({"network_args": ["conv_dim=8.5"]})
        assert "config.network_args" in _problems({"network_args": ["rank_dropout=2"]})

    def test_xformers_is_refused_because_the_image_lacks_it(self) -> None:
        # train_util.replace_unet_modules: ImportError("No xformers") after the GPU has started.
        assert "not installed" in _problems({"xformers": True, "sdpa": False})["config.xformers"]
        _valid({"xformers": False})

    def test_text_encoder_only_overrules_sdxl_unet_only_default(self) -> None:
        config = _valid({"network_train_text_encoder_only": True}, FmType.SDXL)
        assert "network_train_unet_only" not in config and "cache_text_encoder_outputs" not in config

    def test_clip_skip_is_sd15_only(self) -> None:
        assert "config.clip_skip" in _problems({"clip_skip": 2}, FmType.SDXL)

    def test_full_precision_modes_need_their_mixed_precision(self) -> None:
        assert "config.full_bf16" in _problems({"full_bf16": True, "mixed_precision": "fp16"})


class TestEngineWarnings:
    def test_kohya_ignores_nothing(self) -> None:
        assert engine_warnings({"color_aug": True}, "kohya") == []

    def test_diffusers_names_each_ignored_parameter(self) -> None:
        config = _valid({"color_aug": True, "cache_latents": False})
        warnings = engine_warnings(config, "diffusers")
        assert [w.field for w in warnings] == ["config.color_aug"]
        assert "ignored by the diffusers engine" in warnings[0].warning

    def test_defaults_draw_no_warning(self) -> None:
        for fm in FmType:
            assert engine_warnings(DEFAULTS[fm], "diffusers") == []

    def test_supported_parameters_are_catalogue_parameters(self) -> None:
        assert set(DIFFUSERS_ENGINE_PARAMETERS) <= set(USER_PARAMETERS)
