"""loractl trainings logs / plot against a scripted API (the local-runtime workflow test drives
them against the real handlers): following until the job ends and the log drains, and a real PNG."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loractl import commands
from loractl.loss_chart import nice_ticks, render_loss_chart
from loractl.main import main as loractl

JOB = "0" * 26


class ScriptedApi:
    """Answers GETs from queues of responses, recording every request."""

    def __init__(
        self, logs: list[dict[str, Any]], statuses: list[str], metrics: dict[str, Any] | None = None
    ):
        self.logs, self.statuses, self.metrics = logs, statuses, metrics
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def get(self, path: str, **params: Any) -> Any:
        self.requests.append((path, params))
        if path.endswith("/logs"):
            return self.logs.pop(0)
        if path.endswith("/metrics"):
            return self.metrics
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return {"id": JOB, "status": status}


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ScriptedApi]]:
    holder: list[ScriptedApi] = []

    @contextlib.contextmanager
    def fake_api(args: Any) -> Iterator[ScriptedApi]:
        yield holder[0]

    monkeypatch.setattr(commands, "api", fake_api)
    monkeypatch.setattr(commands, "POLL_SECONDS", 0.0)
    monkeypatch.setattr(commands.time, "sleep", lambda seconds: None)
    yield holder


def run(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = loractl([*arguments, "--endpoint", "http://127.0.0.1:9", "--token", "t"])
    return code, out.getvalue(), err.getvalue()


def page(token: str, *messages: str) -> dict[str, Any]:
    lines = [{"timestamp": "2026-11-25T00:00:00.000Z", "message": m} for m in messages]
    return {"job_id": JOB, "lines": lines, "next_token": token, "previous_token": None}


def test_logs_prints_the_tail(scripted: list[ScriptedApi]) -> None:
    scripted.append(ScriptedApi([page("t1", "a", "b")], ["TRAINING"]))
    code, out, _ = run("trainings", "logs", JOB, "--limit", "2")
    assert code == 0
    assert out.splitlines() == ["2026-11-25T00:00:00.000Z  a", "2026-11-25T00:00:00.000Z  b"]
    assert scripted[0].requests == [(f"/trainings/{JOB}/logs", {"limit": 2, "start": "tail"})]


def test_follow_polls_until_the_job_ends_and_the_log_is_drained(scripted: list[ScriptedApi]) -> None:
    logs = [
        page("t1", "first"),
        page("t1"),  # nothing new while the job runs
        page("t2", "second", "third"),
        page("t2"),  # the job has ended now ...
        page("t3", "late line"),  # ... but its last line arrives after
        page("t3"),
        page("t3"),
    ]
    api = ScriptedApi(logs, ["TRAINING", "COMPLETED"])
    scripted.append(api)
    code, out, _ = run("trainings", "logs", JOB, "--follow", "--json", "--head")
    assert code == 0
    assert [json.loads(line)["message"] for line in out.splitlines()] == [
        "first",
        "second",
        "third",
        "late line",
    ]
    assert not api.logs  # every page was read, none more
    tokens = [params.get("next_token") for path, params in api.requests if path.endswith("/logs")]
    assert tokens == [None, "t1", "t1", "t2", "t2", "t3", "t3"]
    assert api.requests[0][1]["start"] == "head"


def curve(n: int, with_rate: bool = True) -> dict[str, Any]:
    points = [
        {"step": s, "epoch": 1, "loss": 1 / s, "learning_rate": 1e-4 if with_rate else None}
        for s in range(1, n + 1)
    ]
    return {"job_id": JOB, "stride": 1, "points": points}


def test_plot_writes_a_png_of_the_curve(scripted: list[ScriptedApi], tmp_path: Path) -> None:
    scripted.append(ScriptedApi([], ["COMPLETED"], curve(50)))
    target = tmp_path / "charts" / "loss.png"
    code, out, err = run("trainings", "plot", JOB, str(target), "--json")
    assert code == 0, err
    assert json.loads(out) == {"path": str(target), "points": 50, "stride": 1}
    with Image.open(target) as image:
        assert image.format == "PNG" and image.size == (960, 540)
        colours = {colour for _, colour in image.convert("RGB").getcolors(maxcolors=100_000) or []}
    assert (31, 119, 180) in colours and (255, 127, 14) in colours  # the loss and learning-rate lines


def test_plot_refuses_an_empty_curve_and_a_non_png_name(scripted: list[ScriptedApi], tmp_path: Path) -> None:
    scripted.append(ScriptedApi([], ["STARTING"], {"job_id": JOB, "stride": 1, "points": []}))
    code, _, err = run("trainings", "plot", JOB, str(tmp_path / "x.png"))
    assert code == 2 and "no loss values" in err
    code, _, err = run("trainings", "plot", JOB, str(tmp_path / "x.jpg"))
    assert code == 2 and ".png" in err


def test_chart_without_learning_rate_and_with_gaps() -> None:
    data = curve(20, with_rate=False)["points"]
    data[5]["loss"] = None
    image = render_loss_chart(data, "t")
    colours = {colour for _, colour in image.getcolors(maxcolors=100_000) or []}
    assert (31, 119, 180) in colours and (255, 127, 14) not in colours


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(1, 10_000, [0, 2000, 4000, 6000, 8000, 10_000]), (0.08, 0.12, [0.08, 0.09, 0.1, 0.11, 0.12])],
)
def test_nice_ticks(low: float, high: float, expected: list[float]) -> None:
    assert nice_ticks(low, high) == pytest.approx(expected)
    assert len(nice_ticks(5, 5)) >= 2
