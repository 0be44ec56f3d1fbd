"""The policy evaluator of the IAM checks (tests/iam_check.py) denies what IAM would deny."""

from __future__ import annotations

from typing import Any

import pytest

from tests.iam_check import Authorization, RecordedCall, RolePolicies, UnmappedOperation, authorizations

GROUP = "/aws/sagemaker/TrainingJobs"


def _template(statements: list[dict[str, Any]], env: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "Resources": {
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Handler": "functions.api.handler.lambda_handler",
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Environment": {"Variables": env or {}},
                },
            },
            "Role": {"Type": "AWS::IAM::Role", "Properties": {}},
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
            "Policy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {"Roles": [{"Ref": "Role"}], "PolicyDocument": {"Statement": statements}},
            },
        }
    }


def _call(service: str, operation: str, **params: Any) -> RecordedCall:
    return RecordedCall("api", service, operation, params, "us-east-1")


def test_get_log_events_is_authorised_on_the_log_group_not_a_stream() -> None:
    [needed] = authorizations(_call("logs", "GetLogEvents", logGroupName=GROUP, logStreamName="job/algo-1"))
    group_arn = f"arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}"
    on_streams = RolePolicies(_template([{"Effect": "Allow", "Action": "logs:GetLogEvents",
                                          "Resource": f"{group_arn}:log-stream:lora-*"}]), {})  # fmt: skip
    on_group = RolePolicies(
        _template([{"Effect": "Allow", "Action": "logs:GetLogEvents", "Resource": group_arn}]), {}
    )
    assert not on_streams.allows("api", needed) and on_group.allows("api", needed)


def test_resources_resolve_through_the_functions_environment() -> None:
    statement = {
        "Effect": "Allow",
        "Action": "dynamodb:GetItem",
        "Resource": {"Fn::GetAtt": ["Table", "Arn"]},
    }
    policies = RolePolicies(
        _template([statement], {"TABLE_NAME": {"Ref": "Table"}}), {"TABLE_NAME": "records"}
    )
    assert policies.allows(
        "api", Authorization("dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/records")
    )
    assert not policies.allows(
        "api", Authorization("dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/other")
    )
    assert not policies.allows(
        "api", Authorization("dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:123456789012:table/records")
    )


def test_conditions_must_hold_and_unknown_keys_never_allow() -> None:
    statement = {
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": "arn:aws:iam::123456789012:role/t",
        "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    }
    policies = RolePolicies(_template([statement]), {})
    role = "arn:aws:iam::123456789012:role/t"
    assert policies.allows(
        "api", Authorization("iam:PassRole", role, {"iam:PassedToService": "sagemaker.amazonaws.com"})
    )
    assert not policies.allows(
        "api", Authorization("iam:PassRole", role, {"iam:PassedToService": "ec2.amazonaws.com"})
    )
    assert not policies.allows("api", Authorization("iam:PassRole", role))


def test_transactions_copies_and_training_jobs_need_every_underlying_permission() -> None:
    transact = _call(
        "dynamodb",
        "TransactWriteItems",
        TransactItems=[{"Put": {"TableName": "t"}}, {"ConditionCheck": {"TableName": "u"}}],
    )
    assert [a.action for a in authorizations(transact)] == ["dynamodb:PutItem", "dynamodb:ConditionCheckItem"]
    copy = _call(
        "s3", "CopyObject", Bucket="b", Key="models/x", CopySource={"Bucket": "b", "Key": "trainings/y"}
    )
    assert [(a.action, a.resource) for a in authorizations(copy)] == [
        ("s3:GetObject", "arn:aws:s3:::b/trainings/y"),
        ("s3:PutObject", "arn:aws:s3:::b/models/x"),
    ]
    create = _call(
        "sagemaker",
        "CreateTrainingJob",
        TrainingJobName="p-1",
        RoleArn="arn:aws:iam::1:role/r",
        Tags=[{"Key": "k", "Value": "v"}],
    )
    assert [a.action for a in authorizations(create)] == [
        "sagemaker:CreateTrainingJob",
        "iam:PassRole",
        "sagemaker:AddTags",
    ]


def test_an_operation_without_a_mapping_is_reported() -> None:
    with pytest.raises(UnmappedOperation):
        authorizations(_call("s3", "PutBucketPolicy", Bucket="b"))
