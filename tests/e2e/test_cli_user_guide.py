"""docs/USER_GUIDE.md as a test: its ``loractl`` commands, taken verbatim from the Markdown, run
in order in a shell against the local runtime, so the guide cannot drift from the tool.

Only the placeholders are filled in (``MODEL_ID``, ``DATASET_ID``, ``JOB_ID``, bound as the
guide means them), the files the guide names are made tiny, and ``$EDITOR`` is a script that
makes the edit the guide suggests at a CPU-sized scale. Commands that cannot run here are
listed in ``NOT_RUN`` with the reason; the test fails if the guide and that list disagree.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import PROJECT_ROOT, RunningRuntime, RuntimeLauncher
from training_container.testing.tiny_models import save_tiny_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("local-runtime-training")]

GUIDE = PROJECT_ROOT / "docs" / "USER_GUIDE.md"
NOT_RUN = {
    # the local runtime refuses non-public addresses and this machine has no internet
    "loractl models import https://huggingface.co/.../resolve/main/model.safetensors --fm-type sd15 --wait",
}
# What the guide's "$EDITOR lora.toml" does here: its suggested edit, sized for a CPU and a tiny model.
EDITOR = """\
import sys, tomllib, tomli_w
path = sys.argv[1]
config = tomllib.load(open(path, "rb"))
config.update(network_dim=4, network_alpha=4, max_train_epochs=2, save_every_n_epochs=1,
              resolution="256", min_bucket_reso=256, max_bucket_reso=512, max_data_loader_n_workers=0,
              learning_rate=1e-3)
open(path, "wb").write(tomli_w.dumps(config).encode())
"""
COMMAND_TIMEOUT_SECONDS = 900


def guide_commands(markdown: str) -> list[str]:
    """The ``loractl`` and ``$EDITOR`` commands of the guide's ```bash blocks, continuation
    lines joined, in order."""
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.DOTALL):
        pending = ""
        for line in block.splitlines():
            if pending:
                pending += "\n" + line
            elif line.startswith(("loractl ", "$EDITOR ")):
                pending = line
            if pending and not line.rstrip().endswith("\\"):
                commands.append(pending)
                pending = ""
    return commands


def without_comment(command: str) -> str:
    return re.sub(r"\s+#.*$", "", command).strip()


def make_inputs(folder: Path) -> None:
    """The files the guide names: two base checkpoints and a one-concept dataset folder."""
    save_tiny_checkpoint("sd15", folder / "v1-5-pruned-emaonly.safetensors")
    save_tiny_checkpoint("sdxl", folder / "sd_xl_base_1.0.safetensors")
    concept = folder / "my-dataset" / "10_sks cat"
    concept.mkdir(parents=True)
    for index, colour in ((1, "orange"),):  # one image: 10 repeats x 2 epochs = 20 CPU steps
        Image.new("RGB", (600, 520), colour).save(concept / f"cat{index}.png")
        (concept / f"cat{index}.txt").write_text("sks cat, sitting on a sofa, soft light")
    (folder / "editor.py").write_text(EDITOR)


class Placeholders:
    """The ids the guide's placeholders stand for, read from the API when a command needs them."""

    def __init__(self, runtime: RunningRuntime) -> None:
        self._http = httpx.Client(
            base_url=runtime.api_url, headers={"Authorization": f"Bearer {runtime.token()}"}, timeout=60
        )

    def _items(self, path: str) -> list[dict[str, object]]:
        response = self._http.get(path, params={"limit": 100})
        response.raise_for_status()
        return list(response.json()["items"])

    def model_id(self) -> str:
        """The SD 1.5 base model the guide trains on (the newest sd15 checkpoint)."""
        return str(
            next(
                m["id"]
                for m in self._items("/models")
                if m["kind"] == "checkpoint" and m["fm_type"] == "sd15"
            )
        )

    def dataset_id(self) -> str:
        """The dataset the guide uploaded (the oldest one that is not a server-side crop)."""
        return str([d["id"] for d in self._items("/datasets") if not d.get("crop")][-1])

    def job_id(self) -> str:
        return str(self._items("/trainings")[0]["id"])

    def fill(self, command: str) -> str:
        for name, value in (
            ("MODEL_ID", self.model_id),
            ("DATASET_ID", self.dataset_id),
            ("JOB_ID", self.job_id),
        ):
            if name in command:
                command = command.replace(name, value())
        return command


def test_guide_commands_are_found() -> None:
    commands = guide_commands(GUIDE.read_text(encoding="utf-8"))
    joined = [without_comment(c) for c in commands]
    assert set(joined) >= NOT_RUN, "NOT_RUN names a command the guide no longer has"
    assert len(commands) >= 20
    groups = ("models upload", "datasets prepare", "datasets upload", "configs defaults", "trainings create",
              "trainings wait", "trainings download", "models download", "trainings delete")  # fmt: skip
    for group in groups:
        assert any(f"loractl {group}" in c for c in commands), group


def test_user_guide_runs_verbatim_against_the_local_runtime(
    runtimes: RuntimeLauncher, tmp_path: Path
) -> None:
    runtime = runtimes.start()
    work = tmp_path / "work"
    work.mkdir()
    make_inputs(work)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "loractl"  # this checkout's loractl, as `source .venv/bin/activate` provides it
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m loractl.main "$@"\n')
    wrapper.chmod(0o755)
    env = {
        **os.environ,
        **runtime.env(),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(PROJECT_ROOT),
        "EDITOR": f"{sys.executable} {work / 'editor.py'}",
        "LORACTL_CONFIG": str(tmp_path / "loractl.toml"),
        "COLUMNS": "100",
    }
    placeholders = Placeholders(runtime)
    ran = []
    for command in guide_commands(GUIDE.read_text(encoding="utf-8")):
        if without_comment(command) in NOT_RUN:
            continue
        filled = placeholders.fill(command)
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", filled],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
        )
        assert result.returncode == 0, f"{filled}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"
        ran.append(without_comment(command))

    assert (work / "loss.png").is_file()
    loras = sorted(p.name for p in (work / "loras").iterdir())
    assert len(loras) == 2 and loras[0].endswith("-000001.safetensors")  # epoch 1's, then the final one
    assert list((work / "samples").glob("*-contact-sheet.png"))
    assert (work / "lora.toml").read_text().count("network_dim") >= 1
