"""The notification resources: own bus, PutEvents on it only, webhook queue + DLQ + alarm, secret."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match

from functions.settings import DEFAULTS, EnvVar
from tests.infrastructure.test_stack import _as_list, _resources, _statements

PUBLISHERS = (
    "functions.api.handler.lambda_handler",
    "functions.events.handler.lambda_handler",
    "functions.reconciler.handler.lambda_handler",
)
DELIVERY = "functions.webhooks.handler.lambda_handler"


def _functions(template_json: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        f["Properties"]["Handler"]: (logical_id, f["Properties"])
        for logical_id, f in _resources(template_json, "AWS::Lambda::Function").items()
        if str(f["Properties"].get("Handler", "")).startswith("functions.")
    }


def _role_statements(template_json: dict[str, Any], role_ref: dict[str, Any]) -> list[dict[str, Any]]:
    role_id = role_ref["Fn::GetAtt"][0]
    found: list[dict[str, Any]] = []
    for policy in _resources(template_json, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def test_the_service_has_its_own_bus_named_only_where_it_is_used(template_json: dict[str, Any]) -> None:
    """Publishers are told the bus and the queue; only the delivery function the signing secret."""
    buses = _resources(template_json, "AWS::Events::EventBus")
    assert len(buses) == 1
    bus_id = next(iter(buses))
    functions = _functions(template_json)
    for handler in PUBLISHERS:
        env = functions[handler][1]["Environment"]["Variables"]
        assert env[EnvVar.EVENT_BUS_NAME] == {"Ref": bus_id}
        assert EnvVar.WEBHOOK_QUEUE_URL in env and EnvVar.WEBHOOK_SIGNING_SECRET_ARN not in env
    delivery = functions[DELIVERY][1]["Environment"]["Variables"]
    assert EnvVar.WEBHOOK_QUEUE_URL in delivery and EnvVar.WEBHOOK_SIGNING_SECRET_ARN in delivery
    assert EnvVar.EVENT_BUS_NAME not in delivery and EnvVar.TABLE_NAME not in delivery
    for _, props in functions.values():
        assert EnvVar.WEBHOOK_ALLOW_LOOPBACK_HTTP not in props["Environment"]["Variables"]  # local-only


def test_put_events_only_on_this_bus_and_only_by_the_publishers(template_json: dict[str, Any]) -> None:
    bus_id = next(iter(_resources(template_json, "AWS::Events::EventBus")))
    put_events = [s for s in _statements(template_json) if "events:PutEvents" in _as_list(s["Action"])]
    assert put_events
    for statement in put_events:
        assert _as_list(statement["Resource"]) == [{"Fn::GetAtt": [bus_id, "Arn"]}]
    functions = _functions(template_json)
    for handler in PUBLISHERS:
        actions = {
            a
            for s in _role_statements(template_json, functions[handler][1]["Role"])
            for a in _as_list(s["Action"])
        }
        assert "events:PutEvents" in actions and "sqs:SendMessage" in actions
    delivery_actions = {
        a
        for s in _role_statements(template_json, functions[DELIVERY][1]["Role"])
        for a in _as_list(s["Action"])
    }
    assert "events:PutEvents" not in delivery_actions and "sqs:SendMessage" not in delivery_actions
    assert {"sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage"} <= delivery_actions
    assert "secretsmanager:GetSecretValue" in delivery_actions
    assert not any(a.startswith("dynamodb:") or a.startswith("s3:") for a in delivery_actions)


def test_webhook_queue_redrives_to_an_alarmed_dead_letter_queue(
    template: Any, template_json: dict[str, Any]
) -> None:
    queues = _resources(template_json, "AWS::SQS::Queue")
    deliveries = next(q for k, q in queues.items() if "WebhookDeliveries" in k)["Properties"]
    dlq_id = next(k for k in queues if "WebhookDeadLetters" in k)
    assert deliveries["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": DEFAULTS.webhook_max_attempts,
    }
    assert deliveries["SqsManagedSseEnabled"] is True and deliveries["VisibilityTimeout"] >= 6 * 30
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"FunctionResponseTypes": ["ReportBatchItemFailures"], "BatchSize": 10},
    )
    alarms = _resources(template_json, "AWS::CloudWatch::Alarm").values()
    dlq_alarms = [
        a
        for a in alarms
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}
        in a["Properties"]["Dimensions"]
    ]
    assert len(dlq_alarms) == 1 and dlq_alarms[0]["Properties"]["AlarmActions"]
    assert any(a["Properties"].get("MetricName") == "NotificationsFailed" for a in alarms)


def test_signing_secret_is_generated_and_output(template: Any, template_json: dict[str, Any]) -> None:
    template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "Description": Match.string_like_regexp("webhook signatures"),
            "GenerateSecretString": Match.any_value(),
        },
    )
    assert {"EventBusName", "WebhookSigningSecretArn"} <= set(template_json["Outputs"])
