"""Trainings queued in AWS Batch (service jobs of type SAGEMAKER_TRAINING): the domain facts.

Batch runs SageMaker Training jobs from a job queue whose service environment caps the
instances in use (the deployment's GPU budget); a fair-share scheduling policy splits that
budget between owners by ``shareIdentifier``. This module owns what the service derives from
Batch's vocabulary: the share identifier of an owner, which Batch statuses mean "still waiting"
and how a waiting job's reason is told to its owner.

Sources: botocore ``batch/2016-08-10/service-2.json`` (``ServiceJobStatus`` =
SUBMITTED | PENDING | RUNNABLE | SCHEDULED | STARTING | RUNNING | SUCCEEDED | FAILED;
``SubmitServiceJobRequest.schedulingPriority`` "integers between 0 and 9999") and the AWS Batch
user guide, "Submit a service job": SUBMITTED -> RUNNABLE (waits for capacity) -> SCHEDULED
(passed to SageMaker AI) -> STARTING -> RUNNING -> SUCCEEDED | FAILED.
"""

from __future__ import annotations

import hashlib

SERVICE_JOB_TYPE = "SAGEMAKER_TRAINING"
# EventBridge detail-type of Batch's service-job events (source "aws.batch"); the user guide's
# "Service job state change events". Events are not sent for the initial submission.
SERVICE_JOB_STATE_CHANGE = "Batch Service Job State Change"
SERVICE_JOB_EVENT_SOURCE = "aws.batch"
# Not a SageMaker status: the Batch launcher reports a job still in its queue with this status
# (see functions.domain.sagemaker_states.job_status_for, which maps it to JobStatus.QUEUED).
QUEUED_STATE = "Queued"
# Batch statuses before SageMaker has the job: the training job does not exist yet.
WAITING_STATUSES: frozenset[str] = frozenset({"SUBMITTED", "PENDING", "RUNNABLE"})
# Batch statuses in which SageMaker has (or is being handed) the training job.
RUNNING_STATUSES: frozenset[str] = frozenset({"SCHEDULED", "STARTING", "RUNNING"})
ENDED_STATUSES: frozenset[str] = frozenset({"SUCCEEDED", "FAILED"})
MIN_PRIORITY, MAX_PRIORITY = 0, 9999  # SubmitServiceJobRequest.schedulingPriority
DEFAULT_PRIORITY = 0
# Weighted fair share forgets usage over this window (CfnSchedulingPolicy fairsharePolicy
# shareDecaySeconds): an owner who just ran a job waits behind one who has not, for about an hour.
SHARE_DECAY_SECONDS = 3600
WAITING_REASON = "waiting in the training queue for a free GPU in the deployment's budget"
# Batch creates the SageMaker training job under a name of its own, not the payload's
# TrainingJobName: DescribeServiceJob gives it as ``latestAttempt.serviceResourceId`` (name
# TrainingJobArn; botocore batch service-2.json, ServiceResourceId), the SageMaker Python SDK reads
# "the new training job name" from there (sagemaker/aws_batch/training_queued_job.py), and Batch's
# service-linked role may only create ``training-job/AWSBatch*`` (AWS managed policy
# AWSBatchServiceRolePolicyForSageMaker). The payload's tags do reach the job (that policy grants
# sagemaker:AddTags on CreateTrainingJob), and SageMaker's state-change events carry the job's
# tags (``detail.Tags``), so this tag holds the service's own job name: the events rule and
# handler find a renamed job by it (functions.events.handler).
JOB_NAME_TAG = "lora:job-name"
# How Batch's training-job names begin (the service-linked role's policy above).
BATCH_TRAINING_JOB_PREFIX = "AWSBatch"
# SageMaker end states that do not end a job Batch runs: a training job that failed with a
# CapacityError, or stopped after waiting for capacity, puts the service job back in RUNNABLE
# under CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY until maxTimeSeconds (the user guide, "Jobs stuck
# in RUNNABLE due to capacity"). Batch's own FAILED event says when such a job has really ended.
SAGEMAKER_ENDS_BATCH_DECIDES: frozenset[str] = frozenset({"Failed", "Stopped"})


def share_identifier(owner: str) -> str:
    """The owner's fair-share identifier: letters and digits only, the same for every job of theirs.

    Owners are IAM ARNs or e-mail-like names, which Batch's share identifiers (alphanumeric,
    at most 255 characters, an optional trailing ``*`` in policies) cannot hold; a digest can.
    """
    return "o" + hashlib.sha256(owner.encode()).hexdigest()[:24]


def waiting_reason(status_reason: str | None) -> str:
    """What a user reads while the job waits: Batch's own reason when it gives one."""
    if status_reason:
        return f"{WAITING_REASON} (AWS Batch: {status_reason})"
    return WAITING_REASON


def newer_training_job_name(stored: str | None, reported: str | None) -> str | None:
    """The training job name to store, or None to keep the stored one.

    Names reach the service in two spellings: SageMaker's own (its events, DescribeTrainingJob),
    which its S3 keys and log streams use, and a TrainingJobArn's lower-case one (the fallback of
    ``BatchLauncher.describe``). For the same job, a spelling with capitals is SageMaker's and wins.
    """
    if not reported or reported == stored:
        return None
    if stored is None or stored.casefold() != reported.casefold():
        return reported
    return reported if reported != reported.lower() else None
