"""Dataset preparation end to end: `loractl datasets prepare` locally, and a server-side crop
run by the local runtime's tasks function (the same asynchronous Lambda path as in AWS)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tests.e2e.cli_helpers import run_cli
from tests.e2e.conftest import RuntimeLauncher


def make_dataset(root: Path) -> Path:
    folder = root / "3_cat"
    folder.mkdir(parents=True)
    Image.new("RGB", (300, 200), (200, 90, 40)).save(folder / "wide.png")
    (folder / "wide.txt").write_text("sks cat, wide")
    Image.new("RGB", (100, 160), (20, 90, 240)).save(folder / "tall.jpg")
    (folder / "tall.txt").write_text("sks cat, tall")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (folder / "broken.txt").write_text("never used")
    return root


def test_prepare_locally_writes_cropped_images_and_their_captions(tmp_path: Path) -> None:
    from loractl.main import main as loractl

    source = make_dataset(tmp_path / "in")
    out = tmp_path / "out"
    assert loractl(["datasets", "prepare", str(source), "--resolution", "64", str(out)]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "3_cat/tall.jpg", "3_cat/tall.txt", "3_cat/wide.png", "3_cat/wide.txt",
    ]  # fmt: skip
    assert Image.open(out / "3_cat/wide.png").size == (64, 64)
    assert (out / "3_cat/tall.txt").read_text() == "sks cat, tall"
    # never into the source itself
    assert loractl(["datasets", "prepare", str(source), "--resolution", "64", str(source / "x")]) == 2


def test_a_server_side_crop_becomes_a_ready_dataset(runtimes: RuntimeLauncher, tmp_path: Path) -> None:
    source = make_dataset(tmp_path / "in")
    (source / "3_cat" / "broken.png").unlink()
    (source / "3_cat" / "broken.txt").unlink()
    runtime = runtimes.start(users=("local", "alice"))
    uploaded = run_cli(runtime, "datasets", "upload", str(source), "--name", "cats")
    assert uploaded.exit_code == 0, uploaded.stderr
    cropped = run_cli(
        runtime, "datasets", "crop", uploaded.data["id"], "--resolution", "64", "--mode", "smart", "--wait"
    )
    assert cropped.exit_code == 0, cropped.stderr
    assert cropped.data["status"] == "ready", cropped.data
    assert cropped.data["name"] == "cats 64"
    assert cropped.data["manifest"]["image_count"] == 2 and cropped.data["crop"]["mode"] == "smart"
    assert run_cli(runtime, "datasets", "get", cropped.data["id"], user="alice").exit_code == 3  # not hers
