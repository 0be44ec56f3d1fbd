"""``loractl datasets caption``: its flags become a POST /datasets/{id}/captions body the API
accepts, and the dataset view shows the job."""

from __future__ import annotations

from functions.api.schemas.captions import CaptionDatasetRequest
from loractl import views
from loractl.commands import caption_request
from loractl.main import build_parser


def _body(*flags: str) -> dict[str, object]:
    args = build_parser().parse_args(["datasets", "caption", "01ARZ3NDEKTSV4RRFFQ69G5FAV", *flags])
    return caption_request(args)


def test_defaults_leave_the_service_defaults_in_place() -> None:
    body = _body()
    assert body == {"mode": "missing", "use_tagger": True, "use_captioner": False}
    CaptionDatasetRequest.model_validate({"name": "x", **body})


def test_every_flag_reaches_the_request_and_the_request_validates() -> None:
    body = _body(
        "--mode", "prepend", "--trigger-word", "sks cat", "--captioner", "--general-threshold", "0.5",
        "--character-threshold", "0.8", "--exclude-tags", "solo, 1girl ,", "--character-tags-first",
        "--rating", "last", "--max-caption-tokens", "30",
    )  # fmt: skip
    request = CaptionDatasetRequest.model_validate({"name": "x", **body})
    assert request.mode == "prepend" and request.trigger_word == "sks cat" and request.use_captioner
    assert request.tagger.general_threshold == 0.5 and request.tagger.character_threshold == 0.8
    assert request.tagger.excluded_tags == ["solo", "1girl"] and request.tagger.rating == "last"
    assert request.tagger.character_tags_first and request.max_caption_tokens == 30


def test_no_tagger_asks_for_the_captioner_only() -> None:
    assert _body("--no-tagger", "--captioner")["use_tagger"] is False


def test_the_dataset_view_shows_the_captions_job_and_its_failures() -> None:
    dataset = {
        "id": "d",
        "status": "ready",
        "manifest": {"image_count": 2, "captioned_count": 1, "missing_captions": 1},
        "captions": {
            "source_dataset_id": "s",
            "state": "Completed",
            "mode": "missing",
            "plan": {"instance_type": "ml.g4dn.xlarge", "estimated_seconds": 200, "estimated_cost_usd": 0.04},
            "summary": {"captioned": 1, "kept": 0, "cache_hits": 2, "model_runs": 0,
                        "failures": [{"path": "1_c/b.png", "reason": "cannot be read"}]},
        },
    }  # fmt: skip
    sections = dict(views.dataset_sections(dataset))
    job = dict(sections["captions job"])
    assert job["cache hits"] == 2 and job["model runs"] == 0 and job["instance"] == "ml.g4dn.xlarge"
    assert sections["images not captioned"] == [("1_c/b.png", "cannot be read")]
    assert dict(sections[f"dataset {dataset['id']}"])["missing captions"] == 1
