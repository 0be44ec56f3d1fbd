"""The diffusers engine's typed config: every default is sd-scripts' (from the parameter catalogue)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from functions.domain.catalog import FmType
from functions.domain.families import FAMILIES
from functions.domain.kohya_params import (
    DEFAULTS,
    DIFFUSERS_ENGINE_PARAMETERS,
    SD_SCRIPTS_DEFAULTS,
    USER_PARAMETERS,
)
from training_container.engines import diffusers_engine
from training_container.engines.engine_config import EngineConfig
from training_container.engines.families import stable_diffusion

ENGINE_SOURCES = [Path(diffusers_engine.__file__), *Path(stable_diffusion.__file__).parent.glob("*.py")]

UNSET = EngineConfig.from_parameters({})


def test_every_engine_parameter_has_sd_scripts_default_from_the_catalogue() -> None:
    names = {f.name for f in dataclasses.fields(EngineConfig)}
    assert names == set(SD_SCRIPTS_DEFAULTS)
    assert names <= DIFFUSERS_ENGINE_PARAMETERS and names <= set(USER_PARAMETERS)
    for name in names:
        assert getattr(UNSET, name) == SD_SCRIPTS_DEFAULTS[name], name


@pytest.mark.parametrize("path", ENGINE_SOURCES, ids=lambda path: path.name)
def test_the_engine_reads_no_parameter_with_a_fallback_of_its_own(path: Path) -> None:
    source = path.read_text()
    assert re.findall(r"config\.get\([^)]*,", source) == []
    assert "self.config[" not in source


@pytest.mark.parametrize("family", list(FmType))
def test_the_service_defaults_come_through_typed(family: FmType) -> None:
    settings = EngineConfig.from_parameters(DEFAULTS[family])
    for name, value in DEFAULTS[family].items():
        if name in SD_SCRIPTS_DEFAULTS:
            assert getattr(settings, name) == value, name


# --- the defaults that changed to sd-scripts' (one test each)


def test_an_unset_learning_rate_is_sd_scripts_2e_6_not_1e_4() -> None:
    assert UNSET.learning_rate == 2.0e-6  # train_util.add_optimizer_arguments --learning_rate
    assert UNSET.unet_learning_rate == UNSET.text_encoder_learning_rate == 2.0e-6


def test_an_unset_max_grad_norm_clips_at_1() -> None:
    assert UNSET.max_grad_norm == 1.0  # train_util.add_optimizer_arguments --max_grad_norm


def test_an_unset_seed_is_drawn_per_job_like_sd_scripts_random_seed_but_stable_on_resume() -> None:
    assert UNSET.seed is None  # sd-scripts: random.randint when --seed is unset
    assert UNSET.seed_for("job-a") == UNSET.seed_for("job-a") != UNSET.seed_for("job-b")
    assert EngineConfig.from_parameters({"seed": 7}).seed_for("job-a") == 7


@pytest.mark.parametrize("family", list(FmType))
def test_an_unset_resolution_is_the_family_native_side(family: FmType) -> None:
    assert UNSET.resolution_or_native(family) == str(FAMILIES[family].native_side)
    assert EngineConfig.from_parameters({"resolution": "768"}).resolution_or_native(family) == "768"


def test_unset_clip_skip_and_dropout_keep_sd_scripts_meaning() -> None:
    assert UNSET.layer_from_last == 1 and UNSET.network_dropout is None and UNSET.noise_offset is None


def test_an_unknown_prediction_type_is_refused_not_trained_as_epsilon() -> None:
    from training_container.errors import JobFailure

    stable_diffusion.check_prediction_type("epsilon")
    stable_diffusion.check_prediction_type("v_prediction")
    with pytest.raises(JobFailure, match="flow_prediction"):
        stable_diffusion.check_prediction_type("flow_prediction")
