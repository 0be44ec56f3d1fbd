"""Training-job statuses and the transitions between them: the one definition.

    PENDING -> [QUEUED ->] STARTING -> TRAINING -> UPLOADING -> COMPLETED | FAILED
    (any non-terminal) -> STOPPING -> STOPPED

QUEUED is a job waiting in the deployment's AWS Batch job queue for a GPU (its budget is full,
SageMaker has no capacity, or the quota is reached); jobs launched directly never pass it.

Terminal states are final. A transition is allowed only "forwards"; the persistence layer
enforces this with a DynamoDB conditional write on the current status, so duplicate, late
or out-of-order SageMaker events can never move a job backwards or resurrect it.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    STARTING = "STARTING"
    TRAINING = "TRAINING"
    UPLOADING = "UPLOADING"
    STOPPING = "STOPPING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"


TERMINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED}
)
ACTIVE_STATUSES: frozenset[JobStatus] = frozenset(set(JobStatus) - TERMINAL_STATUSES)

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset(
        {JobStatus.QUEUED, JobStatus.STARTING, JobStatus.TRAINING, JobStatus.UPLOADING, JobStatus.STOPPING}
        | TERMINAL_STATUSES
    ),
    # A queued job's next news may be any later state (a lost event is repaired by the reconciler).
    JobStatus.QUEUED: frozenset(
        {JobStatus.STARTING, JobStatus.TRAINING, JobStatus.UPLOADING, JobStatus.STOPPING} | TERMINAL_STATUSES
    ),
    JobStatus.STARTING: frozenset(
        {JobStatus.TRAINING, JobStatus.UPLOADING, JobStatus.STOPPING} | TERMINAL_STATUSES
    ),
    JobStatus.TRAINING: frozenset({JobStatus.UPLOADING, JobStatus.STOPPING} | TERMINAL_STATUSES),
    JobStatus.UPLOADING: frozenset({JobStatus.STOPPING} | TERMINAL_STATUSES),
    # A job being stopped may still complete or fail (SageMaker decides the race); it never
    # goes back to running.
    JobStatus.STOPPING: TERMINAL_STATUSES,
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.STOPPED: frozenset(),
}


def is_terminal(status: JobStatus) -> bool:
    return status in TERMINAL_STATUSES


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    """Whether ``current -> target`` moves the job forward. Same-status is not a transition."""
    return target in ALLOWED_TRANSITIONS[current]


def predecessors(target: JobStatus) -> frozenset[JobStatus]:
    """Statuses from which ``target`` may be reached (feeds DynamoDB ``status IN (...)`` conditions)."""
    return frozenset(s for s, nexts in ALLOWED_TRANSITIONS.items() if target in nexts)
