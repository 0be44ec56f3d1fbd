"""Image build step: bake the captioning models into ``$LORA_CAPTIONING_MODELS_DIR``.

Captions jobs run with network isolation, so the models come with the image. Each folder gets a
``MODEL_ID`` file, ``<repo>@<commit>``, with the commit the hub resolved the requested revision to:
the caption cache is keyed by it, so rebuilding the image with a newer model never serves
captions of the old one. Which models, revisions and licences: ``CAPTIONING_MODELS`` below
(the Dockerfile passes the revisions; pin them to commit hashes for reproducible images).

Usage (Dockerfile): ``python -m training_container.captioning.bake_models /opt/captioning-models
[--tagger-revision REV] [--captioner-revision REV]``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from training_container.captioning.captioning_job import CAPTIONER_FOLDER, MODEL_ID_FILENAME, TAGGER_FOLDER


@dataclass(frozen=True)
class CaptioningModel:
    folder: str
    repo_id: str
    files: tuple[str, ...]
    licence: str


CAPTIONING_MODELS = (
    # sd-scripts v0.10.1's default tagger (DEFAULT_WD14_TAGGER_REPO in
    # finetune/tag_images_by_wd14_tagger.py), its ONNX export and tag list; Apache-2.0.
    CaptioningModel(
        TAGGER_FOLDER,
        "SmilingWolf/wd-v1-4-convnext-tagger-v2",
        ("model.onnx", "selected_tags.csv"),
        "Apache-2.0",
    ),
    # BLIP base captioning (the transformers port of the BLIP that sd-scripts' finetune/make_captions.py
    # loads from Salesforce's original checkpoint); BSD-3-Clause.
    CaptioningModel(
        CAPTIONER_FOLDER,
        "Salesforce/blip-image-captioning-base",
        (
            "config.json",
            "preprocessor_config.json",
            "special_tokens_map.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.txt",
            "model.safetensors",
        ),
        "BSD-3-Clause",
    ),
)
# hub_download(repo_id=..., filename=..., revision=..., local_dir=...) -> local path
HubDownload = Callable[..., str]
# resolve(repo_id, revision) -> the commit hash the revision names
ResolveRevision = Callable[[str, str], str]


def _hub() -> tuple[HubDownload, ResolveRevision]:
    from huggingface_hub import HfApi, hf_hub_download

    def resolve(repo_id: str, revision: str) -> str:
        sha = HfApi().model_info(repo_id, revision=revision).sha
        if not sha:
            raise RuntimeError(f"the hub did not resolve {repo_id}@{revision} to a commit")
        return sha

    return hf_hub_download, resolve


def bake_captioning_models(
    target: Path,
    revisions: dict[str, str],
    hub_download: HubDownload | None = None,
    resolve_revision: ResolveRevision | None = None,
) -> list[Path]:
    """Download each model at the commit its revision resolves to; returns the folders."""
    if hub_download is None or resolve_revision is None:
        hub_download, resolve_revision = _hub()
    folders = []
    for model in CAPTIONING_MODELS:
        commit = resolve_revision(model.repo_id, revisions.get(model.folder, "main"))
        folder = target / model.folder
        folder.mkdir(parents=True, exist_ok=True)
        for filename in model.files:
            hub_download(repo_id=model.repo_id, filename=filename, revision=commit, local_dir=str(folder))
            if not (folder / filename).is_file():
                raise FileNotFoundError(f"{model.repo_id}/{filename} was not written to {folder}")
        (folder / MODEL_ID_FILENAME).write_text(f"{model.repo_id}@{commit}", encoding="utf-8")
        folders.append(folder)
    return folders


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description="bake the captioning models into an image folder")
    parser.add_argument("target", type=Path)
    parser.add_argument("--tagger-revision", default="main")
    parser.add_argument("--captioner-revision", default="main")
    args = parser.parse_args(argv)
    revisions = {TAGGER_FOLDER: args.tagger_revision, CAPTIONER_FOLDER: args.captioner_revision}
    for folder in bake_captioning_models(args.target, revisions):
        print(f"baked {folder}: {(folder / MODEL_ID_FILENAME).read_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
