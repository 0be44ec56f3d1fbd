"""Image build step: bake the tokenizers into sd-scripts' ``--tokenizer_cache_dir`` layout.

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
from typing import Any

from functions.domain.families import FAMILIES
from training_container.clip_tokenizers import T5_TOKENIZER_REPO, cache_folder_name

# Every family's tokenizers, each once, in family order (FamilySpec.tokenizer_repos): the CLIP
# ones as their files, T5's converted once (below).
TOKENIZER_REPOS = tuple(
    dict.fromkeys(
        repo for spec in FAMILIES.values() for repo in spec.tokenizer_repos if repo != T5_TOKENIZER_REPO
    )
)
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


# repo id -> a tokenizer object with save_pretrained (transformers' AutoTokenizer.from_pretrained)
TokenizerLoader = Callable[[str], Any]


def _default_loader() -> TokenizerLoader:
    from transformers import AutoTokenizer

    return lambda repo_id: AutoTokenizer.from_pretrained(repo_id)


def bake_t5_tokenizer(target: Path, load: TokenizerLoader | None = None) -> Path:
    """T5's tokenizer, converted from its SentencePiece model once at build time and saved where
    sd-scripts looks first (``<dir>/google_t5-v1_1-xxl``: library/strategy_base.py
    ``_load_tokenizer`` loads that folder, else downloads and saves it there), so neither sd-scripts
    nor the diffusers engine needs the network or sentencepiece at training time."""
    folder = target / cache_folder_name(T5_TOKENIZER_REPO)
    folder.mkdir(parents=True, exist_ok=True)
    (load or _default_loader())(T5_TOKENIZER_REPO).save_pretrained(str(folder))
    if not (folder / "tokenizer_config.json").is_file():
        raise FileNotFoundError(f"{T5_TOKENIZER_REPO}'s tokenizer was not written to {folder}")
    return folder


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    for folder in [*bake_tokenizers(Path(argv[0])), bake_t5_tokenizer(Path(argv[0]))]:
        print(f"baked {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
