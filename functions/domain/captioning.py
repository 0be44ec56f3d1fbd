"""Captioning rules: how generated captions merge with existing ones, the trigger word, WD14 tag
selection, the caption cache key, and the captions job's plan and cost.

Plain Python: the API validates a request with these rules and the container applies them, so a
caption is built the same way wherever it is produced.

WD14 tag selection follows sd-scripts v0.10.1 ``finetune/tag_images_by_wd14_tagger.py`` (kohya-ss/
sd-scripts, tag v0.10.1): the model's outputs are in the order of ``selected_tags.csv``; category
9 rows are ratings (the first four outputs, one picked by argmax), category 0 general tags and
category 4 character tags, each kept when its probability is >= its threshold (``--thresh``
default 0.35 for both); ``--undesired_tags`` are dropped; ``--character_tags_first``,
``--use_rating_tags`` (rating first) / ``--use_rating_tags_as_last_tag``, ``--always_first_tags``
and ``--remove_underscore`` (only for tags longer than three characters, so kaomoji such as
``^_^`` survive) behave as there; the separator is ``--caption_separator``'s default ``", "``.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from functions.domain.catalog import ESTIMATED_STARTUP_SECONDS, INSTANCE_TYPES, InstanceType
from functions.domain.kohya_params import FieldProblem

CAPTION_SEPARATOR = ", "  # sd-scripts' --caption_separator default
DEFAULT_TAG_THRESHOLD = 0.35  # sd-scripts' --thresh default (general and character alike)
WD14_RATING_CATEGORY, WD14_GENERAL_CATEGORY, WD14_CHARACTER_CATEGORY = "9", "0", "4"
WD14_IMAGE_SIZE = 448  # sd-scripts' IMAGE_SIZE ("from wd14 tagger"); the model's input says so too
MAX_TRIGGER_WORD_LENGTH = 64
MAX_EXCLUDED_TAGS = 200
_TRIGGER_WORD = re.compile(r"^[^,\n\r\t]+$")

# The captions job runs on the catalogue's smallest GPU instance: a WD14 ConvNeXt tagger and a BLIP
# base captioner need ~2 GB of GPU memory, and a T4 is the cheapest GPU SageMaker trains on.
CAPTIONING_INSTANCE_TYPE = "ml.g4dn.xlarge"
# Rough throughput on that instance (model runs, per image), for estimates only: batch-1 ONNX
# tagging at 448 px and a short greedy BLIP-base generation. Cache hits cost no model time.
TAGGER_SECONDS_PER_IMAGE = 0.1
CAPTIONER_SECONDS_PER_IMAGE = 0.5


class CaptionMode(StrEnum):
    """What happens to an image's existing caption (its ``.txt``)."""

    MISSING = "missing"  # caption only images without one (or with an empty one); keep the rest
    OVERWRITE = "overwrite"  # replace every caption
    PREPEND = "prepend"  # generated text, then the existing caption
    APPEND = "append"  # the existing caption, then the generated text


class TaggerSettings(BaseModel):
    """The WD14 options the API accepts (sd-scripts' names and defaults, see the module doc)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt option is refused, not silently ignored

    general_threshold: float = Field(default=DEFAULT_TAG_THRESHOLD, gt=0, le=1)
    character_threshold: float = Field(default=DEFAULT_TAG_THRESHOLD, gt=0, le=1)
    excluded_tags: list[str] = Field(default_factory=list, max_length=MAX_EXCLUDED_TAGS)
    character_tags_first: bool = False
    rating: str = Field(
        default="none", pattern="^(none|first|last)$", description="where the rating tag goes, if at all"
    )
    always_first_tags: list[str] = Field(default_factory=list, max_length=MAX_EXCLUDED_TAGS)
    remove_underscore: bool = True


@dataclass(frozen=True)
class TagList:
    """``selected_tags.csv`` split by category, in output order."""

    rating: tuple[str, ...]
    general: tuple[str, ...]
    character: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.rating) + len(self.general) + len(self.character)


def parse_tag_csv(text: str) -> TagList:
    """The tag list of a WD14 model (header ``tag_id,name,category,count``, as sd-scripts asserts).

    Rows must come ratings first, then general, then character tags: the model's outputs follow
    the file's order and sd-scripts indexes them that way.
    """
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0][:3] != ["tag_id", "name", "category"]:
        raise ValueError(f"unexpected tag list header: {rows[0] if rows else '(empty)'}")
    body = [row for row in rows[1:] if row]
    order = {WD14_RATING_CATEGORY: 0, WD14_GENERAL_CATEGORY: 1, WD14_CHARACTER_CATEGORY: 2}
    ranks = [order.get(row[2], -1) for row in body]
    if -1 in ranks or ranks != sorted(ranks):
        raise ValueError("tag list must hold ratings (9), then general (0), then character (4) tags")
    return TagList(
        rating=tuple(r[1] for r in body if r[2] == WD14_RATING_CATEGORY),
        general=tuple(r[1] for r in body if r[2] == WD14_GENERAL_CATEGORY),
        character=tuple(r[1] for r in body if r[2] == WD14_CHARACTER_CATEGORY),
    )


def _display(tag: str, remove_underscore: bool) -> str:
    return tag.replace("_", " ") if remove_underscore and len(tag) > 3 else tag


def select_tags(probabilities: Sequence[float], tags: TagList, settings: TaggerSettings) -> list[str]:
    """The tags of one image from the model's output row, ordered as sd-scripts orders them."""
    if len(probabilities) != tags.size:
        raise ValueError(f"the model gave {len(probabilities)} outputs for {tags.size} tags")
    excluded = {t.strip() for t in settings.excluded_tags if t.strip()}

    def shown(tag: str) -> str:
        return _display(tag, settings.remove_underscore)

    n_rating, n_general = len(tags.rating), len(tags.general)
    combined: list[str] = []
    for i, p in enumerate(probabilities[n_rating : n_rating + n_general]):
        name = shown(tags.general[i])
        if p >= settings.general_threshold and name not in excluded:
            combined.append(name)
    for i, p in enumerate(probabilities[n_rating + n_general :]):
        name = shown(tags.character[i])
        if p >= settings.character_threshold and name not in excluded:
            # sd-scripts inserts each character tag at the front in turn (so in reverse order)
            combined.insert(0, name) if settings.character_tags_first else combined.append(name)
    if settings.rating != "none" and n_rating:
        ratings = probabilities[:n_rating]
        rating = shown(tags.rating[max(range(n_rating), key=lambda i: ratings[i])])
        if rating not in excluded:
            combined.insert(0, rating) if settings.rating == "first" else combined.append(rating)
    for tag in settings.always_first_tags:
        if tag in combined:
            combined.remove(tag)
            combined.insert(0, tag)
    return combined


def caption_parts(text: str) -> list[str]:
    """A caption's comma-separated parts, stripped, empty ones dropped."""
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


def _join_unique(parts: Sequence[str]) -> str:
    seen: set[str] = set()
    kept = [p for p in parts if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]
    return CAPTION_SEPARATOR.join(kept)


def needs_generation(existing: str | None, mode: CaptionMode) -> bool:
    """Whether an image needs a generated caption at all (``missing`` keeps captioned images)."""
    return mode is not CaptionMode.MISSING or not (existing and existing.strip())


def merge_caption(
    existing: str | None, generated: str | None, mode: CaptionMode, trigger_word: str | None = None
) -> str:
    """The new caption of one image.

    Parts repeated by the merge are kept once (as sd-scripts' ``--append_tags`` does). The trigger
    word, when given, is always the first part and appears once, so ``keep_tokens=1`` keeps it in
    place when sd-scripts shuffles captions.
    """
    old = caption_parts(existing or "")
    new = caption_parts(generated or "")
    if mode is CaptionMode.MISSING:
        parts = old or new
    elif mode is CaptionMode.OVERWRITE:
        parts = new
    elif mode is CaptionMode.PREPEND:
        parts = new + old
    else:
        parts = old + new
    if trigger_word:
        word = trigger_word.strip()
        parts = [word, *(p for p in parts if p != word)]
    return _join_unique(parts)


def trigger_word_problems(trigger_word: str | None, field: str = "trigger_word") -> list[FieldProblem]:
    """A trigger word must be one caption part: no comma or line break, at most 64 characters."""
    if trigger_word is None:
        return []
    word = trigger_word.strip()
    if not word:
        return [FieldProblem(field, "must not be empty or blank")]
    if len(word) > MAX_TRIGGER_WORD_LENGTH:
        return [FieldProblem(field, f"must be at most {MAX_TRIGGER_WORD_LENGTH} characters")]
    if not _TRIGGER_WORD.match(word):
        return [FieldProblem(field, "must not contain commas, tabs or line breaks (it is one caption part)")]
    return []


def caption_cache_key(image_sha256: str, model_id: str) -> str:
    """Where a generated caption is cached: the image's content hash and the model's pinned id.

    A model id names a model and its revision (e.g. ``SmilingWolf/wd-v1-4-convnext-tagger-v2@<rev>``
    plus its settings digest), so a new revision or different thresholds never reuse old captions.
    """
    if not re.fullmatch(r"[0-9a-f]{64}", image_sha256):
        raise ValueError("image_sha256 must be 64 lowercase hex digits")
    safe_model = re.sub(r"[^A-Za-z0-9._-]", "_", model_id)
    return f"{safe_model}/{image_sha256}.txt"


class CaptioningPlan(BaseModel):
    """What a captions job is expected to take and cost, before it runs (an estimate)."""

    images: int
    instance_type: str
    estimated_seconds: int
    estimated_cost_usd: float
    price_per_hour_usd: float


def plan_captioning(
    *,
    images: int,
    use_tagger: bool,
    use_captioner: bool,
    instance: InstanceType | None = None,
    price_per_hour: float | None = None,
) -> CaptioningPlan:
    """Seconds and dollars for captioning ``images`` images (the worst case: no cache hit)."""
    chosen = instance or INSTANCE_TYPES[CAPTIONING_INSTANCE_TYPE]
    per_image = TAGGER_SECONDS_PER_IMAGE * use_tagger + CAPTIONER_SECONDS_PER_IMAGE * use_captioner
    seconds = ESTIMATED_STARTUP_SECONDS + math.ceil(images * per_image)
    price = chosen.price_per_hour_usd if price_per_hour is None else price_per_hour
    return CaptioningPlan(
        images=images,
        instance_type=chosen.name,
        estimated_seconds=seconds,
        estimated_cost_usd=round(seconds / 3600 * price, 4),
        price_per_hour_usd=price,
    )


# --- The container's side of a captions job (``job.json`` in the ``job`` channel, as for training) ---

CAPTIONING_JOB_KIND = "captioning"
CACHE_CHANNEL = "cache"  # the S3 cache prefix, copied in by SageMaker (read-only for the container)
CAPTIONED_DATASET_FOLDER = "dataset"  # inside /opt/ml/model: the new dataset, same layout
NEW_CACHE_FOLDER = "cache"  # inside /opt/ml/model: captions computed by this job, by cache key
CAPTIONING_SUMMARY_FILENAME = "captions-summary.json"


class CaptioningJobSpec(BaseModel):
    """What the control plane tells the container for a captions job.

    ``kind`` tells the entrypoint which mode to run; a training spec has no ``kind``.
    At least one of the tagger and the captioner is used.
    """

    kind: str = Field(default=CAPTIONING_JOB_KIND, pattern=f"^{CAPTIONING_JOB_KIND}$")
    job_id: str
    mode: CaptionMode = CaptionMode.MISSING
    trigger_word: str | None = None
    use_tagger: bool = True
    use_captioner: bool = False
    tagger: TaggerSettings = Field(default_factory=TaggerSettings)
    max_caption_tokens: int = Field(default=40, ge=4, le=120)

    def to_json(self) -> str:
        return self.model_dump_json()


class ImageFailure(BaseModel):
    path: str
    reason: str


class CaptioningSummary(BaseModel):
    """``captions-summary.json``: what the job did, image by image counts and failures."""

    job_id: str
    images: int
    captioned: int = Field(description="images whose caption was generated or merged")
    kept: int = Field(description="images left as they were (mode 'missing', already captioned)")
    cache_hits: int = Field(description="model outputs served from the caption cache")
    model_runs: int = Field(description="model outputs computed by running a model")
    models: list[str] = Field(default_factory=list, description="model ids used (cache keys)")
    failures: list[ImageFailure] = Field(default_factory=list)
    duration_seconds: float
