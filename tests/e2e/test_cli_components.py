"""loractl's FLUX.1 / SD 3.5 component options against a recording API (the request bodies the
CLI sends), and its refusals before any request: ``models upload/import --component ROLE`` and
``trainings create --component ROLE=MODEL`` (docs/flux-and-sd35.md). The API's own checks of
the same fields are in tests/integration/test_flux_components.py."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from functions.domain.families import ComponentRole
from loractl import commands, output
from loractl.main import main as loractl
from tests.e2e.conftest import PROJECT_ROOT

BASE = "01jflux0000000000000000000"
AE = "01jae00000000000000000000a"
T5 = "01jt5xxl000000000000000000"
CLIP_L = "01jclipl000000000000000000"
SD35 = "01jsd35l000000000000000000"
CLIP_G = "01jclipg000000000000000000"
DATASET = "01jdata0000000000000000000"
JOB = "01jjob00000000000000000000"
MODELS = [
    {"id": BASE, "name": "FLUX.1 dev", "kind": "checkpoint", "fm_type": "flux1", "status": "ready"},
    {"id": AE, "name": "ae", "kind": "checkpoint", "fm_type": "flux1", "component": "ae", "status": "ready"},
    {
        "id": T5,
        "name": "t5",
        "kind": "checkpoint",
        "fm_type": "flux1",
        "component": "t5xxl",
        "status": "ready",
    },
    {"id": CLIP_L, "name": "clip", "kind": "checkpoint", "fm_type": "flux1", "component": "clip_l"},
    {"id": SD35, "name": "sd3.5 large", "kind": "checkpoint", "fm_type": "sd35", "status": "ready"},
    {"id": CLIP_G, "name": "clip g", "kind": "checkpoint", "fm_type": "sd35", "component": "clip_g"},
]


class RecordingApi:
    """Answers like the API for the few paths these commands use, recording every request."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.gets: list[str] = []

    def get(self, path: str, **params: Any) -> Any:
        self.gets.append(path)
        if path == "/models":
            return {"items": MODELS, "next_token": None}
        if path.startswith("/models/"):
            return next(m for m in MODELS if m["id"] == path.rsplit("/", 1)[-1])
        if path == "/datasets":
            return {"items": [{"id": DATASET}], "next_token": None}
        if path == f"/trainings/{JOB}":
            return {
                "id": JOB,
                "status": "COMPLETED",
                "fm_type": "flux1",
                "components": {"ae": AE, "t5xxl": T5},
            }
        raise AssertionError(f"unexpected GET {path}")

    def list_all(self, path: str, limit: int | None = None, **params: Any) -> list[dict[str, Any]]:
        return list(self.get(path)["items"])

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        self.posts.append((path, body))
        if path == "/trainings":
            return {"training": {"id": JOB, "status": "PENDING", **body}}
        if path.endswith("/complete"):
            return {"model": {"id": BASE, "status": "ready", "component": "t5xxl"}}
        model = {"id": BASE, "status": "ready", **body}
        if "source_url" in body:
            return {"model": model}
        parts = [{"part_number": 1, "url": "http://127.0.0.1:9/part1"}]
        return {"model": model, "upload": {"upload_id": "u1", "part_size": 1 << 20, "parts": parts}}


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> RecordingApi:
    fake = RecordingApi()

    @contextlib.contextmanager
    def fake_api(args: Any) -> Iterator[RecordingApi]:
        yield fake

    monkeypatch.setattr(commands, "api", fake_api)
    # the presigned part PUTs are tests/e2e/test_cli.py's subject; here only the bodies matter
    monkeypatch.setattr(commands, "upload_parts", lambda *a, **k: [{"part_number": 1, "etag": '"e1"'}])
    return fake


def run(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = loractl([*arguments, "--endpoint", "http://127.0.0.1:9", "--token", "t"])
    return code, out.getvalue(), " ".join(err.getvalue().split())  # rich wraps long lines


def tiny_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(b"x" * 64)  # loractl sends bytes; the server reads the header
    return path


def test_upload_sends_the_component_role_and_leaves_it_out_for_the_main_file(
    recording: RecordingApi, tmp_path: Path
) -> None:
    t5 = tiny_file(tmp_path, "t5xxl_fp16.safetensors")
    assert run("models", "upload", str(t5), "--fm-type", "flux1", "--component", "t5xxl")[0] == 0
    flux = tiny_file(tmp_path, "flux1-dev.safetensors")
    assert run("models", "upload", str(flux), "--fm-type", "flux1")[0] == 0
    (_, component_body), _complete, (_, main_body), _ = recording.posts
    assert component_body["component"] == "t5xxl" and component_body["fm_type"] == "flux1"
    assert component_body["filename"] == "t5xxl_fp16.safetensors"
    assert "component" not in main_body  # absent = the family's main checkpoint


def test_import_sends_the_component_role(recording: RecordingApi) -> None:
    url = "https://huggingface.co/black-forest-labs/FLUX.1-dev/resolve/main/ae.safetensors"
    code, _, err = run("models", "import", url, "--fm-type", "flux1", "--component", "ae")
    assert code == 0, err
    assert recording.posts == [
        (
            "/models",
            {
                "name": "ae.safetensors",
                "kind": "checkpoint",
                "fm_type": "flux1",
                "source_url": url,
                "component": "ae",
            },
        )
    ]


@pytest.mark.parametrize("action", ["upload", "import"])
def test_an_unknown_role_is_refused_by_the_parser_with_the_roles_it_takes(
    recording: RecordingApi, tmp_path: Path, action: str
) -> None:
    target = (
        str(tiny_file(tmp_path, "vae.safetensors")) if action == "upload" else "https://h/vae.safetensors"
    )
    code, _, err = run("models", action, target, "--fm-type", "flux1", "--component", "vae")
    assert code == 2
    assert "invalid choice: 'vae'" in err
    assert all(role.value in err for role in ComponentRole)
    assert recording.posts == []


def test_training_components_resolve_prefixes_like_every_other_id(recording: RecordingApi) -> None:
    code, out, err = run(
        "trainings", "create", "--model", BASE[:8], "--dataset", DATASET, "--fm-type", "flux1",
        "--component", f"ae={AE[:6]}", "--component", f"t5xxl={T5}",
        "--component", f"clip_l={CLIP_L[:8].upper()}",
        "--instance-type", "ml.g6e.2xlarge", "--output", "json",
    )  # fmt: skip
    assert code == 0, err
    ((path, body),) = recording.posts
    assert path == "/trainings"
    assert body["base_model_id"] == BASE
    assert body["components"] == {"ae": AE, "t5xxl": T5, "clip_l": CLIP_L}
    assert json.loads(out)["components"] == body["components"]


def test_a_training_without_components_sends_none(recording: RecordingApi) -> None:
    code, _, err = run("trainings", "create", "--model", BASE, "--dataset", DATASET, "--fm-type", "flux1")
    assert code == 0, err
    ((_, body),) = recording.posts
    assert "components" not in body  # SD 1.5 / SDXL bodies stay as they were; the API names what is missing


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("vae=" + AE, "--component 'vae=" + AE + "': the role must be one of ae, clip_l, clip_g, t5xxl"),
        ("t5xxl", "--component 't5xxl': give ROLE=MODEL, e.g. t5xxl=MODEL_ID"),
        ("t5xxl=", "--component 't5xxl=': give ROLE=MODEL"),
        ("ae=zzzz", "no model id starts with 'zzzz'"),
    ],
)
def test_bad_component_values_are_usage_errors_before_any_post(
    recording: RecordingApi, value: str, message: str
) -> None:
    create = ("trainings", "create", "--model", BASE, "--dataset", DATASET, "--fm-type", "flux1")
    code, _, err = run(*create, "--component", value)
    assert code == 2
    assert message in err
    assert recording.posts == []


def test_a_role_given_twice_is_a_usage_error(recording: RecordingApi) -> None:
    create = ("trainings", "create", "--model", BASE, "--dataset", DATASET, "--fm-type", "flux1")
    code, _, err = run(*create, "--component", f"ae={AE}", "--component", f"ae={T5}")
    assert code == 2 and "--component: ae is given twice" in err
    assert recording.posts == []


def test_model_lists_and_details_show_the_component(
    recording: RecordingApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rich reads COLUMNS once, when loractl.output's console is made: set the width on it instead.
    monkeypatch.setattr(output, "console", Console(width=200))  # one table row per model
    code, out, _ = run("models", "list", "--output", "table")
    assert code == 0
    rows = {line.split()[1]: line for line in out.splitlines() if "01j" in line}
    assert "checkpoint:t5xxl" in rows[T5] and "checkpoint:ae" in rows[AE]
    assert "checkpoint:" not in rows[BASE]
    code, out, _ = run("models", "get", T5)
    assert code == 0
    assert any(line.split() == ["component", "t5xxl"] for line in out.splitlines())


def test_a_training_shows_its_components(recording: RecordingApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "console", Console(width=200))
    code, out, _ = run("trainings", "get", JOB)
    assert code == 0
    assert any(line.split() == ["components", f"ae={AE},", f"t5xxl={T5}"] for line in out.splitlines()), out


def documented_commands() -> list[str]:
    """docs/flux-and-sd35.md's ``loractl`` commands (``VAR=value`` prefixes kept), as written."""
    markdown = (PROJECT_ROOT / "docs" / "flux-and-sd35.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.DOTALL):
        text = block.replace("\\\n", " ")
        commands += [line for line in text.splitlines() if re.match(r"^([A-Z_]+=\S+ )*loractl ", line)]
    return commands


def test_the_flux_guides_commands_send_what_it_says(
    recording: RecordingApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every loractl command of docs/flux-and-sd35.md, verbatim but for its placeholder ids, parses
    and sends the components the guide describes."""
    monkeypatch.setattr(commands, "POLL_SECONDS", 0.0)
    monkeypatch.chdir(tmp_path)
    placeholders = {
        "FLUX_MODEL_ID": BASE,
        "SD35_MODEL_ID": SD35,
        "AE_ID": AE,
        "CLIP_ID": CLIP_L,
        "CLIP_G_ID": CLIP_G,
        "T5_ID": T5,
        "DATASET_ID": DATASET,
    }
    documented = documented_commands()
    assert len(documented) == 9, documented  # FLUX.1: 4 uploads, the gated import, the job; SD 3.5: 2, 1
    for line in documented:
        words = shlex.split(line)
        while "=" in words[0]:
            name, value = words.pop(0).split("=", 1)
            monkeypatch.setenv(name, value)
        arguments = [re.sub("|".join(placeholders), lambda m: placeholders[m[0]], w) for w in words[1:]]
        if arguments[:2] == ["models", "upload"]:
            tiny_file(tmp_path, arguments[2])
        code, _, err = run(*arguments)
        assert code == 0, (line, err)
    bodies = [body for path, body in recording.posts if not path.endswith("/complete")]
    uploads = {body["filename"]: body.get("component") for body in bodies if "size_bytes" in body}
    assert uploads == {
        "flux1-dev.safetensors": None,
        "ae.safetensors": "ae",
        "clip_l.safetensors": "clip_l",
        "t5xxl_fp16.safetensors": "t5xxl",
        "sd3.5_large.safetensors": None,
        "clip_g.safetensors": "clip_g",
    }
    (imported,) = [body for body in bodies if "source_url" in body]
    assert imported["fm_type"] == "flux1" and imported["access_token"] == "hf_..."
    flux, sd35 = [body for body in bodies if "base_model_id" in body]
    assert flux["components"] == {"ae": AE, "clip_l": CLIP_L, "t5xxl": T5}
    assert flux["instance_type"] == "ml.g6e.2xlarge" and flux["fm_type"] == "flux1"
    assert sd35["base_model_id"] == SD35 and sd35["fm_type"] == "sd35"
    assert sd35["components"] == {"clip_l": CLIP_L, "clip_g": CLIP_G, "t5xxl": T5}  # shared CLIP-L, T5-XXL
