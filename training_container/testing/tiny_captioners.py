"""Tiny random-weight captioning models, built offline, in the folders the captions job reads.

    build_tiny_wd14_tagger(folder, always=(...)) -> Path
    build_tiny_blip_captioner(folder) -> Path
    install_tiny_captioning_models(models_dir) -> Path   # both, under the names the job expects

The tagger is a real ONNX graph with WD14's interface (NHWC float32 448x448 BGR in, one sigmoid
probability per row of ``selected_tags.csv`` out): mean colour -> linear -> sigmoid. Its biases
make the tags in ``always`` (and the rating ``general``) certain and every other tag impossible,
whatever the image, so tests can assert on its output. The captioner is a BLIP
(``BlipForConditionalGeneration``) of a few hundred kilobytes with a 12-word BERT vocabulary
written here (no download).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from functions.domain.captioning import WD14_IMAGE_SIZE
from training_container.captioning.captioning_job import CAPTIONER_FOLDER, MODEL_ID_FILENAME, TAGGER_FOLDER
from training_container.captioning.wd14_tagger import MODEL_FILENAME, TAGS_FILENAME

TINY_RATINGS = ("general", "sensitive", "questionable", "explicit")
TINY_GENERAL = ("1girl", "solo", "red_background", "cat_ears", "^_^", "outdoors")
TINY_CHARACTERS = ("hatsune_miku", "kirby_(series)")
TINY_TAGGER_ID = "tiny/wd14-tagger@random"
TINY_CAPTIONER_ID = "tiny/blip-captioner@random"
_BLIP_WORDS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "photo", "of", "cat", "dog", "red")


def tiny_tag_csv() -> str:
    rows = ["tag_id,name,category,count"]
    tag_id = 0
    for names, category in ((TINY_RATINGS, 9), (TINY_GENERAL, 0), (TINY_CHARACTERS, 4)):
        for name in names:
            rows.append(f"{tag_id},{name},{category},100")
            tag_id += 1
    return "\n".join(rows) + "\n"


def build_tiny_wd14_tagger(folder: Path, always: Sequence[str] = ("1girl", "solo", "hatsune_miku")) -> Path:
    """A WD14-interface ONNX tagger whose ``always`` tags score ~1 and all others ~0."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    names = [*TINY_RATINGS, *TINY_GENERAL, *TINY_CHARACTERS]
    rng = np.random.default_rng(0)
    weights = (rng.standard_normal((3, len(names))) * 1e-4).astype(np.float32)
    bias = np.array([8.0 if n in always or n == "general" else -8.0 for n in names], np.float32)
    side = WD14_IMAGE_SIZE
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input_1:0", "axes"], ["mean"], keepdims=0),
            helper.make_node("MatMul", ["mean", "weights"], ["logits0"]),
            helper.make_node("Add", ["logits0", "bias"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], ["predictions_sigmoid"]),
        ],
        "tiny_wd14",
        [helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["N", side, side, 3])],
        [helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT, ["N", len(names)])],
        initializer=[
            numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(bias, "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8  # readable by any onnxruntime >= 1.15
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / MODEL_FILENAME)
    (folder / TAGS_FILENAME).write_text(tiny_tag_csv(), encoding="utf-8")
    (folder / MODEL_ID_FILENAME).write_text(TINY_TAGGER_ID, encoding="utf-8")
    return folder


def build_tiny_blip_captioner(folder: Path, seed: int = 0) -> Path:
    """A random-weight BLIP captioner with a 12-word vocabulary, saved with its processor."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipProcessor
    from transformers.models.blip import BlipImageProcessor

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(_BLIP_WORDS) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(vocab), do_lower_case=True)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    ids = {word: i for i, word in enumerate(_BLIP_WORDS)}
    config = BlipConfig(
        text_config={
            "vocab_size": len(_BLIP_WORDS),
            "hidden_size": 32,
            "encoder_hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
            "max_position_embeddings": 64,
            "bos_token_id": ids["[DEC]"],
            "sep_token_id": ids["[SEP]"],
            "eos_token_id": ids["[SEP]"],
            "pad_token_id": ids["[PAD]"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=32,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    vocab.unlink()  # the processor saved its own copy
    (folder / MODEL_ID_FILENAME).write_text(TINY_CAPTIONER_ID, encoding="utf-8")
    return folder


def install_tiny_captioning_models(models_dir: Path) -> Path:
    """Both tiny models where the captions job looks for the baked ones (``$LORA_CAPTIONING_MODELS_DIR``)."""
    build_tiny_wd14_tagger(models_dir / TAGGER_FOLDER)
    build_tiny_blip_captioner(models_dir / CAPTIONER_FOLDER)
    return models_dir
