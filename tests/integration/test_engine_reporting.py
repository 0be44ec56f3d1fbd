"""What a user hears about the engine: ignored parameters before paying, the real cause after a crash."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import ApiCaller, sagemaker_event, send_event
from tests.integration.workflow import ready_inputs, training_body
from training_container.errors import classify_engine_failure

RECORDINGS = Path(__file__).parents[1] / "container" / "fixtures" / "sd_scripts_failures"
IGNORED_BY_DIFFUSERS = {"color_aug": True, "cache_latents": False}


def test_validation_warns_about_parameters_the_engine_ignores(api: ApiCaller) -> None:
    # This deployment's engine is "auto": the diffusers engine when the image has no sd-scripts.
    status, answer = api("POST", "/configs/validate", {"fm_type": "sd15", "config": IGNORED_BY_DIFFUSERS})
    assert status == 200, answer
    assert [w["field"] for w in answer["warnings"]] == ["config.color_aug"]
    assert "ignored by the diffusers engine" in answer["warnings"][0]["warning"]

    status, clean = api("POST", "/configs/validate", {"fm_type": "sd15", "config": {}})
    assert status == 200 and clean["warnings"] == []


def test_the_job_carries_the_same_warnings(api: ApiCaller) -> None:
    model_id, dataset_id = ready_inputs(api)
    status, job = api("POST", "/trainings", training_body(model_id, dataset_id, config=IGNORED_BY_DIFFUSERS))
    assert status == 201, job
    assert [w["field"] for w in job["warnings"]] == ["config.color_aug"]
    status, read = api("GET", f"/trainings/{job['id']}")
    assert status == 200 and read["warnings"] == job["warnings"]


def test_a_crash_of_sd_scripts_shows_its_real_last_exception_line(api: ApiCaller) -> None:
    """Issue 12 case 6, end to end from the recorded console to GET /trainings/{id}."""
    status_line, _, output = (RECORDINGS / "adafactor_scheduler.log").read_text().partition("\n")
    reason = classify_engine_failure(output.splitlines(), int(status_line.split()[-1])).reason
    model_id, dataset_id = ready_inputs(api)
    _, job = api("POST", "/trainings", training_body(model_id, dataset_id))

    # SageMaker shows the container's /opt/ml/output/failure as FailureReason.
    send_event(sagemaker_event(job["sagemaker_job_name"], "Failed", "Failed", f"AlgorithmError: {reason}"))

    status, failed = api("GET", f"/trainings/{job['id']}")
    assert status == 200 and failed["status"] == "FAILED"
    assert "configuration problem" in failed["failure_reason"]
    assert (
        "AssertionError: adafactor scheduler must be used with Adafactor optimizer"
        in failed["failure_reason"]
    )
    assert "CalledProcessError" not in failed["failure_reason"]
