"""The synthesized CloudFormation template holds every resource with the settings the service needs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

from functions.adapters.table_schema import GLOBAL_INDEXES, IDEMPOTENCY_TTL_ATTRIBUTE
from functions.settings import DEFAULTS, EnvVar
from infrastructure.openapi_routes import routes

# Actions AWS offers no resource-level permission for; everything else must name its resources.
NO_RESOURCE_LEVEL = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "ecr:GetAuthorizationToken"}
# No resource type either, so "*" with a condition that narrows it (checked where it is granted).
CONDITIONED = {"cloudwatch:PutMetricData"}
READ_PREFIXES = ("Describe", "Get", "List", "BatchGet", "Query", "Scan", "BatchCheck")


def _resources(template_json: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template_json["Resources"].items() if v["Type"] == kind}


def _statements(template_json: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for policy in _resources(template_json, "AWS::IAM::Policy").values():
        found += policy["Properties"]["PolicyDocument"]["Statement"]
    for role in _resources(template_json, "AWS::IAM::Role").values():
        for inline in role["Properties"].get("Policies", []):
            found += inline["PolicyDocument"]["Statement"]
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_wildcard_resource_on_a_write_action(template_json: dict[str, Any]) -> None:
    for statement in _statements(template_json):
        if "*" not in _as_list(statement.get("Resource")):
            continue
        for action in _as_list(statement["Action"]):
            is_read = action.split(":")[1].startswith(READ_PREFIXES)
            conditioned = action in CONDITIONED and statement.get("Condition")
            assert is_read or action in NO_RESOURCE_LEVEL or conditioned, f"{action} on Resource '*'"
        assert not any(a.endswith(":*") or a == "*" for a in _as_list(statement["Action"]))


def test_api_routes_are_exactly_the_openapi_routes(template_json: dict[str, Any]) -> None:
    resources = _resources(template_json, "AWS::ApiGateway::Resource")

    def path_of(logical_id: str) -> str:
        node = resources[logical_id]["Properties"]
        parent = node["ParentId"]
        prefix = path_of(parent["Ref"]) if "Ref" in parent else ""
        return f"{prefix}/{node['PathPart']}"

    methods = _resources(template_json, "AWS::ApiGateway::Method").values()
    deployed = {
        (m["Properties"]["HttpMethod"], path_of(m["Properties"]["ResourceId"]["Ref"])) for m in methods
    }
    assert deployed == {(r.method, r.path) for r in routes()}
    for method in methods:
        assert method["Properties"]["AuthorizationType"] == "AWS_IAM"
        assert "RequestValidatorId" in method["Properties"]
        assert method["Properties"]["Integration"]["Type"] == "AWS_PROXY"


def test_request_bodies_are_validated_at_the_edge(template: Any, template_json: dict[str, Any]) -> None:
    template.has_resource_properties(
        "AWS::ApiGateway::RequestValidator", {"ValidateRequestBody": True, "ValidateRequestParameters": True}
    )
    models = _resources(template_json, "AWS::ApiGateway::Model")
    assert len(models) == sum(1 for r in routes() if r.body_schema)
    create_training = next(m for k, m in models.items() if "PostTrainingsBody" in k)
    schema = create_training["Properties"]["Schema"]
    assert set(schema["required"]) >= {"fm_type", "base_model_id", "dataset_id", "instance_type"}
    assert schema["additionalProperties"] is False
    template.has_resource_properties(
        "AWS::ApiGateway::Method",
        {"HttpMethod": "GET", "RequestParameters": {"method.request.querystring.fm_type": True}},
    )


def test_stage_has_throttling_tracing_and_access_logs(template: Any) -> None:
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "prod",
            "TracingEnabled": True,
            "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
            "MethodSettings": Match.array_with(
                [
                    Match.object_like(
                        {"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100, "DataTraceEnabled": False}
                    )
                ]
            ),
        },
    )


# Exactly the variables each function's code reads (functions/settings.py): the page-token
# secret only for the API, the signing secret only for the delivery function.
_PUBLISH = (EnvVar.EVENT_BUS_NAME, EnvVar.WEBHOOK_QUEUE_URL)
SERVICE_ENVIRONMENT = {
    "functions.api.handler.lambda_handler": {
        EnvVar.TABLE_NAME, EnvVar.IDEMPOTENCY_TABLE_NAME, EnvVar.BUCKET_NAME, EnvVar.PAGE_TOKEN_SECRET_ARN,
        EnvVar.TRAINING_IMAGE_URI, EnvVar.TRAINING_ROLE_ARN, EnvVar.JOB_NAME_PREFIX, EnvVar.TRAINING_ENGINE,
        EnvVar.TRAINING_NETWORK_ISOLATION, EnvVar.TRAINING_SUBNET_IDS, EnvVar.TRAINING_SECURITY_GROUP_IDS,
        EnvVar.ALLOWED_INSTANCE_TYPES, EnvVar.DEFAULT_USE_SPOT, EnvVar.MAX_RUNTIME_SECONDS,
        EnvVar.MAX_CONCURRENT_JOBS_PER_OWNER, EnvVar.MAX_STORAGE_BYTES_PER_OWNER, EnvVar.TRAINING_LOG_GROUP,
        EnvVar.TASKS_FUNCTION_NAME, EnvVar.IMPORT_TOKEN_KEY_ARN, *_PUBLISH,
    },
    "functions.events.handler.lambda_handler": {
        EnvVar.TABLE_NAME, EnvVar.BUCKET_NAME, EnvVar.JOB_NAME_PREFIX, *_PUBLISH,
    },
    "functions.reconciler.handler.lambda_handler": {
        EnvVar.TABLE_NAME, EnvVar.BUCKET_NAME, EnvVar.JOB_NAME_PREFIX, *_PUBLISH,
    },
    "functions.tasks.handler.lambda_handler": {
        EnvVar.TABLE_NAME, EnvVar.BUCKET_NAME, EnvVar.MAX_STORAGE_BYTES_PER_OWNER,
        EnvVar.IMPORT_TOKEN_KEY_ARN,
    },
    "functions.webhooks.handler.lambda_handler": {
        EnvVar.WEBHOOK_QUEUE_URL, EnvVar.WEBHOOK_SIGNING_SECRET_ARN,
    },
}  # fmt: skip


def test_functions_are_arm64_traced_bounded_and_configured(template_json: dict[str, Any]) -> None:
    functions = {
        f["Properties"]["Handler"]: f["Properties"]
        for f in _resources(template_json, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"].startswith("functions.")
    }
    assert set(functions) == {
        "functions.api.handler.lambda_handler",
        "functions.events.handler.lambda_handler",
        "functions.reconciler.handler.lambda_handler",
        "functions.webhooks.handler.lambda_handler",
        "functions.tasks.handler.lambda_handler",
    }
    for props in functions.values():
        assert props["Architectures"] == ["arm64"]
        assert props["Runtime"] == "python3.14"
        assert props["TracingConfig"] == {"Mode": "Active"}
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == "lora-training"
        assert "LoggingConfig" in props  # its own log group, with retention
        assert "ReservedConcurrentExecutions" not in props  # opt-in only (README)
    for handler, expected in SERVICE_ENVIRONMENT.items():
        given = {k for k in functions[handler]["Environment"]["Variables"] if not k.startswith("POWERTOOLS_")}
        assert given == {str(name) for name in expected}, handler
    api_env = functions["functions.api.handler.lambda_handler"]["Environment"]["Variables"]
    assert api_env[EnvVar.ALLOWED_INSTANCE_TYPES] == ",".join(DEFAULTS.allowed_instance_types)


def test_background_tasks_run_async_with_retries_a_dead_letter_queue_and_only_the_api_invokes(
    template_json: dict[str, Any],
) -> None:
    functions = _resources(template_json, "AWS::Lambda::Function")
    tasks_id = next(
        i for i, f in functions.items() if f["Properties"]["Handler"].startswith("functions.tasks.")
    )
    api_id = next(i for i, f in functions.items() if f["Properties"]["Handler"].startswith("functions.api."))
    tasks = functions[tasks_id]["Properties"]
    assert tasks["Timeout"] == 900 and tasks["MemorySize"] == 2048
    api_env = functions[api_id]["Properties"]["Environment"]["Variables"]
    assert api_env[EnvVar.TASKS_FUNCTION_NAME] == {"Ref": tasks_id}
    (invoke_config,) = _resources(template_json, "AWS::Lambda::EventInvokeConfig").values()
    assert invoke_config["Properties"]["MaximumRetryAttempts"] == 2
    assert "OnFailure" in invoke_config["Properties"]["DestinationConfig"]
    invokers = [
        role
        for role, policy in (
            (p["Properties"]["Roles"][0]["Ref"], p["Properties"]["PolicyDocument"])
            for p in _resources(template_json, "AWS::IAM::Policy").values()
        )
        for statement in policy["Statement"]
        if "lambda:InvokeFunction" in json.dumps(statement["Action"])
        and tasks_id in json.dumps(statement["Resource"])
    ]
    api_role = functions[api_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    assert invokers == [api_role]
    assert any(
        a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and "TaskDeadLetters" in json.dumps(a["Properties"].get("Dimensions"))
        for a in _resources(template_json, "AWS::CloudWatch::Alarm").values()
    ), "no alarm on the tasks' dead-letter queue"


def test_tables(template: Any) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "DeletionProtectionEnabled": True,
            "SSESpecification": {"SSEEnabled": True},
            "GlobalSecondaryIndexes": [Match.object_like({"IndexName": i.name}) for i in GLOBAL_INDEXES],
        },
    )
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {"TimeToLiveSpecification": {"AttributeName": IDEMPOTENCY_TTL_ATTRIBUTE, "Enabled": True}},
    )


def test_data_bucket(template: Any) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": Match.any_value(),
            "LoggingConfiguration": Match.object_like({"LogFilePrefix": "data-bucket/"}),
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [Match.object_like({"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}})]
                )
            },
            "CorsConfiguration": {
                "CorsRules": [
                    Match.object_like({"AllowedMethods": ["PUT", "GET"], "ExposedHeaders": ["ETag"]})
                ]
            },
        },
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            }
        },
    )


def test_event_rule_is_scoped_to_this_stacks_jobs_with_retries_and_dlq(template: Any) -> None:
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Training Job State Change"],
                "detail": {"TrainingJobName": [{"prefix": "loratraining-"}]},
            },
            "Targets": [
                Match.object_like(
                    {
                        "RetryPolicy": {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 21600},
                        "DeadLetterConfig": Match.any_value(),
                    }
                )
            ],
        },
    )
    template.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(10 minutes)"})
    template.has_resource_properties("AWS::SQS::Queue", {"SqsManagedSseEnabled": True})


def test_api_can_launch_only_this_stacks_jobs_and_pass_only_the_training_role(
    template_json: dict[str, Any],
) -> None:
    statements = _statements(template_json)
    launch = next(s for s in statements if s.get("Sid") == "LaunchTrainingJobs")
    assert set(launch["Action"]) == {
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:StopTrainingJob",
        "sagemaker:AddTags",
    }
    assert "training-job/loratraining-*" in str(launch["Resource"])
    pass_role = next(s for s in statements if s.get("Sid") == "PassTrainingRole")
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert "Fn::GetAtt" in pass_role["Resource"] and "TrainingExecutionRole" in str(pass_role["Resource"])


def _object_prefixes(statement: dict[str, Any]) -> set[str]:
    """The key patterns of a statement's bucket resources (``{"Fn::Join": ["", [<arn>, "/models/*"]]}``)."""
    found = set()
    for resource in _as_list(statement["Resource"]):
        parts = (
            resource["Fn::Join"][1] if isinstance(resource, dict) and "Fn::Join" in resource else [resource]
        )
        found.add(str(parts[-1]))
    return found


def test_training_role_reads_inputs_and_writes_only_trainings(template_json: dict[str, Any]) -> None:
    statements = {s.get("Sid"): s for s in _statements(template_json)}
    assert statements["ReadInputs"]["Action"] == "s3:GetObject"
    assert _object_prefixes(statements["ReadInputs"]) == {"/models/*", "/datasets/*"}
    assert _object_prefixes(statements["WriteOutputsAndCheckpoints"]) == {"/trainings/*"}
    listing = statements["ListOwnPrefixes"]
    assert listing["Condition"]["StringLike"]["s3:prefix"] == ["models/*", "datasets/*", "trainings/*"]


def test_alarms_dashboard_and_outputs(template: Any, template_json: dict[str, Any]) -> None:
    alarms = _resources(template_json, "AWS::CloudWatch::Alarm").values()
    metrics = {a["Properties"].get("MetricName") for a in alarms}
    assert {"5XXError", "Errors", "ApproximateNumberOfMessagesVisible", "TrainingJobsFailed"} <= metrics
    assert all(a["Properties"]["AlarmActions"] for a in alarms)
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    outputs = template_json["Outputs"]
    assert {"ApiUrl", "BucketName", "TrainingImageUri", "TableName"} <= set(outputs)


def test_training_image_is_a_docker_asset_built_at_deploy_time(template_json: dict[str, Any]) -> None:
    env = next(
        f["Properties"]["Environment"]["Variables"]
        for f in _resources(template_json, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "functions.api.handler.lambda_handler"
    )
    assert "cdk-hnb659fds-container-assets" in str(env[EnvVar.TRAINING_IMAGE_URI])


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"allowedInstanceTypes": "ml.g5.xlarge,ml.x9.huge"}, "unknown instance types"),
        ({"removalPolicy": "maybe"}, "removalPolicy"),
        ({"trainingSubnetIds": "subnet-1"}, "together"),
        ({"logRetentionDays": 42}, "logRetentionDays"),
        ({"jobNamePrefix": "bad_prefix!"}, "jobNamePrefix"),
        ({"ownerSessionRoles": "arn:aws:iam::1:role/x"}, "ownerSessionRoles"),
    ],
)
def test_bad_context_is_refused_with_the_key(context: dict[str, Any], message: str) -> None:
    from app import build_app
    from tests.infrastructure.conftest import NO_BUNDLING

    with pytest.raises(Exception, match=message):
        build_app({**NO_BUNDLING, **context})


def _policy_statements_of(template_json: dict[str, Any], handler: str) -> list[dict[str, Any]]:
    """The statements of the policies attached to the role of the function with this handler."""
    function = next(
        f
        for f in _resources(template_json, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == handler
    )
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    found: list[dict[str, Any]] = []
    for policy in _resources(template_json, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def test_api_reads_training_logs_on_the_log_group_only(template_json: dict[str, Any]) -> None:
    api = _policy_statements_of(template_json, "functions.api.handler.lambda_handler")
    read = next(s for s in api if s.get("Sid") == "ReadTrainingJobLogs")
    # IAM Service Authorization Reference, CloudWatch Logs: DescribeLogStreams and GetLogEvents
    # take the log-group resource type only (a log-stream ARN would never match them).
    assert sorted(_as_list(read["Action"])) == ["logs:DescribeLogStreams", "logs:GetLogEvents"]
    texts = [json.dumps(r) for r in _as_list(read["Resource"])]
    assert len(texts) == 2 and all(f"log-group:{DEFAULTS.training_log_group}" in t for t in texts)
    assert not any("log-stream" in t for t in texts)
    for handler in ("functions.events.handler.lambda_handler", "functions.reconciler.handler.lambda_handler"):
        actions = {a for s in _policy_statements_of(template_json, handler) for a in _as_list(s["Action"])}
        assert not any(action.startswith("logs:") for action in actions), handler
    functions = _resources(template_json, "AWS::Lambda::Function").values()
    api_env = next(
        f["Properties"]["Environment"]["Variables"]
        for f in functions
        if f["Properties"]["Handler"] == "functions.api.handler.lambda_handler"
    )
    assert api_env[EnvVar.TRAINING_LOG_GROUP] == DEFAULTS.training_log_group


def test_only_the_api_seals_and_only_the_tasks_function_opens_import_tokens(
    template_json: dict[str, Any],
) -> None:
    """Gated imports' access tokens (functions/adapters/token_sealer.py): one rotating key, Encrypt
    for the API alone, Decrypt for the tasks function alone, no other KMS action on it."""
    keys = {
        logical: key
        for logical, key in _resources(template_json, "AWS::KMS::Key").items()
        if logical.startswith("FunctionsImportTokenKey")
    }
    ((key_id, key),) = keys.items()
    assert key["Properties"]["EnableKeyRotation"] is True
    granted: dict[str, set[str]] = {}
    for handler in SERVICE_ENVIRONMENT:
        for statement in _policy_statements_of(template_json, handler):
            if key_id in json.dumps(statement["Resource"]):
                granted.setdefault(handler, set()).update(_as_list(statement["Action"]))
    assert granted == {
        "functions.api.handler.lambda_handler": {"kms:Encrypt"},
        "functions.tasks.handler.lambda_handler": {"kms:Decrypt"},
    }
