"""The Kohya-SS training image and the SageMaker execution role that runs it."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import IgnoreMode, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.domain.storage_layout import DATASETS_PREFIX, MODELS_PREFIX, TRAININGS_PREFIX
from functions.settings import DEFAULTS
from infrastructure.nag import acknowledge_wildcards, arn_token, nag_arn

ROOT = Path(__file__).resolve().parents[2]
TRAINING_LOG_GROUP = DEFAULTS.training_log_group  # /aws/sagemaker/TrainingJobs
# Where SageMaker puts training jobs' instance and algorithm metrics
# (https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html).
TRAINING_METRICS_NAMESPACE = "/aws/sagemaker/TrainingJobs"
DOCKERFILE = "training_container/Dockerfile"


def docker_excludes() -> list[str]:
    lines = (ROOT / "training_container" / "DOCKER_ASSET_EXCLUDES").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


class TrainingEnvironment(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        subnet_ids: tuple[str, ...],
        security_group_ids: tuple[str, ...],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # Built by `cdk deploy` (needs Docker then), never at synth.
        self.image = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(ROOT),
            file=DOCKERFILE,
            exclude=docker_excludes(),
            ignore_mode=IgnoreMode.DOCKER,
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker training jobs of the LoRA service: read inputs, write outputs, logs",
        )
        bucket_arn = bucket.bucket_arn
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadInputs",
                actions=["s3:GetObject"],
                resources=[f"{bucket_arn}/{MODELS_PREFIX}*", f"{bucket_arn}/{DATASETS_PREFIX}*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOutputsAndCheckpoints",
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                resources=[f"{bucket_arn}/{TRAININGS_PREFIX}*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListOwnPrefixes",
                actions=["s3:ListBucket"],
                resources=[bucket_arn],
                conditions={
                    "StringLike": {
                        "s3:prefix": [f"{p}*" for p in (MODELS_PREFIX, DATASETS_PREFIX, TRAININGS_PREFIX)]
                    }
                },
            )
        )
        self.image.repository.grant_pull(self.role)
        self._allow_logs_and_metrics(stack)
        if subnet_ids:
            self._allow_vpc(stack, subnet_ids, security_group_ids)
        acknowledge_wildcards(
            self.role,
            [f"{arn_token(bucket)}/{p}*" for p in (MODELS_PREFIX, DATASETS_PREFIX, TRAININGS_PREFIX)],
            "Object keys are per record under the service's fixed prefixes; SageMaker syncs whole prefixes.",
        )
        acknowledge_wildcards(
            self.role,
            ["*"],
            "Only ecr:GetAuthorizationToken and cloudwatch:PutMetricData, which have no resource-level "
            "form (pulls are repo-scoped; metrics are limited to SageMaker's namespace by condition).",
        )

    def _allow_logs_and_metrics(self, stack: Stack) -> None:
        """SageMaker's documented minimum for training roles ("CreateTrainingJob API: Execution
        Role Permissions", https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html)
        includes CloudWatch Logs and ``cloudwatch:PutMetricData``.

        Resource types per the IAM Service Authorization Reference (CloudWatch Logs):
        CreateLogGroup, CreateLogStream and DescribeLogStreams take a ``log-group``;
        PutLogEvents takes a ``log-stream``. PutMetricData has no resource type; its
        ``cloudwatch:namespace`` condition key limits it to the training jobs' namespace.
        """
        group = f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:{TRAINING_LOG_GROUP}"
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="TrainingLogGroup",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams"],
                resources=[group, f"{group}:*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="TrainingLogStreams",
                actions=["logs:PutLogEvents"],
                resources=[f"{group}:log-stream:*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="TrainingMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": TRAINING_METRICS_NAMESPACE}},
            )
        )
        acknowledge_wildcards(
            self.role,
            [
                nag_arn(stack, "logs", f"log-group:{TRAINING_LOG_GROUP}:*"),
                nag_arn(stack, "logs", f"log-group:{TRAINING_LOG_GROUP}:log-stream:*"),
            ],
            "SageMaker names one log stream per job and instance inside its fixed log group.",
        )

    def _allow_vpc(
        self, stack: Stack, subnet_ids: tuple[str, ...], security_group_ids: tuple[str, ...]
    ) -> None:
        """ENIs in the given subnets and security groups only (training in a customer VPC)."""
        arn = f"arn:{stack.partition}:ec2:{stack.region}:{stack.account}"
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="VpcReads",
                actions=[
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                ],
                resources=["*"],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="VpcNetworkInterfaces",
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                ],
                resources=[
                    f"{arn}:network-interface/*",
                    *(f"{arn}:subnet/{s}" for s in subnet_ids),
                    *(f"{arn}:security-group/{g}" for g in security_group_ids),
                ],
            )
        )
