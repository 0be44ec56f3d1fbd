"""The one S3 bucket (models/, datasets/, trainings/) and its access-log bucket."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.domain.storage_layout import TRAININGS_PREFIX
from infrastructure.nag import acknowledge

CHECKPOINT_RETENTION_DAYS = 30


class ServiceStorage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        destroy = removal_policy == RemovalPolicy.DESTROY
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED,  # log delivery cannot write to SSE-KMS buckets
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )
        acknowledge(
            self.access_logs,
            "S1",
            "This bucket receives the data bucket's server access logs; logging it would recurse.",
        )
        self.bucket = s3.Bucket(
            self,
            "Data",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            versioned=True,  # an overwritten or deleted model can be recovered for 30 days
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="data-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(2)
                ),
                s3.LifecycleRule(id="expire-old-versions", noncurrent_version_expiration=Duration.days(30)),
                s3.LifecycleRule(
                    id="expire-checkpoints",
                    prefix=TRAININGS_PREFIX,
                    expiration=Duration.days(CHECKPOINT_RETENTION_DAYS),
                ),
            ],
            # Browsers upload straight to presigned URLs: PUT only, and the ETag must be readable
            # to complete multipart uploads. Presigned URLs carry their own authorization.
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.PUT, s3.HttpMethods.GET],
                    allowed_origins=["*"],
                    allowed_headers=["*"],
                    exposed_headers=["ETag"],
                    max_age=3600,
                )
            ],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )
