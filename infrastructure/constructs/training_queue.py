"""The deployment's training queue (context ``trainingQueue=true``): AWS Batch for SageMaker
Training, with the GPU budget as its service environment's capacity and fair share by owner.

L1 constructs on purpose: aws-cdk-lib has no L2 for service environments or SageMaker Training
job queues (``CfnServiceEnvironment``; ``CfnJobQueue`` with ``jobQueueType`` SAGEMAKER_TRAINING
and ``serviceEnvironmentOrder``). Sources: the AWS Batch user guide ("Create a service
environment", "Create a SageMaker Training job queue", "Automatic remediation with
jobStateTimeLimitActions": for SAGEMAKER_TRAINING queues the only action is TERMINATE, on
RUNNABLE jobs, with ``maxTimeSeconds`` 600-86400 and the reasons
CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY and MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE).
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_batch as batch
from constructs import Construct

from functions.domain.batch_queue import SERVICE_JOB_TYPE, SHARE_DECAY_SECONDS

# A job asking for more instances than the whole budget can never run: end it soon, with Batch's reason.
MISCONFIGURED_WAIT_SECONDS = 600


class TrainingQueue(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, gpu_budget_instances: int, max_queue_wait_seconds: int
    ) -> None:
        super().__init__(scope, construct_id)
        self.environment = batch.CfnServiceEnvironment(
            self,
            "GpuBudget",
            service_environment_type=SERVICE_JOB_TYPE,
            # NUM_INSTANCES is the unit for SAGEMAKER_TRAINING (CreateServiceEnvironment's CapacityLimit).
            capacity_limits=[
                batch.CfnServiceEnvironment.CapacityLimitProperty(
                    max_capacity=gpu_budget_instances, capacity_unit="NUM_INSTANCES"
                )
            ],
        )
        # Every owner gets an equal share (no shareDistribution: all identifiers weigh 1); recent
        # use counts against a share for SHARE_DECAY_SECONDS, so a busy owner yields to an idle one.
        self.policy = batch.CfnSchedulingPolicy(
            self,
            "FairShare",
            fairshare_policy=batch.CfnSchedulingPolicy.FairsharePolicyProperty(
                share_decay_seconds=SHARE_DECAY_SECONDS, compute_reservation=0
            ),
        )
        self.queue = batch.CfnJobQueue(
            self,
            "Queue",
            job_queue_type=SERVICE_JOB_TYPE,
            priority=1,
            scheduling_policy_arn=self.policy.attr_arn,
            service_environment_order=[
                batch.CfnJobQueue.ServiceEnvironmentOrderProperty(
                    order=1, service_environment=self.environment.attr_service_environment_arn
                )
            ],
            job_state_time_limit_actions=[
                batch.CfnJobQueue.JobStateTimeLimitActionProperty(
                    action="TERMINATE",
                    state="RUNNABLE",
                    reason="CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
                    max_time_seconds=max_queue_wait_seconds,
                ),
                batch.CfnJobQueue.JobStateTimeLimitActionProperty(
                    action="TERMINATE",
                    state="RUNNABLE",
                    reason="MISCONFIGURATION:SERVICE_ENVIRONMENT_MAX_RESOURCE",
                    max_time_seconds=MISCONFIGURED_WAIT_SECONDS,
                ),
            ],
        )
        stack = Stack.of(self)
        self.queue_arn = self.queue.attr_job_queue_arn
        # Service jobs' ARNs: arn:<partition>:batch:<region>:<account>:service-job/<job id>
        # (the user guide, "Service jobs in AWS Batch": service-job instead of job).
        self.service_jobs_arn = f"arn:{stack.partition}:batch:{stack.region}:{stack.account}:service-job/*"
