"""The sd-scripts wrapper: TOML/command generation vs the pinned release, progress parsing,
and the whole entrypoint with a fake sd-scripts process."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import toml

from functions.domain.catalog import FmType
from functions.domain.families import FAMILIES, ComponentRole
from functions.domain.kohya_params import USER_PARAMETERS, defaults_for
from functions.domain.training_contract import ProgressReport
from tests.container.conftest import JobFactory
from training_container.dataset_staging import validate_dataset
from training_container.engines.kohya_engine import KohyaProgress, console_lines, parse_kohya_line
from training_container.entrypoint import EXIT_USER_ERROR, run_job
from training_container.kohya_config import (
    SD_SCRIPTS_COMMIT,
    SD_SCRIPTS_TAG,
    build_kohya_configs,
    service_parameters,
)
from training_container.testing.tiny_models import make_tiny_dataset

FIXTURES = Path(__file__).parent / "fixtures"
OPTIONS = json.loads((FIXTURES / f"sd_scripts_{SD_SCRIPTS_TAG}_options.json").read_text())
# Each family's script's options (FamilySpec.kohya_script: "flux_train_network.py" -> "flux_train_network").
SCRIPT_OPTIONS = {f: set(OPTIONS[spec.kohya_script.removesuffix(".py")]) for f, spec in FAMILIES.items()}
COMPONENT_FILES = {
    role: Path(f"/opt/ml/input/data/{role.value}/{role.value}.safetensors") for role in ComponentRole
}
FAKE_SD_SCRIPTS = Path(__file__).parent / "fake_sd_scripts"


def test_fixture_is_from_the_pinned_release() -> None:
    assert OPTIONS["tag"] == SD_SCRIPTS_TAG and OPTIONS["commit"] == SD_SCRIPTS_COMMIT


@pytest.mark.parametrize("name", sorted(USER_PARAMETERS))
def test_every_user_parameter_is_an_sd_scripts_option(name: str) -> None:
    for fm_type in USER_PARAMETERS[name].families:
        assert name in SCRIPT_OPTIONS[fm_type], f"{name} is not accepted by {fm_type.value}'s script"


@pytest.mark.parametrize("fm_type", list(FmType))
def test_every_emitted_key_is_accepted_by_the_pinned_sd_scripts(tmp_path: Path, fm_type: FmType) -> None:
    dataset = validate_dataset(make_tiny_dataset(tmp_path / "data", n_images=1))
    (tmp_path / "out" / "last-state").mkdir(parents=True)  # a saved state -> `resume` is emitted
    config = {**defaults_for(fm_type), "flip_aug": True, "shuffle_caption": False, "keep_tokens": 1}
    files = build_kohya_configs(
        fm_type=fm_type,
        config=config,
        dataset=dataset,
        model_path=tmp_path / "base.safetensors",
        output_dir=tmp_path / "out",
        output_name="lora",
        work_dir=tmp_path / "work",
        sd_scripts_dir=Path("/sd-scripts"),
        tokenizer_cache_dir=Path("/opt/tokenizers"),
        component_paths={slot.role: COMPONENT_FILES[slot.role] for slot in FAMILIES[fm_type].components},
    )
    training = toml.load(files.training_config)
    assert set(training) <= SCRIPT_OPTIONS[fm_type], set(training) - SCRIPT_OPTIONS[fm_type]
    assert training["resume"] == str(tmp_path / "out" / "last-state")
    assert training["resolution"] == config["resolution"] and isinstance(training["resolution"], str)
    dataset_toml = toml.load(files.dataset_config)
    assert set(dataset_toml) == {"general", "datasets"}
    assert set(dataset_toml["general"]) <= set(OPTIONS["dataset_config"]["general"])
    for section in dataset_toml["datasets"]:
        assert set(section) - {"subsets"} <= set(OPTIONS["dataset_config"]["datasets"])
        for subset in section["subsets"]:
            assert set(subset) <= set(OPTIONS["dataset_config"]["subsets"])
    general = dataset_toml["general"]
    assert (
        general["batch_size"] == 1 and general["flip_aug"] is True and general["caption_extension"] == ".txt"
    )
    expected_resolution = [int(s) for s in str(config["resolution"]).split(",")]
    assert general["resolution"] in (expected_resolution, expected_resolution[0])
    subset = dataset_toml["datasets"][0]["subsets"][0]
    assert subset == {
        "image_dir": str(dataset.concepts[0].folder),
        "num_repeats": 2,
        "caption_extension": ".txt",
    }
    script = FAMILIES[fm_type].kohya_script
    assert training["network_module"] == FAMILIES[fm_type].network_module
    assert {k: training[k] for k in training if k in set(ComponentRole)} == {
        slot.role.value: str(COMPONENT_FILES[slot.role]) for slot in FAMILIES[fm_type].components
    }
    assert files.command == [
        "accelerate", "launch", "--num_cpu_threads_per_process", "1", f"/sd-scripts/{script}",
        "--config_file", str(files.training_config), "--dataset_config", str(files.dataset_config),
    ]  # fmt: skip


def test_service_keys_cannot_be_overridden_by_user_values(tmp_path: Path) -> None:
    service = service_parameters(
        model_path=tmp_path / "m.safetensors",
        output_dir=tmp_path,
        output_name="x",
        tokenizer_cache_dir=None,
        fm_type=FmType.SD15,
    )
    assert service["save_model_as"] == "safetensors" and service["network_module"] == "networks.lora"
    assert "resume" not in service and "tokenizer_cache_dir" not in service


def test_progress_lines_from_sd_scripts_are_parsed() -> None:
    progress = KohyaProgress()

    assert parse_kohya_line("  total optimization steps / 学習ステップ数: 2000", progress)
    assert parse_kohya_line("epoch 3/10", progress)
    assert parse_kohya_line("steps:   5%|▊  | 100/2000 [00:57<18:14,  1.74it/s, avr_loss=0.0725]", progress)

    assert (progress.step, progress.total_steps, progress.epoch, progress.total_epochs) == (100, 2000, 3, 10)
    assert progress.loss == pytest.approx(0.0725) and progress.eta_seconds == 18 * 60 + 14
    assert not parse_kohya_line(
        "override steps. steps for 10 epochs is / 指定エポックまでのステップ数: 2000", progress
    )
    assert parse_kohya_line("steps:   0%|          | 0/2000 [00:00<?, ?it/s]", progress)
    assert progress.step == 0 and progress.eta_seconds is None


def test_console_is_split_on_carriage_returns_and_newlines() -> None:
    stream = io.BufferedReader(io.BytesIO(b"a\rsteps: 1\rsteps: 2\nepoch 1/2\r\nlast"))
    assert list(console_lines(stream)) == ["a", "steps: 1", "steps: 2", "epoch 1/2", "last"]


@pytest.fixture
def fake_sd_scripts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SD_SCRIPTS_DIR", str(FAKE_SD_SCRIPTS))
    monkeypatch.setenv("LORA_KOHYA_LAUNCHER", json.dumps([sys.executable]))


@pytest.mark.usefixtures("fake_sd_scripts")
def test_entrypoint_runs_kohya_and_publishes_its_lora(make_job: JobFactory) -> None:
    root = make_job(FmType.SD15, engine="auto")

    assert run_job(root) == 0

    assert (root / "model" / "my-lora.safetensors").is_file()
    summary = json.loads((root / "model" / "summary.json").read_text())
    assert (
        summary["engine"] == "kohya"
        and summary["steps"] == 4
        and summary["final_loss"] == pytest.approx(0.045)
    )
    progress = ProgressReport.model_validate_json((root / "checkpoints" / "progress.json").read_text())
    assert progress.total_steps == 4 and progress.engine == "kohya"


@pytest.mark.usefixtures("fake_sd_scripts")
def test_kohya_exiting_0_without_a_lora_is_a_failure(
    make_job: JobFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SD_SCRIPTS_MODE", "no_output")
    root = make_job(FmType.SD15, engine="kohya")

    assert run_job(root) == EXIT_USER_ERROR

    assert "sd-scripts finished without writing the LoRA" in (root / "output" / "failure").read_text()


@pytest.mark.usefixtures("fake_sd_scripts")
def test_kohya_crash_reports_its_last_line(make_job: JobFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SD_SCRIPTS_MODE", "crash")
    root = make_job(FmType.SD15, engine="kohya")

    assert run_job(root) == EXIT_USER_ERROR  # out of memory: the user can pick a bigger instance

    reason = (root / "output" / "failure").read_text()
    assert reason.startswith("out of memory:") and "CUDA out of memory" in reason


def test_kohya_requested_without_sd_scripts_fails_clearly(
    make_job: JobFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SD_SCRIPTS_DIR", raising=False)
    root = make_job(FmType.SD15, engine="kohya")

    assert run_job(root) == EXIT_USER_ERROR

    assert (
        "engine kohya requested but sd-scripts is not installed" in (root / "output" / "failure").read_text()
    )


SD_SCRIPTS_CHECKOUT = Path(__file__).parents[2] / ".sd-scripts"  # the pinned source, where present


@pytest.mark.skipif(
    not (SD_SCRIPTS_CHECKOUT / "flux_train_network.py").is_file(),
    reason="no sd-scripts checkout at .sd-scripts (the fixture is regenerated from one)",
)
def test_the_fixture_is_what_the_extractor_reads_from_the_pinned_source() -> None:
    from training_container.tools.extract_sd_scripts_options import SCRIPTS, extract

    assert extract(SD_SCRIPTS_CHECKOUT, SD_SCRIPTS_TAG, SD_SCRIPTS_COMMIT) == OPTIONS
    assert {spec.kohya_script.removesuffix(".py") for spec in FAMILIES.values()} == set(SCRIPTS)
    # One script's parser never lends another its options (flux/sd3 call train_network.setup_parser).
    assert (
        "guidance_scale" not in OPTIONS["sd3_train_network"] and "clip_g" not in OPTIONS["flux_train_network"]
    )
    assert "training_shift" not in OPTIONS["flux_train_network"] and "ae" not in OPTIONS["sdxl_train_network"]


@pytest.mark.parametrize("fm_type", list(FmType))
def test_every_key_of_any_accepted_config_is_an_option_of_the_familys_script(
    tmp_path: Path, fm_type: FmType
) -> None:
    """Random configs the API accepts (the real-engine contract test's generator, which needs no
    sd-scripts to generate), through the wrapper: each TOML key is one the pinned parser has."""
    from tests.container.test_sd_scripts_contract import accepted_configs

    dataset = validate_dataset(make_tiny_dataset(tmp_path / "data", n_images=1))
    components = {slot.role: COMPONENT_FILES[slot.role] for slot in FAMILIES[fm_type].components}
    configs = accepted_configs(fm_type, 200)
    assert len(configs) >= 200
    emitted: set[str] = set()
    for index, config in enumerate(configs):
        files = build_kohya_configs(
            fm_type=fm_type,
            config=config,
            dataset=dataset,
            model_path=tmp_path / "base.safetensors",
            output_dir=tmp_path / "out",
            output_name="lora",
            work_dir=tmp_path / f"case{index}",
            sd_scripts_dir=Path("/sd-scripts"),
            tokenizer_cache_dir=Path("/opt/tokenizers"),
            component_paths=components,
        )
        emitted |= set(toml.load(files.training_config))
    assert emitted <= SCRIPT_OPTIONS[fm_type], emitted - SCRIPT_OPTIONS[fm_type]
