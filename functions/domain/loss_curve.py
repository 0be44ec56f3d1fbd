"""The loss curve's bounded sampling: what the container keeps and what the API serves.

A job reports a point per optimisation step; a 10,000-step job must not turn into a multi-MB
file read on every request. ``LossCurve`` keeps points at least ``stride`` steps apart and, when
it holds more than its bound, drops every other point and doubles the stride, so the kept
points stay evenly spread over the whole run whatever its length. The newest point is always
served, so the curve ends at the job's latest step.

A resumed job (spot restart) continues from its last saved state, which may be behind the last
recorded point: recording a step at or before the newest kept point discards the points from
that step on, so the curve shows the run that produced the LoRA, not a superseded one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from functions.domain.training_contract import MAX_METRIC_POINTS, MetricPoint


def finite_or_none(value: float | None) -> float | None:
    """NaN and infinities are not JSON; a diverged step is shown as a gap."""
    return value if value is not None and math.isfinite(value) else None


def thin(points: Sequence[MetricPoint], max_points: int) -> list[MetricPoint]:
    """Every other point until at most ``max_points`` are left, always keeping the last one."""
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    kept = list(points)
    while len(kept) > max_points:
        last = kept[-1]
        kept = kept[::2]
        if kept[-1] is not last:
            kept[-1] = last  # keep the end of the curve, not the point before it
    return kept


@dataclass
class LossCurve:
    """Evenly spaced points of one job (plus the newest one), at most ``max_points`` in all."""

    max_points: int = MAX_METRIC_POINTS
    stride: int = 1
    kept: list[MetricPoint] = field(default_factory=list)
    latest: MetricPoint | None = None

    def __post_init__(self) -> None:
        if self.max_points < 3:
            raise ValueError("max_points must be at least 3")

    def add(self, point: MetricPoint) -> None:
        """Record the point of one step (a repeated or earlier step replaces what followed it)."""
        point = point.model_copy(
            update={"loss": finite_or_none(point.loss), "learning_rate": finite_or_none(point.learning_rate)}
        )
        if self.latest is not None and point.step <= self.latest.step:
            self.kept = [kept for kept in self.kept if kept.step < point.step]
        self.latest = point
        if not self.kept or point.step - self.kept[-1].step >= self.stride:
            self.kept.append(point)
        if len(self.kept) > self.max_points - 1:  # one place stays free for the newest point
            self.kept = self.kept[::2]
            self.stride *= 2

    def points(self) -> list[MetricPoint]:
        """The kept points, ending with the newest one."""
        if self.latest is None:
            return []
        if self.kept and self.kept[-1].step == self.latest.step:
            return [*self.kept[:-1], self.latest]
        return [*self.kept, self.latest]

    @classmethod
    def resumed(
        cls, points: Sequence[MetricPoint], stride: int, max_points: int = MAX_METRIC_POINTS
    ) -> LossCurve:
        """The curve a restarted container continues (from the metrics file it finds again)."""
        curve = cls(max_points=max_points, stride=max(1, stride))
        ordered = thin(sorted(points, key=lambda p: p.step), max_points - 1)
        curve.kept = ordered
        curve.latest = ordered[-1] if ordered else None
        return curve
