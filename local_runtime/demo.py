"""``make demo``: the whole product on this machine in a few minutes, with tiny random models.

    start the local runtime -> build a tiny base checkpoint and a captioned Kohya dataset ->
    upload both with loractl -> train a LoRA (live progress bar) -> download it ->
    render one image without and one with the LoRA -> report the pixel difference -> stop.

Everything lands in ``demo-output/`` (override with ``--output-dir``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from functions.domain.catalog import FmType
from local_runtime.quiet import disable_library_progress_bars, silence_known_noise
from local_runtime.runtime import LocalRuntime, LocalRuntimeOptions
from local_runtime.serve import loractl_hint
from loractl.main import main as loractl

DEMO_CONCEPT = "tinydemo"
DEMO_INSTANCE_TYPE = "ml.g5.xlarge"  # recorded for the plan and cost estimate; the job runs locally
RENDER_SIZE = 128
RENDER_STEPS = 4


class DemoError(Exception):
    """A demo step failed; the message says which and why."""


def demo_config(steps: int) -> dict[str, Any]:
    """Kohya parameters small enough for CPU, with a learning rate that visibly moves the LoRA."""
    return {
        "resolution": 256,
        "min_bucket_reso": 256,
        "max_bucket_reso": 512,
        "network_dim": 4,
        "network_alpha": 4,
        "learning_rate": 5e-3,
        "unet_lr": 5e-3,
        "text_encoder_lr": 1e-3,
        "max_train_steps": steps,
        "max_data_loader_n_workers": 0,
    }


def run_loractl(arguments: list[str], connection: list[str]) -> Any:
    """Run one loractl command in-process with ``--json``; returns its parsed output."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        status = loractl([*arguments, *connection, "--json"])
    if status != 0:
        raise DemoError(f"`loractl {' '.join(arguments)}` exited with {status}:\n{captured.getvalue()}")
    return json.loads(captured.getvalue())


def build_inputs(fm_type: FmType, folder: Path, steps: int) -> tuple[Path, Path, Path]:
    from training_container.testing.tiny_models import make_tiny_dataset, save_tiny_checkpoint

    checkpoint = save_tiny_checkpoint(fm_type, folder / f"tiny-{fm_type.value}.safetensors")
    dataset = make_tiny_dataset(folder / "dataset", concept=DEMO_CONCEPT, repeats=2, n_images=4)
    config = folder / "lora.json"
    config.write_text(json.dumps(demo_config(steps), indent=2), encoding="utf-8")
    return checkpoint, dataset, config


def render_with_and_without(fm_type: FmType, lora: Path, folder: Path) -> tuple[Path, Path, float]:
    """Render the same prompt and seed twice (base, base + LoRA); returns the PNGs and the mean
    absolute pixel difference (0-255)."""
    import numpy as np
    import torch

    from training_container.testing.tiny_models import build_tiny_pipeline

    disable_library_progress_bars()
    pipe = build_tiny_pipeline(fm_type, seed=0)  # the same weights as the uploaded checkpoint
    pipe.set_progress_bar_config(disable=True)

    def render() -> Any:
        generator = torch.Generator().manual_seed(1234)
        result = pipe(
            prompt=f"{DEMO_CONCEPT}, a circle, flat colours",
            num_inference_steps=RENDER_STEPS,
            height=RENDER_SIZE,
            width=RENDER_SIZE,
            generator=generator,
            guidance_scale=1.0,
        )
        return result.images[0]

    without = render()
    pipe.load_lora_weights(str(lora.parent), weight_name=lora.name)
    with_lora = render()
    paths = folder / "without-lora.png", folder / "with-lora.png"
    without.save(paths[0])
    with_lora.save(paths[1])
    difference = np.abs(
        np.asarray(without, dtype=np.float32) - np.asarray(with_lora, dtype=np.float32)
    ).mean()
    return paths[0], paths[1], float(difference)


def _rounded(value: Any, digits: int = 4) -> str:
    """A float for people (0.8058637380599976 -> 0.8059); anything else as it is."""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def run_demo(fm_type: FmType, output_dir: Path, steps: int) -> int:
    shutil.rmtree(output_dir, ignore_errors=True)
    inputs, results = output_dir / "inputs", output_dir / "results"
    results.mkdir(parents=True)
    started = time.monotonic()
    print(
        f"[demo] building a tiny {fm_type.value} checkpoint and a {DEMO_CONCEPT!r} dataset in {inputs}",
        flush=True,
    )
    checkpoint, dataset, config = build_inputs(fm_type, inputs, steps)

    runtime = LocalRuntime(
        LocalRuntimeOptions(data_dir=output_dir / "local-data", api_port=0, write_cli_config=False)
    )
    info = runtime.start()
    print(f"[demo] local runtime up: API {info.api_url} (state in {info.data_dir})", flush=True)
    connection = ["--endpoint", info.api_url, "--token", info.tokens["local"]]
    try:
        model = run_loractl(
            ["models", "upload", str(checkpoint), "--fm-type", fm_type.value, "--name", "tiny base"],
            connection,
        )
        print(f"[demo] base model {model['id']} is {model.get('status')}", flush=True)
        dataset_record = run_loractl(
            ["datasets", "upload", str(dataset), "--name", "tiny dataset"], connection
        )
        print(f"[demo] dataset {dataset_record['id']} is {dataset_record.get('status')}", flush=True)
        job = run_loractl(
            [
                "trainings", "create", "--model", str(model["id"]), "--dataset", str(dataset_record["id"]),
                "--fm-type", fm_type.value, "--instance-type", DEMO_INSTANCE_TYPE, "--config", str(config),
                "--name", "demo", "--no-spot", "--wait",
            ],
            connection,
        )  # fmt: skip
        output = job.get("output") or {}
        print(
            f"[demo] training {job['id']} ended {job['status']}: {output.get('steps')} steps, "
            f"final loss {_rounded(output.get('final_loss'))}, "
            f"{_rounded(output.get('training_seconds'), 1)}s of training "
            f"(on AWS: an estimated ${job['plan']['estimated_cost_usd']:.2f} on {DEMO_INSTANCE_TYPE})",
            flush=True,
        )
        downloaded = run_loractl(["trainings", "download", str(job["id"]), str(results)], connection)
    finally:
        runtime.stop()
    lora = Path(downloaded["path"])
    without, with_lora, difference = render_with_and_without(fm_type, lora, results)
    print(
        "\n".join(
            [
                "",
                f"[demo] done in {time.monotonic() - started:.0f}s",
                f"  LoRA (Kohya format)  {lora} ({lora.stat().st_size} bytes)",
                f"  without the LoRA     {without}",
                f"  with the LoRA        {with_lora}",
                f"  mean |pixel diff|    {difference:.2f} / 255",
                f"  runtime state        {info.data_dir} (job logs under sagemaker/work/)",
                "",
                "Next: `make serve` keeps the local runtime running (it writes loractl's 'local' profile);",
                "then, in another terminal:",
                loractl_hint(),
            ]
        ),
        flush=True,
    )
    if difference <= 0.0:
        raise DemoError("the LoRA did not change the rendered image")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_runtime.demo", description=__doc__)
    parser.add_argument("--fm-type", choices=[f.value for f in FmType], default=FmType.SD15.value)
    parser.add_argument("--output-dir", type=Path, default=Path("demo-output"))
    parser.add_argument("--steps", type=int, default=30, help="training steps (default 30)")
    args = parser.parse_args(argv)
    silence_known_noise()
    try:
        return run_demo(FmType(args.fm_type), args.output_dir.resolve(), args.steps)
    except DemoError as error:
        print(f"[demo] FAILED: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
