"""The CreateTrainingJob request the service sends: valid for SageMaker's API model, and complete."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from functions.domain.batch_queue import JOB_NAME_TAG
from functions.domain.catalog import FmType
from functions.domain.kohya_params import MAX_CONFIG_KEYS, validate_config
from functions.domain.storage_layout import dataset_prefix, owner_key, training_input_prefix
from functions.services.context import service_context
from tests.integration.conftest import BUCKET, JOB_PREFIX, ApiCaller
from tests.integration.workflow import job_spec_of, ready_inputs, training_body


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
        # the job's own name, by which a training job Batch names itself is found (batch_queue)
        JOB_NAME_TAG: job["sagemaker_job_name"],
    }
    assert channels["job"]["S3Uri"] == prefix + training_input_prefix(api.owner, job["id"])
    spec = job_spec_of(channels["job"]["S3Uri"])
    assert spec.job_id == job["id"] and spec.base_model_filename == "base.safetensors"
    assert spec.output_name == request["TrainingJobName"]
    assert spec.config["network_dim"] == 8 and spec.config["max_train_epochs"] == 2
    assert spec.config == job["config"]
    assert request["HyperParameters"] == {"job_id": job["id"], "fm_type": "sd15", "engine": spec.engine.value}


LONG_FLOAT = 0.00012345678901234567  # repr: 22 characters
LONGEST_SD15_CONFIG = {
    # Every list at its longest: Prodigy takes the most optimizer arguments, networks.lora all four.
    "optimizer_type": "Prodigy",
    "optimizer_args": [
        f"weight_decay={LONG_FLOAT}",
        f"betas={LONG_FLOAT},{LONG_FLOAT}",
        f"eps={LONG_FLOAT}",
        f"d_coef={LONG_FLOAT}",
        "decouple=false",
        "use_bias_correction=false",
        "safeguard_warmup=false",
    ],
    "network_args": [
        "conv_dim=1024",
        f"conv_alpha={LONG_FLOAT}",
        f"rank_dropout={LONG_FLOAT}",
        f"module_dropout={LONG_FLOAT}",
    ],
    **dict.fromkeys(
        (
            "learning_rate",
            "unet_lr",
            "text_encoder_lr",
            "network_dropout",
            "noise_offset",
            "multires_noise_discount",
            "caption_dropout_rate",
            "caption_tag_dropout_rate",
            "network_alpha",
            "scale_weight_norms",
            "min_snr_gamma",
            "max_grad_norm",
            "lr_scheduler_power",
            "prior_loss_weight",
        ),
        LONG_FLOAT,
    ),
    "lr_scheduler": "cosine_with_restarts",
    "resolution": "2048,2040",
    "max_bucket_reso": 4096,
    "min_bucket_reso": 64,
    "max_token_length": 225,
    "seed": 2**32 - 1,
    "max_train_steps": 1_000_000,
    "lr_warmup_steps": 100_000,
    "gradient_accumulation_steps": 1024,
    "multires_noise_iterations": 10,
    "keep_tokens": 75,
    "shuffle_caption": True,
    "flip_aug": True,
    "max_data_loader_n_workers": 16,
}


def test_the_longest_config_the_api_accepts_reaches_the_container(
    api: ApiCaller, sagemaker_stub: Any
) -> None:
    """Issue 12 case 7: a config longer than one hyperparameter (2,500 characters) still runs."""
    config, problems = validate_config(LONGEST_SD15_CONFIG, FmType.SD15)
    assert problems == [] and len(LONGEST_SD15_CONFIG) <= MAX_CONFIG_KEYS
    assert len(json.dumps(config, separators=(",", ":"))) > 1200
    captured: dict[str, Any] = {}
    sagemaker_stub.client.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob", lambda params, **_: captured.update(params)
    )
    sagemaker_stub.add_response(
        "create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}
    )
    model_id, dataset_id = ready_inputs(api)
    prompts = [{"prompt": "p" * 300, "negative_prompt": "n" * 200, "seed": 2**32 - 1}] * 4
    body = training_body(model_id, dataset_id, config=LONGEST_SD15_CONFIG, sample_prompts=prompts)
    status, job = api("POST", "/trainings", body)
    assert status == 201 and job["status"] == "STARTING", job

    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in captured["InputDataConfig"]}
    spec = job_spec_of(channels["job"]["S3Uri"])
    assert spec.config == config and len(spec.sample_prompts) == 4
    assert len(spec.to_json()) > 2500  # would not fit the one hyperparameter value it used to be
    assert all(len(value) <= 2500 for value in captured["HyperParameters"].values())
