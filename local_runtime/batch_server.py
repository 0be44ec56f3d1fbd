"""The local AWS Batch: the four service-job operations over Batch's REST-JSON wire protocol.

botocore's ``batch/2016-08-10/service-2.json`` (protocol ``rest-json``) sends ``POST
/v1/submitservicejob`` (and ``/v1/describeservicejob``, ``/v1/terminateservicejob``,
``/v1/listservicejobs``) with a JSON body; errors are HTTP 400 with ``x-amzn-ErrorType:
ClientException``, which botocore turns into the modelled ``ClientError``. The control plane's
boto3 client reaches it through ``AWS_ENDPOINT_URL_BATCH``: the same code path as in AWS.
Loopback only and not signature-checked, like the local SageMaker.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from local_runtime.batch_jobs import BatchError, ServiceJob, ServiceJobQueue
from local_runtime.loopback_server import LoopbackServer

logger = logging.getLogger("local_runtime.batch")

MAX_LIST_RESULTS = 100


class LocalBatch:
    """SubmitServiceJob, DescribeServiceJob, TerminateServiceJob, ListServiceJobs."""

    def __init__(self, queue: ServiceJobQueue) -> None:
        self.queue = queue

    def dispatch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "/v1/submitservicejob": self.submit_service_job,
            "/v1/describeservicejob": self.describe_service_job,
            "/v1/terminateservicejob": self.terminate_service_job,
            "/v1/listservicejobs": self.list_service_jobs,
        }
        handler = handlers.get(path.lower())
        if handler is None:
            raise BatchError(f"The local AWS Batch does not implement {path}")
        return handler(body)

    def submit_service_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self.queue.submit(request)
        return {"jobArn": job.arn, "jobName": job.job_name, "jobId": job.job_id}

    def describe_service_job(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.queue.get(self._job_id(request)).describe()

    def terminate_service_job(self, request: dict[str, Any]) -> dict[str, Any]:
        if not request.get("reason"):
            raise BatchError("reason is required")
        self.queue.terminate(self._job_id(request), str(request["reason"]))
        return {}

    def list_service_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        """Newest first; JOB_NAME filters case-insensitively (a trailing ``*`` is a prefix), and
        without filters only the ``jobStatus`` given (default RUNNING) is listed, as documented
        in the model's ListServiceJobsRequest."""
        jobs = [
            j for j in self.queue.all() if not request.get("jobQueue") or j.job_queue == request["jobQueue"]
        ]
        filters = request.get("filters") or []
        if len(filters) > 1:
            raise BatchError("Only one filter can be used at a time")
        if filters:
            jobs = [j for j in jobs if _matches(j, filters[0])]
        else:
            status = request.get("jobStatus") or "RUNNING"
            jobs = [j for j in jobs if j.status == status]
        jobs.sort(key=lambda j: j.sequence, reverse=True)
        limit = int(request.get("maxResults") or MAX_LIST_RESULTS)
        start = (
            int(base64.urlsafe_b64decode(request["nextToken"]).decode()) if request.get("nextToken") else 0
        )
        page = jobs[start : start + limit]
        response: dict[str, Any] = {"jobSummaryList": [j.summary() for j in page]}
        if start + limit < len(jobs):
            response["nextToken"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
        return response

    @staticmethod
    def _job_id(request: dict[str, Any]) -> str:
        if not request.get("jobId"):
            raise BatchError("jobId is required")
        return str(request["jobId"])


def _matches(job: ServiceJob, criterion: dict[str, Any]) -> bool:
    name, values = criterion.get("name"), [str(v) for v in criterion.get("values") or []]
    if name == "JOB_NAME":
        return any(
            job.job_name.lower().startswith(v[:-1].lower())
            if v.endswith("*")
            else job.job_name.lower() == v.lower()
            for v in values
        )
    if name == "SHARE_IDENTIFIER":
        return job.share_identifier in values
    raise BatchError(f"The local AWS Batch does not implement the filter {name!r}")


class _WireHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: BatchWireServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("batch %s", format % args)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError as error:
                raise BatchError(f"request body is not JSON: {error}") from error
            if not isinstance(body, dict):
                raise BatchError("request body must be a JSON object")
            self._send(200, self.server.batch.dispatch(self.path, body))
        except BatchError as error:
            self._send(error.http_status, {"message": error.message}, error.code)
        except Exception as error:
            logger.exception("local Batch failed on %s", self.path)
            self._send(500, {"message": str(error)}, "ServerException")

    def _send(self, status: int, payload: dict[str, Any], error_type: str | None = None) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.end_headers()
        self.wfile.write(body)


class BatchWireServer(LoopbackServer):
    """The HTTP listener of the local AWS Batch."""

    thread_name = "local-batch-http"

    def __init__(self, batch: LocalBatch, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(_WireHandler, host, port)
        self.batch = batch
