"""The CreateTrainingJob request the service sends: valid for SageMaker's API model, and complete."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from functions.domain.storage_layout import dataset_prefix, owner_key
from functions.domain.training_contract import TrainingHyperparameters
from functions.services.context import service_context
from tests.integration.conftest import BUCKET, JOB_PREFIX, ApiCaller
from tests.integration.workflow import ready_inputs, training_body


@pytest.fixture
def spot_in_a_vpc(aws_emulator: str) -> Any:
    ctx = service_context()
    original = ctx.settings
    ctx.settings = dataclasses.replace(
        original, subnet_ids=("subnet-1", "subnet-2"), security_group_ids=("sg-1",), network_isolation=True
    )
    yield ctx
    ctx.settings = original


def test_create_training_job_request(api: ApiCaller, sagemaker_stub: Any, spot_in_a_vpc: Any) -> None:
    model_id, dataset_id = ready_inputs(api)
    captured: dict[str, Any] = {}

    def capture(params: dict[str, Any], **_: Any) -> None:
        captured.update(params)

    sagemaker_stub.client.meta.events.register("provide-client-params.sagemaker.CreateTrainingJob", capture)
    # botocore validates the parameters against SageMaker's service model before the stub answers.
    sagemaker_stub.add_response(
        "create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}
    )
    body = training_body(model_id, dataset_id, use_spot=True, max_runtime_seconds=7200)
    status, job = api("POST", "/trainings", body)
    assert status == 201 and job["status"] == "STARTING", job
    sagemaker_stub.assert_no_pending_responses()

    request = captured
    prefix = f"s3://{BUCKET}/"
    assert request["TrainingJobName"] == f"{JOB_PREFIX}-{job['id']}"
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in request["InputDataConfig"]}
    assert channels["model"]["S3Uri"] == f"{prefix}models/{owner_key(api.owner)}/{model_id}/"
    assert channels["dataset"]["S3Uri"] == prefix + dataset_prefix(api.owner, dataset_id)
    assert request["OutputDataConfig"]["CompressionType"] == "NONE"
    assert request["OutputDataConfig"]["S3OutputPath"].endswith(f"/{job['id']}/output/")
    assert request["CheckpointConfig"]["S3Uri"].endswith(f"/{job['id']}/checkpoints/")
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    assert request["EnableNetworkIsolation"] is True
    assert request["VpcConfig"] == {"Subnets": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]}
    assert {t["Key"]: t["Value"] for t in request["Tags"]} == {
        "lora:job-id": job["id"],
        "lora:owner-key": owner_key(api.owner),
    }
    hyper = TrainingHyperparameters.from_sagemaker(request["HyperParameters"])
    assert hyper.job_id == job["id"] and hyper.base_model_filename == "base.safetensors"
    assert hyper.output_name == request["TrainingJobName"]
    assert hyper.config["network_dim"] == 8 and hyper.config["max_train_epochs"] == 2
    assert all(len(v) <= 2500 for v in request["HyperParameters"].values())  # SageMaker's limit
    assert json.loads(request["HyperParameters"]["config"]) == job["config"]
