"""Powertools metrics for the three handlers, configured once.

The namespace defaults to ``METRICS_NAMESPACE`` but ``POWERTOOLS_METRICS_NAMESPACE`` wins (an
explicit argument would override the environment, so it is resolved here). The cold-start
metric is captured only when metrics are enabled: Powertools flushes it even with
``POWERTOOLS_METRICS_DISABLED=true``, which would put EMF lines on the local runtime's stdout.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Metrics

from functions.settings import METRICS_NAMESPACE


def build_metrics() -> Metrics:
    return Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or METRICS_NAMESPACE)


def cold_start_metric_enabled() -> bool:
    return os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() not in ("1", "true")
