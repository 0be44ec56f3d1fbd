"""Where loractl reads fields of the API's responses, in one place (see ``openapi.yaml``).

The API returns a created resource together with its upload instructions, e.g.
``POST /models`` -> ``{"model": {...}, "upload": {"upload_id", "part_size", "parts": [{"part_number",
"url"}]}}`` and ``POST /datasets`` -> ``{"dataset": {...}, "uploads": [{"path", "url", "headers"}]}``;
a training's LoRA is ``output.lora_model_id`` once it completed. Keeping the reads here means a
field rename in the API is a one-line change in the client.
"""

from __future__ import annotations

from typing import Any


class UnexpectedResponseError(Exception):
    """The API answered with a shape loractl does not understand."""


def _require(data: dict[str, Any], key: str, what: str) -> Any:
    if key not in data:
        raise UnexpectedResponseError(f"{what}: the API response has no {key!r} field (got {sorted(data)})")
    return data[key]


def created_record(response: dict[str, Any], kind: str) -> dict[str, Any]:
    """The record inside a create response (``{"model": {...}, ...}``), or the response itself."""
    record = response.get(kind, response)
    if not isinstance(record, dict) or "id" not in record:
        raise UnexpectedResponseError(f"create {kind}: no record with an 'id' in {sorted(response)}")
    return record


def multipart_upload(response: dict[str, Any]) -> tuple[str, int, list[dict[str, Any]]]:
    """(upload id, part size, presigned parts) of a ``POST /models`` response."""
    upload = response.get("upload", response)
    parts = _require(upload, "parts", "model upload")
    return str(upload.get("upload_id", "")), int(_require(upload, "part_size", "model upload")), list(parts)


def dataset_uploads(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The presigned PUT of each file of a ``POST /datasets`` response."""
    uploads = response.get("uploads")
    if uploads is None:
        uploads = response.get("files")
    if not isinstance(uploads, list):
        raise UnexpectedResponseError(f"dataset upload: no 'uploads' list in {sorted(response)}")
    return uploads


def download_url(record: dict[str, Any]) -> str | None:
    """A model's presigned download URL (present once it is ready)."""
    direct = record.get("download_url")
    if direct:
        return str(direct)
    nested = record.get("download")
    if isinstance(nested, dict) and nested.get("url"):
        return str(nested["url"])
    return None


def lora_model_id(job: dict[str, Any]) -> str | None:
    output = job.get("output")
    if isinstance(output, dict) and output.get("lora_model_id"):
        return str(output["lora_model_id"])
    value = job.get("lora_model_id")
    return str(value) if value else None


def progress_of(job: dict[str, Any]) -> dict[str, Any]:
    progress = job.get("progress")
    return progress if isinstance(progress, dict) else {}


def model_version(model: dict[str, Any], epoch: int | None) -> dict[str, Any] | None:
    """The entry of ``versions`` for a saved epoch (None without an epoch or a match)."""
    if epoch is None:
        return None
    versions = model.get("versions")
    return next((v for v in versions or [] if isinstance(v, dict) and v.get("epoch") == epoch), None)


def samples_of(job: dict[str, Any]) -> list[dict[str, Any]]:
    """A training's sample images: ``[{"epoch", "prompt_index", "prompt", "download_url"}]``."""
    samples = job.get("samples")
    return [s for s in samples if isinstance(s, dict)] if isinstance(samples, list) else []


def sample_prompt_texts(job: dict[str, Any]) -> list[str]:
    """The prompt of each column of the contact sheet, in request order."""
    prompts = job.get("sample_prompts")
    if not isinstance(prompts, list):
        return []
    return [str(p.get("prompt", "")) if isinstance(p, dict) else str(p) for p in prompts]
