"""Notifications end to end on the local runtime: a tiny job's webhook receives COMPLETED, signed.

The runtime delivers through the same delivery handler and SQS queue as AWS (moto's queue, polled
by the local event source); the receiver verifies the signature with the runtime's secret.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from functions.domain.notifications import SIGNATURE_HEADER, WebhookBody, verify_signature
from local_runtime.runtime import WEBHOOK_SECRET_FILE
from tests.e2e.cli_helpers import run_cli
from tests.e2e.conftest import RuntimeLauncher
from tests.e2e.test_workflow import config_file, create_training, upload_inputs
from tests.webhook_receiver import webhook_receiver
from training_container.testing.tiny_models import make_tiny_dataset, save_tiny_checkpoint

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("functions.webhooks.handler") is None,
        reason="the webhook delivery handler is not in the tree",
    ),
    pytest.mark.xdist_group("local-runtime-training"),  # one CPU training at a time per worker
]


@pytest.mark.slow
def test_a_tiny_jobs_webhook_receives_completed_with_a_valid_signature(
    runtimes: RuntimeLauncher, tmp_path: Path
) -> None:
    runtime = runtimes.start()
    checkpoint = save_tiny_checkpoint("sd15", tmp_path / "tiny-sd15.safetensors")
    model_id, dataset_id = upload_inputs(
        runtime, checkpoint, make_tiny_dataset(tmp_path / "ds", n_images=2, repeats=1)
    )
    secret = (runtime.data_dir / WEBHOOK_SECRET_FILE).read_text(encoding="utf-8").strip().encode()
    with webhook_receiver(statuses=[503]) as receiver:  # the first attempt fails: the retry delivers
        created = create_training(
            runtime, model_id, dataset_id, config_file(tmp_path, 2), "--webhook-url", receiver.url
        )
        assert created.exit_code == 0, created.stderr
        assert created.data["webhook_url"] == receiver.url
        assert receiver.received.wait(timeout=300), (
            f"no webhook delivered:\n{runtime.log.read_text()[-3000:]}"
        )

    job_id = str(created.data["id"])
    delivered = receiver.requests[-1]
    assert len(receiver.requests) == 2  # one 503, then the delivery; none for non-terminal states
    assert verify_signature(secret, delivered.headers[SIGNATURE_HEADER], delivered.body, now=int(time.time()))
    payload = WebhookBody.model_validate_json(delivered.body)
    assert payload.data.job_id == job_id and payload.data.new_status == "COMPLETED"
    assert payload.data.lora_model_id == job_id
    assert run_cli(runtime, "trainings", "get", job_id).data["status"] == "COMPLETED"
