"""Which local files belong to a dataset, and the problems the server would find after upload.

Operating-system litter (``.DS_Store``, ``Thumbs.db``, AppleDouble ``._*`` files) is skipped
and said so: nobody means to train on it, and refusing the whole upload for it only annoys.
Pairing problems (a caption without its image, an empty caption) are found by the server's own
manifest rules (``build_manifest``) run on the local files, so ``datasets upload`` reports them
before anything is sent. An image without a caption is no problem: the dataset can be captioned
by the service (``datasets caption``) before training on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from functions.domain.dataset_rules import ArrivedFile, DeclaredFile, build_manifest

IGNORED_FILE_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini", ".directory"})


def is_ignored(relative: str) -> bool:
    """Operating-system metadata files (Finder, Explorer, KDE), matched case-insensitively."""
    name = PurePosixPath(relative).name
    return name.lower() in IGNORED_FILE_NAMES or name.startswith("._")


def caption_problems(files: Sequence[DeclaredFile]) -> list[str]:
    """What the server's manifest would list, assuming every file arrives as it is here.

    Content checks (magic bytes) stay with the server; the pairing of images and captions and
    empty captions are decided here already.
    """
    arrived = {f.path: ArrivedFile(f.path, f.size_bytes, content_ok=True) for f in files}
    return build_manifest(files, arrived).problems
