"""CLIP tokenizers without network access.

Jobs run with network isolation, so tokenizers come from one of two offline sources:

- the tokenizer cache baked into the image at build time (``bake_assets.py``), in the folder
  layout sd-scripts' ``--tokenizer_cache_dir`` expects (``<dir>/openai_clip-vit-large-patch14``,
  ``<dir>/laion_CLIP-ViT-bigG-14-laion2B-39B-b160k``);
- open_clip's shipped BPE vocabulary (``bpe_simple_vocab_16e6.txt.gz``), for local runs and tests.
  Both SD 1.5's tokenizer (openai/clip-vit-large-patch14) and SDXL's second tokenizer (laion bigG)
  are this same 49,408-token BPE; they differ only in the padding token.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from functools import cache
from pathlib import Path

from transformers import CLIPTokenizer

# Where the image bakes tokenizers; the same folder is passed to sd-scripts as --tokenizer_cache_dir.
TOKENIZER_CACHE_DIR_ENV = "LORA_TOKENIZER_CACHE_DIR"
# The tokenizers the families use (FamilySpec.tokenizer_repos); bigG pads with "!" where
# OpenAI's CLIP pads with its end-of-text token.
CLIP_L_TOKENIZER_REPO = "openai/clip-vit-large-patch14"
OPEN_CLIP_BIGG_TOKENIZER_REPO = "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"
# FLUX.1's and SD 3.5's T5-XXL tokenizer (sd-scripts library/strategy_flux.py line 20,
# strategy_sd3.py line 23): a SentencePiece model, baked by bake_assets.bake_t5_tokenizer.
T5_TOKENIZER_REPO = "google/t5-v1_1-xxl"
_PAD_TOKENS = {OPEN_CLIP_BIGG_TOKENIZER_REPO: "!"}
_DEFAULT_PAD_TOKEN = "<|endoftext|>"
CLIP_VOCAB_SIZE = 49408
CLIP_MAX_LENGTH = 77
_BPE_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
# The first 48,894 merges give 256 bytes + 256 end-of-word bytes + merges + 2 specials = 49,408.
_MERGE_COUNT = CLIP_VOCAB_SIZE - 256 * 2 - 2


def cache_folder_name(repo_id: str) -> str:
    """sd-scripts' naming of a tokenizer inside ``--tokenizer_cache_dir`` (``/`` becomes ``_``)."""
    return repo_id.replace("/", "_")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def open_clip_vocab_path() -> Path:
    """The BPE file shipped inside the open_clip package, found without importing it."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "open_clip is not installed; install open-clip-torch (--no-deps) for its BPE vocabulary"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _BPE_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the open_clip package")
    return path


def write_clip_tokenizer_files(folder: Path, *, pad_token: str = "<|endoftext|>") -> Path:
    """Write vocab.json + merges.txt (+ configs) for a CLIP tokenizer built from open_clip's BPE."""
    with gzip.open(open_clip_vocab_path(), "rt", encoding="utf-8") as handle:
        merges = handle.read().split("\n")[1 : _MERGE_COUNT + 1]
    byte_chars = list(_bytes_to_unicode().values())
    vocab_tokens = byte_chars + [c + "</w>" for c in byte_chars]
    vocab_tokens += ["".join(merge.split()) for merge in merges]
    vocab_tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab_tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    specials = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": pad_token,
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(specials))
    config = {**specials, "model_max_length": CLIP_MAX_LENGTH, "tokenizer_class": "CLIPTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


@cache
def _built_tokenizer_folder(pad_token: str) -> Path:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="clip-tokenizer-"))
    return write_clip_tokenizer_files(folder, pad_token=pad_token)


def baked_tokenizer_folder(repo_id: str) -> Path | None:
    """The image's baked copy of a tokenizer (``tokenizer_config.json`` written), if any."""
    baked_root = os.environ.get(TOKENIZER_CACHE_DIR_ENV)
    if not baked_root:
        return None
    folder = Path(baked_root) / cache_folder_name(repo_id)
    return folder if (folder / "tokenizer_config.json").is_file() else None


def load_clip_tokenizer(repo_id: str = CLIP_L_TOKENIZER_REPO) -> CLIPTokenizer:
    """The tokenizer for ``repo_id``: from the baked cache when present, else built offline."""
    baked_root = os.environ.get(TOKENIZER_CACHE_DIR_ENV)
    if baked_root:
        baked = Path(baked_root) / cache_folder_name(repo_id)
        if (baked / "vocab.json").is_file():
            return CLIPTokenizer.from_pretrained(str(baked), local_files_only=True)
    pad_token = _PAD_TOKENS.get(repo_id, _DEFAULT_PAD_TOKEN)
    return CLIPTokenizer.from_pretrained(str(_built_tokenizer_folder(pad_token)), local_files_only=True)
