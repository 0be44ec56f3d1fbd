"""The loss curve's bounded sampling and the log cursor's validation (plain domain, no AWS)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.domain.errors import InvalidInput
from functions.domain.loss_curve import LossCurve, thin
from functions.domain.storage_layout import (
    training_log_stream_prefix,
    training_metrics_key,
    training_progress_key,
)
from functions.domain.training_contract import MetricPoint
from functions.domain.training_logs import (
    MAX_LOG_PAGE_LINES,
    Direction,
    LogCursor,
    check_log_limit,
    head_cursor,
)


def point(step: int, loss: float | None = 0.1) -> MetricPoint:
    return MetricPoint(step=step, epoch=1, loss=loss)


class TestLossCurve:
    def test_short_runs_keep_every_step(self) -> None:
        curve = LossCurve(max_points=10)
        for step in range(1, 6):
            curve.add(point(step))
        assert [p.step for p in curve.points()] == [1, 2, 3, 4, 5] and curve.stride == 1

    @given(st.integers(min_value=1, max_value=5000), st.integers(min_value=3, max_value=64))
    def test_never_more_than_the_bound_and_always_ends_at_the_newest_step(
        self, steps: int, bound: int
    ) -> None:
        curve = LossCurve(max_points=bound)
        for step in range(1, steps + 1):
            curve.add(point(step))
        kept = [p.step for p in curve.points()]
        assert len(kept) <= bound
        assert kept[0] == 1 and kept[-1] == steps
        assert kept == sorted(set(kept))

    def test_points_stay_evenly_spaced_as_the_stride_doubles(self) -> None:
        curve = LossCurve(max_points=9)
        for step in range(0, 100):
            curve.add(point(step))
        steps = [p.step for p in curve.points()]
        assert {b - a for a, b in itertools.pairwise(steps[:-1])} == {curve.stride}
        assert curve.stride == 16

    def test_an_earlier_step_replaces_the_superseded_points(self) -> None:
        curve = LossCurve(max_points=50)
        for step in range(1, 11):
            curve.add(point(step, 0.5))
        curve.add(point(7, 0.2))
        assert [p.step for p in curve.points()] == [1, 2, 3, 4, 5, 6, 7]
        assert curve.points()[-1].loss == 0.2

    def test_a_repeated_step_keeps_its_newest_values(self) -> None:
        curve = LossCurve(max_points=50)
        curve.add(point(1, 0.5))
        curve.add(point(1, 0.4))
        assert [(p.step, p.loss) for p in curve.points()] == [(1, 0.4)]

    def test_non_finite_values_become_gaps(self) -> None:
        curve = LossCurve()
        curve.add(MetricPoint(step=1, loss=float("inf"), learning_rate=float("nan")))
        assert curve.points()[0].loss is None and curve.points()[0].learning_rate is None

    def test_resumed_curve_is_bounded_and_sorted(self) -> None:
        curve = LossCurve.resumed([point(s) for s in range(300, 0, -1)], stride=1, max_points=50)
        steps = [p.step for p in curve.points()]
        assert len(steps) < 50 and steps[0] == 1 and steps[-1] == 300 and steps == sorted(steps)

    def test_thin_keeps_the_first_and_last_points(self) -> None:
        kept = thin([point(s) for s in range(1, 1001)], 100)
        assert len(kept) <= 100 and kept[0].step == 1 and kept[-1].step == 1000

    def test_bounds_are_checked(self) -> None:
        with pytest.raises(ValueError):
            LossCurve(max_points=2)
        with pytest.raises(ValueError):
            thin([], 1)


class TestLogCursor:
    prefix = training_log_stream_prefix("lora-abc")

    def test_round_trip(self) -> None:
        cursor = LogCursor(f"{self.prefix}algo-1-1732500000", "f/123", Direction.FORWARD)
        assert LogCursor.from_token(cursor.to_token(), self.prefix) == cursor
        assert LogCursor.from_token(head_cursor().to_token(), self.prefix) == head_cursor()

    @pytest.mark.parametrize(
        "data",
        [
            {"s": "lora-other/algo-1-1", "t": "", "d": "forward"},  # another job's stream
            {"s": "lora-abc/algo-1-1", "t": "", "d": "sideways"},
            {"s": "lora-abc/algo-1-1", "t": 5, "d": "forward"},
            {"k": "a DynamoDB key, not a cursor"},
        ],
    )
    def test_anything_else_is_refused_naming_next_token(self, data: dict[str, object]) -> None:
        with pytest.raises(InvalidInput) as refused:
            LogCursor.from_token(data, self.prefix)
        assert refused.value.details[0].field == "next_token"

    def test_limit_is_bounded(self) -> None:
        assert check_log_limit(1) == 1 and check_log_limit(MAX_LOG_PAGE_LINES) == MAX_LOG_PAGE_LINES
        for bad in (0, MAX_LOG_PAGE_LINES + 1):
            with pytest.raises(InvalidInput) as refused:
                check_log_limit(bad)
            assert refused.value.details[0].field == "limit"


def test_metrics_file_lives_beside_progress() -> None:
    assert (
        training_metrics_key("o", "j").rsplit("/", 1)[0] == training_progress_key("o", "j").rsplit("/", 1)[0]
    )
    assert training_log_stream_prefix("lora-x") == "lora-x/"
