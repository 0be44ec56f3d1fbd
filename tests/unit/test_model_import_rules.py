"""Which URLs a model may be imported from, and the file name it is stored under."""

from __future__ import annotations

import pytest

from functions.domain.model_import import import_filename, source_problems

PUBLIC = lambda host: ["93.184.216.34"]  # noqa: E731


def problems(url: str, filename: str | None = None, loopback: bool = False) -> list[tuple[str, str]]:
    return [
        (p.field, p.problem)
        for p in source_problems(url, filename, allow_loopback_http=loopback, resolve=PUBLIC)
    ]


def test_a_public_https_safetensors_url_is_accepted() -> None:
    assert problems("https://huggingface.co/org/repo/resolve/main/model.safetensors?download=true") == []
    assert problems("https://civitai.com/api/download/models/12345", filename="my-model.safetensors") == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com/m.safetensors", "must use https"),
        ("https://169.254.169.254/latest/m.safetensors", "private, loopback or link-local"),
        ("https://127.0.0.1/m.safetensors", "private, loopback or link-local"),
        ("https://[::1]/m.safetensors", "private, loopback or link-local"),
        ("https://[::ffff:10.0.0.1]/m.safetensors", "private, loopback or link-local"),
        ("https://10.1.2.3/m.safetensors", "private, loopback or link-local"),
        ("https://100.64.0.1/m.safetensors", "private, loopback or link-local"),
        ("https://2130706433/m.safetensors", "fully qualified host name"),
        ("https://good.example.com@127.0.0.1/m.safetensors", "credentials"),
        ("https://localhost/m.safetensors", "localhost"),
        ("https://example.com/model.ckpt", "not .ckpt"),
        ("https://example.com/model.bin", "not .bin"),
        ("https://example.com/model.SAFETENSORS.pt", "not .pt"),
        ("https://example.com/m.safetensors#frag", "fragment"),
        ("ftp://example.com/m.safetensors", "https:// URL"),
        ("https://example.com/" + "a" * 2100 + ".safetensors", "at most 2048"),
    ],
)
def test_hostile_or_unsafe_urls_are_refused_on_source_url(url: str, expected: str) -> None:
    found = problems(url)
    assert found and found[0][0] == "source_url" and expected in found[0][1], found


def test_names_that_resolve_to_private_addresses_are_refused() -> None:
    private = source_problems(
        "https://internal.example.com/m.safetensors",
        None,
        allow_loopback_http=False,
        resolve=lambda h: ["10.0.0.5"],
    )
    assert private and "resolves to a forbidden address" in private[0].problem


def test_a_url_without_extension_needs_a_safetensors_filename() -> None:
    assert problems("https://civitai.com/api/download/models/12345") == [
        ("filename", "is required when source_url does not end in .safetensors")
    ]


def test_loopback_http_only_with_the_local_switch() -> None:
    assert problems("http://127.0.0.1:8000/m.safetensors", loopback=True) == []
    assert problems("http://127.0.0.1:8000/m.safetensors") != []
    assert problems("http://10.0.0.1:8000/m.safetensors", loopback=True) != []


@pytest.mark.parametrize(
    ("url", "filename", "stored"),
    [
        ("https://h.co/a/sd_xl_base_1.0.safetensors", None, "sd_xl_base_1.0.safetensors"),
        ("https://h.co/a/my%20model%20v2.safetensors", None, "my-model-v2.safetensors"),
        ("https://h.co/a/x.safetensors", None, "x.safetensors"),
        ("https://h.co/a/%2E%2E.safetensors", None, "model.safetensors"),
        ("https://h.co/api/1", "chosen-name.safetensors", "chosen-name.safetensors"),
    ],
)
def test_stored_file_names_are_safe(url: str, filename: str | None, stored: str) -> None:
    assert import_filename(url, filename) == stored
