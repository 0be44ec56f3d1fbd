"""Run sd-scripts' own argument parsing and checks on TOMLs the service's wrapper wrote.

Runs with sd-scripts' interpreter, from its checkout (``cwd = $SD_SCRIPTS_DIR``), and loads no
model: for each case it goes through the steps the family's script (``train_network.py``,
``sdxl_train_network.py``, ``flux_train_network.py``, ``sd3_train_network.py``) takes before
loading weights, in their order, and then builds the optimizer and schedule on a dummy parameter
and the LoRA network on empty modules:

    setup_parser -> verify_command_line_training_args -> read_config_from_file
    -> NetworkTrainer.train (train_network.py lines 491-590): verify_training_args,
       prepare_dataset_args, tokenize and latent caching strategies (FLUX.1's reads the
       checkpoint's header to tell dev from schnell), ConfigSanitizer + BlueprintGenerator
       (voluptuous schemas), generate_dataset_group_by_blueprint (datasets, bucket checks), the
       cache_latents assert, assert_extra_args (FLUX.1's / SD 3.5's: text-encoder caching,
       blocks_to_swap, bucket steps of 32)
    -> the text-encoder outputs caching strategy (lines 630-632)
    -> the network module's create_network (network_args as train_network.py passes them,
       lines 665-687; networks.lora, lora_flux or lora_sd3)
    -> train_util.get_optimizer (ast.literal_eval of optimizer_args, the optimizer's constructor)
    -> train_util.get_scheduler_fix
    -> the full_fp16/full_bf16 and fp8_base asserts (lines 813-834)

Usage: ``python check_sd_scripts_args.py CASES.json RESULTS.json`` where CASES.json is
``[{"fm_type": "sd15"|"sdxl"|"flux1"|"sd35", "training_toml": path, "dataset_toml": path}, ...]``;
RESULTS.json gets one ``{"ok": bool, "error": str | null}`` per case.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import sys
import traceback
from pathlib import Path
from typing import Any

import flux_train_network
import sd3_train_network
import sdxl_train_network
import torch
import train_network
from flow_lora_keys import TEXT_ENCODERS  # this folder is sys.path[0] when run as a script
from library import config_util, strategy_base, train_util
from library.config_util import BlueprintGenerator, ConfigSanitizer

_TOKENIZE_STRATEGIES: dict[tuple[str, ...], Any] = {}


def _tokenize_strategy(fm_type: str, trainer: Any, args: Any) -> Any:
    """Built once per family, token budgets and checkpoint (FLUX.1's reads its header): loading
    tokenizers 1,000 times adds nothing. (FLUX.1's trainer also notes ``is_schnell`` then, which
    nothing reads before the model is loaded.)"""
    key = (
        fm_type,
        repr(args.max_token_length),
        repr(getattr(args, "t5xxl_max_token_length", None)),
        args.pretrained_model_name_or_path,
    )
    if key not in _TOKENIZE_STRATEGIES:
        _TOKENIZE_STRATEGIES[key] = trainer.get_tokenize_strategy(args)
    return _TOKENIZE_STRATEGIES[key]


def _setup(fm_type: str) -> tuple[Any, Any]:
    """The family's script's parser and trainer (FamilySpec.kohya_script)."""
    if fm_type == "sdxl":
        return sdxl_train_network.setup_parser(), sdxl_train_network.SdxlNetworkTrainer()
    if fm_type == "flux1":
        return flux_train_network.setup_parser(), flux_train_network.FluxNetworkTrainer()
    if fm_type == "sd35":
        return sd3_train_network.setup_parser(), sd3_train_network.Sd3NetworkTrainer()
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
    trainer.assert_extra_args(args, train_dataset_group, val_dataset_group)  # may change some args
    trainer.get_text_encoder_outputs_caching_strategy(args)
    _check_network(case["fm_type"], args)
    optimizer = _check_optimizer(args)
    _check_scheduler(args, optimizer, len(train_dataset_group))
    _check_precision(args)


def _check_precision(args: Any) -> None:
    """train_network.py's asserts once the network is made (lines 813-834)."""
    if args.full_fp16:
        assert args.mixed_precision == "fp16", "full_fp16 requires mixed precision='fp16'"
    elif args.full_bf16:
        assert args.mixed_precision == "bf16", "full_bf16 requires mixed precision='bf16'"
    if args.fp8_base or args.fp8_base_unet:
        assert args.mixed_precision != "no", "fp8_base requires mixed precision='fp16' or 'bf16'"


def _check_network(fm_type: str, args: Any) -> None:
    """train_network.py's network_args parsing, then the network module's create_network (imported
    by name as train_network.py does) on empty modules, one per text encoder of the family."""
    net_kwargs: dict[str, Any] = {}
    for net_arg in args.network_args or []:
        key, value = net_arg.split("=", 1)
        net_kwargs[key] = value
    net_kwargs.setdefault("dropout", args.network_dropout)
    network_module = importlib.import_module(args.network_module)
    text_encoders = [torch.nn.Module() for _ in range(TEXT_ENCODERS[fm_type])]
    network_module.create_network(
        1.0,
        args.network_dim,
        args.network_alpha,
        None,
        text_encoders,
        torch.nn.Module(),
        neuron_dropout=args.network_dropout,
        **net_kwargs,
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
