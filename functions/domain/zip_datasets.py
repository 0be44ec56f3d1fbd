"""Datasets from a zip archive: which entries become which dataset files, and which zips are refused.

Used twice with the same rules: by the tasks function for ``POST /datasets`` with a ``source_url``
(``functions/services/dataset_import.py``) and by ``loractl datasets upload photos.zip`` before
anything is sent. Only the archive's central directory is judged here (names, sizes, flags), so a
hostile zip is refused before one byte of it is decompressed; the extractor then reads each entry
with the size this plan allowed, never more.

Refused, with the reason: more entries than a dataset may hold (``dataset_rules.MAX_FILES``, plus a
little room for folders and system litter), a total uncompressed size over the dataset limit or a
compression ratio no image dataset has (zip bombs), names that climb out (``..``), are absolute
(``/x``, ``C:x``), use backslashes or control characters, symbolic links, encrypted entries, and
anything ``dataset_rules`` would refuse in a declared upload. Layout: ``<repeats>_<concept>/<file>``
folders, or files at one level with the request's ``repeats`` (and ``concept``); either may sit
inside one wrapping folder (what zipping a folder produces).
"""

from __future__ import annotations

import re
import stat
import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from functions.domain.dataset_rules import (
    MAX_DATASET_BYTES,
    MAX_FILES,
    MAX_REPEATS,
    DeclaredFile,
    check_declared_files,
)

ZIP_EXTENSION = ".zip"
# The tasks function spools the download to /tmp, which Lambda sizes at 512 MB unless configured
# otherwise (https://docs.aws.amazon.com/lambda/latest/dg/configuration-ephemeral-storage.html).
MAX_ZIP_BYTES = 400 * 1024**2
# Folders and system litter (__MACOSX/, .DS_Store) are entries too; anything beyond this is refused
# from the directory alone, before a dataset-rule check that would list thousands of problems.
MAX_ZIP_ENTRIES = MAX_FILES + 1_000
# PNG and JPEG barely compress (ratios near 1); captions are small. A whole archive that expands
# more than this is not a dataset, whatever its entries claim.
MAX_COMPRESSION_RATIO = 100
DEFAULT_CONCEPT = "concept"
SYSTEM_LITTER = re.compile(r"(^|/)(__MACOSX/|\.DS_Store$|Thumbs\.db$|desktop\.ini$)", re.IGNORECASE)
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONCEPT_FOLDER = re.compile(r"^\d{1,5}_.+$")


class ZipRefused(ValueError):
    """The archive cannot become a dataset; the message says why, in words."""


@dataclass(frozen=True)
class ZipEntry:
    """What the central directory says about one member."""

    name: str
    file_size: int
    compress_size: int
    is_dir: bool = False
    is_symlink: bool = False
    is_encrypted: bool = False

    @classmethod
    def of(cls, info: zipfile.ZipInfo) -> ZipEntry:
        mode = info.external_attr >> 16  # Unix mode bits, when the creator recorded them
        return cls(
            name=info.filename,
            file_size=info.file_size,
            compress_size=info.compress_size,
            is_dir=info.is_dir(),
            is_symlink=stat.S_ISLNK(mode),
            is_encrypted=bool(info.flag_bits & 0x1),
        )


@dataclass(frozen=True)
class PlannedFile:
    """One archive member and the dataset path it becomes."""

    entry_name: str
    path: str
    size_bytes: int


def entry_name_problem(name: str) -> str | None:
    """Why an archive member's name is hostile (path traversal and friends), or None."""
    if "\\" in name:
        return "uses backslashes (a Windows path that could climb out of the folder)"
    if name.startswith("/") or _DRIVE.match(name):
        return "is an absolute path"
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "contains control characters"
    if any(part == ".." for part in name.split("/")):
        return "climbs out of the archive with '..'"
    return None


def _refuse_hostile(entries: Sequence[ZipEntry]) -> None:
    if len(entries) > MAX_ZIP_ENTRIES:
        raise ZipRefused(
            f"the zip has {len(entries)} entries; a dataset holds at most {MAX_FILES} files "
            f"(a zip may have at most {MAX_ZIP_ENTRIES} entries, folders included)"
        )
    for entry in entries:
        problem = entry_name_problem(entry.name)
        if problem:
            raise ZipRefused(f"zip entry {entry.name!r} {problem}")
        if entry.is_symlink:
            raise ZipRefused(f"zip entry {entry.name!r} is a symbolic link")
        if entry.is_encrypted:
            raise ZipRefused(f"zip entry {entry.name!r} is encrypted")
    total = sum(e.file_size for e in entries)
    if total > MAX_DATASET_BYTES:
        raise ZipRefused(f"the zip expands to {total} bytes, over the dataset limit of {MAX_DATASET_BYTES}")
    packed = sum(e.compress_size for e in entries)
    if total > MAX_COMPRESSION_RATIO * max(packed, 1):
        raise ZipRefused(
            f"the zip expands {total} bytes from {packed} (more than {MAX_COMPRESSION_RATIO}x): "
            "refused as a zip bomb; images do not compress like that"
        )


def _wanted(entries: Sequence[ZipEntry]) -> list[ZipEntry]:
    """Files, without folders, system litter and hidden files."""
    return [
        e
        for e in entries
        if not e.is_dir
        and not SYSTEM_LITTER.search(e.name)
        and not any(part.startswith(".") for part in e.name.split("/"))
    ]


def _strip_wrapper(names: list[str]) -> list[str]:
    """Drop one folder that wraps everything (``photos/10_cat/a.png`` -> ``10_cat/a.png``)."""
    if not names:
        return names
    firsts = {name.split("/", 1)[0] for name in names}
    if len(firsts) == 1 and all("/" in name for name in names):
        wrapper = firsts.pop()
        if not _CONCEPT_FOLDER.match(wrapper) or all(name.count("/") >= 2 for name in names):
            return [name.split("/", 1)[1] for name in names]
    return names


def plan_zip(
    entries: Sequence[ZipEntry], *, repeats: int | None = None, concept: str | None = None
) -> list[PlannedFile]:
    """The dataset files a zip becomes; ``ZipRefused`` with every reason otherwise.

    Flat archives (files at one level) need ``repeats``: they become ``<repeats>_<concept>/<file>``.
    """
    _refuse_hostile(entries)
    files = _wanted(entries)
    if not files:
        raise ZipRefused("the zip contains no files")
    names = _strip_wrapper([e.name for e in files])
    flat = all("/" not in name for name in names)
    if flat:
        if repeats is None:
            raise ZipRefused(
                "the zip's files are not in <repeats>_<concept>/ folders: give repeats (and concept) "
                "for a flat folder of images"
            )
        if not 1 <= repeats <= MAX_REPEATS:
            raise ZipRefused(f"repeats must be between 1 and {MAX_REPEATS}")
        folder = f"{repeats}_{concept or DEFAULT_CONCEPT}"
        names = [f"{folder}/{name}" for name in names]
    elif repeats is not None or concept is not None:
        raise ZipRefused(
            "repeats and concept are only for a flat zip; this one has <repeats>_<concept>/ folders"
        )
    planned = [PlannedFile(e.name, path, e.file_size) for e, path in zip(files, names, strict=True)]
    problems = check_declared_files([DeclaredFile(p.path, p.size_bytes) for p in planned])
    if problems:
        shown = []
        for problem in problems[:10]:
            index = problem.field.split("[", 1)[1].split("]", 1)[0] if "[" in problem.field else None
            where = planned[int(index)].entry_name if index is not None else "the zip"
            shown.append(f"{where}: {problem.problem}")
        more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
        raise ZipRefused("the zip is not a valid dataset: " + "; ".join(shown) + more)
    return planned


def read_planned(archive: zipfile.ZipFile, planned: PlannedFile) -> bytes:
    """An entry's bytes, never more than the directory declared (zipfile checks the CRC at the end)."""
    with archive.open(planned.entry_name) as member:
        data = member.read(planned.size_bytes + 1)
    if len(data) != planned.size_bytes:
        raise ZipRefused(
            f"zip entry {planned.entry_name!r} does not hold the {planned.size_bytes} bytes it declares"
        )
    return data


def zip_entries(archive: zipfile.ZipFile) -> list[ZipEntry]:
    return [ZipEntry.of(info) for info in archive.infolist()]


def is_zip_name(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() == ZIP_EXTENSION
