"""Every family has one complete ``FamilySpec``, and the per-family tables are derived from it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from functions.domain.catalog import INSTANCE_TYPES, MIN_GPU_MEMORY_GB, FmType
from functions.domain.checkpoint_family import FAMILY_NAMES
from functions.domain.dataset_preparation import NATIVE_SIDE
from functions.domain.epoch_outputs import DEFAULT_SAMPLE_SIZE, SAMPLE_SIZE_LIMITS
from functions.domain.families import FAMILIES, FamilySpec
from functions.domain.kohya_params import BUCKET_STEP_MULTIPLE, DEFAULTS, USER_PARAMETERS
from functions.domain.planning import NATIVE_PIXELS

# SDXL checkpoints contain every other family's parts they could be confused with: nothing rules it out.
# FLUX.1 and SD 3.5 checkpoints hold no text encoder of their own: theirs are components.
# SD 1.5 and SDXL have no transformer blocks to swap.
MAY_BE_EMPTY = {
    "refused_kohya_params",
    "checkpoint_foreign_prefixes",
    "checkpoint_text_parts",
    "components",
    "block_swap",
}


@pytest.mark.parametrize("family", list(FmType))
def test_every_family_has_a_complete_spec(family: FmType) -> None:
    spec = FAMILIES[family]
    assert spec.fm_type is family
    for field in dataclasses.fields(FamilySpec):
        value = getattr(spec, field.name)
        if field.name not in MAY_BE_EMPTY:
            assert value not in (None, "", (), {}, frozenset()) and (
                not isinstance(value, Mapping) or value
            ), f"{family}: {field.name} is empty"
        if isinstance(value, int) and not isinstance(value, bool):
            assert value > 0, f"{family}: {field.name}"
    assert set(spec.steps_per_second) == set(INSTANCE_TYPES), "a throughput for every catalogue instance"
    assert spec.native_side % spec.bucket_step_multiple == 0
    low, high = spec.sample_side_limits
    assert low <= spec.default_sample_side <= high
    assert spec.network_module.startswith("networks.") and spec.kohya_script.endswith(".py")
    for name in (*spec.kohya_defaults, *spec.refused_kohya_params):
        assert name in USER_PARAMETERS, f"{family}: {name} is not a catalogue parameter"
    assert not set(spec.kohya_defaults) & set(spec.refused_kohya_params)
    assert all(reason.strip() for reason in spec.refused_kohya_params.values()), "a reason for each refusal"
    assert set(spec.checkpoint_text_parts) <= set(spec.checkpoint_parts)
    assert spec.checkpoint_marker in {
        part.keys[0][: len(spec.checkpoint_marker)] for part in spec.checkpoint_parts
    }


def test_the_per_family_tables_are_the_specs() -> None:
    for family, spec in FAMILIES.items():
        assert NATIVE_SIDE[family] == spec.native_side
        assert NATIVE_PIXELS[family] == spec.native_side**2
        assert MIN_GPU_MEMORY_GB[family] == spec.min_gpu_memory_gb
        assert SAMPLE_SIZE_LIMITS[family] == spec.sample_side_limits
        assert DEFAULT_SAMPLE_SIZE[family] == spec.native_side
        assert FAMILY_NAMES[family] == spec.display_name
        assert BUCKET_STEP_MULTIPLE[family] == spec.bucket_step_multiple
        assert DEFAULTS[family].items() >= spec.kohya_defaults.items()
        for name in spec.refused_kohya_params:
            assert family not in USER_PARAMETERS[name].families
        for instance in INSTANCE_TYPES.values():
            assert instance.steps_per_second[family] == spec.steps_per_second[instance.name]
