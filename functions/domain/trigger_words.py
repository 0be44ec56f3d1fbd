"""Trigger words: the activation text a LoRA is trained on, placed first in every caption.

Owned here, imported by the API (validation), the service (``keep_tokens``) and the container
(caption rewriting at staging and the LoRA's metadata), so the rule is written once.

Why first, and why ``keep_tokens >= 1`` is enough (sd-scripts v0.10.1, commit ae72efb,
``library/train_util.py`` ``BaseDataset.process_caption``): when ``shuffle_caption``,
``token_warmup_step`` or ``caption_tag_dropout_rate`` is on, a caption is split on the
``caption_separator`` (``","``); the first ``keep_tokens`` pieces become ``fixed_tokens``, which are
neither shuffled nor tag-dropped, and are joined back first. With ``keep_tokens_separator`` present in
a caption, everything before it is fixed instead; the trigger word is at the very start, so it is
in that fixed part too. A trigger word therefore must not contain a comma: it would be two tokens,
and only the first would be guaranteed to stay first.

Whole-caption dropout (``caption_dropout_rate``) drops the trigger word with the caption: that is
sd-scripts' intended unconditional training, not a trigger that goes missing.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field

MAX_TRIGGER_WORD_LENGTH = 64
# Not blank, no comma, no C0/C1 control character (line breaks included). Invisible (Cf) and
# unassigned characters are refused too, by ``trigger_word_problem``: JSON Schema's portable regex
# dialect has no \p{...} classes to say so here.
TRIGGER_WORD_PATTERN = r"^[^,\x00-\x1F\x7F-\x9F]*[^,\s\x00-\x1F\x7F-\x9F][^,\x00-\x1F\x7F-\x9F]*$"
TRIGGER_WORD_DESCRIPTION = (
    "activation text placed first in every caption when the dataset is staged (an image without a "
    f"caption gets it alone) and kept first by keep_tokens; at most {MAX_TRIGGER_WORD_LENGTH} "
    "characters, no comma (sd-scripts splits captions into tokens on commas), no line break or "
    "control character; saved in the LoRA as modelspec.trigger_phrase"
)
# sd-scripts' caption_separator default (library/train_util.py, BaseSubset) and what we join with.
CAPTION_SEPARATOR = ","


def trigger_word_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable trigger word, or None."""
    if not value.strip():
        return "must not be blank"
    if len(value) > MAX_TRIGGER_WORD_LENGTH:
        return f"must be at most {MAX_TRIGGER_WORD_LENGTH} characters"
    if "," in value:
        return "must not contain a comma (sd-scripts would split it into two caption tokens)"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in value):
        return "must not contain line breaks, control, invisible or unassigned characters"
    return None


def clean_trigger_word(value: str) -> str:
    """The stored form (NFC, surrounding spaces removed); ValueError naming the problem otherwise.

    NFC, as display names are: the same word typed on two keyboards is one trigger word.
    """
    problem = trigger_word_problem(value)
    if problem:
        raise ValueError(problem)
    return unicodedata.normalize("NFC", value).strip()


def starts_with_trigger(caption: str, trigger_word: str) -> bool:
    """True when the caption's first comma-separated token already is the trigger word."""
    first = caption.split(CAPTION_SEPARATOR, 1)[0].strip()
    return first.casefold() == trigger_word.strip().casefold()


def caption_with_trigger(caption: str | None, trigger_word: str) -> str:
    """``caption`` with the trigger word as its first token, never doubled.

    No caption (or a blank one) gives the trigger word alone. Only the first line is considered,
    like sd-scripts without wildcards (``caption.split("\\n")[0]``), so the rewrite keeps one line.
    """
    trigger = trigger_word.strip()
    text = (caption or "").strip().split("\n")[0].strip()
    if not text:
        return trigger
    if starts_with_trigger(text, trigger):
        return text
    return f"{trigger}{CAPTION_SEPARATOR} {text}"


def keep_tokens_for_trigger(keep_tokens: int) -> int:
    """The ``keep_tokens`` a job with a trigger word runs with: at least the trigger's one token."""
    return max(keep_tokens, 1)


# The request field: the pattern and length are in the schema (for clients and API Gateway's
# validator); the service checks them with ``clean_trigger_word`` so a refusal says why in words.
TriggerWord = Annotated[
    str,
    Field(
        description=TRIGGER_WORD_DESCRIPTION,
        json_schema_extra={
            "minLength": 1,
            "maxLength": MAX_TRIGGER_WORD_LENGTH,
            "pattern": TRIGGER_WORD_PATTERN,
        },
    ),
    AfterValidator(clean_trigger_word),
]
