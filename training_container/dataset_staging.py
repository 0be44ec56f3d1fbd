"""Stage 2: copy the dataset channel into a writable work folder and validate the Kohya layout.

SageMaker mounts channels read-only on some setups and sd-scripts writes ``.npz`` latent caches
next to the images, so training always reads a private copy. Validation reports every problem
found (not just the first), each naming the file, so a user fixes a dataset in one round trip.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from functions.domain.trigger_words import caption_with_trigger
from training_container.errors import JobFailure

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
CAPTION_EXTENSION = ".txt"
CONCEPT_FOLDER = re.compile(r"^(?P<repeats>[1-9]\d{0,3})_(?P<concept>\S.*)$")
MAX_REPORTED_PROBLEMS = 10


@dataclass(frozen=True)
class TrainingImage:
    path: Path
    caption: str


@dataclass(frozen=True)
class Concept:
    """One ``<repeats>_<concept>`` folder."""

    folder: Path
    name: str
    repeats: int
    images: tuple[TrainingImage, ...]


@dataclass(frozen=True)
class StagedDataset:
    root: Path
    concepts: tuple[Concept, ...]
    tag_frequency: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def image_count(self) -> int:
        return sum(len(concept.images) for concept in self.concepts)

    @property
    def images_with_repeats(self) -> int:
        """Images per epoch, as sd-scripts counts them (``ss_num_train_images``)."""
        return sum(len(concept.images) * concept.repeats for concept in self.concepts)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _check_image(path: Path) -> str | None:
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return f"{path.name}: not a readable image ({type(error).__name__})"
    return None


def _read_caption(image: Path, problems: list[str], trigger_word: str | None = None) -> str | None:
    """The image's caption; with a trigger word, rewritten (on disk too) to start with it.

    sd-scripts reads the ``.txt`` files itself, so the staged copy is what must change; an image
    without a caption gets the trigger word alone (see functions.domain.trigger_words).
    """
    caption_path = image.with_suffix(CAPTION_EXTENSION)
    if not caption_path.is_file() and trigger_word is None:
        problems.append(f"{image.parent.name}/{image.name}: missing caption {caption_path.name}")
        return None
    try:
        caption = caption_path.read_text(encoding="utf-8").strip() if caption_path.is_file() else ""
    except UnicodeDecodeError:
        problems.append(f"{image.parent.name}/{caption_path.name}: caption is not UTF-8 text")
        return None
    if trigger_word is not None:
        caption = caption_with_trigger(caption, trigger_word)
        caption_path.write_text(caption, encoding="utf-8")
    if not caption:
        problems.append(f"{image.parent.name}/{caption_path.name}: caption is empty")
        return None
    return caption


def _validate_concept(folder: Path, problems: list[str], trigger_word: str | None = None) -> Concept | None:
    match = CONCEPT_FOLDER.match(folder.name)
    if match is None:
        problems.append(f"{folder.name}: folder name must be <repeats>_<concept>, e.g. 10_mydog")
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file() and _visible(p))
    images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    image_stems = {p.stem for p in images}
    for orphan in (p for p in files if p.suffix == CAPTION_EXTENSION and p.stem not in image_stems):
        problems.append(f"{folder.name}/{orphan.name}: caption without an image")
    staged: list[TrainingImage] = []
    for image in images:
        image_problem = _check_image(image)
        if image_problem:
            problems.append(f"{folder.name}/{image_problem}")
        caption = _read_caption(image, problems, trigger_word)
        if caption is not None and image_problem is None:
            staged.append(TrainingImage(image, caption))
    if not images:
        problems.append(f"{folder.name}: contains no images")
    return Concept(folder, match["concept"], int(match["repeats"]), tuple(staged))


def tag_frequency(concepts: tuple[Concept, ...]) -> dict[str, dict[str, int]]:
    """Comma-separated caption tags counted per folder (sd-scripts' ``ss_tag_frequency``)."""
    result: dict[str, dict[str, int]] = {}
    for concept in concepts:
        counts: Counter[str] = Counter()
        for image in concept.images:
            counts.update(tag.strip() for tag in image.caption.split(",") if tag.strip())
        result[concept.folder.name] = dict(counts)
    return result


def validate_dataset(root: Path, trigger_word: str | None = None) -> StagedDataset:
    """Check a Kohya-layout dataset folder; raise ``JobFailure`` listing the problems.

    With a trigger word, every caption is rewritten in place to start with it (``root`` must be
    the writable staged copy, never the channel).
    """
    problems: list[str] = []
    entries = sorted(p for p in root.iterdir() if _visible(p)) if root.is_dir() else []
    for stray in (p for p in entries if p.is_file()):
        problems.append(f"{stray.name}: files must be inside a <repeats>_<concept> folder")
    concepts = tuple(
        concept
        for folder in entries
        if folder.is_dir()
        if (concept := _validate_concept(folder, problems, trigger_word))
    )
    if not entries:
        problems.append("the dataset is empty")
    elif not problems and not any(concept.images for concept in concepts):
        problems.append("the dataset has no usable images")
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        suffix = f" (and {more} more)" if more else ""
        raise JobFailure("dataset is invalid: " + "; ".join(shown) + suffix)
    return StagedDataset(root, concepts, tag_frequency(concepts))


def stage_dataset(channel_dir: Path, work_dir: Path, trigger_word: str | None = None) -> StagedDataset:
    """Copy the dataset channel to ``work_dir/dataset`` (writable), validate the copy and, with a
    trigger word, put it first in every caption of the copy."""
    if not channel_dir.is_dir():
        raise JobFailure(f"dataset channel {channel_dir} is missing")
    target = work_dir / "dataset"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(channel_dir, target)
    return validate_dataset(target, trigger_word)
