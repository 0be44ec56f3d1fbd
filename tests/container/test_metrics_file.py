"""The loss curve the container writes (checkpoints/metrics.json, published in model/): both engines,
bounded size, resume after a restart."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest

from functions.domain.catalog import FmType
from functions.domain.training_contract import MAX_METRIC_POINTS, Engine, MetricsReport
from tests.container.conftest import JobFactory
from training_container.entrypoint import run_job
from training_container.metrics import MetricsRecorder

FAKE_SD_SCRIPTS = Path(__file__).parent / "fake_sd_scripts"


def read_report(path: Path) -> MetricsReport:
    return MetricsReport.model_validate_json(path.read_text(encoding="utf-8"))


def test_kohya_curve_has_every_step_with_avr_loss_and_no_learning_rate(
    make_job: JobFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SD_SCRIPTS_DIR", str(FAKE_SD_SCRIPTS))
    monkeypatch.setenv("LORA_KOHYA_LAUNCHER", json.dumps([sys.executable]))
    root = make_job(FmType.SD15, engine="auto")

    assert run_job(root) == 0

    report = read_report(root / "checkpoints" / "metrics.json")
    assert report.engine == Engine.KOHYA and report.total_steps == 4
    assert [(p.step, p.epoch) for p in report.points] == [(1, 1), (2, 1), (3, 2), (4, 2)]
    assert [p.loss for p in report.points] == pytest.approx([0.015, 0.025, 0.035, 0.045])
    assert all(p.learning_rate is None for p in report.points)  # sd-scripts does not print it
    assert (root / "model" / "metrics.json").read_bytes() == (
        root / "checkpoints" / "metrics.json"
    ).read_bytes()


@pytest.mark.slow
def test_diffusers_curve_records_loss_and_the_scheduled_learning_rate(make_job: JobFactory) -> None:
    root = make_job(FmType.SD15, config={"max_train_steps": 3, "lr_scheduler": "linear"})

    assert run_job(root) == 0

    report = read_report(root / "model" / "metrics.json")
    assert report.engine == Engine.DIFFUSERS and report.total_steps == 3
    assert [p.step for p in report.points] == [1, 2, 3]
    assert all(p.loss is not None and p.loss > 0 for p in report.points)
    rates = [p.learning_rate for p in report.points]
    assert rates[0] == pytest.approx(1e-3 * 2 / 3) and rates[-1] == pytest.approx(0.0)  # linear decay
    elapsed = [p.elapsed_seconds or 0 for p in report.points]
    assert elapsed == sorted(elapsed)


def test_a_10000_step_job_writes_a_small_evenly_spaced_file(tmp_path: Path) -> None:
    recorder = MetricsRecorder(tmp_path, Engine.DIFFUSERS)
    for step in range(1, 10_001):
        recorder.record(
            step=step, epoch=1 + step // 1000, loss=1 / step, learning_rate=1e-4, total_steps=10_000
        )
    recorder.close()

    size = recorder.path.stat().st_size
    report = read_report(recorder.path)
    steps = [p.step for p in report.points]
    assert size < 64 * 1024, size
    assert len(steps) <= MAX_METRIC_POINTS and steps[0] == 1 and steps[-1] == 10_000
    gaps = {b - a for a, b in itertools.pairwise(steps[:-1])}
    assert gaps == {report.stride}  # evenly spread (the last point is the newest step)


def test_a_restarted_job_continues_its_curve_from_the_resumed_step(tmp_path: Path) -> None:
    first = MetricsRecorder(tmp_path, Engine.DIFFUSERS)
    for step in range(1, 11):
        first.record(step=step, epoch=1, loss=0.5, total_steps=20)
    first.close()

    # The new attempt resumes from state saved at step 6: steps 7-10 are trained again.
    second = MetricsRecorder(tmp_path, Engine.DIFFUSERS)
    assert second.total_steps == 20
    for step in range(7, 21):
        second.record(step=step, epoch=2, loss=0.25)
    second.close()

    points = read_report(second.path).points
    assert [p.step for p in points] == list(range(1, 21))
    assert {p.loss for p in points if p.step >= 7} == {0.25} and points[5].loss == 0.5
    assert points[6].elapsed_seconds is not None and points[6].elapsed_seconds >= (
        points[5].elapsed_seconds or 0
    )


def test_an_unreadable_file_starts_a_new_curve_and_non_finite_loss_is_a_gap(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("{broken")
    recorder = MetricsRecorder(tmp_path)
    recorder.record(step=1, epoch=1, loss=float("nan"))
    recorder.close()
    report = read_report(recorder.path)
    assert [(p.step, p.loss) for p in report.points] == [(1, None)]
    json.loads(recorder.path.read_text())  # strict JSON: no NaN literal
