"""Unit tests of the facts defined once in functions/domain and functions/settings."""

from __future__ import annotations

import pytest

from functions.domain.catalog import INSTANCE_TYPES, FmType, instance_supports
from functions.domain.kohya_params import (
    DEFAULTS,
    RESERVED_PARAMETERS,
    USER_PARAMETERS,
    validate_config,
)
from functions.domain.statuses import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    JobStatus,
    can_transition,
    predecessors,
)
from functions.domain.storage_layout import (
    job_id_from_sagemaker_name,
    model_object_key,
    owner_key,
    sagemaker_job_name,
    training_progress_key,
)
from functions.settings import EnvVar, Settings

OWNER = "arn:aws:iam::123456789012:user/alice"


def _problems(config: dict[str, object], fm: FmType = FmType.SD15) -> dict[str, str]:
    return {p.field: p.problem for p in validate_config(config, fm)[1]}


class TestConfigValidation:
    def test_defaults_validate_cleanly_for_every_family(self) -> None:
        for fm in FmType:
            normalised, problems = validate_config(DEFAULTS[fm], fm)
            assert problems == []
            assert normalised == DEFAULTS[fm]

    def test_unknown_key_is_refused_with_the_closest_name(self) -> None:
        assert "did you mean 'learning_rate'" in _problems({"lerning_rate": 1e-4})["config.lerning_rate"]

    @pytest.mark.parametrize(
        "key",
        [
            "output_dir",
            "train_data_dir",
            "pretrained_model_name_or_path",
            "logging_dir",
            "log_with",
            "wandb_api_key",
        ],
    )
    def test_service_owned_keys_are_refused(self, key: str) -> None:
        assert "set by the service" in _problems({key: "/tmp/x"})[f"config.{key}"]

    def test_only_the_lora_network_module_is_allowed(self) -> None:
        assert _problems({"network_module": "networks.lora"}) == {}
        assert "config.network_module" in _problems({"network_module": "evil.module"})

    def test_reserved_and_user_parameters_do_not_overlap(self) -> None:
        assert not set(RESERVED_PARAMETERS) & set(USER_PARAMETERS)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [(512, "512"), ("768,512", "768,512"), ([1024, 768], "1024,768"), ("1024x1024", "1024,1024")],
    )
    def test_resolution_is_normalised_to_the_string_sd_scripts_needs(
        self, value: object, expected: str
    ) -> None:
        normalised, problems = validate_config({"resolution": value}, FmType.SD15)
        assert problems == []
        assert normalised["resolution"] == expected

    @pytest.mark.parametrize(
        ("config", "field"),
        [
            ({"network_dim": 0}, "config.network_dim"),
            ({"network_dim": "abc"}, "config.network_dim"),
            ({"network_dim": True}, "config.network_dim"),
            ({"learning_rate": 0}, "config.learning_rate"),
            ({"learning_rate": float("nan")}, "config.learning_rate"),
            ({"optimizer_type": "SGD; rm -rf /"}, "config.optimizer_type"),
            ({"resolution": 100}, "config.resolution"),
            ({"resolution": 513}, "config.resolution"),
            ({"optimizer_args": ["weight_decay=__import__('os')"]}, "config.optimizer_args"),
            ({"network_args": ["algo=lokr"]}, "config.network_args"),
        ],
    )
    def test_bad_values_name_their_field(self, config: dict[str, object], field: str) -> None:
        assert field in _problems(config)

    def test_numbers_as_strings_are_normalised(self) -> None:
        normalised, problems = validate_config({"network_dim": "64", "unet_lr": "2e-4"}, FmType.SD15)
        assert problems == []
        assert normalised["network_dim"] == 64
        assert normalised["unet_lr"] == pytest.approx(2e-4)

    def test_sdxl_only_parameter_is_refused_for_sd15(self) -> None:
        assert "config.cache_text_encoder_outputs" in _problems({"cache_text_encoder_outputs": True})

    def test_user_steps_are_not_overridden_by_default_epochs(self) -> None:
        normalised, _ = validate_config({"max_train_steps": 300}, FmType.SD15)
        assert "max_train_epochs" not in normalised
        assert normalised["max_train_steps"] == 300

    def test_turning_on_sdxl_text_encoder_training_drops_the_caching_default(self) -> None:
        normalised, problems = validate_config({"network_train_unet_only": False}, FmType.SDXL)
        assert problems == []
        assert "cache_text_encoder_outputs" not in normalised

    def test_conflicting_combination_is_refused(self) -> None:
        assert "config.xformers" in _problems({"xformers": True})  # sdpa is on by default

    def test_too_many_keys_are_refused(self) -> None:
        assert "config" in _problems({f"k{i}": 1 for i in range(101)})


class TestStatuses:
    def test_terminal_states_are_final(self) -> None:
        for terminal in TERMINAL_STATUSES:
            assert not any(can_transition(terminal, s) for s in JobStatus)

    def test_no_transition_goes_backwards(self) -> None:
        order = [
            JobStatus.PENDING,
            JobStatus.QUEUED,
            JobStatus.STARTING,
            JobStatus.TRAINING,
            JobStatus.UPLOADING,
        ]
        for i, later in enumerate(order):
            for earlier in order[:i]:
                assert not can_transition(later, earlier)

    def test_stopping_can_only_end(self) -> None:
        assert {s for s in JobStatus if can_transition(JobStatus.STOPPING, s)} == TERMINAL_STATUSES

    def test_predecessors_are_the_inverse_of_transitions(self) -> None:
        assert predecessors(JobStatus.TRAINING) == {JobStatus.PENDING, JobStatus.QUEUED, JobStatus.STARTING}
        assert JobStatus.COMPLETED not in predecessors(JobStatus.FAILED)

    def test_active_and_terminal_partition_the_statuses(self) -> None:
        assert set(JobStatus) == ACTIVE_STATUSES | TERMINAL_STATUSES
        assert not ACTIVE_STATUSES & TERMINAL_STATUSES


class TestCatalogAndLayout:
    def test_sdxl_needs_24_gb(self) -> None:
        assert not instance_supports(INSTANCE_TYPES["ml.g4dn.xlarge"], FmType.SDXL)
        assert instance_supports(INSTANCE_TYPES["ml.g5.2xlarge"], FmType.SDXL)
        assert instance_supports(INSTANCE_TYPES["ml.g4dn.xlarge"], FmType.SD15)

    def test_owner_identity_does_not_leak_into_object_keys(self) -> None:
        key = model_object_key(OWNER, "m1", "base.safetensors")
        assert "alice" not in key and key.startswith("models/") and key.endswith("/m1/base.safetensors")
        assert owner_key(OWNER) != owner_key(OWNER + "x")

    def test_progress_object_lives_in_the_checkpoint_prefix(self) -> None:
        assert training_progress_key(OWNER, "j1").endswith("/j1/checkpoints/progress.json")

    def test_job_names_round_trip_and_respect_sagemaker_limits(self) -> None:
        job_id = "01jabcdefghjkmnpqrstvwxyz0"
        name = sagemaker_job_name("lora-prod", job_id)
        assert job_id_from_sagemaker_name("lora-prod", name) == job_id
        assert job_id_from_sagemaker_name("lora-prod", "other-job") is None
        with pytest.raises(ValueError, match="63"):
            sagemaker_job_name("x" * 40, job_id)


class TestSettings:
    BASE = {EnvVar.TABLE_NAME: "t", EnvVar.IDEMPOTENCY_TABLE_NAME: "i", EnvVar.BUCKET_NAME: "b"}

    def test_defaults_apply_when_unset(self) -> None:
        settings = Settings.from_env(dict(self.BASE))
        assert settings.default_use_spot is True
        assert "ml.g5.2xlarge" in settings.allowed_instance_types

    def test_unknown_instance_types_are_refused_at_start(self) -> None:
        with pytest.raises(ValueError, match=r"ml\.x9\.huge"):
            Settings.from_env({**self.BASE, EnvVar.ALLOWED_INSTANCE_TYPES: "ml.g5.xlarge,ml.x9.huge"})

    def test_overrides_are_parsed(self) -> None:
        settings = Settings.from_env(
            {**self.BASE, EnvVar.DEFAULT_USE_SPOT: "false", EnvVar.MAX_CONCURRENT_JOBS_PER_OWNER: "5"}
        )
        assert settings.default_use_spot is False
        assert settings.max_concurrent_jobs_per_owner == 5
