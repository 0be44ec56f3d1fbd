#!/usr/bin/env python3
"""The CDK app: `cdk deploy` from the repository root (see cdk.json and README "Deploy to AWS")."""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infrastructure.config import DeploymentConfig
from infrastructure.stack import LoraTrainingStack

# Feature flags the stack is written for, set here (not in cdk.json) so that the templates the
# tests synthesize are the ones `cdk deploy` deploys.
FEATURE_FLAGS: dict[str, object] = {
    "@aws-cdk/aws-lambda:recognizeLayerVersion": True,
    "@aws-cdk/core:checkSecretUsage": True,
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/aws-apigateway:disableCloudWatchRole": False,
    # Server access logs delivered under a bucket policy instead of the legacy ACL (cfn-lint W3045).
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
}


def build_app(context: dict[str, object] | None = None) -> cdk.App:
    app = cdk.App(context={**FEATURE_FLAGS, **(context or {})})
    LoraTrainingStack(
        app,
        app.node.try_get_context("stackName") or "LoraTraining",
        config=DeploymentConfig.from_context(app),
        env=cdk.Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
        ),
        description="Serverless LoRA training for Stable Diffusion (lora-on-aws)",
    )
    # Every synth (and so every deploy) fails on an unacknowledged AWS Solutions finding.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


if __name__ == "__main__":
    build_app().synth()
