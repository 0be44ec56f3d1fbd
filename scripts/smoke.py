#!/usr/bin/env python3
"""Smoke test of a deployed stack (or the local runtime), end to end, without a GPU.

    make smoke ENDPOINT=https://<api id>.execute-api.<region>.amazonaws.com/prod/   # SigV4, AWS creds
    python scripts/smoke.py --endpoint http://127.0.0.1:8000 --token <local token>  # local runtime

Steps: config defaults and validation; a tiny model (multipart, presigned) and a tiny captioned
dataset uploaded and completed; a training job on the cheapest instance type the deployment
allows, with the shortest runtime the API accepts, stopped at once and awaited until it ends;
the lists; then everything it created is deleted. On AWS the job may bill the minutes SageMaker
spends starting and stopping the instance (it never trains: the model is a 64-byte stand-in).
Exit status 0 when every step passed; each step is printed as it runs.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install needed

from functions.domain.catalog import INSTANCE_TYPES, FmType, instance_supports
from functions.domain.checkpoint_family import LATENT_CHANNELS
from functions.domain.checkpoint_layout import SD15_TEXT_PART, UNET, VAE
from functions.domain.statuses import JobStatus, is_terminal
from loractl.client import ApiClient, ApiError
from loractl.config import Connection

FM_TYPE = FmType.SD15
SHORTEST_RUNTIME_SECONDS = 600  # CreateTrainingRequest.max_runtime_seconds minimum


def smoke_checkpoint(text_width: int = 8) -> bytes:
    """The smallest SD 1.5 checkpoint the service accepts: every tensor its family check reads
    (``functions/domain/checkpoint_family``: UNet, VAE and CLIP parts, 4 latent channels,
    cross-attention as wide as the text embeddings), with tiny widths and zero bytes."""
    shapes: dict[str, list[int]] = {
        f"{UNET}input_blocks.0.0.weight": [4, LATENT_CHANNELS, 3, 3],
        f"{UNET}time_embed.0.weight": [16, 4],
        f"{UNET}out.2.weight": [LATENT_CHANNELS, 4, 3, 3],
        f"{UNET}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [4, text_width],
        f"{VAE}encoder.conv_in.weight": [4, 3, 3, 3],
        f"{VAE}decoder.conv_out.weight": [3, 4, 3, 3],
        f"{VAE}quant_conv.weight": [8, 8, 1, 1],
        SD15_TEXT_PART.keys[0]: [16, text_width],
        SD15_TEXT_PART.keys[1]: [text_width],
    }
    header: dict[str, dict[str, object]] = {}
    offset = 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        header[name] = {"dtype": "U8", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def tiny_png(size: int = 8, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A solid-colour RGB PNG written by hand (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def cheapest_instance_types() -> list[str]:
    """The catalogue's instance types able to train SD 1.5, cheapest first."""
    fitting = [it for it in INSTANCE_TYPES.values() if instance_supports(it, FM_TYPE)]
    return [it.name for it in sorted(fitting, key=lambda it: it.price_per_hour_usd)]


@dataclass
class Smoke:
    api: ApiClient
    wait_seconds: float
    poll_seconds: float = 5.0
    cleanup: list[tuple[str, str]] = field(default_factory=list)  # (label, path to DELETE)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        print(f"[smoke] {name} ...", flush=True)
        yield
        print(f"[smoke] {name}: ok ({time.monotonic() - started:.1f} s)", flush=True)

    def configs(self) -> None:
        with self.step("GET /configs/defaults"):
            defaults = self.api.get("/configs/defaults", fm_type=FM_TYPE.value)
            assert defaults["defaults"], defaults
        with self.step("POST /configs/validate"):
            checked = self.api.post(
                "/configs/validate", {"fm_type": FM_TYPE.value, "config": {"network_dim": 4}}
            )
            assert checked["config"]["network_dim"] == 4, checked
        with self.step("POST /configs/validate refuses a bad value, naming the field"):
            try:
                self.api.post("/configs/validate", {"fm_type": FM_TYPE.value, "config": {"network_dim": -1}})
            except ApiError as error:
                assert error.status == 400 and any("network_dim" in str(d) for d in error.details), error
            else:
                raise AssertionError("network_dim=-1 was accepted")

    def model(self) -> str:
        content = smoke_checkpoint()
        with self.step("model: create, upload (presigned multipart), complete"):
            created = self.api.post(
                "/models",
                {"name": "smoke base", "kind": "checkpoint", "fm_type": FM_TYPE.value,
                 "filename": "smoke.safetensors", "size_bytes": len(content)},
            )  # fmt: skip
            model_id = created["model"]["id"]
            self.cleanup.append(("model", f"/models/{model_id}"))
            upload, parts = created["upload"], []
            for part in upload["parts"]:
                start = (part["part_number"] - 1) * upload["part_size"]
                response = httpx.put(
                    part["url"], content=content[start : start + upload["part_size"]], timeout=60
                )
                response.raise_for_status()
                parts.append({"part_number": part["part_number"], "etag": response.headers["ETag"]})
            model = self.api.post(f"/models/{model_id}/complete", {"parts": parts})
            assert model["status"] == "ready", model
        return str(model_id)

    def dataset(self) -> str:
        files = {
            "2_smoke/a.png": tiny_png(rgb=(200, 30, 30)),
            "2_smoke/a.txt": b"a smoke test image",
            "2_smoke/b.png": tiny_png(rgb=(30, 200, 30)),
            "2_smoke/b.txt": b"another smoke test image",
        }
        with self.step("dataset: declare, upload (presigned), complete"):
            created = self.api.post(
                "/datasets",
                {
                    "name": "smoke dataset",
                    "files": [{"path": p, "size_bytes": len(b)} for p, b in files.items()],
                },
            )
            dataset_id = created["dataset"]["id"]
            self.cleanup.append(("dataset", f"/datasets/{dataset_id}"))
            for upload in created["uploads"]:
                response = httpx.put(
                    upload["url"], content=files[upload["path"]], headers=upload["headers"], timeout=60
                )
                response.raise_for_status()
            dataset = self.api.post(f"/datasets/{dataset_id}/complete")
            # The service decodes every file in a background task before the dataset is usable.
            deadline = time.monotonic() + self.wait_seconds
            while dataset["status"] == "validating" and time.monotonic() < deadline:
                time.sleep(self.poll_seconds)
                dataset = self.api.get(f"/datasets/{dataset_id}")
            assert dataset["status"] == "ready", dataset
        return str(dataset_id)

    def training(self, model_id: str, dataset_id: str, instance_types: list[str]) -> str:
        job = self._start(model_id, dataset_id, instance_types)
        with self.step(f"POST /trainings/{job['id']}/stop"):
            try:
                self.api.post(f"/trainings/{job['id']}/stop")
            except ApiError as error:  # it may have ended (failed) on its own already
                assert error.status == 409, error
        with self.step(f"wait for training {job['id']} to end (at most {self.wait_seconds:.0f} s)"):
            status = self._wait_until_ended(job["id"])
            assert status in (JobStatus.STOPPED, JobStatus.FAILED), status
            print(f"[smoke]   ended {status.value}", flush=True)
        self.cleanup.insert(0, ("training", f"/trainings/{job['id']}"))
        return str(job["id"])

    def _start(self, model_id: str, dataset_id: str, instance_types: list[str]) -> dict[str, Any]:
        for instance_type in instance_types:
            body = {
                "fm_type": FM_TYPE.value, "base_model_id": model_id, "dataset_id": dataset_id,
                "instance_type": instance_type, "name": "smoke", "config": {"max_train_epochs": 1},
                "max_runtime_seconds": SHORTEST_RUNTIME_SECONDS, "use_spot": False,
            }  # fmt: skip
            try:
                with self.step(f"POST /trainings on {instance_type}"):
                    job: dict[str, Any] = self.api.post(
                        "/trainings", body, headers={"Idempotency-Key": f"smoke-{uuid.uuid4().hex}"}
                    )
                return job
            except ApiError as error:
                if error.status == 400 and any(d.get("field") == "instance_type" for d in error.details):
                    print(f"[smoke]   {instance_type} is not allowed here; trying the next", flush=True)
                    continue
                raise
        raise AssertionError("the deployment allows none of the catalogue's SD 1.5 instance types")

    def _wait_until_ended(self, job_id: str) -> JobStatus:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            status = JobStatus(self.api.get(f"/trainings/{job_id}")["status"])
            if is_terminal(status) or time.monotonic() > deadline:
                return status
            time.sleep(self.poll_seconds)

    def lists(self, ids: dict[str, str]) -> None:
        with self.step("GET /models, /datasets, /trainings list what was created"):
            for path, wanted in (("/models", ids["model"]), ("/datasets", ids["dataset"])):
                listed = {item["id"] for item in self.api.list_all(path)}
                assert wanted in listed, (path, wanted)
            if "training" in ids:
                assert ids["training"] in {j["id"] for j in self.api.list_all("/trainings")}

    def clean_up(self) -> list[str]:
        """Delete what the run created (jobs first); returns what could not be deleted."""
        left: list[str] = []
        for label, path in self.cleanup:
            try:
                self.api.delete(path)
                print(f"[smoke] deleted {label} {path}", flush=True)
            except ApiError as error:
                if error.status != 404:
                    left.append(f"{label} {path}: {error.describe()}")
        return left


def run(
    endpoint: str, token: str | None, region: str | None, wait_seconds: float, poll_seconds: float
) -> int:
    api = ApiClient(Connection(endpoint=endpoint, token=token, region=region))
    smoke = Smoke(api, wait_seconds, poll_seconds)
    failed = False
    try:
        smoke.configs()
        ids = {"model": smoke.model(), "dataset": smoke.dataset()}
        ids["training"] = smoke.training(ids["model"], ids["dataset"], cheapest_instance_types())
        smoke.lists(ids)
    except (AssertionError, ApiError, httpx.HTTPError) as error:
        print(f"[smoke] FAILED: {error!r}", file=sys.stderr, flush=True)
        failed = True
    finally:
        left = smoke.clean_up()
        api.close()
    for line in left:
        print(f"[smoke] NOT DELETED: {line}", file=sys.stderr, flush=True)
    if failed or left:
        return 1
    print("[smoke] all steps passed", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--endpoint", required=True, help="the stack's ApiUrl output, or the local runtime's URL"
    )
    parser.add_argument("--token", help="bearer token (local runtime); without it requests are SigV4-signed")
    parser.add_argument("--region", help="AWS region for SigV4 (default: read from the endpoint's host)")
    parser.add_argument(
        "--wait-seconds", type=float, default=900.0, help="how long to wait for the job to end"
    )
    parser.add_argument("--poll-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    return run(args.endpoint, args.token, args.region, args.wait_seconds, args.poll_seconds)


if __name__ == "__main__":
    raise SystemExit(main())
