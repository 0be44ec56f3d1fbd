"""A crashed sd-scripts run is reported by its real cause, from recorded real output.

The recordings in ``fixtures/sd_scripts_failures`` are what sd-scripts v0.10.1 printed under
``accelerate launch`` (``real_engine/record_failures.py`` re-records them): each ends with
accelerate's ``CalledProcessError`` wrapper, which must never be the reason a user reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from functions.domain.catalog import FmType
from tests.container.conftest import JobFactory
from training_container.entrypoint import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, run_job
from training_container.errors import FailureKind, classify_engine_failure, last_exception_line

RECORDINGS = Path(__file__).parent / "fixtures" / "sd_scripts_failures"
FAKE_SD_SCRIPTS = Path(__file__).parent / "fake_sd_scripts"

# recording -> (kind, the real cause the user must read)
EXPECTED = {
    "adafactor_scheduler": (
        FailureKind.CONFIGURATION,
        "AssertionError: adafactor scheduler must be used with Adafactor optimizer",
    ),
    "max_token_length_string": (
        FailureKind.CONFIGURATION,
        'TypeError: can only concatenate str (not "int") to str',
    ),
    "optimizer_args_json_boolean": (FailureKind.CONFIGURATION, "ValueError: malformed node or string"),
    "empty_caption": (FailureKind.DATA, "AssertionError: caption file is empty: "),
    "out_of_memory": (FailureKind.OUT_OF_MEMORY, "Cannot allocate memory"),
}


def _recording(name: str) -> tuple[list[str], int]:
    status_line, _, output = (RECORDINGS / f"{name}.log").read_text(encoding="utf-8").partition("\n")
    return output.splitlines(), int(status_line.removeprefix("# exit status "))


def test_every_recording_is_covered() -> None:
    assert sorted(p.stem for p in RECORDINGS.glob("*.log")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_last_console_line_is_accelerates_wrapper(name: str) -> None:
    lines, status = _recording(name)
    assert status != 0
    assert "CalledProcessError" in next(line for line in reversed(lines) if line.strip())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_real_cause_is_found_and_classified(name: str) -> None:
    lines, status = _recording(name)
    kind, cause = EXPECTED[name]

    failure = classify_engine_failure(lines, status)

    assert failure.kind is kind
    assert cause in failure.cause and "CalledProcessError" not in failure.cause
    assert failure.reason.startswith(kind.value) and len(failure.reason.encode()) <= 1024


def test_japanese_halves_are_dropped_but_details_kept() -> None:
    line = "AssertionError: caption file is empty / キャプションファイルが空です: /data/1_a/img.txt"
    assert last_exception_line([line]) == "AssertionError: caption file is empty: /data/1_a/img.txt"


def test_a_killed_child_is_out_of_memory() -> None:
    wrapper = (
        "subprocess.CalledProcessError: Command '['python', 'train_network.py']' "
        "returned non-zero exit status -9."
    )
    assert classify_engine_failure(["loading model", wrapper], 1).kind is FailureKind.OUT_OF_MEMORY


def test_output_without_an_exception_is_internal_and_says_so() -> None:
    failure = classify_engine_failure(["some log line"], 3)
    assert failure.kind is FailureKind.INTERNAL and "some log line" in failure.cause


def test_an_unexpected_exception_type_is_internal() -> None:
    failure = classify_engine_failure(["Traceback (most recent call last):", "ImportError: no module x"], 1)
    assert failure.kind is FailureKind.INTERNAL and failure.cause == "ImportError: no module x"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_entrypoint_writes_the_real_cause_as_the_failure_reason(
    name: str, make_job: JobFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SD_SCRIPTS_DIR", str(FAKE_SD_SCRIPTS))
    monkeypatch.setenv("LORA_KOHYA_LAUNCHER", json.dumps([sys.executable]))
    monkeypatch.setenv("FAKE_SD_SCRIPTS_MODE", "replay")
    monkeypatch.setenv("FAKE_SD_SCRIPTS_RECORDING", str(RECORDINGS / f"{name}.log"))
    root = make_job(FmType.SD15, engine="kohya")
    kind, cause = EXPECTED[name]

    status = run_job(root)

    assert status == (EXIT_INTERNAL_ERROR if kind is FailureKind.INTERNAL else EXIT_USER_ERROR)
    reason = (root / "output" / "failure").read_text()
    assert reason.startswith(kind.value) and cause in reason and "CalledProcessError" not in reason


def test_images_sd_scripts_cannot_bucket_are_refused_before_it_starts(
    make_job: JobFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the contract test: with bucket_no_upscale, a side below bucket_reso_steps rounds to 0
    and sd-scripts dies in BucketManager.select_bucket (ZeroDivisionError)."""
    monkeypatch.setenv("SD_SCRIPTS_DIR", str(FAKE_SD_SCRIPTS))
    monkeypatch.setenv("LORA_KOHYA_LAUNCHER", json.dumps([sys.executable]))
    root = make_job(FmType.SD15, engine="kohya", config={"bucket_reso_steps": 320})  # images are 256 px

    assert run_job(root) == EXIT_USER_ERROR

    reason = (root / "output" / "failure").read_text()
    assert reason.startswith("data problem:") and "1_demo/img_0.png (256x256)" in reason
