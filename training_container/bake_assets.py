"""Image build step: bake the CLIP tokenizers into sd-scripts' ``--tokenizer_cache_dir`` layout.

Jobs run with network isolation, so nothing may be fetched from the Hugging Face Hub at training
time. sd-scripts looks for ``<dir>/<repo id with / replaced by _>`` before going online, and the
diffusers engine reads the same folders (``clip_tokenizers.load_clip_tokenizer``). The diffusers
model configs need no download: they are committed under ``model_configs/``.

Usage (Dockerfile): ``python -m training_container.bake_assets /opt/tokenizers``
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from functions.domain.families import FAMILIES
from training_container.clip_tokenizers import cache_folder_name

# Every family's tokenizers, each once, in family order (FamilySpec.tokenizer_repos).
TOKENIZER_REPOS = tuple(dict.fromkeys(repo for spec in FAMILIES.values() for repo in spec.tokenizer_repos))
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
# hub_download(repo_id=..., filename=..., local_dir=...) -> local path (huggingface_hub's signature)
HubDownload = Callable[..., str]


def _default_download() -> HubDownload:
    from huggingface_hub import hf_hub_download

    return hf_hub_download


def bake_tokenizers(target: Path, hub_download: HubDownload | None = None) -> list[Path]:
    """Download each tokenizer's files into ``target/<cache folder>``; returns the folders."""
    download = hub_download or _default_download()
    folders = []
    for repo_id in TOKENIZER_REPOS:
        folder = target / cache_folder_name(repo_id)
        folder.mkdir(parents=True, exist_ok=True)
        for filename in TOKENIZER_FILES:
            download(repo_id=repo_id, filename=filename, local_dir=str(folder))
            if not (folder / filename).is_file():
                raise FileNotFoundError(f"{repo_id}/{filename} was not written to {folder}")
        folders.append(folder)
    return folders


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    for folder in bake_tokenizers(Path(argv[0])):
        print(f"baked {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
