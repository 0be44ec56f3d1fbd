"""API Gateway REST API: the routes of openapi.yaml, IAM auth, validation, throttling, access logs."""

from __future__ import annotations

import re

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infrastructure.nag import acknowledge
from infrastructure.openapi_routes import Route, routes

STAGE = "prod"
THROTTLE_RATE = 50  # requests per second, whole API; uploads go to S3 directly, not through here
THROTTLE_BURST = 100


def _model_name(route: Route) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", f"{route.method.title()}{route.path.title()}Body")


class ServiceApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: lambda_.IFunction,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=removal_policy
        )
        # No CORS on the API: callers sign with SigV4 (CLI, SDKs, servers). Browsers talk to S3
        # presigned URLs, whose CORS is on the bucket.
        self.api = apigw.RestApi(
            self,
            "Api",
            description="LoRA training service (SigV4)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=removal_policy,
            default_method_options=apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM),
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                throttling_rate_limit=THROTTLE_RATE,
                throttling_burst_limit=THROTTLE_BURST,
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # bodies may hold user data: never log them
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
        )
        self.validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        # One permission for the whole API (source arn <api>/*/*/*) instead of two per method:
        # a function's resource policy is limited to 20 KB by Lambda, and 21 methods x 2
        # statements already came to ~17.5 KB (tests/infrastructure/test_stack.py measures it).
        integration = apigw.LambdaIntegration(handler, scope_permission_to_method=False)
        for route in routes():
            self._add_route(route, integration)
        acknowledge(
            self.api,
            "APIG3",
            "IAM-authorized API for a team's own account; WAF would cost more than the service at rest.",
        )
        acknowledge(self.api, "COG4", "Callers authenticate with IAM (SigV4), not Cognito user pools.")
        acknowledge(
            self.api,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level CloudWatch role uses the AWS-managed push-to-logs policy.",
        )

    def _add_route(self, route: Route, integration: apigw.LambdaIntegration) -> None:
        resource = self.api.root.resource_for_path(route.path)
        parameters = {f"method.request.querystring.{q}": True for q in route.required_query}
        parameters |= {f"method.request.querystring.{q}": False for q in route.optional_query}
        parameters |= {f"method.request.path.{p}": True for p in re.findall(r"{(\w+)}", route.path)}
        models = None
        if route.body_schema:
            model = self.api.add_model(
                _model_name(route),
                content_type="application/json",
                schema=_json_schema(route.body_schema),
            )
            models = {"application/json": model}
        resource.add_method(
            route.method,
            integration,
            request_validator=self.validator,
            request_parameters=parameters or None,
            request_models=models,
        )


def _json_schema(schema: dict[str, object]) -> apigw.JsonSchema:
    """Build CDK's typed JsonSchema from a plain draft-4 dict."""
    names = {
        "type": "type", "properties": "properties", "required": "required", "items": "items", "enum": "enum",
        "minimum": "minimum", "maximum": "maximum", "exclusiveMinimum": "exclusive_minimum",
        "exclusiveMaximum": "exclusive_maximum", "minLength": "min_length", "maxLength": "max_length",
        "pattern": "pattern", "minItems": "min_items", "maxItems": "max_items",
        "additionalProperties": "additional_properties", "description": "description", "title": "title",
        "format": "format", "anyOf": "any_of",
    }  # fmt: skip
    kwargs: dict[str, object] = {}
    for key, value in schema.items():
        if key == "type":
            kwargs["type"] = apigw.JsonSchemaType[str(value).upper()]
        elif key == "properties":
            kwargs["properties"] = {k: _json_schema(v) for k, v in value.items()}  # type: ignore[attr-defined]
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            kwargs[names[key]] = _json_schema(value)
        elif key == "anyOf":
            kwargs["any_of"] = [_json_schema(v) for v in value]  # type: ignore[attr-defined]
        elif key in names:
            kwargs[names[key]] = value
    return apigw.JsonSchema(**kwargs)  # type: ignore[arg-type]
