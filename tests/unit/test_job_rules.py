"""When a training job may start (plain Python, no AWS): each test fails if its rule is removed."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from functions.domain.catalog import FmType, ModelKind, ResourceStatus
from functions.domain.dataset_rules import ConceptSummary, DatasetManifest
from functions.domain.families import ComponentRole
from functions.domain.job_rules import (
    base_model_problems,
    component_problems,
    concurrency_refusal,
    dataset_problems,
    host_memory_problems,
    instance_problems,
    runtime_problems,
)
from functions.domain.kohya_params import FieldProblem
from functions.domain.records import DatasetRecord, ModelRecord

OWNER = "arn:aws:iam::123456789012:user/alice"
STAMP = "2026-11-25T00:00:00Z"
ALLOWED = ("ml.g4dn.xlarge", "ml.g5.2xlarge")


def _model(**changes: object) -> ModelRecord:
    fields: dict[str, object] = {
        "id": "m1",
        "owner": OWNER,
        "name": "base",
        "kind": ModelKind.CHECKPOINT,
        "fm_type": FmType.SD15,
        "filename": "base.safetensors",
        "size_bytes": 100,
        "status": ResourceStatus.READY,
        "s3_key": "models/x/m1/base.safetensors",
        "created_at": STAMP,
        "updated_at": STAMP,
    }
    return ModelRecord.model_validate(fields | changes)


def _dataset(**changes: object) -> DatasetRecord:
    manifest = DatasetManifest(
        concepts=[
            ConceptSummary(folder="10_cat", concept="cat", repeats=10, image_count=4, captioned_count=4)
        ],
        image_count=4,
        captioned_count=4,
    )
    fields: dict[str, object] = {
        "id": "d1",
        "owner": OWNER,
        "name": "cats",
        "status": ResourceStatus.READY,
        "file_count": 8,
        "total_bytes": 800,
        "manifest": manifest,
        "created_at": STAMP,
        "updated_at": STAMP,
    }
    return DatasetRecord.model_validate(fields | changes)


def _fields(problems: Sequence[FieldProblem]) -> list[str]:
    return [p.field for p in problems]


class TestInstanceType:
    def test_allowed_instance_with_enough_memory_is_accepted(self) -> None:
        assert instance_problems("ml.g5.2xlarge", FmType.SDXL, ALLOWED) == []
        assert instance_problems("ml.g4dn.xlarge", FmType.SD15, ALLOWED) == []

    def test_instance_outside_the_deployment_list_is_refused(self) -> None:
        (problem,) = instance_problems("ml.g5.xlarge", FmType.SD15, ALLOWED)
        assert problem.field == "instance_type" and "ml.g4dn.xlarge, ml.g5.2xlarge" in problem.problem

    def test_unknown_instance_type_is_refused_even_if_configured(self) -> None:
        assert _fields(instance_problems("ml.made.up", FmType.SD15, ("ml.made.up",))) == ["instance_type"]

    def test_sdxl_refuses_instances_under_24_gb(self) -> None:
        (problem,) = instance_problems("ml.g4dn.xlarge", FmType.SDXL, ALLOWED)
        assert "16 GB" in problem.problem and "at least 24 GB" in problem.problem


class TestBaseModel:
    def test_a_ready_checkpoint_of_the_family_is_accepted(self) -> None:
        assert base_model_problems(_model(), OWNER, FmType.SD15) == []

    def test_missing_and_foreign_models_read_the_same(self) -> None:
        missing = base_model_problems(None, OWNER, FmType.SD15)
        foreign = base_model_problems(_model(owner="arn:aws:iam::1:user/bob"), OWNER, FmType.SD15)
        assert missing == foreign and _fields(missing) == ["base_model_id"]

    def test_a_model_still_uploading_is_refused(self) -> None:
        (problem,) = base_model_problems(_model(status=ResourceStatus.UPLOADING), OWNER, FmType.SD15)
        assert "uploading, not ready" in problem.problem

    def test_a_lora_is_not_a_base_model(self) -> None:
        (problem,) = base_model_problems(_model(kind=ModelKind.LORA), OWNER, FmType.SD15)
        assert "checkpoint" in problem.problem

    def test_the_family_must_match_the_job(self) -> None:
        (problem,) = base_model_problems(_model(), OWNER, FmType.SDXL)
        assert "sd15 model but the job is sdxl" in problem.problem


class TestDataset:
    def test_a_ready_dataset_is_accepted(self) -> None:
        assert dataset_problems(_dataset(), OWNER) == []

    def test_missing_and_foreign_datasets_read_the_same(self) -> None:
        missing = dataset_problems(None, OWNER)
        assert missing == dataset_problems(_dataset(owner="arn:aws:iam::1:user/bob"), OWNER)
        assert _fields(missing) == ["dataset_id"]

    @pytest.mark.parametrize("status", [ResourceStatus.UPLOADING, ResourceStatus.INVALID])
    def test_only_ready_datasets_train(self, status: ResourceStatus) -> None:
        (problem,) = dataset_problems(_dataset(status=status), OWNER)
        assert f"{status.value}, not ready" in problem.problem

    def test_a_dataset_without_manifest_is_not_ready(self) -> None:
        assert _fields(dataset_problems(_dataset(manifest=None), OWNER)) == ["dataset_id"]

    def test_a_dataset_with_uncaptioned_images_is_refused_naming_it(self) -> None:
        manifest = DatasetManifest(image_count=4, captioned_count=1, missing_captions=3)
        (problem,) = dataset_problems(_dataset(manifest=manifest), OWNER)
        assert problem.field == "dataset_id"
        assert "d1 has 3 image(s) without a caption" in problem.problem
        assert "POST /datasets/d1/captions" in problem.problem


class TestLimits:
    def test_runtime_is_bounded_by_the_deployment(self) -> None:
        assert runtime_problems(None, 3600) == [] and runtime_problems(3600, 3600) == []
        (problem,) = runtime_problems(3601, 3600)
        assert problem.field == "max_runtime_seconds" and "3600" in problem.problem

    def test_concurrent_jobs_are_capped_per_owner(self) -> None:
        assert concurrency_refusal(1, 2) is None
        refusal = concurrency_refusal(2, 2)
        assert refusal is not None and "2 active training job(s)" in refusal and "limit is 2" in refusal


# --- FLUX.1 / SD 3.5 components and host memory


def _flux_components(**changes: ModelRecord | None) -> dict[ComponentRole, ModelRecord | None]:
    components: dict[ComponentRole, ModelRecord | None] = {
        role: _model(id=f"c-{role.value}", fm_type=FmType.FLUX1, component=role)
        for role in (ComponentRole.AE, ComponentRole.CLIP_L, ComponentRole.T5XXL)
    }
    components.update({ComponentRole(k): v for k, v in changes.items()})
    return components


def _fields(problems: Sequence[FieldProblem]) -> list[str]:
    return [p.field for p in problems]


def test_a_flux_job_with_its_three_components_passes() -> None:
    base = _model(fm_type=FmType.FLUX1)
    assert component_problems(FmType.FLUX1, base, _flux_components(), OWNER) == []


def test_each_missing_flux_component_is_named_with_what_to_upload() -> None:
    components = _flux_components()
    del components[ComponentRole.T5XXL]
    (problem,) = component_problems(FmType.FLUX1, _model(fm_type=FmType.FLUX1), components, OWNER)
    assert problem.field == "components.t5xxl"
    assert (
        "FLUX.1 jobs need the T5-XXL text encoder" in problem.problem and "component t5xxl" in problem.problem
    )


def test_a_component_the_family_does_not_take_is_refused() -> None:
    clip_g = _model(id="g", fm_type=FmType.SD35, component=ComponentRole.CLIP_G)
    problems = component_problems(FmType.FLUX1, _model(), _flux_components(clip_g=clip_g), OWNER)
    assert _fields(problems) == ["components.clip_g"]
    sd15 = component_problems(FmType.SD15, _model(), {ComponentRole.AE: clip_g}, OWNER)
    assert _fields(sd15) == ["components.ae"] and "everything is in the checkpoint" in sd15[0].problem


@pytest.mark.parametrize(
    ("record", "says"),
    [
        (None, "does not name one of your models"),
        (_model(owner="someone-else", component=ComponentRole.T5XXL), "does not name one of your models"),
        (_model(status=ResourceStatus.UPLOADING, component=ComponentRole.T5XXL), "not ready"),
        (_model(component=ComponentRole.CLIP_L, fm_type=FmType.FLUX1), "must be a t5xxl component"),
        (_model(), "must be a t5xxl component; model m1 is a checkpoint"),
        (_model(component=ComponentRole.T5XXL, fm_type=FmType.SD15), "was uploaded for sd15"),
    ],
)
def test_a_wrong_component_model_is_refused(record: ModelRecord | None, says: str) -> None:
    problems = component_problems(FmType.FLUX1, _model(), _flux_components(t5xxl=record), OWNER)
    assert _fields(problems) == ["components.t5xxl"] and says in problems[0].problem


def test_clip_l_and_t5xxl_uploaded_for_flux_serve_sd35_jobs() -> None:
    shared = {
        ComponentRole.CLIP_L: _model(id="l", fm_type=FmType.FLUX1, component=ComponentRole.CLIP_L),
        ComponentRole.T5XXL: _model(id="t", fm_type=FmType.FLUX1, component=ComponentRole.T5XXL),
        ComponentRole.CLIP_G: _model(id="g", fm_type=FmType.SD35, component=ComponentRole.CLIP_G),
    }
    assert component_problems(FmType.SD35, _model(fm_type=FmType.SD35), shared, OWNER) == []


def test_sd35_needs_only_the_text_encoders_its_checkpoint_lacks() -> None:
    carries_all = _model(fm_type=FmType.SD35, included_components=list(ComponentRole)[1:])
    assert component_problems(FmType.SD35, carries_all, {}, OWNER) == []
    carries_clips = _model(
        fm_type=FmType.SD35, included_components=[ComponentRole.CLIP_L, ComponentRole.CLIP_G]
    )
    problems = component_problems(FmType.SD35, carries_clips, {}, OWNER)
    assert _fields(problems) == ["components.t5xxl"]
    assert "the base checkpoint does not include it" in problems[0].problem


def test_a_component_is_not_a_base_model() -> None:
    (problem,) = base_model_problems(
        _model(component=ComponentRole.T5XXL, fm_type=FmType.FLUX1), OWNER, FmType.FLUX1
    )
    assert problem.field == "base_model_id" and "components.t5xxl" in problem.problem


def test_host_memory_must_hold_the_model_files() -> None:
    flux_dev_and_t5 = int(34 * 1e9)  # flux1-dev (23.8 GB) + t5xxl_fp16 (9.8 GB) + the rest
    (problem,) = host_memory_problems("ml.g5.2xlarge", FmType.FLUX1, flux_dev_and_t5)
    assert problem.field == "instance_type"
    assert "ml.g5.2xlarge has 32 GiB of host memory" in problem.problem and "ml.g5.4xlarge" in problem.problem
    assert "ml.g5.xlarge" not in problem.problem.split("fit:")[1]
    assert host_memory_problems("ml.g5.4xlarge", FmType.FLUX1, flux_dev_and_t5) == []
    fp8_files = int(17 * 1e9)  # flux1-dev fp8 + t5xxl fp8
    assert host_memory_problems("ml.g5.2xlarge", FmType.FLUX1, fp8_files) == []


def test_the_family_floor_applies_whatever_the_files() -> None:
    (problem,) = host_memory_problems("ml.g5.xlarge", FmType.FLUX1, 1000)
    assert "needs 32 GiB" in problem.problem
    assert host_memory_problems("ml.g4dn.xlarge", FmType.SD15, 2 * 1024**3) == []
