"""The notification contract without AWS: event schema, webhook signatures, webhook URL rules."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from functions.domain.notifications import (
    JOB_STATE_CHANGE_DETAIL_TYPE,
    MODEL_READY_DETAIL_TYPE,
    JobStateChangeDetail,
    Resolver,
    WebhookBody,
    detail_types_for,
    retry_delay_seconds,
    signature_header,
    state_change_detail,
    verify_signature,
    wants_webhook,
    webhook_url_problems,
)
from functions.domain.statuses import JobStatus

SECRET = b"whsec-test"
NOW = 1_790_000_000


def _detail(
    new: JobStatus, old: JobStatus | None = JobStatus.TRAINING, lora: str | None = "j1"
) -> JobStateChangeDetail:
    return state_change_detail(
        job_id="j1",
        job_name="cats",
        owner="arn:aws:iam::1:user/a",
        old_status=old,
        new_status=new,
        cause="event 1",
        failure_reason=None,
        lora_model_id=lora,
        occurred_at="2026-11-25T00:00:00.000Z",
    )


# ---------------------------------------------------------------- schema


def test_detail_is_versioned_and_keyed_for_deduplication() -> None:
    detail = _detail(JobStatus.COMPLETED)
    data = json.loads(detail.model_dump_json())
    assert data["schema_version"] == "1" and data["event_key"] == "j1:COMPLETED"
    assert data["terminal"] is True and data["lora_model_id"] == "j1"
    assert JobStateChangeDetail.model_validate(data) == detail


def test_lora_model_id_only_on_completed_and_model_ready_only_then() -> None:
    assert _detail(JobStatus.FAILED).lora_model_id is None
    assert detail_types_for(_detail(JobStatus.FAILED)) == [JOB_STATE_CHANGE_DETAIL_TYPE]
    assert detail_types_for(_detail(JobStatus.COMPLETED)) == [
        JOB_STATE_CHANGE_DETAIL_TYPE,
        MODEL_READY_DETAIL_TYPE,
    ]
    assert detail_types_for(_detail(JobStatus.COMPLETED, lora=None)) == [JOB_STATE_CHANGE_DETAIL_TYPE]


def test_schema_refuses_unknown_fields_and_versions() -> None:
    data = json.loads(_detail(JobStatus.TRAINING).model_dump_json())
    with pytest.raises(ValidationError):
        JobStateChangeDetail.model_validate({**data, "surprise": 1})
    with pytest.raises(ValidationError):
        JobStateChangeDetail.model_validate({**data, "schema_version": "2"})


@pytest.mark.parametrize("status", list(JobStatus))
def test_webhooks_fire_on_terminal_states_only(status: JobStatus) -> None:
    assert wants_webhook(status) == (status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED))


def test_retry_delay_doubles_and_is_capped() -> None:
    assert [retry_delay_seconds(n, 30) for n in (1, 2, 3)] == [30, 60, 120]
    assert retry_delay_seconds(20, 30) == 900


# ---------------------------------------------------------------- signatures


def _body() -> bytes:
    return (
        WebhookBody(delivery_id="j1:COMPLETED", data=_detail(JobStatus.COMPLETED)).model_dump_json().encode()
    )


def test_signature_round_trip() -> None:
    body = _body()
    header = signature_header(SECRET, NOW, body)
    assert header.startswith(f"t={NOW},v1=")
    assert verify_signature(SECRET, header, body, now=NOW + 10)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b" "),  # body changed
        lambda h, b: (h.replace(f"t={NOW}", f"t={NOW + 1}"), b),  # timestamp changed
        lambda h, b: (h[:-1] + ("0" if h[-1] != "0" else "1"), b),  # signature changed
        lambda h, b: (h.split(",")[1], b),  # no timestamp
        lambda h, b: (h.split(",")[0], b),  # no signature
        lambda h, b: ("garbage", b),
        lambda h, b: (f"t=abc,{h.split(',')[1]}", b),
    ],
)
def test_tampered_signatures_fail(tamper: object) -> None:
    body = _body()
    header, changed = tamper(signature_header(SECRET, NOW, body), body)  # type: ignore[operator]
    assert not verify_signature(SECRET, header, changed, now=NOW)


def test_wrong_secret_and_stale_signatures_fail() -> None:
    body = _body()
    header = signature_header(SECRET, NOW, body)
    assert not verify_signature(b"other", header, body, now=NOW)
    assert not verify_signature(SECRET, header, body, now=NOW + 301)
    assert verify_signature(SECRET, header, body, now=NOW + 3600, tolerance_seconds=3600)


def test_any_v1_matches_during_secret_rotation() -> None:
    body = _body()
    old = signature_header(b"old-secret", NOW, body).split(",")[1]
    header = f"{signature_header(SECRET, NOW, body)},{old}"
    assert verify_signature(b"old-secret", header, body, now=NOW)
    assert verify_signature(SECRET, header, body, now=NOW)


# ---------------------------------------------------------------- webhook URLs


def _resolver(mapping: dict[str, Sequence[str]]) -> Resolver:
    def resolve(host: str) -> Sequence[str]:
        if host not in mapping:
            raise OSError("no such host")
        return mapping[host]

    return resolve


PUBLIC = _resolver({"hooks.example.com": ["93.184.216.34"]})


def _problems(url: str, allow_loopback: bool = False, resolve: Resolver | None = PUBLIC) -> list[str]:
    return [p.problem for p in webhook_url_problems(url, allow_loopback_http=allow_loopback, resolve=resolve)]


def test_a_public_https_url_is_accepted() -> None:
    assert _problems("https://hooks.example.com/lora?team=a") == []
    assert _problems("https://hooks.example.com:8443/x") == []
    assert _problems("https://93.184.216.34/x") == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://hooks.example.com/x", "https"),
        ("ftp://hooks.example.com/x", "https"),
        ("javascript:alert(1)", "https"),
        ("https:///nohost", "https"),
        ("https://user:pw@hooks.example.com/x", "credentials"),
        ("https://user@hooks.example.com/x", "credentials"),
        ("https://hooks.example.com/x#frag", "fragment"),
        ("https://hooks.example.com/a b", "spaces"),
        ("https://hooks.example.com/\\x", "backslashes"),
        ("https://hooks.example.com:99999/x", "valid URL"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://[::1]/x", "loopback"),
        ("https://10.1.2.3/x", "private"),
        ("https://172.16.0.1/x", "private"),
        ("https://192.168.0.10/x", "private"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[fe80::1]/x", "link-local"),
        ("https://[fd00::1]/x", "private"),
        ("https://[::ffff:10.0.0.1]/x", "private"),
        ("https://[64:ff9b::a00:1]/x", "private"),  # NAT64 of 10.0.0.1
        ("https://[2002:a9fe:a9fe::1]/x", "private"),  # 6to4 of 169.254.169.254
        ("https://0.0.0.0/x", "private"),
        ("https://100.64.0.1/x", "private"),
        ("https://224.0.0.1/x", "private"),
        ("https://localhost/x", "localhost"),
        ("https://api.localhost/x", "localhost"),
        ("https://intranet/x", "fully qualified"),
        ("https://hooks.example.com/" + "a" * 2100, "2048"),
    ],
)
def test_hostile_urls_are_refused(url: str, expected: str) -> None:
    problems = _problems(url)
    assert problems and expected in problems[0], problems


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.5", "169.254.169.254", "::1", "fd12::5"])
def test_host_names_resolving_to_private_addresses_are_refused(address: str) -> None:
    resolve = _resolver({"evil.example.com": ["93.184.216.34", address]})
    problems = _problems("https://evil.example.com/x", resolve=resolve)
    assert problems and "forbidden address" in problems[0]


def test_unresolvable_hosts_are_refused_and_dns_may_be_skipped() -> None:
    assert "does not resolve" in _problems("https://nowhere.example.org/x")[0]
    assert _problems("https://nowhere.example.org/x", resolve=None) == []


def test_loopback_http_only_with_the_local_switch() -> None:
    assert _problems("http://127.0.0.1:8080/hook", allow_loopback=True) == []
    assert _problems("http://localhost:8080/hook", allow_loopback=True) == []
    assert _problems("http://127.0.0.1:8080/hook") == ["must use https"]
    # The switch opens loopback only: private networks stay closed, plain http elsewhere too.
    assert _problems("http://10.0.0.1/hook", allow_loopback=True) == ["must use https"]
    assert "private" in _problems("https://10.0.0.1/hook", allow_loopback=True)[0]
    assert _problems("http://hooks.example.com/x", allow_loopback=True) == ["must use https"]


def test_the_receiver_snippet_in_the_docs_verifies_our_signatures() -> None:
    import re
    import time
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "notifications.md").read_text(encoding="utf-8")
    namespace: dict[str, object] = {}
    exec(re.findall(r"```python\n(.*?)```", doc, re.S)[0], namespace)
    verify = namespace["verify"]
    body = _body()
    header = signature_header(SECRET, int(time.time()), body)
    assert verify(SECRET, header, body) is True  # type: ignore[operator]
    assert verify(b"wrong", header, body) is False  # type: ignore[operator]
    assert verify(SECRET, signature_header(SECRET, int(time.time()) - 301, body), body) is False  # type: ignore[operator]
