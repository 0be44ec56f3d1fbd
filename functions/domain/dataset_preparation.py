"""What a dataset crop asks for: target size, crop mode, resize policy (no image code here).

Kept apart from ``image_preparation`` (which needs Pillow) so the API function, which validates
crop requests but never touches pixels, does not import Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from functions.domain.families import FAMILIES

MIN_SIDE, MAX_SIDE = 64, 4096
SIDE_MULTIPLE = 8  # latent space is 1/8 of the pixels
NATIVE_SIDE = {f: spec.native_side for f, spec in FAMILIES.items()}  # the seed guide's recommendation


class CropMode(StrEnum):
    CENTER = "center"
    SMART = "smart"


@dataclass(frozen=True)
class CropSpec:
    width: int
    height: int
    mode: CropMode = CropMode.CENTER
    upscale: bool = False  # enlarge images smaller than the target (off: crop to the aspect only)


def side_problem(name: str, value: int) -> str | None:
    """Why a target side is unacceptable, or None."""
    if not MIN_SIDE <= value <= MAX_SIDE or value % SIDE_MULTIPLE:
        return f"{name} must be a multiple of {SIDE_MULTIPLE} between {MIN_SIDE} and {MAX_SIDE} (got {value})"
    return None


def output_name(filename: str) -> str:
    """The prepared file's name: the same stem (captions still pair), BMP becomes PNG."""
    stem, _, suffix = filename.rpartition(".")
    return f"{stem}.png" if suffix.lower() == "bmp" else filename
