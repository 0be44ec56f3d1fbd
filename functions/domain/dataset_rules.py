"""Dataset layout rules (Kohya/DreamBooth ``<repeats>_<concept>/<file>``) and the manifest.

Checked twice: when files are declared (``POST /datasets``: nothing is presigned unless every path
is acceptable) and when they have arrived (``POST /datasets/{id}/complete``: the manifest).
The CLI runs ``check_declared_files`` locally before uploading anything.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from pydantic import BaseModel, Field

from functions.domain.kohya_params import FieldProblem

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
CAPTION_EXTENSION = ".txt"
MAX_FILES = 5_000
# Presigned PUT URLs per response. A Lambda answer is capped at 6 MB and a URL signed with a
# role's session token is ~1.5 KB, so 5,000 URLs in one answer would not fit: the rest are
# asked for in batches (POST /datasets/{id}/uploads), which also keeps each batch's URLs fresh.
UPLOAD_URLS_PER_RESPONSE = 500
MAX_IMAGE_BYTES = 50 * 1024**2
MAX_CAPTION_BYTES = 64 * 1024
MAX_DATASET_BYTES = 20 * 1024**3
MAX_REPEATS = 10_000
MAX_PATH_LENGTH = 255

_CONCEPT_FOLDER = re.compile(r"^(?P<repeats>\d{1,5})_(?P<concept>.+)$")
_SAFE_PART = re.compile(r"^[\w][\w .,()+\-]*$")  # unicode word chars allowed; no control chars


@dataclass(frozen=True)
class DeclaredFile:
    path: str
    size_bytes: int


def _path_problem(path: str) -> str | None:
    """Why a relative dataset path is unacceptable, or None."""
    if not path:
        return "must not be empty"
    if len(path) > MAX_PATH_LENGTH:
        return f"must be at most {MAX_PATH_LENGTH} characters"
    if "\x00" in path or any(unicodedata.category(c) in ("Cc", "Cf") for c in path):
        return "must not contain control or invisible characters"
    if "\\" in path:
        return "must use '/' separators (backslashes are not allowed)"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "must be relative, not absolute"
    if unicodedata.normalize("NFC", path) != path:
        return "must be in Unicode NFC form"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "must not contain empty, '.' or '..' parts"
    if any(part.startswith(".") for part in parts):
        return "must not contain hidden files or folders"
    if len(parts) != 2:
        return "must be <repeats>_<concept>/<file> (one folder level, e.g. 10_mycat/photo1.png)"
    folder, name = parts
    match = _CONCEPT_FOLDER.match(folder)
    if not match:
        return f"folder {folder!r} must be named <repeats>_<concept>, e.g. 10_mycat"
    if not 1 <= int(match["repeats"]) <= MAX_REPEATS:
        return f"folder {folder!r}: repeats must be between 1 and {MAX_REPEATS}"
    if not _SAFE_PART.match(match["concept"]) or not _SAFE_PART.match(name):
        return "may only contain letters, digits, spaces and . , ( ) + - _"
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in IMAGE_EXTENSIONS and suffix != CAPTION_EXTENSION:
        allowed = ", ".join(sorted(IMAGE_EXTENSIONS | {CAPTION_EXTENSION}))
        return f"has extension {suffix or '(none)'!r}; allowed: {allowed}"
    return None


def _size_problem(path: str, size: int) -> str | None:
    limit = MAX_CAPTION_BYTES if path.lower().endswith(CAPTION_EXTENSION) else MAX_IMAGE_BYTES
    if size < 1:
        return "must be at least 1 byte"
    if size > limit:
        return f"must be at most {limit} bytes for this file type"
    return None


def check_declared_files(files: Sequence[DeclaredFile]) -> list[FieldProblem]:
    """Every problem with a declared file list, each naming its field (``files[3].path``)."""
    if not files:
        return [FieldProblem("files", "must list at least one image")]
    if len(files) > MAX_FILES:
        return [FieldProblem("files", f"must list at most {MAX_FILES} files (got {len(files)})")]
    problems: list[FieldProblem] = []
    seen: dict[str, int] = {}
    for index, declared in enumerate(files):
        problem = _path_problem(declared.path)
        if problem:
            problems.append(FieldProblem(f"files[{index}].path", problem))
            continue
        folded = declared.path.casefold()
        if folded in seen:
            problems.append(FieldProblem(f"files[{index}].path", f"duplicates files[{seen[folded]}].path"))
        seen[folded] = index
        size_problem = _size_problem(declared.path, declared.size_bytes)
        if size_problem:
            problems.append(FieldProblem(f"files[{index}].size_bytes", size_problem))
    total = sum(max(f.size_bytes, 0) for f in files)
    if total > MAX_DATASET_BYTES:
        problems.append(FieldProblem("files", f"total size {total} bytes exceeds {MAX_DATASET_BYTES}"))
    if not problems and not any(PurePosixPath(f.path).suffix.lower() in IMAGE_EXTENSIONS for f in files):
        problems.append(FieldProblem("files", "must contain at least one image"))
    return problems


class ConceptSummary(BaseModel):
    folder: str
    concept: str
    repeats: int
    image_count: int
    captioned_count: int


class DatasetManifest(BaseModel):
    """What ``complete`` found: the basis of step counts and of the container's dataset TOML."""

    concepts: list[ConceptSummary] = Field(default_factory=list)
    image_count: int = 0
    captioned_count: int = 0
    missing_captions: int = Field(
        0, description="images without a .txt caption: the dataset can be captioned, not trained on"
    )
    total_bytes: int = 0
    problems: list[str] = Field(default_factory=list)

    @property
    def weighted_images(self) -> int:
        """Images x repeats: the images seen per epoch."""
        return sum(c.image_count * c.repeats for c in self.concepts)


@dataclass(frozen=True)
class ArrivedFile:
    path: str
    size_bytes: int
    content_ok: bool  # magic bytes match the extension (images) / UTF-8 text (captions)


def build_manifest(declared: Sequence[DeclaredFile], arrived: Mapping[str, ArrivedFile]) -> DatasetManifest:
    """Compare what was declared with what arrived and summarise the dataset, listing every problem."""
    problems: list[str] = []
    folders: dict[str, dict[str, set[str]]] = {}
    total = 0
    for item in declared:
        got = arrived.get(item.path)
        if got is None:
            problems.append(f"{item.path}: was declared but never uploaded")
            continue
        if got.size_bytes != item.size_bytes:
            problems.append(f"{item.path}: is {got.size_bytes} bytes, declared {item.size_bytes}")
            continue
        total += got.size_bytes
        folder, name = item.path.split("/", 1)
        stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix.lower()
        if suffix in IMAGE_EXTENSIONS:
            if not got.content_ok:
                problems.append(f"{item.path}: is not a {suffix[1:].upper()} image")
                continue
            folders.setdefault(folder, {"images": set(), "captions": set()})["images"].add(stem)
        elif got.size_bytes == 0 or not got.content_ok:
            problems.append(f"{item.path}: caption is empty or not UTF-8 text")
        else:
            folders.setdefault(folder, {"images": set(), "captions": set()})["captions"].add(stem)
    concepts: list[ConceptSummary] = []
    for folder in sorted(folders):
        images, captions = folders[folder]["images"], folders[folder]["captions"]
        match = _CONCEPT_FOLDER.match(folder)
        assert match is not None  # paths were checked when declared
        for orphan in sorted(captions - images):
            problems.append(f"{folder}/{orphan}.txt: caption has no image")
        # An image without a caption is not a problem: the dataset is ready for a captions job
        # (POST /datasets/{id}/captions) and counted in ``missing_captions``; training refuses it
        # (functions.domain.job_rules.dataset_problems).
        if images:
            concepts.append(
                ConceptSummary(
                    folder=folder,
                    concept=match["concept"],
                    repeats=int(match["repeats"]),
                    image_count=len(images),
                    captioned_count=len(images & captions),
                )
            )
    if not concepts:
        problems.append("the dataset contains no usable image")
    return DatasetManifest(
        concepts=concepts,
        image_count=sum(c.image_count for c in concepts),
        captioned_count=sum(c.captioned_count for c in concepts),
        missing_captions=sum(c.image_count - c.captioned_count for c in concepts),
        total_bytes=total,
        problems=problems,
    )
