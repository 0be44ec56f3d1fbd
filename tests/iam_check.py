"""Tests that see IAM: the AWS calls each Lambda function's code makes, checked against that
function's role in the synthesized template.

moto enforces no IAM and the local runtime hands secrets over directly, so a function calling
something its role does not allow passes every other test and fails only in AWS (the page-token
secret read by the events, reconciler and tasks functions was such a call). Here:

* ``recording`` (in-process: the integration tests, autouse in ``tests/conftest.py``) and
  ``record_to_file`` (the end-to-end tests' local runtime subprocess) wrap
  ``botocore.client.BaseClient._emit_api_params``, which every API call and every presigned URL
  goes through, and note (function, service, operation, params). The function is the innermost
  ``functions/<api|events|reconciler|tasks|webhooks>/`` frame on the stack, where the handlers
  run (calls made by test code itself are not any function's and are not checked), unless the
  harness named it (``as_function``: a task the tests run inline inside an API call). Work a
  function hands to a ``ThreadPoolExecutor`` runs on threads whose stacks hold no handler frame:
  while recording, ``submit`` carries the submitter's function into the worker (a context
  variable set in a copy of the submitter's context), so those calls are checked too.
* ``authorizations`` maps an operation to the IAM actions, resource ARNs and condition keys AWS
  authorises it with (the IAM Service Authorization Reference; e.g. TransactWriteItems is
  authorised per item as PutItem/UpdateItem/..., CopyObject as GetObject on the source plus
  PutObject on the target, CreateTrainingJob also as iam:PassRole of its RoleArn). An
  operation without a mapping is reported, so the mapping cannot silently fall behind.
* ``RolePolicies`` resolves the template's policies (Ref / Fn::GetAtt / Fn::Join, pseudo
  parameters with placeholders) and evaluates Allow statements with IAM's wildcard matching
  and the condition operators the stack uses. Template resources are tied to the tests' own
  resources through each function's environment: the variable TABLE_NAME is ``{"Ref": <table>}``
  in the template and "lora-records" in the test, so that table's name is "lora-records".
"""

from __future__ import annotations

import contextvars
import fnmatch
import hashlib
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

ACCOUNT = "123456789012"  # moto's default account: the template's AWS::AccountId stands for it
FUNCTION_PACKAGES = ("api", "events", "reconciler", "tasks", "webhooks")
_PACKAGE_FRAME = re.compile(r"[/\\]functions[/\\](api|events|reconciler|tasks|webhooks)[/\\]")
# Signing names that differ from the IAM service prefix.
_IAM_PREFIX = {"monitoring": "cloudwatch"}


def handler_of(function: str) -> str:
    return f"functions.{function}.handler.lambda_handler"


# ---- recording ----


@dataclass(frozen=True)
class RecordedCall:
    function: str
    service: str  # IAM prefix
    operation: str
    params: Mapping[str, Any]
    region: str


@dataclass
class CallRecorder:
    calls: list[RecordedCall] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # the service's variables when last called
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, client: Any, operation: str, params: Mapping[str, Any]) -> None:
        function = calling_function()
        if function is None:
            return
        model = client.meta.service_model
        service = _IAM_PREFIX.get(model.signing_name, model.signing_name)
        call = RecordedCall(function, service, operation, dict(params), client.meta.region_name)
        with self._lock:
            self.calls.append(call)
            self.env.update({k: v for k, v in os.environ.items() if k.isupper() and "_" in k})


_NAMED_FUNCTION: contextvars.ContextVar[str | None] = contextvars.ContextVar("iam_function", default=None)


def calling_function() -> str | None:
    """The function named by the harness (or carried into a pool thread), else the one whose
    code is on this thread's stack (innermost wins)."""
    named = _NAMED_FUNCTION.get()
    if named is not None:
        return named
    frame = sys._getframe(1)
    while frame is not None:
        match = _PACKAGE_FRAME.search(frame.f_code.co_filename)
        if match:
            return match.group(1)
        frame = frame.f_back  # type: ignore[assignment]
    return None


@contextmanager
def as_function(function: str) -> Iterator[None]:
    """Attribute the calls in this block to ``function`` (code the tests run in its stead)."""
    token = _NAMED_FUNCTION.set(function)
    try:
        yield
    finally:
        _NAMED_FUNCTION.reset(token)


def _carry_function_into_pools() -> Callable[[], None]:
    """Patch ``ThreadPoolExecutor.submit`` (``map`` uses it) so the worker runs the submitted
    callable in a copy of the submitter's context naming the submitter's function; returns the undo."""
    original = ThreadPoolExecutor.submit

    def submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        context = contextvars.copy_context()
        context.run(_NAMED_FUNCTION.set, calling_function())
        return original(self, context.run, fn, *args, **kwargs)

    setattr(ThreadPoolExecutor, "submit", submit)  # noqa: B010
    return lambda: setattr(ThreadPoolExecutor, "submit", original)


@contextmanager
def recording() -> Iterator[CallRecorder]:
    """Record every botocore call (and presign) made by a function's code in this block."""
    from botocore.client import BaseClient

    recorder = CallRecorder()
    original = BaseClient._emit_api_params  # type: ignore[attr-defined]

    def emit(self: Any, api_params: Any, operation_model: Any, context: Any) -> Any:
        params = original(self, api_params, operation_model, context)
        recorder.note(self, operation_model.name, params)
        return params

    setattr(BaseClient, "_emit_api_params", emit)  # noqa: B010 (a private botocore method)
    undo_pools = _carry_function_into_pools()
    try:
        yield recorder
    finally:
        undo_pools()
        setattr(BaseClient, "_emit_api_params", original)  # noqa: B010


# ---- operations -> what IAM authorises ----


@dataclass(frozen=True)
class Authorization:
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


class UnmappedOperation(Exception):
    """An operation this module does not know how IAM authorises (add it to ``authorizations``)."""


def _s3_object(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def _copy_source(source: Any) -> str:
    if isinstance(source, dict):
        return _s3_object(source["Bucket"], source["Key"])
    bucket, _, key = unquote(str(source)).lstrip("/").partition("/")
    return _s3_object(bucket, key.split("?")[0])


def queue_arn(queue_url: str, region: str) -> str:
    account, name = urlparse(queue_url).path.strip("/").split("/")[-2:]
    return f"arn:aws:sqs:{region}:{account}:{name}"


_S3_OBJECT_ACTIONS = {
    "PutObject": "s3:PutObject", "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject", "GetObject": "s3:GetObject", "HeadObject": "s3:GetObject",
    "GetObjectAttributes": "s3:GetObject", "DeleteObject": "s3:DeleteObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload", "ListParts": "s3:ListMultipartUploadParts",
}  # fmt: skip
_DYNAMODB_TRANSACT = {
    "Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem",
}  # fmt: skip
_DYNAMODB_TABLE_OPS = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable"}
_SIMPLE_SQS = {"SendMessage", "SendMessageBatch", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch",
               "DeleteMessage", "DeleteMessageBatch", "ReceiveMessage", "GetQueueAttributes"}  # fmt: skip


def authorizations(call: RecordedCall) -> list[Authorization]:
    """What IAM checks for one call (IAM Service Authorization Reference, per service)."""
    s, op, p, region = call.service, call.operation, call.params, call.region
    if s == "dynamodb":
        table = f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/"
        if op in _DYNAMODB_TABLE_OPS:
            index = f"/index/{p['IndexName']}" if p.get("IndexName") else ""
            return [Authorization(f"dynamodb:{op}", f"{table}{p['TableName']}{index}")]
        if op == "TransactWriteItems":
            return [
                Authorization(f"dynamodb:{_DYNAMODB_TRANSACT[kind]}", f"{table}{body['TableName']}")
                for item in p["TransactItems"]
                for kind, body in item.items()
            ]
        if op in ("BatchWriteItem", "BatchGetItem"):
            return [Authorization(f"dynamodb:{op}", f"{table}{name}") for name in p["RequestItems"]]
    if s == "s3":
        if op in _S3_OBJECT_ACTIONS:
            return [Authorization(_S3_OBJECT_ACTIONS[op], _s3_object(p["Bucket"], p["Key"]))]
        if op == "DeleteObjects":
            return [
                Authorization("s3:DeleteObject", _s3_object(p["Bucket"], o["Key"]))
                for o in p["Delete"]["Objects"]
            ]
        if op in ("CopyObject", "UploadPartCopy"):
            return [
                Authorization("s3:GetObject", _copy_source(p["CopySource"])),
                Authorization("s3:PutObject", _s3_object(p["Bucket"], p["Key"])),
            ]
        if op in ("ListObjectsV2", "ListObjects"):
            return [
                Authorization(
                    "s3:ListBucket", f"arn:aws:s3:::{p['Bucket']}", {"s3:prefix": p.get("Prefix", "")}
                )
            ]
        if op == "HeadBucket":
            return [Authorization("s3:ListBucket", f"arn:aws:s3:::{p['Bucket']}")]
    if s == "sagemaker" and op in ("CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob"):
        job = f"arn:aws:sagemaker:{region}:{ACCOUNT}:training-job/{p['TrainingJobName']}"
        found = [Authorization(f"sagemaker:{op}", job)]
        if op == "CreateTrainingJob":
            found.append(
                Authorization(
                    "iam:PassRole", p["RoleArn"], {"iam:PassedToService": "sagemaker.amazonaws.com"}
                )
            )
            if p.get("Tags"):  # SageMaker authorises tagging on create as AddTags
                found.append(Authorization("sagemaker:AddTags", job))
        return found
    if s == "batch":  # service jobs (IAM Service Authorization Reference, AWS Batch)
        jobs = f"arn:aws:batch:{region}:{ACCOUNT}:"
        if op == "SubmitServiceJob":
            queue = p["jobQueue"] if p["jobQueue"].startswith("arn:") else f"{jobs}job-queue/{p['jobQueue']}"
            role = json.loads(p["serviceRequestPayload"])["RoleArn"]
            # Batch hands the payload's execution role to SageMaker on the caller's behalf.
            passed = {"iam:PassedToService": "sagemaker.amazonaws.com"}
            return [
                Authorization("batch:SubmitServiceJob", queue),
                Authorization("iam:PassRole", role, passed),
            ]
        if op in ("DescribeServiceJob", "TerminateServiceJob"):
            return [Authorization(f"batch:{op}", f"{jobs}service-job/{p['jobId']}")]
        if op == "ListServiceJobs":
            return [Authorization("batch:ListServiceJobs", "*")]
    if s == "logs" and op in ("GetLogEvents", "DescribeLogStreams", "FilterLogEvents"):
        group = p.get("logGroupName") or str(p.get("logGroupIdentifier", "")).split(":log-group:")[-1]
        # log-group is these actions' resource type (not log-stream).
        return [Authorization(f"logs:{op}", f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{group}")]
    if s == "events" and op == "PutEvents":
        buses = {e.get("EventBusName", "default") for e in p["Entries"]}
        return [
            Authorization(
                "events:PutEvents",
                b if b.startswith("arn:") else f"arn:aws:events:{region}:{ACCOUNT}:event-bus/{b}",
            )
            for b in sorted(buses)
        ]
    if s == "sqs" and op in _SIMPLE_SQS:
        return [Authorization(f"sqs:{op}", queue_arn(p["QueueUrl"], region))]
    if s == "lambda" and op == "Invoke":
        name = p["FunctionName"]
        arn = name if name.startswith("arn:") else f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"
        return [Authorization("lambda:InvokeFunction", arn)]
    if s == "secretsmanager" and op in ("GetSecretValue", "DescribeSecret"):
        return [Authorization(f"secretsmanager:{op}", p["SecretId"])]
    if s == "kms" and op in ("Encrypt", "Decrypt"):
        return [Authorization(f"kms:{op}", p["KeyId"])]
    if s == "cloudwatch" and op == "PutMetricData":
        return [Authorization("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": p["Namespace"]})]
    raise UnmappedOperation(f"{s}:{op}")


# ---- the template's policies ----


def _arn_from_ref(kind: str, ref: str, region: str) -> str | None:
    """A resource's ARN from its Ref value, for the types whose Ref is a name or URL."""
    if kind == "AWS::DynamoDB::Table":
        return f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{ref}"
    if kind == "AWS::S3::Bucket":
        return f"arn:aws:s3:::{ref}"
    if kind == "AWS::SQS::Queue":
        return queue_arn(ref, region)
    if kind == "AWS::Events::EventBus":
        return f"arn:aws:events:{region}:{ACCOUNT}:event-bus/{ref}"
    if kind == "AWS::Lambda::Function":
        return f"arn:aws:lambda:{region}:{ACCOUNT}:function:{ref}"
    if kind == "AWS::SecretsManager::Secret":
        return ref
    if kind == "AWS::KMS::Key":  # Ref is the key id; the env var is given its ARN (GetAtt) instead
        return None
    return None


@dataclass
class RolePolicies:
    """Resolved Allow statements per function, from a template and the tests' environment."""

    template: dict[str, Any]
    env: Mapping[str, str]
    region: str = "us-east-1"
    _physical: dict[tuple[str, str], str] = field(default_factory=dict)
    _substitutions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        resources = self.template["Resources"]
        for props in self._functions().values():
            for name, value in props.get("Environment", {}).get("Variables", {}).items():
                actual = self.env.get(name)
                if actual is None:
                    continue
                if isinstance(value, dict) and "Ref" in value:
                    self._physical[(value["Ref"], "Ref")] = actual
                elif isinstance(value, dict) and "Fn::GetAtt" in value:
                    logical, attribute = value["Fn::GetAtt"]
                    self._physical[(logical, attribute)] = actual
                elif name == "JOB_NAME_PREFIX" and isinstance(value, str) and value != actual:
                    # The stack derives its prefix from its name; the tests use their own.
                    self._substitutions[f"training-job/{value}-"] = f"training-job/{actual}-"
        for (logical, attribute), value in list(self._physical.items()):
            if attribute == "Ref":
                arn = _arn_from_ref(resources[logical]["Type"], value, self.region)
                if arn:
                    self._physical.setdefault((logical, "Arn"), arn)

    def _functions(self) -> dict[str, dict[str, Any]]:
        return {
            r["Properties"]["Handler"]: r["Properties"]
            for r in self.template["Resources"].values()
            if r["Type"] == "AWS::Lambda::Function"
            and str(r["Properties"].get("Handler", "")).startswith("functions.")
        }

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str):
            for old, new in self._substitutions.items():
                value = value.replace(old, new)
            return value
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            pseudo = {"AWS::Partition": "aws", "AWS::Region": self.region, "AWS::AccountId": ACCOUNT,
                      "AWS::URLSuffix": "amazonaws.com"}  # fmt: skip
            ref = value["Ref"]
            return pseudo.get(ref) or self._physical.get((ref, "Ref"), f"<unresolved {ref}>")
        if "Fn::GetAtt" in value:
            logical, attribute = value["Fn::GetAtt"]
            return self._physical.get((logical, attribute), f"<unresolved {logical}.{attribute}>")
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return self.resolve(separator.join(str(self.resolve(p)) for p in parts))
        return {k: self.resolve(v) for k, v in value.items()}

    def statements_of(self, function: str) -> list[dict[str, Any]]:
        props = self._functions()[handler_of(function)]
        role = props["Role"]["Fn::GetAtt"][0]
        found: list[dict[str, Any]] = []
        for resource in self.template["Resources"].values():
            if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"]["Roles"]:
                found += resource["Properties"]["PolicyDocument"]["Statement"]
        role_props = self.template["Resources"][role]["Properties"]
        for inline in role_props.get("Policies", []):
            found += inline["PolicyDocument"]["Statement"]
        if any(
            "AWSLambdaBasicExecutionRole" in json.dumps(a) for a in role_props.get("ManagedPolicyArns", [])
        ):
            basic = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
            found.append({"Effect": "Allow", "Action": basic, "Resource": "*"})
        return [self.resolve(s) for s in found]

    def allows(self, function: str, needed: Authorization) -> bool:
        return any(_statement_allows(s, needed) for s in self.statements_of(function))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches(pattern: str, value: str, *, case: bool = True) -> bool:
    """IAM's wildcards: ``*`` any run of characters, ``?`` one (no character classes)."""
    escaped = pattern.replace("[", "[[]")
    return (
        fnmatch.fnmatchcase(value, escaped) if case else fnmatch.fnmatchcase(value.lower(), escaped.lower())
    )


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, expected in tests.items():
            actual = context.get(key)
            if actual is None:
                return False  # a key the request does not carry never satisfies a condition
            if operator in ("StringEquals", "ArnEquals"):
                ok = actual in _as_list(expected)
            elif operator in ("StringLike", "ArnLike"):
                ok = any(_matches(str(e), actual) for e in _as_list(expected))
            else:
                return False  # not used by this stack: treat as unknown, never as allowed
            if not ok:
                return False
    return True


def _statement_allows(statement: Mapping[str, Any], needed: Authorization) -> bool:
    if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
        return False
    if not any(_matches(str(a), needed.action, case=False) for a in _as_list(statement.get("Action", []))):
        return False
    if not any(_matches(str(r), needed.resource) for r in _as_list(statement.get("Resource", []))):
        return False
    return _condition_holds(statement.get("Condition", {}), needed.context)


def denied_calls(calls: list[RecordedCall], policies: RolePolicies) -> list[str]:
    """Every recorded call some authorization of which the function's role does not grant."""
    problems: list[str] = []
    seen: set[tuple[str, str, str, str]] = set()
    for call in calls:
        try:
            needed = authorizations(call)
        except UnmappedOperation as unmapped:
            problems.append(f"{call.function}: {unmapped} (no IAM mapping in tests/iam_check.py)")
            continue
        for item in needed:
            key = (call.function, item.action, item.resource, json.dumps(dict(item.context), sort_keys=True))
            if key in seen:
                continue
            seen.add(key)
            if not policies.allows(call.function, item):
                context = f" with {dict(item.context)}" if item.context else ""
                problems.append(
                    f"{call.function}: {item.action} on {item.resource}{context} ({call.operation})"
                )
    return problems


# ---- the template the checks use, synthesized once per source state ----


def _source_digest(root: Path) -> str:
    digest = hashlib.sha256()
    files = [root / "app.py", root / "openapi.yaml", *sorted((root / "infrastructure").rglob("*.py"))]
    files += sorted((root / "functions").rglob("*.py"))
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def synthesized_template(cache: Any | None = None) -> dict[str, Any]:
    """The stack's template (no bundling), cached in pytest's cache by a digest of its sources:
    a jsii synth costs tens of seconds, and every xdist worker would pay it."""
    root = Path(__file__).resolve().parents[1]
    key = f"iam_check/template/{_source_digest(root)}"
    cached = cache.get(key, None) if cache is not None else None
    if cached is not None:
        return dict(cached)
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from app import build_app

    # With the training queue: the local runtime queues its trainings (LocalRuntimeOptions), and
    # this template's roles hold the direct launch's rights as well.
    app = build_app({"aws:cdk:bundling-stacks": [], "trainingQueue": True})
    template = dict(app.synth().get_stack_by_name("LoraTraining").template)
    if cache is not None:
        cache.set(key, template)
    return template


# ---- a process of its own (the end-to-end tests' local runtime) ----

RECORD_FILE_VARIABLE = "LORA_TEST_RECORD_AWS_CALLS"  # set: the runtime appends its calls there


def record_to_file(path: Path) -> None:
    """Record this whole process's function calls as JSON lines (the runtime is a subprocess of
    the end-to-end tests; the file is read back by ``read_recorded`` when it has stopped)."""
    from botocore.client import BaseClient

    original = BaseClient._emit_api_params  # type: ignore[attr-defined]
    lock = threading.Lock()
    variables = ("TABLE_NAME", "IDEMPOTENCY_TABLE_NAME", "BUCKET_NAME", "EVENT_BUS_NAME", "WEBHOOK_QUEUE_URL",
                 "TRAINING_ROLE_ARN", "JOB_NAME_PREFIX", "TASKS_FUNCTION_NAME", "PAGE_TOKEN_SECRET_ARN",
                 "WEBHOOK_SIGNING_SECRET_ARN", "TRAINING_LOG_GROUP", "TRAINING_JOB_QUEUE",
                 "IMPORT_TOKEN_KEY_ARN")  # fmt: skip

    def emit(self: Any, api_params: Any, operation_model: Any, context: Any) -> Any:
        params = original(self, api_params, operation_model, context)
        function = calling_function()
        if function is not None:
            model = self.meta.service_model
            line = {
                "function": function,
                "service": _IAM_PREFIX.get(model.signing_name, model.signing_name),
                "operation": operation_model.name,
                "params": params,
                "region": self.meta.region_name,
                "env": {k: os.environ[k] for k in variables if k in os.environ},
            }
            text = json.dumps(line, default=lambda _unserialisable: None)  # bodies are not needed
            with lock, path.open("a") as out:
                out.write(text + "\n")
        return params

    setattr(BaseClient, "_emit_api_params", emit)  # noqa: B010
    _carry_function_into_pools()


def read_recorded(path: Path) -> tuple[list[RecordedCall], dict[str, str]]:
    calls, env = [], {}
    if path.is_file():
        for text in path.read_text().splitlines():
            line = json.loads(text)
            env.update(line["env"])
            calls.append(
                RecordedCall(
                    line["function"], line["service"], line["operation"], line["params"], line["region"]
                )
            )
    return calls, env


def run_module_recording(module: str, path: Path) -> None:
    """``python -c`` body: record to ``path``, then run ``module`` exactly as ``python -m`` would."""
    import runpy

    record_to_file(path)
    runpy.run_module(module, run_name="__main__", alter_sys=True)
