"""Training plan, page tokens, byte-level file checks, SageMaker status mapping, request guards."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.api.errors import field_name
from functions.api.request_guards import MAX_BODY_BYTES, MAX_JSON_DEPTH, check_body, json_depth
from functions.domain.catalog import INSTANCE_TYPES, FmType
from functions.domain.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from functions.domain.file_checks import (
    looks_like_image,
    looks_like_text,
    parse_safetensors_header,
    safetensors_header_length,
)
from functions.domain.ids import is_valid_id, new_id
from functions.domain.page_tokens import decode_token, encode_token
from functions.domain.planning import plan_training
from functions.domain.sagemaker_states import job_status_for, stop_reason
from functions.domain.statuses import JobStatus

G5 = INSTANCE_TYPES["ml.g5.2xlarge"]


class TestPlan:
    def test_steps_follow_sd_scripts(self) -> None:
        plan = plan_training(
            weighted_images=200,
            config={"train_batch_size": 2, "max_train_epochs": 10},
            fm_type=FmType.SD15,
            instance=G5,
        )
        assert plan.steps_per_epoch == 100 and plan.total_steps == 1000 and plan.epochs == 10

    def test_gradient_accumulation_divides_optimizer_steps(self) -> None:
        plan = plan_training(
            weighted_images=200,
            config={"gradient_accumulation_steps": 4, "max_train_epochs": 1},
            fm_type=FmType.SD15,
            instance=G5,
        )
        assert plan.total_steps == 50

    def test_max_train_steps_when_no_epochs(self) -> None:
        plan = plan_training(
            weighted_images=30, config={"max_train_steps": 100}, fm_type=FmType.SD15, instance=G5
        )
        assert plan.total_steps == 100 and plan.epochs == 4

    def test_cost_scales_with_price_and_spot_is_cheaper(self) -> None:
        base = plan_training(
            weighted_images=200, config={"max_train_epochs": 10}, fm_type=FmType.SDXL, instance=G5
        )
        dearer = plan_training(
            weighted_images=200,
            config={"max_train_epochs": 10},
            fm_type=FmType.SDXL,
            instance=G5,
            price_per_hour=G5.price_per_hour_usd * 2,
        )
        assert dearer.estimated_cost_usd == pytest.approx(base.estimated_cost_usd * 2, rel=1e-3)
        assert 0 < base.estimated_spot_cost_usd < base.estimated_cost_usd
        assert base.estimated_seconds > 2000 / G5.steps_per_second[FmType.SDXL]

    def test_higher_resolution_takes_longer(self) -> None:
        low = plan_training(
            weighted_images=100,
            config={"max_train_epochs": 1, "resolution": "512"},
            fm_type=FmType.SD15,
            instance=G5,
        )
        high = plan_training(
            weighted_images=100,
            config={"max_train_epochs": 1, "resolution": "768,768"},
            fm_type=FmType.SD15,
            instance=G5,
        )
        assert high.estimated_seconds > low.estimated_seconds


class TestPageTokens:
    SECRET = b"s3cret"

    def test_round_trip(self) -> None:
        token = encode_token(self.SECRET, "alice", "q", {"pk": "JOB#1"})
        assert decode_token(self.SECRET, "alice", "q", token) == {"pk": "JOB#1"}

    @pytest.mark.parametrize(("owner", "query"), [("bob", "q"), ("alice", "other-filter")])
    def test_token_is_bound_to_caller_and_query(self, owner: str, query: str) -> None:
        token = encode_token(self.SECRET, "alice", "q", {"pk": "JOB#1"})
        with pytest.raises(InvalidInput, match="next_token"):
            decode_token(self.SECRET, owner, query, token)

    def test_forged_tokens_are_refused(self) -> None:
        token = encode_token(self.SECRET, "alice", "q", {"pk": "JOB#1"})
        body, sig = token.split(".")
        for forged in (
            token + "x",
            f"{body[:-2]}AA.{sig}",
            "garbage",
            encode_token(b"other", "alice", "q", {"pk": "x"}),
        ):
            with pytest.raises(InvalidInput):
                decode_token(self.SECRET, "alice", "q", forged)


class TestFileChecks:
    @staticmethod
    def _safetensors(header: dict[str, object], data: int) -> bytes:
        raw = json.dumps(header).encode()
        return struct.pack("<Q", len(raw)) + raw + bytes(data)

    def test_valid_safetensors(self) -> None:
        blob = self._safetensors({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}, 4)
        length = safetensors_header_length(blob[:8])
        assert "w" in parse_safetensors_header(blob[8 : 8 + length], len(blob))

    def test_truncated_and_garbage_files_are_refused(self) -> None:
        blob = self._safetensors({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 400]}}, 4)
        with pytest.raises(ValueError, match="truncated"):
            parse_safetensors_header(blob[8 : 8 + safetensors_header_length(blob[:8])], len(blob))
        with pytest.raises(ValueError):
            safetensors_header_length(b"PK\x03\x04....")

    @pytest.mark.parametrize(
        ("ext", "head", "ok"),
        [
            ("png", b"\x89PNG\r\n\x1a\nxxxx", True),
            ("PNG", b"GIF89a", False),
            ("jpg", b"\xff\xd8\xff\xe0", True),
            ("webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ", True),
            ("webp", b"RIFF\x00\x00\x00\x00WAVE", False),
            ("bmp", b"BMxxxx", True),
            ("png", b"MZ\x90\x00", False),
        ],
    )
    def test_image_magic_bytes(self, ext: str, head: bytes, ok: bool) -> None:
        assert looks_like_image(ext, head) is ok

    def test_captions_must_be_text(self) -> None:
        assert looks_like_text("a cat, 猫".encode())
        assert not looks_like_text(b"\x00\x01binary")


class TestSageMakerStates:
    @pytest.mark.parametrize(
        ("status", "secondary", "expected"),
        [
            ("InProgress", "Starting", JobStatus.STARTING),
            ("InProgress", "Downloading", JobStatus.STARTING),
            ("InProgress", "Training", JobStatus.TRAINING),
            ("InProgress", "Uploading", JobStatus.UPLOADING),
            ("InProgress", "SomethingNew", JobStatus.STARTING),
            ("Completed", "Completed", JobStatus.COMPLETED),
            ("Failed", "Failed", JobStatus.FAILED),
            ("Stopping", "Stopping", JobStatus.STOPPING),
            ("Stopped", "MaxRuntimeExceeded", JobStatus.STOPPED),
            ("Weird", None, None),
        ],
    )
    def test_mapping(self, status: str, secondary: str | None, expected: JobStatus | None) -> None:
        assert job_status_for(status, secondary) is expected

    def test_max_runtime_has_a_reason(self) -> None:
        assert "maximum runtime" in str(stop_reason("MaxRuntimeExceeded"))


class TestRequestGuards:
    def test_oversized_body(self) -> None:
        with pytest.raises(PayloadTooLarge):
            check_body({"body": "x" * (MAX_BODY_BYTES + 1)})

    def test_deep_nesting_is_refused_without_parsing(self) -> None:
        with pytest.raises(InvalidInput, match="nested"):
            check_body({"body": "[" * 100_000})
        assert json_depth('{"a": "[[[[[[[[[[[[[[[[[[[[[["}') == 1
        assert json_depth("[" * (MAX_JSON_DEPTH + 1)) > MAX_JSON_DEPTH

    def test_non_json_bodies(self) -> None:
        with pytest.raises(UnsupportedMediaType):
            check_body({"body": "a=b", "headers": {"Content-Type": "application/x-www-form-urlencoded"}})
        with pytest.raises(InvalidInput, match="not valid JSON"):
            check_body({"body": "{nope", "headers": {"content-type": "application/json"}})

    def test_error_locations_become_field_names(self) -> None:
        assert field_name(("body", "files", 3, "path")) == "files[3].path"
        assert field_name(("query", "limit")) == "limit"


@given(st.integers(min_value=0, max_value=2**48 - 1))
def test_ids_are_valid_and_sort_by_time(ms: int) -> None:
    first, later = new_id(ms), new_id(ms + 1)
    assert is_valid_id(first) and first < later
