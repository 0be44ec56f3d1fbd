"""loractl as a newcomer meets it (issue 19): flags where the help shows them, full ids and
unique prefixes, output formats, detail views, paging, exit codes, JSON errors, local checks
before an upload, commented defaults, a second ``local serve``.

One local runtime serves the whole module (starting one costs seconds on a busy machine).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from local_runtime.defaults import RUNTIME_INFO_FILE
from local_runtime.quiet import NOISE, silence_known_noise
from local_runtime.serve import loractl_hint
from loractl import output
from loractl.config import resolve_connection, save_profile
from loractl.main import main as loractl
from tests.e2e.cli_helpers import CliResult
from tests.e2e.conftest import PROJECT_ROOT, RunningRuntime, RuntimeLauncher
from training_container.testing.tiny_models import make_tiny_dataset, save_tiny_checkpoint

pytestmark = pytest.mark.xdist_group("local-runtime-training")


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRuntime]:
    launcher = RuntimeLauncher(tmp_path_factory.mktemp("first-hour"))
    yield launcher.start()
    for started in launcher.started:
        started.stop()


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.toml"
    monkeypatch.setenv("LORACTL_CONFIG", str(path))
    for name in ("LORACTL_ENDPOINT", "LORACTL_TOKEN", "LORACTL_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return path


def cli(*arguments: str, width: int = 200) -> CliResult:
    """loractl in-process with the given arguments exactly (no connection flags added)."""
    out, err = io.StringIO(), io.StringIO()
    output.console.width = width
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = loractl(list(arguments))
    return CliResult(code, out.getvalue(), err.getvalue())


def connection(runtime: RunningRuntime) -> list[str]:
    return ["--endpoint", runtime.api_url, "--token", runtime.token()]


@pytest.fixture(scope="module")
def dataset_ids(runtime: RunningRuntime, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Three uploaded datasets (oldest first)."""
    folder = tmp_path_factory.mktemp("datasets")
    ids = []
    for index in range(3):
        root = make_tiny_dataset(folder / f"set{index}", concept="cat", repeats=2, n_images=2)
        result = cli("datasets", "upload", str(root), *connection(runtime), "-o", "id")
        assert result.exit_code == 0, result.stderr
        ids.append(result.stdout.strip())
    return ids


@pytest.fixture(scope="module")
def model_id(runtime: RunningRuntime, tmp_path_factory: pytest.TempPathFactory) -> str:
    # a name with spaces, as people name files: stored under a name the API accepts
    checkpoint = save_tiny_checkpoint("sd15", tmp_path_factory.mktemp("model") / "my tiny (v1).safetensors")
    result = cli("models", "upload", str(checkpoint), "--fm-type", "sd15", *connection(runtime), "-o", "id")
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


# --- 1: how to run loractl ---------------------------------------------------------------------


def test_serve_and_demo_say_how_to_run_loractl() -> None:
    hint = loractl_hint()
    script = Path(sys.executable).parent / "loractl"
    if script.exists():  # an installed venv (make venv): the hint names the script and the activate file
        assert "loractl models list" in hint
        assert "activate" in hint or "on your PATH" not in hint
    else:
        assert "python -m loractl.main" in hint
    demo = (PROJECT_ROOT / "local_runtime" / "demo.py").read_text()
    assert "loractl_hint()" in demo


def test_version_and_positional_help() -> None:
    version = cli("--version")
    assert version.exit_code == 0 and version.stdout.startswith("loractl ")
    helped = cli("trainings", "wait", "--help")
    assert helped.exit_code == 0
    assert "JOB_ID" in helped.stdout and "unique prefix" in helped.stdout and "exit 6" in helped.stdout
    assert "(default 50)" in cli("datasets", "list", "--help").stdout


# --- 2, 9: ids, tables, paging ------------------------------------------------------------------


@pytest.mark.parametrize("width", [80, 100])
def test_list_tables_show_whole_ids_at_narrow_widths(
    runtime: RunningRuntime, dataset_ids: list[str], width: int
) -> None:
    listed = cli("datasets", "list", *connection(runtime), width=width)
    assert listed.exit_code == 0, listed.stderr
    for dataset_id in dataset_ids:
        assert dataset_id in listed.stdout  # on one line, uncut
    assert "images" in listed.stdout
    rows = cli("datasets", "list", *connection(runtime), "--json").data
    assert {row["manifest"]["image_count"] for row in rows} == {2}


def test_unique_prefixes_are_accepted_and_ambiguous_ones_refused(
    runtime: RunningRuntime, dataset_ids: list[str]
) -> None:
    target = dataset_ids[-1]
    others = [i for i in dataset_ids if i != target]
    length = next(n for n in range(1, 27) if all(not o.startswith(target[:n]) for o in others))
    got = cli("datasets", "get", target[:length], *connection(runtime), "--json")
    assert got.exit_code == 0, got.stderr
    assert got.data["id"] == target
    shared = next(n for n in range(26) if len({i[: n + 1] for i in dataset_ids}) > 1)
    assert shared >= 1  # ids made within the same second share their time prefix
    ambiguous = cli("datasets", "get", dataset_ids[0][:shared], *connection(runtime))
    assert ambiguous.exit_code == 2 and "ambiguous" in ambiguous.stderr
    unknown = cli("datasets", "get", "zzzz", *connection(runtime))
    assert unknown.exit_code == 2 and "no dataset id starts with" in unknown.stderr


def test_paging_says_when_more_rows_exist(runtime: RunningRuntime, dataset_ids: list[str]) -> None:
    first = cli("datasets", "list", "--limit", "2", *connection(runtime), "-o", "id")
    assert first.exit_code == 0, first.stderr
    assert first.stdout.split() == dataset_ids[::-1][:2]  # newest first
    assert "more rows: add --next-token" in first.stderr
    token = first.stderr.split("--next-token ", 1)[1].split()[0]
    rest = cli("datasets", "list", "--limit", "2", "--next-token", token, *connection(runtime), "-o", "id")
    assert rest.stdout.split() == dataset_ids[::-1][2:3]
    assert "more rows" not in rest.stderr
    everything = cli("datasets", "list", "--all", *connection(runtime), "-o", "id")
    assert everything.stdout.split()[-3:] == dataset_ids[::-1]


def test_status_filters_accept_any_case(runtime: RunningRuntime, dataset_ids: list[str]) -> None:
    assert len(cli("datasets", "list", "--status", "READY", *connection(runtime), "--json").data) >= 3
    assert cli("trainings", "list", "--status", "completed", *connection(runtime), "--json").exit_code == 0
    refused = cli("trainings", "list", "--status", "done", *connection(runtime))
    assert refused.exit_code == 2


# --- 3, 4: global flags anywhere, tokens kept -----------------------------------------------------


def test_global_flags_work_before_and_after_the_subcommand(runtime: RunningRuntime) -> None:
    before = cli("--json", "--endpoint", runtime.api_url, "--token", runtime.token(), "configs", "defaults",
                 "--fm-type", "sd15")  # fmt: skip
    after = cli("configs", "defaults", "--fm-type", "sd15", *connection(runtime), "--json")
    assert before.exit_code == after.exit_code == 0, before.stderr
    assert before.data == after.data
    mixed = cli("-o", "json", "--endpoint", runtime.api_url, "models", "list", "--token", runtime.token())
    assert mixed.exit_code == 0 and isinstance(mixed.data, list)


def test_endpoint_of_a_stored_profile_keeps_its_token(isolated_config: Path, runtime: RunningRuntime) -> None:
    save_profile("local", {"endpoint": runtime.api_url, "token": runtime.token()})
    assert resolve_connection(endpoint=runtime.api_url + "/").token == runtime.token()
    assert resolve_connection(endpoint="https://abc.execute-api.eu-west-1.amazonaws.com/prod").token is None
    assert cli("--endpoint", runtime.api_url, "models", "list").exit_code == 0
    missing = cli("--endpoint", "http://127.0.0.1:9", "models", "list")
    assert missing.exit_code == 5 and "no token" in missing.stderr and "AWS credentials" not in missing.stderr


# --- 9: exit codes and JSON errors ---------------------------------------------------------------


def test_errors_are_json_under_json(runtime: RunningRuntime) -> None:
    refused = cli("models", "get", "0" * 26, *connection(runtime), "--json")
    assert refused.exit_code == 3 and refused.stdout == ""
    error = json.loads(refused.stderr)
    assert error["error"]["code"] == "NOT_FOUND" and error["exit_code"] == 3 and error["http_status"] == 404
    usage = cli("models", "list", "--limit", "x", "--json")
    assert usage.exit_code == 2 and json.loads(usage.stderr)["error"]["code"] == "USAGE_ERROR"
    unreachable = cli("models", "list", "--endpoint", "http://127.0.0.1:9", "--token", "t", "-o", "json")
    assert (
        unreachable.exit_code == 5 and json.loads(unreachable.stderr)["error"]["code"] == "CONNECTION_ERROR"
    )


# --- 6, 12: local dataset checks and prepare --------------------------------------------------------


def test_upload_finds_caption_problems_first_and_skips_system_files(
    runtime: RunningRuntime, tmp_path: Path
) -> None:
    root = make_tiny_dataset(tmp_path / "ds", concept="dog", repeats=1, n_images=2)
    concept = next(root.iterdir())
    (concept / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "Thumbs.db").write_bytes(b"x")
    (concept / "orphan.txt").write_text("dog, alone")
    before = cli("datasets", "list", "--all", *connection(runtime), "--json").data
    refused = cli("datasets", "upload", str(root), *connection(runtime))
    assert refused.exit_code == 2
    assert "orphan.txt: caption has no image" in refused.stderr and "nothing was uploaded" in refused.stderr
    assert cli("datasets", "list", "--all", *connection(runtime), "--json").data == before
    (concept / "orphan.txt").unlink()
    uploaded = cli("datasets", "upload", str(root), *connection(runtime))
    assert uploaded.exit_code == 0, uploaded.stderr
    assert "skipped 2 system file(s) (.DS_Store, Thumbs.db)" in uploaded.stderr
    assert "status" in uploaded.stdout and "images" in uploaded.stdout


def test_prepare_says_what_it_did_not_enlarge_and_leaves_out_litter(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "10_sks cat" / "nested").mkdir(parents=True)
    Image.new("RGB", (256, 200), "red").save(source / "10_sks cat" / "small.png")
    Image.new("RGB", (600, 700), "blue").save(source / "10_sks cat" / "big.png")
    (source / "10_sks cat" / "small.txt").write_text("sks cat")
    (source / "10_sks cat" / "big.txt").write_text("sks cat")
    Image.new("RGB", (600, 600), "green").save(source / "10_sks cat" / "nested" / "deep.png")
    (source / "10_sks cat" / ".DS_Store").write_bytes(b"x")
    result = cli("datasets", "prepare", str(source), str(tmp_path / "out"), "--fm-type", "sd15", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.data["images"] == 2 and result.data["smaller_than_target"] == 1
    assert "not enlarged (add --upscale" in result.stderr and "nested/deep.png" in result.stderr
    written = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file()
    )
    assert written == [
        "10_sks cat/big.png",
        "10_sks cat/big.txt",
        "10_sks cat/small.png",
        "10_sks cat/small.txt",
    ]


# --- 7: defaults to edit, validation with a plan, create without implied flags -------------------


def test_defaults_file_has_help_and_every_key_and_loads_back(
    runtime: RunningRuntime, dataset_ids: list[str]
) -> None:
    text = cli("configs", "defaults", "--fm-type", "sd15", *connection(runtime)).stdout
    response = cli("configs", "defaults", "--fm-type", "sd15", *connection(runtime), "--json").data
    assert tomllib.loads(text) == {k: v for k, v in response["defaults"].items() if v is not None}
    for parameter in response["parameters"]:
        assert f"{parameter['name']} =" in text  # set, or commented out to switch on
    assert text.count("# ") > len(response["parameters"])  # a help line per key
    plan = cli("configs", "validate", "-", "--fm-type", "sd15")  # unreadable file: usage error
    assert plan.exit_code == 2


def test_validate_plans_with_a_dataset(
    runtime: RunningRuntime, dataset_ids: list[str], tmp_path: Path
) -> None:
    config = tmp_path / "lora.toml"
    config.write_text("network_dim = 8\nmax_train_epochs = 3\n")
    planned = cli("configs", "validate", str(config), "--fm-type", "sd15", "--dataset", dataset_ids[0][:20],
                  *connection(runtime), "--json")  # fmt: skip
    assert planned.exit_code == 0, planned.stderr
    assert planned.data["plan"]["epochs"] == 3 and planned.data["plan"]["total_steps"] == 3 * 4
    shown = cli("configs", "validate", str(config), "--fm-type", "sd15", "--dataset", dataset_ids[0],
                *connection(runtime))  # fmt: skip
    assert "12 in all: 4 per epoch" in shown.stdout and "3 epochs" in shown.stdout
    assert "ml.g5.2xlarge" in shown.stdout


# --- 8, 9, 11: detail view, wait timeout, stop reason ------------------------------------------


def test_detail_view_wait_timeout_and_stop_reason(
    runtime: RunningRuntime, model_id: str, dataset_ids: list[str], tmp_path: Path
) -> None:
    config = tmp_path / "long.toml"
    config.write_text("resolution = 256\nmax_train_steps = 100000\nmax_data_loader_n_workers = 0\n")
    created = cli("trainings", "create", "--model", model_id[:22], "--dataset", dataset_ids[0], "--config",
                  str(config), "--no-spot", *connection(runtime), "--json")  # fmt: skip
    assert created.exit_code == 0, created.stderr
    job = created.data
    assert job["fm_type"] == "sd15" and job["instance_type"] == "ml.g5.2xlarge"  # implied, not asked for
    timed_out = cli("trainings", "wait", job["id"], "--timeout", "0", *connection(runtime))
    assert timed_out.exit_code == 6 and "still" in timed_out.stderr

    listed = cli("trainings", "list", *connection(runtime), width=100)
    assert job["id"] in listed.stdout and "progress" in listed.stdout
    shown = cli("trainings", "get", job["id"], *connection(runtime), width=100)
    lines = shown.stdout.splitlines()
    assert len(lines) <= 30, shown.stdout
    for section in (f"training {job['id']}", "plan", "history"):
        assert section in shown.stdout
    assert "{" not in shown.stdout  # no raw JSON cells

    stopped = cli("trainings", "stop", job["id"][:24], *connection(runtime))
    assert stopped.exit_code == 0, stopped.stderr
    deadline = time.monotonic() + 180
    while (
        ended := cli("trainings", "wait", job["id"], "--timeout", "5", *connection(runtime))
    ).exit_code == 6:
        assert time.monotonic() < deadline, ended.stderr
    assert ended.exit_code == 4
    assert re.search(r"^\s+reason\s+stop requested\s*$", ended.stdout, flags=re.MULTILINE), ended.stdout
    as_json = cli("trainings", "wait", job["id"], *connection(runtime), "--json")
    assert as_json.exit_code == 4 and as_json.data["status"] == "STOPPED"
    assert json.loads(as_json.stderr.strip().splitlines()[-1])["error"]["code"] == "TRAINING_STOPPED"


def test_floats_read_well() -> None:
    assert output.cell(0.8058637380599976) == "0.8059"
    assert output.cell({"loss": 0.8058637380599976}) == "loss 0.8059"


# --- 8: third-party noise -----------------------------------------------------------------------


def test_known_library_noise_is_dropped_and_other_warnings_kept() -> None:
    silence_known_noise()
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    torchvision = logging.getLogger("transformers.utils.import_utils")
    float32 = logging.getLogger("diffusers.models.modeling_utils")
    collect = Collect()
    for logger in (torchvision, float32):
        logger.addHandler(collect)
    try:
        torchvision.warning("`CLIPImageProcessor` requires torchvision (not installed); falling back to `X`")
        float32.warning("There are modules in UNet2DConditionModel that should be kept in float32: [].")
        float32.warning("There are modules in UNet2DConditionModel that should be kept in float32: ['norm'].")
        torchvision.warning("something else entirely")
    finally:
        for logger in (torchvision, float32):
            logger.removeHandler(collect)
    assert seen == [
        "There are modules in UNet2DConditionModel that should be kept in float32: ['norm'].",
        "something else entirely",
    ]
    assert set(NOISE) == {"transformers.utils.import_utils", "diffusers.models.modeling_utils"}


# --- 10: a second local serve ------------------------------------------------------------------


def test_a_second_serve_on_the_same_data_refuses_without_harming_the_first(runtime: RunningRuntime) -> None:
    before = (runtime.data_dir / RUNTIME_INFO_FILE).read_text()
    second = subprocess.run(
        [sys.executable, "-m", "local_runtime", "serve", "--port", "0", "--data-dir", str(runtime.data_dir),
         "--no-cli-config"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert second.returncode == 1
    assert "already running" in second.stderr and "Traceback" not in second.stderr
    assert (runtime.data_dir / RUNTIME_INFO_FILE).read_text() == before
    assert cli("models", "list", *connection(runtime)).exit_code == 0


def test_a_second_serve_on_a_taken_port_says_so(runtime: RunningRuntime, tmp_path: Path) -> None:
    port = runtime.api_url.rsplit(":", 1)[1]
    second = subprocess.run(
        [sys.executable, "-m", "local_runtime", "serve", "--port", port, "--data-dir", str(tmp_path / "d"),
         "--no-cli-config"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert second.returncode == 1
    assert f"port {port} is in use" in second.stderr and "Traceback" not in second.stderr
