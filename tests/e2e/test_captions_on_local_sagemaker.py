"""A captions job through the local SageMaker (the real entrypoint in its captioning mode, tiny
models built offline): a new captioned dataset comes out, and a second job on the same images,
given the first job's cache through the ``cache`` channel, runs no model."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.domain.captioning import CACHE_CHANNEL, CaptioningJobSpec, CaptioningSummary, CaptionMode
from local_runtime.aws_emulator import AwsEmulator
from local_runtime.job_runner import LocalTrainingJobRunner, RunnerOptions
from local_runtime.sagemaker_jobs import TrainingJobStore
from local_runtime.sagemaker_server import LocalSageMaker, SageMakerWireServer
from tests.e2e.test_local_sagemaker import NAMES, REGION, TERMINAL, sagemaker_client
from training_container.captioning.captioning_job import MODELS_DIR_ENV
from training_container.testing.tiny_captioners import install_tiny_captioning_models
from training_container.testing.tiny_models import make_tiny_dataset

BUCKET = NAMES.bucket


@pytest.fixture(scope="module")
def local_sagemaker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    folder = tmp_path_factory.mktemp("captions-sagemaker")
    models = install_tiny_captioning_models(folder / "models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MODELS_DIR_ENV, str(models))  # the job's child process inherits it
        aws = AwsEmulator(REGION)
        aws.start()
        aws.create_resources(NAMES)
        store = TrainingJobStore(folder / "jobs")
        runner = LocalTrainingJobRunner(
            store,
            aws.client("s3"),
            folder / "work",
            lambda event: None,
            RunnerOptions(checkpoint_sync_seconds=0.5),
        )
        server = SageMakerWireServer(LocalSageMaker(store, runner, REGION))
        server.start()
        try:
            yield sagemaker_client(server.endpoint_url), aws.client("s3")
        finally:
            server.stop()
            runner.shutdown()
            aws.stop()


def channel(name: str, prefix: str) -> dict[str, Any]:
    source = {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{prefix}"}}
    return {"ChannelName": name, "DataSource": source, "InputMode": "File"}


def run_captions_job(
    client: Any, s3: Any, name: str, spec: CaptioningJobSpec, cache_prefix: str | None
) -> str:
    s3.put_object(Bucket=BUCKET, Key=f"trainings/{name}/input/job.json", Body=spec.to_json().encode())
    channels = [channel("dataset", "datasets/src/files/"), channel("job", f"trainings/{name}/input/")]
    if cache_prefix:
        channels.append(channel(CACHE_CHANNEL, cache_prefix))
    client.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "local/lora:latest", "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::000000000000:role/training",
        HyperParameters={"job_id": name},
        InputDataConfig=channels,
        OutputDataConfig={
            "S3OutputPath": f"s3://{BUCKET}/trainings/{name}/output",
            "CompressionType": "NONE",
        },
        ResourceConfig={"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        CheckpointConfig={"S3Uri": f"s3://{BUCKET}/trainings/{name}/checkpoints/"},
        EnableNetworkIsolation=True,
    )
    deadline = time.monotonic() + 300  # a child process that imports torch, on a busy CI machine
    while time.monotonic() < deadline:
        job = client.describe_training_job(TrainingJobName=name)
        if job["TrainingJobStatus"] in TERMINAL:
            assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
            return f"trainings/{name}/output/{name}/output/model/"
        time.sleep(0.5)
    raise AssertionError(f"{name} did not finish")


def read(s3: Any, key: str) -> str:
    return str(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode())


def keys(s3: Any, prefix: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"][len(prefix) :] for item in listing)


@pytest.mark.slow
def test_uncaptioned_dataset_is_captioned_then_served_from_the_cache(
    local_sagemaker: tuple[Any, Any], tmp_path: Path
) -> None:
    client, s3 = local_sagemaker
    dataset = make_tiny_dataset(tmp_path / "dataset", concept="cat", repeats=2, n_images=3)
    for image in sorted(dataset.glob("*/*.png")):
        s3.put_object(
            Bucket=BUCKET,
            Key=f"datasets/src/files/{image.relative_to(dataset).as_posix()}",
            Body=image.read_bytes(),
        )
    spec = CaptioningJobSpec(job_id="cap1", mode=CaptionMode.MISSING, trigger_word="sks", use_captioner=True)

    first = run_captions_job(client, s3, "cap1", spec, cache_prefix=None)

    assert keys(s3, f"{first}dataset/") == [
        f"2_cat/img_{i}.{ext}" for i in range(3) for ext in ("png", "txt")
    ]
    for i in range(3):
        assert read(s3, f"{first}dataset/2_cat/img_{i}.txt").split(", ")[0] == "sks"
    summary = CaptioningSummary.model_validate_json(read(s3, f"{first}captions-summary.json"))
    assert (summary.cache_hits, summary.model_runs, summary.failures) == (0, 6, [])
    assert keys(s3, "datasets/src/files/") == [f"2_cat/img_{i}.png" for i in range(3)]  # source unchanged

    again = run_captions_job(client, s3, "cap2", spec.model_copy(update={"job_id": "cap2"}), f"{first}cache/")

    summary = CaptioningSummary.model_validate_json(read(s3, f"{again}captions-summary.json"))
    assert (summary.cache_hits, summary.model_runs) == (6, 0)
    assert keys(s3, f"{again}cache/") == []  # nothing new to cache
    for i in range(3):
        assert read(s3, f"{again}dataset/2_cat/img_{i}.txt") == read(s3, f"{first}dataset/2_cat/img_{i}.txt")
    progress = json.loads(read(s3, "trainings/cap2/checkpoints/progress.json"))
    assert (progress["phase"], progress["step"]) == ("done", 3)
