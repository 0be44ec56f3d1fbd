"""What decides whether the first real deploy works: alarms that can be delivered, a deploy that
fits a new account's concurrency, a stack that tears down, a resource policy under Lambda's
limit, a training role with SageMaker's documented minimum, and cfn-lint without errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.settings import DEFAULTS
from infrastructure.constructs.functions import API_ALIAS, RESERVED_CONCURRENCY
from infrastructure.constructs.training import TRAINING_METRICS_NAMESPACE
from tests.infrastructure.test_stack import _as_list, _resources

STATEFUL = (
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::Logs::LogGroup",
    "AWS::SecretsManager::Secret",
    "AWS::KMS::Key",
    "AWS::SQS::Queue",
)
# Lambda's limit on a function's (or alias's) resource-based policy
# (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
LAMBDA_RESOURCE_POLICY_LIMIT_BYTES = 20 * 1024


@pytest.fixture(scope="module")
def destroy_template() -> dict[str, Any]:
    """The other removal mode, with the reserved-concurrency opt-in (one more synth, not two)."""
    from app import build_app
    from tests.infrastructure.conftest import NO_BUNDLING

    app = build_app({**NO_BUNDLING, "removalPolicy": "destroy", "reservedConcurrency": "true"})
    return dict(app.synth().get_stack_by_name("LoraTraining").template)


def _functions_by_handler(template_json: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        f["Properties"]["Handler"]: (logical_id, f["Properties"])
        for logical_id, f in _resources(template_json, "AWS::Lambda::Function").items()
        if str(f["Properties"].get("Handler", "")).startswith("functions.")
    }


# ---- 1. alarms that arrive ----


def test_the_alarm_topic_uses_a_customer_managed_key_cloudwatch_may_use(
    template_json: dict[str, Any],
) -> None:
    [topic] = _resources(template_json, "AWS::SNS::Topic").values()
    key_ref = topic["Properties"]["KmsMasterKeyId"]
    assert "alias/aws/sns" not in json.dumps(key_ref), "CloudWatch cannot use the AWS-managed SNS key"
    key = _resources(template_json, "AWS::KMS::Key")[key_ref["Fn::GetAtt"][0]]
    assert key["Properties"]["EnableKeyRotation"] is True
    grants = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} and s["Effect"] == "Allow"
    ]
    assert len(grants) == 1
    assert set(_as_list(grants[0]["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    alarms = _resources(template_json, "AWS::CloudWatch::Alarm").values()
    topic_id = next(iter(_resources(template_json, "AWS::SNS::Topic")))
    assert all({"Ref": topic_id} in a["Properties"]["AlarmActions"] for a in alarms)


# ---- 2. a deploy that fits a new account ----


def test_the_default_deploy_reserves_no_concurrency(template_json: dict[str, Any]) -> None:
    for handler, (_, props) in _functions_by_handler(template_json).items():
        assert "ReservedConcurrentExecutions" not in props, handler


def test_reserved_concurrency_is_an_opt_in_with_the_documented_figures(
    destroy_template: dict[str, Any],
) -> None:
    reserved = {
        handler.split(".")[1]: props.get("ReservedConcurrentExecutions")
        for handler, (_, props) in _functions_by_handler(destroy_template).items()
    }
    assert reserved == {"api": None, "events": 10, "reconciler": 1, "tasks": 5, "webhooks": 5}
    assert sum(RESERVED_CONCURRENCY.values()) == 21  # README "Deploy to AWS" states 21 (limit >= 121)


# ---- 3. removal policies, per mode ----


def test_retain_mode_keeps_the_data_and_protects_only_what_it_keeps(template_json: dict[str, Any]) -> None:
    resources = template_json["Resources"]
    for logical_id, resource in resources.items():
        if resource["Properties"].get("DeletionProtectionEnabled") if "Properties" in resource else False:
            assert resource.get("DeletionPolicy") == "Retain", f"{logical_id} is protected but deleted"
    tables = _resources(template_json, "AWS::DynamoDB::Table")
    records = next(t for k, t in tables.items() if "Records" in k)
    idempotency = next(t for k, t in tables.items() if "Idempotency" in k)
    assert records["DeletionPolicy"] == "Retain" and records["Properties"]["DeletionProtectionEnabled"]
    assert idempotency["DeletionPolicy"] == "Delete"
    assert idempotency["Properties"].get("DeletionProtectionEnabled") in (None, False)
    for kind in ("AWS::S3::Bucket", "AWS::Logs::LogGroup"):
        assert all(r["DeletionPolicy"] == "Retain" for r in _resources(template_json, kind).values()), kind
    secrets = _resources(template_json, "AWS::SecretsManager::Secret")
    assert next(s for k, s in secrets.items() if "WebhookSigning" in k)["DeletionPolicy"] == "Retain"
    assert next(s for k, s in secrets.items() if "PageToken" in k)["DeletionPolicy"] == "Delete"


def test_destroy_mode_deletes_every_stateful_resource(destroy_template: dict[str, Any]) -> None:
    for kind in STATEFUL:
        for logical_id, resource in _resources(destroy_template, kind).items():
            assert resource.get("DeletionPolicy", "Delete") == "Delete", logical_id
            assert not resource["Properties"].get("DeletionProtectionEnabled"), logical_id
    # Non-empty buckets cannot be deleted: CDK's auto-delete custom resource empties each first.
    buckets = _resources(destroy_template, "AWS::S3::Bucket")
    emptied = {
        r["Properties"]["BucketName"]["Ref"]
        for r in destroy_template["Resources"].values()
        if r["Type"] == "Custom::S3AutoDeleteObjects"
    }
    assert emptied == set(buckets)
    role = _resources(destroy_template, "AWS::IAM::Role")
    assert all(r.get("DeletionPolicy", "Delete") == "Delete" for r in role.values())


# ---- 4. one API-scoped invoke permission, far under Lambda's policy limit ----


def _resource_policy_bytes(permissions: list[dict[str, Any]]) -> int:
    """The resource policy Lambda builds from AddPermission calls, with real-length placeholders
    (a 64-character function name, a 10-character API id, the longest region names)."""
    function_arn = f"arn:aws:lambda:ap-southeast-2:123456789012:function:{'f' * 64}:{API_ALIAS}"
    statements = []
    for index, permission in enumerate(permissions):
        source = json.dumps(permission.get("SourceArn", ""))
        statements.append(
            {
                "Sid": f"LoraTraining-HttpApiApiPermission{index:04d}-{'X' * 40}",
                "Effect": "Allow",
                "Principal": {"Service": permission["Principal"]},
                "Action": permission["Action"],
                "Resource": function_arn,
                "Condition": {
                    "ArnLike": {
                        "AWS:SourceArn": "arn:aws:execute-api:ap-southeast-2:123456789012:abcdef1234"
                        + ("/*/*/*" if "/*/*/*" in source else "/prod/POST/" + "x" * 80)
                    }
                },
            }
        )
    return len(json.dumps({"Version": "2012-10-17", "Id": "default", "Statement": statements}))


def test_the_api_function_has_one_api_scoped_permission_far_under_the_policy_limit(
    template_json: dict[str, Any],
) -> None:
    alias_id = next(iter(_resources(template_json, "AWS::Lambda::Alias")))
    api_id = next(iter(_resources(template_json, "AWS::ApiGateway::RestApi")))
    api_function = _functions_by_handler(template_json)["functions.api.handler.lambda_handler"][0]
    permissions = [
        p["Properties"]
        for p in _resources(template_json, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] in ({"Ref": alias_id}, {"Ref": api_function})
        or p["Properties"]["FunctionName"] == {"Fn::GetAtt": [api_function, "Arn"]}
    ]
    assert len(permissions) == 1, "one permission for the whole API, not two per method"
    [permission] = permissions
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["FunctionName"] == {"Ref": alias_id}  # API Gateway calls the published alias
    source = json.dumps(permission["SourceArn"])
    assert api_id in source and "/*/*/*" in source
    size = _resource_policy_bytes(permissions)
    assert size < LAMBDA_RESOURCE_POLICY_LIMIT_BYTES // 20, size  # > 95 % headroom
    # The old layout (two per method) is what this replaces: it measured ~17.5 KB for 21 methods.
    methods = len(_resources(template_json, "AWS::ApiGateway::Method"))
    per_method = _resource_policy_bytes([{**permission, "SourceArn": "x"}] * (2 * methods))
    assert per_method > LAMBDA_RESOURCE_POLICY_LIMIT_BYTES * 0.75


def test_the_api_integration_calls_the_snapstart_alias(template_json: dict[str, Any]) -> None:
    [alias] = _resources(template_json, "AWS::Lambda::Alias").values()
    version_id = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    assert _resources(template_json, "AWS::Lambda::Version")[version_id]
    api = _functions_by_handler(template_json)["functions.api.handler.lambda_handler"][1]
    # SnapStart supports python3.12+ on x86_64 and arm64 (Lambda docs "Improving startup
    # performance with Lambda SnapStart": limits are provisioned concurrency, EFS, >512 MB /tmp).
    assert api["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert api.get("EphemeralStorage", {"Size": 512})["Size"] <= 512
    for method in _resources(template_json, "AWS::ApiGateway::Method").values():
        uri = json.dumps(method["Properties"]["Integration"]["Uri"])
        assert next(iter(_resources(template_json, "AWS::Lambda::Alias"))) in uri


# ---- 6. the training role ----


def _role_statements(template_json: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in _resources(template_json, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def test_the_training_role_has_sagemakers_documented_logs_and_metrics(template_json: dict[str, Any]) -> None:
    role_id = next(k for k in _resources(template_json, "AWS::IAM::Role") if "TrainingExecutionRole" in k)
    statements = {s.get("Sid"): s for s in _role_statements(template_json, role_id)}
    metrics = statements["TrainingMetrics"]
    assert _as_list(metrics["Action"]) == ["cloudwatch:PutMetricData"]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": TRAINING_METRICS_NAMESPACE}}
    group = statements["TrainingLogGroup"]
    assert set(_as_list(group["Action"])) == {
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:DescribeLogStreams",
    }
    assert all(
        f"log-group:{DEFAULTS.training_log_group}" in json.dumps(r) and "log-stream" not in json.dumps(r)
        for r in _as_list(group["Resource"])
    )
    streams = statements["TrainingLogStreams"]
    assert _as_list(streams["Action"]) == ["logs:PutLogEvents"]
    assert all(":log-stream:" in json.dumps(r) for r in _as_list(streams["Resource"]))


# ---- cfn-lint ----

# Reviewed warnings: CDK writes DependsOn on the function's role although Fn::GetAtt already
# orders them (harmless, and not ours to change).
REVIEWED_WARNINGS = {"W3005"}


def test_cfn_lint_finds_no_error_and_only_reviewed_warnings(template_json: dict[str, Any]) -> None:
    from cfnlint.api import ManualArgs, lint

    matches = lint(json.dumps(template_json), config=ManualArgs(regions=["us-east-1"]))
    errors = [f"{m.rule.id}: {m.message}" for m in matches if m.rule.id.startswith("E")]
    assert errors == []
    unreviewed = [f"{m.rule.id}: {m.message}" for m in matches if m.rule.id not in REVIEWED_WARNINGS]
    assert unreviewed == []
