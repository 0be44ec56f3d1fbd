"""The training queue in the template (context trainingQueue=true): AWS Batch service environment
(the GPU budget), fair-share scheduling policy, SageMaker Training job queue, the rule for Batch's
service-job events, and the functions' rights on exactly this queue. cdk-nag runs on every synth
(app.build_app), so a synth that succeeds here is nag-clean."""

from __future__ import annotations

from typing import Any

import pytest

from functions.domain.batch_queue import JOB_NAME_TAG
from infrastructure.constructs.training_queue import MISCONFIGURED_WAIT_SECONDS
from tests.infrastructure.conftest import NO_BUNDLING

QUEUED = {**NO_BUNDLING, "trainingQueue": True, "gpuBudgetInstances": 3, "maxQueueWaitSeconds": 7200}


def synth(context: dict[str, Any]) -> dict[str, Any]:
    from app import build_app

    app = build_app(dict(context))
    return dict(app.synth().get_stack_by_name("LoraTraining").template)


@pytest.fixture(scope="module")
def queued() -> dict[str, Any]:
    return synth(QUEUED)


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def statements(template: dict[str, Any], handler: str) -> list[dict[str, Any]]:
    function = next(
        r
        for r in of_type(template, "AWS::Lambda::Function").values()
        if r["Properties"].get("Handler") == handler
    )
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    found: list[dict[str, Any]] = []
    for policy in of_type(template, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def by_sid(found: list[dict[str, Any]], sid: str) -> dict[str, Any]:
    return next(s for s in found if s.get("Sid") == sid)


def test_the_gpu_budget_is_the_service_environments_capacity_in_instances(queued: dict[str, Any]) -> None:
    (environment,) = of_type(queued, "AWS::Batch::ServiceEnvironment").values()
    assert environment["Properties"]["ServiceEnvironmentType"] == "SAGEMAKER_TRAINING"
    assert environment["Properties"]["CapacityLimits"] == [
        {"MaxCapacity": 3, "CapacityUnit": "NUM_INSTANCES"}
    ]


def test_the_queue_is_a_fair_share_sagemaker_training_queue_with_bounded_waits(
    queued: dict[str, Any],
) -> None:
    (queue,) = of_type(queued, "AWS::Batch::JobQueue").values()
    (policy_id,) = of_type(queued, "AWS::Batch::SchedulingPolicy")
    (environment_id,) = of_type(queued, "AWS::Batch::ServiceEnvironment")
    props = queue["Properties"]
    assert props["JobQueueType"] == "SAGEMAKER_TRAINING"
    assert props["SchedulingPolicyArn"] == {"Fn::GetAtt": [policy_id, "Arn"]}
    assert props["ServiceEnvironmentOrder"] == [
        {"Order": 1, "ServiceEnvironment": {"Fn::GetAtt": [environment_id, "ServiceEnvironmentArn"]}}
    ]
    limits = {a["Reason"]: a for a in props["JobStateTimeLimitActions"]}
    capacity = limits["CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"]
    assert (capacity["Action"], capacity["State"], capacity["MaxTimeSeconds"]) == (
        "TERMINATE",
        "RUNNABLE",
        7200,
    )
    misconfigured = limits["MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE"]
    assert misconfigured["MaxTimeSeconds"] == MISCONFIGURED_WAIT_SECONDS
    fair_share = queued["Resources"][policy_id]["Properties"]["FairsharePolicy"]
    assert fair_share["ShareDecaySeconds"] > 0  # recent use counts: a busy owner yields to an idle one


def test_the_api_submits_and_terminates_on_this_queue_only_and_passes_only_the_training_role(
    queued: dict[str, Any],
) -> None:
    (queue_id,) = of_type(queued, "AWS::Batch::JobQueue")
    api = statements(queued, "functions.api.handler.lambda_handler")
    submit = by_sid(api, "SubmitToTrainingQueue")
    assert submit["Action"] == "batch:SubmitServiceJob"
    assert submit["Resource"] == {"Fn::GetAtt": [queue_id, "JobQueueArn"]}
    terminate = by_sid(api, "TerminateQueuedTrainings")
    assert terminate["Action"] == "batch:TerminateServiceJob"
    assert ":service-job/*" in str(terminate["Resource"])
    pass_role = by_sid(api, "PassTrainingRole")
    assert pass_role["Action"] == "iam:PassRole"
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert "Fn::GetAtt" in pass_role["Resource"]  # the training role itself, never "*"
    reconciler = statements(queued, "functions.reconciler.handler.lambda_handler")
    assert by_sid(reconciler, "DescribeQueuedTrainings")["Action"] == "batch:DescribeServiceJob"
    assert not any("batch:SubmitServiceJob" in str(s["Action"]) for s in reconciler)


def test_the_functions_are_told_to_queue_and_batch_events_reach_the_events_function(
    queued: dict[str, Any],
) -> None:
    (queue_id,) = of_type(queued, "AWS::Batch::JobQueue")
    api = next(
        r
        for r in of_type(queued, "AWS::Lambda::Function").values()
        if r["Properties"].get("Handler") == "functions.api.handler.lambda_handler"
    )
    variables = api["Properties"]["Environment"]["Variables"]
    assert variables["TRAINING_LAUNCHER"] == "queue"
    assert variables["TRAINING_JOB_QUEUE"] == {"Fn::GetAtt": [queue_id, "JobQueueArn"]}
    patterns = [
        r["Properties"].get("EventPattern", {}) for r in of_type(queued, "AWS::Events::Rule").values()
    ]
    batch = [p for p in patterns if p.get("source") == ["aws.batch"]]
    assert batch == [
        {
            "source": ["aws.batch"],
            "detail-type": ["Batch Service Job State Change"],
            "detail": {"jobQueue": [{"Fn::GetAtt": [queue_id, "JobQueueArn"]}]},
        }
    ]


def test_training_jobs_batch_renamed_reach_the_events_function_by_their_tag(queued: dict[str, Any]) -> None:
    """Batch creates each training job under a name of its own (AWSBatch...): the job-name-prefix
    rule never sees it, so a second rule forwards SageMaker's events by the job-name tag, and the
    events function may ask Batch (and SageMaker) which training job is really ours."""
    patterns = [
        r["Properties"].get("EventPattern", {}) for r in of_type(queued, "AWS::Events::Rule").values()
    ]
    tagged = [p for p in patterns if "Tags" in p.get("detail", {})]
    assert len(tagged) == 1
    assert tagged[0]["source"] == ["aws.sagemaker"]
    (name_rule,) = [p for p in patterns if "TrainingJobName" in p.get("detail", {})]
    # the same prefix as the rule on job names: this stack's jobs only
    assert tagged[0]["detail"]["Tags"] == {JOB_NAME_TAG: name_rule["detail"]["TrainingJobName"]}
    events = statements(queued, "functions.events.handler.lambda_handler")
    assert by_sid(events, "DescribeQueuedTrainings")["Action"] == "batch:DescribeServiceJob"
    described = by_sid(events, "DescribeBatchTrainingJobs")
    assert described["Action"] == "sagemaker:DescribeTrainingJob"
    # Batch's spelling and the TrainingJobArn's lower-case one, nothing wider
    ends = [r["Fn::Join"][1][-1] for r in described["Resource"]]
    assert ends == [":training-job/AWSBatch*", ":training-job/awsbatch*"]


def test_the_default_deployment_launches_directly(template_json: dict[str, Any]) -> None:
    assert not of_type(template_json, "AWS::Batch::JobQueue")
    assert not any(
        "batch:" in str(s["Action"])
        for s in statements(template_json, "functions.api.handler.lambda_handler")
    )


@pytest.mark.parametrize(
    ("key", "value"), [("gpuBudgetInstances", 0), ("maxQueueWaitSeconds", 60), ("maxQueueWaitSeconds", 90000)]
)
def test_out_of_range_queue_settings_are_refused_with_their_key(key: str, value: int) -> None:
    with pytest.raises(ValueError, match=key):
        synth({**QUEUED, key: value})
