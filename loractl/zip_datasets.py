"""``loractl datasets upload photos.zip``: unpack a zip locally, with the service's own guards.

Why unpack on this side rather than upload the zip: uploads are one presigned PUT per file,
declared first and checked by the dataset rules before any URL is issued, then decoded one by one
by the server's validation. Unpacking here keeps that path unchanged (resumable per-file PUTs, every
problem listed before anything is sent) and the server never has to hold or trust an archive. The
judging is ``functions.domain.zip_datasets``, the code the server's zip import runs, so a zip
refused there is refused here, for the same reason, before one byte is decompressed.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from functions.domain.zip_datasets import ZipRefused, plan_zip, read_planned, zip_entries


def extract_dataset_zip(source: Path, target: Path, *, repeats: int | None, concept: str | None) -> int:
    """Write the zip's planned dataset files under ``target``; how many. ``ZipRefused`` says why not."""
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile as error:
        raise ZipRefused(f"{source} is not a zip archive ({error})") from error
    with archive:
        planned = plan_zip(zip_entries(archive), repeats=repeats, concept=concept)
        for item in planned:
            destination = target / item.path  # a checked <repeats>_<concept>/<file>: no way out of target
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(read_planned(archive, item))
    return len(planned)
