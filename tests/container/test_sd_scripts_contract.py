"""Contract test against the real sd-scripts: every config the API accepts passes sd-scripts' checks.

Hypothesis generates user configs over the whole parameter catalogue (all four families); the ones
``validate_config`` accepts go through the service's wrapper (``build_kohya_configs``) into the
TOMLs a job would run with, and then through sd-scripts' *own* parser and argument checks
(``real_engine/check_sd_scripts_args.py``, no model loading), which must raise for none of them.
Known-bad TOMLs (the crashes issue 12 confirmed) go through the same checker and must all fail,
so a checker that stopped checking would be noticed.

Skipped unless ``SD_SCRIPTS_DIR`` and ``SD_SCRIPTS_PYTHON`` are set; see docs/real-engine-tests.md
(``make real-engine-tests``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import toml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from functions.domain.catalog import FmType
from functions.domain.families import ComponentRole
from functions.domain.kohya_params import (
    DEFAULTS,
    NETWORK_ARG_KINDS,
    OPTIMIZER_ARG_KINDS,
    OPTIMIZER_KEYWORDS,
    OPTIMIZERS,
    USER_PARAMETERS,
    Param,
    ParamValue,
    validate_config,
)
from tests.container.real_engine.harness import (
    SKIP_REASON,
    SdScriptsSetup,
    sd_scripts_python,
    sd_scripts_setup,
    write_tokenizer_cache,
)
from training_container.dataset_staging import StagedDataset, validate_dataset
from training_container.kohya_config import build_kohya_configs
from training_container.testing.tiny_flow_models import save_tiny_model_files
from training_container.testing.tiny_models import make_tiny_dataset

CHECKER = Path(__file__).parent / "real_engine" / "check_sd_scripts_args.py"
CONFIGS_PER_FAMILY = 500
SETUP = sd_scripts_setup()
pytestmark = pytest.mark.skipif(SETUP is None, reason=SKIP_REASON)


def _number(param: Param) -> st.SearchStrategy[Any]:
    if param.kind == "int":
        step = param.multiple_of or 1
        low, high = int(param.minimum or 0), int(param.maximum if param.maximum is not None else 10**6)
        return st.integers(-(-low // step), high // step).map(lambda i: i * step)
    low_f, high_f = float(param.minimum or 0), float(param.maximum if param.maximum is not None else 1)
    return st.floats(low_f, high_f, exclude_min=param.exclusive_minimum, allow_nan=False)


def _literal(kind: str, pair: bool = False) -> st.SearchStrategy[str]:
    """A value as a user would type it (JSON-style booleans included)."""
    if kind == "bool":
        return st.sampled_from(["true", "false", "True", "False"])
    if kind == "float_pair" or pair:
        member = st.floats(0.001, 0.999) if kind == "float_pair" else st.floats(1e-30, 1e-2)
        return st.tuples(member, member).map(lambda p: f"{p[0]!r},{p[1]!r}")
    if kind == "positive_int":
        return st.integers(1, 1024).map(str)
    if kind == "probability":
        return st.floats(0, 1).map(repr)
    return st.floats(1e-8, 10).map(repr)  # positive / non-negative floats, momentum


def _value(param: Param) -> st.SearchStrategy[Any]:
    if param.kind == "bool":
        return st.booleans()
    if param.kind in ("int", "float"):
        return _number(param)
    if param.kind == "enum":
        return st.sampled_from(param.choices)
    if param.kind == "int_choice":
        return st.sampled_from([int(choice) for choice in param.choices] + list(param.choices))
    if param.kind == "resolution":
        side = st.integers(8, 256).map(lambda i: i * 8)
        return st.one_of(side, st.lists(side, min_size=2, max_size=2))
    if param.kind == "network_args":
        return st.dictionaries(st.sampled_from(sorted(NETWORK_ARG_KINDS)), st.just(None), max_size=4).flatmap(
            lambda keys: st.tuples(*(_literal(NETWORK_ARG_KINDS[k]) for k in keys)).map(
                lambda values, keys=tuple(keys): [f"{k}={v}" for k, v in zip(keys, values, strict=True)]
            )
        )
    raise AssertionError(f"no strategy for {param.kind}")  # optimizer_args: see user_configs


@st.composite
def user_configs(draw: st.DrawFn, fm_type: FmType) -> dict[str, Any]:
    """A handful of catalogue parameters with random valid-looking values, optimizer args included."""
    names = sorted(n for n, p in USER_PARAMETERS.items() if fm_type in p.families and n != "optimizer_args")
    chosen = draw(st.lists(st.sampled_from(names), max_size=14, unique=True))
    config: dict[str, Any] = {name: draw(_value(USER_PARAMETERS[name])) for name in chosen}
    if draw(st.booleans()):
        optimizer = draw(st.sampled_from(OPTIMIZERS))
        config["optimizer_type"] = optimizer
        keys = draw(st.lists(st.sampled_from(sorted(OPTIMIZER_KEYWORDS[optimizer])), max_size=4, unique=True))
        pair = optimizer == "Adafactor"
        config["optimizer_args"] = [
            f"{k}={draw(_literal(OPTIMIZER_ARG_KINDS[k], pair and k == 'eps'))}" for k in keys
        ]
    return config


def accepted_configs(fm_type: FmType, count: int) -> list[dict[str, ParamValue]]:
    """``count`` distinct normalised configs the API accepts (deterministic: derandomized)."""
    found: dict[str, dict[str, ParamValue]] = {}

    @settings(
        max_examples=count * 3,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(user_configs(fm_type))
    def collect(user: dict[str, Any]) -> None:
        normalised, problems = validate_config(user, fm_type)
        assume(not problems)
        found.setdefault(json.dumps(normalised, sort_keys=True), normalised)

    collect()
    return list(found.values())[:count]


@dataclass(frozen=True)
class CaseInputs:
    """What every case of a family shares: images, tokenizers, the checkout and the base files
    (FLUX.1's script reads the transformer's header before anything else: dev or schnell)."""

    dataset: StagedDataset
    tokenizers: Path
    scripts: Path
    model: Path
    components: dict[ComponentRole, Path]


def _case_inputs(fm_type: FmType, folder: Path, scripts: Path) -> CaseInputs:
    # Images no smaller than the largest bucket_reso_steps (512): smaller ones are a data problem the
    # container refuses before sd-scripts starts (kohya_config.no_upscale_bucket_problems).
    dataset = validate_dataset(make_tiny_dataset(folder / "data", n_images=2, repeats=1, size=(1024, 1024)))
    files = save_tiny_model_files(fm_type, folder / "model")
    return CaseInputs(
        dataset=dataset,
        tokenizers=write_tokenizer_cache(folder / "tokenizers"),
        scripts=scripts,
        model=files["checkpoint"],
        components={ComponentRole(role): path for role, path in files.items() if role != "checkpoint"},
    )


def _write_case(fm_type: FmType, config: dict[str, Any], folder: Path, inputs: CaseInputs) -> dict[str, str]:
    files = build_kohya_configs(
        fm_type=fm_type,
        config=config,
        dataset=inputs.dataset,
        model_path=inputs.model,
        output_dir=folder / "out",
        output_name="lora",
        work_dir=folder,
        sd_scripts_dir=inputs.scripts,
        tokenizer_cache_dir=inputs.tokenizers,
        component_paths=inputs.components,
    )
    return {
        "fm_type": fm_type.value,
        "training_toml": str(files.training_config),
        "dataset_toml": str(files.dataset_config),
    }


# The crashes issue 12 confirmed, as TOML edits on a valid config: the checker must catch each.
KNOWN_BAD: dict[str, dict[str, Any]] = {
    "max_token_length as a string": {"max_token_length": "150"},
    "optimizer_args with a JSON boolean": {"optimizer_type": "Prodigy", "optimizer_args": ["decouple=true"]},
    "adafactor schedule with AdamW": {"optimizer_type": "AdamW", "lr_scheduler": "adafactor"},
    "warm-up on the constant schedule": {"lr_scheduler": "constant", "lr_warmup_steps": 10},
    "network_args conv_dim not an int": {"network_args": ["conv_dim=8.5"]},
}


def _run_checker(setup: SdScriptsSetup, cases: list[dict[str, str]], folder: Path) -> list[dict[str, Any]]:
    cases_file, results_file = folder / "cases.json", folder / "results.json"
    cases_file.write_text(json.dumps(cases), encoding="utf-8")
    sd_scripts_python(setup, str(CHECKER), str(cases_file), str(results_file), timeout=1800)
    results: list[dict[str, Any]] = json.loads(results_file.read_text(encoding="utf-8"))
    assert len(results) == len(cases)
    return results


# What flux_train_network.py and sd3_train_network.py refuse on top (their assert_extra_args,
# lines 40-97 and 30-66, and train_network.py line 833 for fp8_base, which both families default to).
KNOWN_BAD_FLOW: dict[str, dict[str, Any]] = {
    "blocks_to_swap with cpu_offload_checkpointing": {
        "blocks_to_swap": 8,
        "cpu_offload_checkpointing": True,
        "gradient_checkpointing": True,
    },
    "fp8 base without mixed precision": {"fp8_base": True, "mixed_precision": "no"},
    "text-encoder outputs cached with shuffled captions": {"cache_text_encoder_outputs": True},
}
# flux_train_network.py runs train_network.py's bucket check (64) before its own (32): lines 46, 95
# and train_network.py 174-176. The contract test found the API accepting 32; it now refuses it.
KNOWN_BAD_FLUX: dict[str, dict[str, Any]] = {"FLUX.1 bucket steps of 32": {}}
# The dataset-side halves (caption shuffling and bucket steps live in the dataset TOML's [general]).
_DATASET_EDITS = {
    "text-encoder outputs cached with shuffled captions": {"shuffle_caption": True},
    "FLUX.1 bucket steps of 32": {"bucket_reso_steps": 32},
}


def _known_bad(fm_type: FmType) -> dict[str, dict[str, Any]]:
    flow = KNOWN_BAD_FLOW if fm_type in (FmType.FLUX1, FmType.SD35) else {}
    return KNOWN_BAD | flow | (KNOWN_BAD_FLUX if fm_type is FmType.FLUX1 else {})


def _edit_case(case: dict[str, str], name: str, edit: dict[str, Any]) -> None:
    training = toml.load(case["training_toml"]) | edit
    Path(case["training_toml"]).write_text(toml.dumps(training), encoding="utf-8")
    if name in _DATASET_EDITS:
        dataset = toml.load(case["dataset_toml"])
        dataset["general"] = dataset.get("general", {}) | _DATASET_EDITS[name]
        Path(case["dataset_toml"]).write_text(toml.dumps(dataset), encoding="utf-8")


# Every family runs its own script's trainer (FamilySpec.kohya_script): FLUX.1 and SD 3.5 with the
# tiny component files and the T5 tokenizer in the cache, as a job has them.
@pytest.mark.parametrize("fm_type", list(FmType))
def test_every_accepted_config_passes_sd_scripts_own_checks(fm_type: FmType, tmp_path: Path) -> None:
    assert SETUP is not None
    configs = accepted_configs(fm_type, CONFIGS_PER_FAMILY)
    assert len(configs) >= CONFIGS_PER_FAMILY
    inputs = _case_inputs(fm_type, tmp_path / "inputs", SETUP.directory)
    cases = [_write_case(fm_type, config, tmp_path / f"case{i}", inputs) for i, config in enumerate(configs)]
    known_bad = _known_bad(fm_type)
    bad_cases = []
    for index, (name, edit) in enumerate(known_bad.items()):
        case = _write_case(fm_type, dict(DEFAULTS[fm_type]), tmp_path / f"bad{index}", inputs)
        _edit_case(case, name, edit)
        bad_cases.append(case)

    results = _run_checker(SETUP, cases + bad_cases, tmp_path)

    failures = [(configs[i], r["error"]) for i, r in enumerate(results[: len(cases)]) if not r["ok"]]
    assert not failures, f"{len(failures)} accepted configs crash sd-scripts; first: {failures[:3]}"
    caught = [r["ok"] is False for r in results[len(cases) :]]
    assert all(caught), dict(zip(known_bad, results[len(cases) :], strict=True))


def test_the_diffusers_engine_clips_gradients_like_sd_scripts() -> None:
    """Issue 12 point 5: the diffusers engine's max_grad_norm fallback is sd-scripts' default."""
    from training_container.engines.engine_config import EngineConfig

    engine_default = EngineConfig.from_parameters({}).max_grad_norm

    assert SETUP is not None
    printed = sd_scripts_python(
        SETUP,
        "-c",
        "import train_network; print(train_network.setup_parser().get_default('max_grad_norm'))",
        timeout=300,
    ).split()[-1]
    assert float(printed) == engine_default
