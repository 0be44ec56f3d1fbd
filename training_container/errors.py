"""The one exception type whose message is shown to users as the job's failure reason."""

from __future__ import annotations


class JobFailure(Exception):
    """A problem the user can act on (bad dataset, wrong model family, ...).

    Its message goes verbatim to ``/opt/ml/output/failure``, which SageMaker shows as the
    job's ``FailureReason``; keep it short, specific and free of stack traces.
    """
