"""The trigger-word rule, without any emulator (functions.domain.trigger_words)."""

from __future__ import annotations

import pytest

from functions.domain.trigger_words import (
    caption_with_trigger,
    keep_tokens_for_trigger,
    trigger_word_problem,
)


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        (None, "sks"),
        ("", "sks"),
        ("   \n", "sks"),
        ("a cat", "sks, a cat"),
        ("sks, a cat", "sks, a cat"),
        ("SKS , a cat", "SKS , a cat"),  # already first (case and spaces aside): not doubled
        ("sks", "sks"),
        ("sksx, a cat", "sks, sksx, a cat"),  # a longer first token is another token
        ("a cat, sks", "sks, a cat, sks"),  # present but not first: it must lead
        ("a cat\nsecond line", "sks, a cat"),  # sd-scripts reads the first line only
    ],
)
def test_the_trigger_word_leads_every_caption_once(caption: str | None, expected: str) -> None:
    assert caption_with_trigger(caption, "sks") == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("", "blank"), (" ", "blank"), ("a,b", "comma"), (",", "comma"), ("a\nb", "line breaks"),
     ("a\u200bb", "invisible"), ("x" * 65, "at most 64")],
)  # fmt: skip
def test_unacceptable_trigger_words(value: str, fragment: str) -> None:
    problem = trigger_word_problem(value)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize("value", ["sks", "ohwx person", "x" * 64, "猫"])
def test_acceptable_trigger_words(value: str) -> None:
    assert trigger_word_problem(value) is None


def test_keep_tokens_is_at_least_one() -> None:
    assert [keep_tokens_for_trigger(n) for n in (0, 1, 4)] == [1, 1, 4]
