"""Targeted silencing of the third-party noise the demo would otherwise print.

Each filter drops one known message at the logger that emits it, so every other warning of
those libraries still shows:

- transformers (``transformers.utils.import_utils``): "`CLIPImageProcessor` requires torchvision
  (not installed); falling back to `...Pil`": the venv leaves torchvision out on purpose
  (Makefile: ``--no-deps`` for open-clip-torch) and the PIL processors are what we want.
- diffusers (``diffusers.models.modeling_utils``): "There are modules in X that should be kept in
  float32: []" from ``ModelMixin.to(dtype)`` when the list of such modules is *empty*: nothing
  is kept in float32, so the advice does not apply.
- progress bars: diffusers' denoising loop and transformers' "Loading weights" tqdm bars, turned
  off with each library's own switch (``disable_progress_bar``); the demo prints its own progress.
"""

from __future__ import annotations

import logging
import re

NOISE: dict[str, re.Pattern[str]] = {
    "transformers.utils.import_utils": re.compile(r"requires torchvision \(not installed\); falling back to"),
    "diffusers.models.modeling_utils": re.compile(r"that should be kept in float32: \[\]"),
}


class DropMessages(logging.Filter):
    """Drops the records whose message matches ``pattern``; lets every other record through."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def silence_known_noise() -> None:
    """Install the message filters (before the libraries are imported is fine: loggers are named)."""
    for name, pattern in NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessages) and f.pattern is pattern for f in logger.filters):
            logger.addFilter(DropMessages(pattern))


def disable_library_progress_bars() -> None:
    """Turn off diffusers' and transformers' tqdm bars (imports both: call it where they are used)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
