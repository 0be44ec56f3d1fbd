"""POST /datasets/{id}/captions: caption a dataset's images into a new dataset."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from functions.api.schemas.common import DisplayName
from functions.domain.captioning import MAX_TRIGGER_WORD_LENGTH, CaptionMode, TaggerSettings
from functions.domain.json_types import JsonBool, JsonRequestModel


class CaptionDatasetRequest(JsonRequestModel):
    """What to caption with and how generated captions merge with existing ones.

    The source dataset never changes: the captions land in a new dataset, checked as an upload is.
    """

    model_config = ConfigDict(extra="forbid")

    name: DisplayName
    mode: CaptionMode = Field(
        CaptionMode.MISSING,
        description="missing: caption only images without one; overwrite; prepend or append to existing",
    )
    trigger_word: str | None = Field(
        None,
        max_length=MAX_TRIGGER_WORD_LENGTH,
        description="put first in every caption (one part: no comma or line break)",
    )
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
