"""Run sd-scripts' own argument parsing and checks on TOMLs the service's wrapper wrote.

Runs with sd-scripts' interpreter, from its checkout (``cwd = $SD_SCRIPTS_DIR``), and loads no
model: for each case it goes through the steps ``train_network.py``/``sdxl_train_network.py``
take before loading weights, in their order, and then builds the optimizer and schedule on a
dummy parameter and the LoRA network on empty modules:

    setup_parser -> verify_command_line_training_args -> read_config_from_file
    -> NetworkTrainer.train: verify_training_args, prepare_dataset_args, tokenize and latent
       caching strategies, ConfigSanitizer + BlueprintGenerator (voluptuous schemas),
       generate_dataset_group_by_blueprint (datasets, bucket checks), the cache_latents assert,
       assert_extra_args, the full_fp16/full_bf16 asserts
    -> networks.lora.create_network (network_args as train_network.py passes them)
    -> train_util.get_optimizer (ast.literal_eval of optimizer_args, the optimizer's constructor)
    -> train_util.get_scheduler_fix

Usage: ``python check_sd_scripts_args.py CASES.json RESULTS.json`` where CASES.json is
``[{"fm_type": "sd15"|"sdxl", "training_toml": path, "dataset_toml": path}, ...]``; RESULTS.json
gets one ``{"ok": bool, "error": str | null}`` per case.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import traceback
from pathlib import Path
from typing import Any

import sdxl_train_network
import torch
import train_network
from library import config_util, strategy_base, train_util
from library.config_util import BlueprintGenerator, ConfigSanitizer
from networks import lora

_TOKENIZE_STRATEGIES: dict[tuple[str, str], Any] = {}


def _tokenize_strategy(fm_type: str, trainer: Any, args: Any) -> Any:
    """Built once per (family, max_token_length): loading tokenizers 1,000 times adds nothing."""
    key = (fm_type, repr(args.max_token_length))
    if key not in _TOKENIZE_STRATEGIES:
        _TOKENIZE_STRATEGIES[key] = trainer.get_tokenize_strategy(args)
    return _TOKENIZE_STRATEGIES[key]


def _setup(fm_type: str) -> tuple[Any, Any]:
    if fm_type == "sdxl":
        return sdxl_train_network.setup_parser(), sdxl_train_network.SdxlNetworkTrainer()
    return train_network.setup_parser(), train_network.NetworkTrainer()


def _reset_process_state() -> None:
    """Each real run is a fresh process; here the strategies (process-wide singletons) are reset."""
    for strategy in (
        strategy_base.TokenizeStrategy,
        strategy_base.TextEncodingStrategy,
        strategy_base.TextEncoderOutputsCachingStrategy,
        strategy_base.LatentsCachingStrategy,
    ):
        strategy._strategy = None


def check(case: dict[str, str]) -> None:
    _reset_process_state()
    parser, trainer = _setup(case["fm_type"])
    # __main__ of both scripts; read_config_from_file parses sys.argv again, as the script's would be.
    sys.argv = [
        "train_network.py",
        "--config_file",
        case["training_toml"],
        "--dataset_config",
        case["dataset_toml"],
    ]
    args = parser.parse_args(sys.argv[1:])
    train_util.verify_command_line_training_args(args)
    args = train_util.read_config_from_file(args, parser)
    # NetworkTrainer.train, up to loading the model
    train_util.verify_training_args(args)
    train_util.prepare_dataset_args(args, True)
    strategy_base.TokenizeStrategy.set_strategy(_tokenize_strategy(case["fm_type"], trainer, args))
    strategy_base.LatentsCachingStrategy.set_strategy(trainer.get_latents_caching_strategy(args))
    blueprint = BlueprintGenerator(ConfigSanitizer(True, True, args.masked_loss, True)).generate(
        config_util.load_user_config(args.dataset_config), args
    )
    train_dataset_group, val_dataset_group = config_util.generate_dataset_group_by_blueprint(
        blueprint.dataset_group
    )
    assert len(train_dataset_group) > 0, "no images found"
    if args.cache_latents:  # train_network.py: "when caching latents, either color_aug or random_crop ..."
        assert train_dataset_group.is_latent_cacheable(), (
            "when caching latents, color_aug/random_crop cannot be used"
        )
    trainer.assert_extra_args(args, train_dataset_group, val_dataset_group)
    if args.full_fp16:
        assert args.mixed_precision == "fp16", "full_fp16 requires mixed precision='fp16'"
    elif args.full_bf16:
        assert args.mixed_precision == "bf16", "full_bf16 requires mixed precision='bf16'"
    _check_network(args)
    optimizer = _check_optimizer(args)
    _check_scheduler(args, optimizer, len(train_dataset_group))


def _check_network(args: Any) -> None:
    """train_network.py's network_args parsing, then networks/lora.py create_network on empty modules."""
    net_kwargs: dict[str, str] = {}
    for net_arg in args.network_args or []:
        key, value = net_arg.split("=", 1)
        net_kwargs[key] = value
    net_kwargs.setdefault("dropout", args.network_dropout)
    lora.create_network(
        1.0, args.network_dim, args.network_alpha, None, [torch.nn.Module()], torch.nn.Module(), **net_kwargs
    )


def _check_optimizer(args: Any) -> Any:
    """train_util.get_optimizer with LoRA-like parameter groups (one per learning rate)."""
    groups = [{"params": [torch.nn.Parameter(torch.zeros(4))], "lr": args.unet_lr or args.learning_rate}]
    if not args.network_train_unet_only:
        text_encoder_lr = args.text_encoder_lr
        if isinstance(text_encoder_lr, list):
            text_encoder_lr = text_encoder_lr[0] if text_encoder_lr else None
        groups.append(
            {"params": [torch.nn.Parameter(torch.zeros(4))], "lr": text_encoder_lr or args.learning_rate}
        )
    _, _, optimizer = train_util.get_optimizer(args, groups)
    return optimizer


def _check_scheduler(args: Any, optimizer: Any, dataset_length: int) -> None:
    """train_util.get_scheduler_fix, after train()'s max_train_steps arithmetic."""
    if args.max_train_epochs is not None:
        steps_per_epoch = math.ceil(dataset_length / args.gradient_accumulation_steps)
        args.max_train_steps = args.max_train_epochs * steps_per_epoch
    train_util.get_scheduler_fix(args, optimizer, 1)


def main(cases_path: str, results_path: str) -> int:
    logging.disable(logging.CRITICAL)  # sd-scripts logs every step it takes; the results say enough
    cases = json.loads(Path(cases_path).read_text(encoding="utf-8"))
    results = []
    for case in cases:
        try:
            check(case)
            results.append({"ok": True, "error": None})
        except BaseException as error:  # SystemExit too: sd-scripts exits on files it cannot read
            lines = traceback.format_exception(error)
            results.append({"ok": False, "error": f"{type(error).__name__}: {error}\n{''.join(lines[-6:])}"})
    Path(results_path).write_text(json.dumps(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
