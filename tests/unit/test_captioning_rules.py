"""Caption merging modes, the trigger word, WD14 tag selection (sd-scripts v0.10.1 semantics,
finetune/tag_images_by_wd14_tagger.py), the cache key and the captions job's plan."""

from __future__ import annotations

import pytest

from functions.domain.captioning import (
    CAPTIONING_INSTANCE_TYPE,
    CaptionMode,
    TaggerSettings,
    caption_cache_key,
    merge_caption,
    needs_generation,
    parse_tag_csv,
    plan_captioning,
    select_tags,
    trigger_word_problems,
)
from functions.domain.catalog import ESTIMATED_STARTUP_SECONDS, INSTANCE_TYPES

CSV = "tag_id,name,category,count\n" + "\n".join(
    [
        "0,general,9,1",
        "1,sensitive,9,1",
        "2,questionable,9,1",
        "3,explicit,9,1",
        "10,1girl,0,1",
        "11,red_background,0,1",
        "12,^_^,0,1",
        "13,solo,0,1",
        "20,hatsune_miku,4,1",
        "21,kirby_(series),4,1",
    ]
)
TAGS = parse_tag_csv(CSV)
#        ratings: general sens  quest expl | 1girl  red_bg ^_^  solo | miku kirby
PROBS = [0.1, 0.7, 0.1, 0.1, 0.9, 0.4, 0.36, 0.2, 0.8, 0.3]


@pytest.mark.parametrize(
    ("existing", "mode", "expected"),
    [
        (None, CaptionMode.MISSING, "a cat, sitting"),
        ("  \n", CaptionMode.MISSING, "a cat, sitting"),
        ("old words", CaptionMode.MISSING, "old words"),
        ("old words", CaptionMode.OVERWRITE, "a cat, sitting"),
        ("old words, sitting", CaptionMode.PREPEND, "a cat, sitting, old words"),
        ("old words, sitting", CaptionMode.APPEND, "old words, sitting, a cat"),
        (None, CaptionMode.APPEND, "a cat, sitting"),
    ],
)
def test_merge_modes(existing: str | None, mode: CaptionMode, expected: str) -> None:
    assert merge_caption(existing, "a cat, sitting", mode) == expected


@pytest.mark.parametrize("mode", list(CaptionMode))
@pytest.mark.parametrize("existing", [None, "", "sks, a dog", "a dog, sks", "a dog"])
def test_trigger_word_is_always_the_first_part_and_appears_once(
    existing: str | None, mode: CaptionMode
) -> None:
    caption = merge_caption(existing, "a photo, sks, outdoors", mode, trigger_word=" sks ")
    parts = caption.split(", ")
    assert parts[0] == "sks"
    assert parts.count("sks") == 1


def test_trigger_word_alone_when_nothing_else_is_known() -> None:
    assert merge_caption(None, "", CaptionMode.OVERWRITE, trigger_word="sks") == "sks"
    assert merge_caption(None, "", CaptionMode.OVERWRITE) == ""


def test_needs_generation_only_skips_captioned_images_in_missing_mode() -> None:
    assert not needs_generation("a dog", CaptionMode.MISSING)
    assert needs_generation(" ", CaptionMode.MISSING)
    assert needs_generation("a dog", CaptionMode.APPEND)


@pytest.mark.parametrize(
    ("word", "problem"),
    [
        ("", "must not be empty or blank"),
        ("a,b", "must not contain commas"),
        ("a\nb", "must not contain commas"),
        ("x" * 65, "at most 64"),
    ],
)
def test_bad_trigger_words_are_named(word: str, problem: str) -> None:
    (found,) = trigger_word_problems(word, "trigger_word")
    assert found.field == "trigger_word"
    assert problem in found.problem
    assert trigger_word_problems("sks person") == []
    assert trigger_word_problems(None) == []


def test_tags_over_their_thresholds_in_sd_scripts_order() -> None:
    # defaults: 0.35 for both categories; underscores become spaces except in 3-character tags
    assert select_tags(PROBS, TAGS, TaggerSettings()) == ["1girl", "red background", "^_^", "hatsune miku"]


def test_separate_general_and_character_thresholds() -> None:
    settings = TaggerSettings(general_threshold=0.5, character_threshold=0.25)
    assert select_tags(PROBS, TAGS, settings) == ["1girl", "hatsune miku", "kirby (series)"]


def test_excluded_tags_character_first_rating_and_always_first() -> None:
    settings = TaggerSettings(
        character_threshold=0.25,
        excluded_tags=["red background"],
        character_tags_first=True,
        rating="last",
        always_first_tags=["^_^"],
    )
    # character tags are each inserted at the front (reverse order), as sd-scripts does
    assert select_tags(PROBS, TAGS, settings) == [
        "^_^",
        "kirby (series)",
        "hatsune miku",
        "1girl",
        "sensitive",
    ]
    assert select_tags(PROBS, TAGS, TaggerSettings(rating="first"))[0] == "sensitive"


def test_underscores_kept_on_request() -> None:
    assert "red_background" in select_tags(PROBS, TAGS, TaggerSettings(remove_underscore=False))


def test_output_size_must_match_the_tag_list() -> None:
    with pytest.raises(ValueError, match="10 tags"):
        select_tags(PROBS[:-1], TAGS, TaggerSettings())


@pytest.mark.parametrize(
    "text",
    [
        "name,category\n",
        "tag_id,name,category,count\n0,a,0,1\n1,r,9,1\n",
        "tag_id,name,category,count\n0,a,7,1\n",
    ],
)
def test_malformed_tag_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_tag_csv(text)


def test_cache_key_names_image_content_and_model() -> None:
    sha = "ab" * 32
    assert caption_cache_key(sha, "SmilingWolf/wd-v1-4-convnext-tagger-v2@rev+abc") == (
        f"SmilingWolf_wd-v1-4-convnext-tagger-v2_rev_abc/{sha}.txt"
    )
    assert caption_cache_key(sha, "m@1") != caption_cache_key(sha, "m@2")
    with pytest.raises(ValueError):
        caption_cache_key("../../etc", "m")


def test_plan_prices_the_captioning_instance_from_the_catalogue() -> None:
    instance = INSTANCE_TYPES[CAPTIONING_INSTANCE_TYPE]
    plan = plan_captioning(images=100, use_tagger=True, use_captioner=True)
    assert plan.instance_type == CAPTIONING_INSTANCE_TYPE
    assert plan.estimated_seconds == ESTIMATED_STARTUP_SECONDS + 60
    assert plan.estimated_cost_usd == round(plan.estimated_seconds / 3600 * instance.price_per_hour_usd, 4)
    cheaper = plan_captioning(images=100, use_tagger=True, use_captioner=False, price_per_hour=0.5)
    assert cheaper.estimated_seconds < plan.estimated_seconds
    assert cheaper.price_per_hour_usd == 0.5
