"""POST /datasets/{id}/captions: caption a dataset's images into a new dataset."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from functions.api.schemas.common import DisplayName
from functions.domain.captioning import CaptionMode, TaggerSettings
from functions.domain.json_types import JsonBool, JsonRequestModel
from functions.domain.trigger_words import TriggerWord


class CaptionDatasetRequest(JsonRequestModel):
    """What to caption with and how generated captions merge with existing ones.

    The source dataset never changes: the captions land in a new dataset, checked as an upload is.
    """

    # At least one model: use_tagger (true unless sent false), or use_captioner sent true. In the
    # schema too, so a client (and schemathesis' positive-data check) knows it (request_problems
    # says it in words).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"properties": {"use_tagger": {"const": True}}},
                {"required": ["use_captioner"], "properties": {"use_captioner": {"const": True}}},
            ]
        },
    )

    name: DisplayName
    mode: CaptionMode = Field(
        CaptionMode.MISSING,
        description="missing: caption only images without one; overwrite; prepend or append to existing",
    )
    trigger_word: TriggerWord | None = Field(None, description="put first in every caption (one part)")
    use_tagger: JsonBool = Field(True, description="WD14 tags (SmilingWolf/wd-v1-4-convnext-tagger-v2)")
    use_captioner: JsonBool = Field(
        False, description="a BLIP sentence (Salesforce/blip-image-captioning-base)"
    )
    tagger: TaggerSettings = Field(
        default_factory=TaggerSettings, description="WD14 thresholds, excluded tags and tag order"
    )
    max_caption_tokens: int = Field(
        40, ge=4, le=120, description="the captioner's longest sentence, in tokens"
    )
