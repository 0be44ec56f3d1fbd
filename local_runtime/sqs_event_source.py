"""An SQS event source mapping for the local runtime: polls a moto queue, invokes a handler.

It behaves like Lambda's: batches of up to 10 messages with their attributes, partial batch
responses (``batchItemFailures`` stay on the queue and come back when their visibility timeout
ends), successes deleted. The webhook delivery handler runs through it unchanged, so retries
and backoff work locally as they do in AWS (without the DLQ: a local message is retried until
it is delivered, refused or the runtime stops; queue contents are not part of the snapshot).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from local_runtime.lambda_invoker import LocalLambdaFunction

logger = logging.getLogger("local_runtime.sqs")


class SqsEventSource:
    def __init__(self, sqs: Any, queue_url: str, queue_arn: str, function: LocalLambdaFunction) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._function = function
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-sqs-event-source", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.poll_once()
            except Exception:  # the emulator stopping, or a handler crash: keep polling until stopped
                if not self._stopping.is_set():
                    logger.exception("SQS event source poll failed")
                    self._stopping.wait(1.0)

    def poll_once(self) -> int:
        """One receive and one invocation; returns how many messages it handed over."""
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return 0
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": self._queue_arn,
            }
            for m in messages
        ]
        result = self._function.invoke({"Records": records}) or {}
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        for record in records:
            if record["messageId"] not in failed:
                self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=record["receiptHandle"])
        return len(records)
