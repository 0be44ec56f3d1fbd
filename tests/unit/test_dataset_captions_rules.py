"""The captions use case's own rules, without AWS: request validation, the runtime limit, the
container's spec and the launch (channels, instance, cost, no spot)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from functions.api.schemas.captions import CaptionDatasetRequest
from functions.domain.captioning import CAPTIONING_INSTANCE_TYPE, CaptionMode, plan_captioning
from functions.domain.catalog import ResourceStatus
from functions.domain.records import CaptionsJob, DatasetRecord
from functions.domain.storage_layout import caption_cache_prefix, dataset_prefix
from functions.services.dataset_captions import (
    MIN_CAPTIONING_RUNTIME_SECONDS,
    job_spec,
    launch_spec,
    request_problems,
    runtime_limit,
)
from functions.settings import Settings

OWNER = "arn:aws:iam::1:user/alice"


def _ctx(**settings: Any) -> Any:
    env = {"BUCKET_NAME": "b", "JOB_NAME_PREFIX": "lora", "MAX_RUNTIME_SECONDS": "86400"}
    return SimpleNamespace(settings=Settings.from_env(env | settings))


def _record(**job: Any) -> DatasetRecord:
    fields: dict[str, Any] = {
        "source_dataset_id": "src",
        "sagemaker_job_name": "lora-new",
        "mode": CaptionMode.MISSING,
        "trigger_word": "sks",
        "use_tagger": True,
        "use_captioner": False,
        "max_caption_tokens": 40,
        "plan": plan_captioning(images=100, use_tagger=True, use_captioner=False),
    }
    return DatasetRecord(
        id="new",
        owner=OWNER,
        name="n",
        status=ResourceStatus.PROCESSING,
        file_count=1,
        total_bytes=1,
        captions=CaptionsJob.model_validate(fields | job),
        created_at="2026-01-01T00:00:00.000000Z",
        updated_at="2026-01-01T00:00:00.000000Z",
    )


def test_a_request_needs_a_model_and_a_one_part_trigger_word() -> None:
    none = CaptionDatasetRequest(name="x", use_tagger=False, use_captioner=False)
    assert [p.field for p in request_problems(none)] == ["use_tagger"]
    with pytest.raises(ValidationError, match="trigger_word"):  # the request model's own check
        CaptionDatasetRequest(name="x", trigger_word="a, b")
    with pytest.raises(ValidationError, match="treshold"):
        CaptionDatasetRequest.model_validate({"name": "x", "tagger": {"treshold": 0.5}})
    assert CaptionDatasetRequest(name="x", trigger_word=" sks ").trigger_word == "sks"
    assert request_problems(CaptionDatasetRequest(name="x", use_tagger=False, use_captioner=True)) == []


def test_the_runtime_limit_is_generous_but_within_the_deployment() -> None:
    assert runtime_limit(_ctx(), 10) == MIN_CAPTIONING_RUNTIME_SECONDS
    assert runtime_limit(_ctx(), 10_000) == 40_000
    assert runtime_limit(_ctx(MAX_RUNTIME_SECONDS="3600"), 10_000) == 3600


def test_the_spec_carries_the_options_and_the_default_tagger() -> None:
    spec = job_spec(_record(tagger=None, use_tagger=False, use_captioner=True))
    assert spec.kind == "captioning" and spec.job_id == "new" and spec.trigger_word == "sks"
    assert spec.use_captioner and not spec.use_tagger and spec.tagger.general_threshold == 0.35


def test_the_launch_reads_the_source_and_the_cache_only_when_there_is_one() -> None:
    record = _record()
    without = launch_spec(_ctx(), record, with_cache=False)
    assert [c.name for c in without.channels] == ["dataset", "job"]
    assert without.channels[0].s3_uri == f"s3://b/{dataset_prefix(OWNER, 'src')}"
    assert without.instance_type == CAPTIONING_INSTANCE_TYPE and not without.use_spot
    assert without.job_name == "lora-new" and without.max_wait_seconds is None
    with_cache = launch_spec(_ctx(), record, with_cache=True)
    assert with_cache.channels[-1].name == "cache"
    assert with_cache.channels[-1].s3_uri == f"s3://b/{caption_cache_prefix(OWNER)}"
