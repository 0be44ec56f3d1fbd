"""How each resource reads in a terminal: its list row and its sectioned detail view.

The API's records stay as they are for ``-o json``; these views pick and phrase the fields a
person acts on (status, progress, plan, output, versions) so ``get``/``stop``/``wait`` print a
screenful, not 60-75 rows of raw JSON.
"""

from __future__ import annotations

from typing import Any

from loractl.output import Section, number

MODEL_COLUMNS = ("id", "name", "kind", "fm_type", "status", "size", "created_at")
DATASET_COLUMNS = ("id", "name", "status", "images", "size", "created_at")
TRAINING_COLUMNS = ("id", "name", "fm_type", "instance", "status", "progress", "created_at")


def size(value: Any) -> str | None:
    """Bytes for people: 76296 -> '74.5 KiB'."""
    if not isinstance(value, int | float):
        return None
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return None  # unreachable: the loop returns at GiB


def when(value: Any) -> str | None:
    """An ISO timestamp to the second, without the T and the fraction."""
    return str(value)[:19].replace("T", " ") if value else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def progress_text(job: dict[str, Any]) -> str | None:
    """'step 16/30 (53%)  epoch 2/4  loss 0.8669  ETA 2s'."""
    progress = _dict(job.get("progress"))
    parts = []
    total = progress.get("total_steps")
    if total:
        step = int(progress.get("step") or 0)
        parts.append(f"step {step}/{total} ({100 * step // int(total)}%)")
    if progress.get("total_epochs"):
        parts.append(f"epoch {progress.get('epoch', 0)}/{progress['total_epochs']}")
    if progress.get("loss") is not None:
        parts.append(f"loss {number(float(progress['loss']))}")
    if progress.get("eta_seconds") and job.get("status") not in ("COMPLETED", "FAILED", "STOPPED"):
        parts.append(f"ETA {float(progress['eta_seconds']):.0f}s")
    return "  ".join(parts) or None


def model_row(model: dict[str, Any]) -> dict[str, Any]:
    # a FLUX.1 / SD 3.5 component shows its role: "checkpoint:t5xxl"
    kind = f"{model.get('kind')}:{model['component']}" if model.get("component") else model.get("kind")
    return {
        **model,
        "kind": kind,
        "size": size(model.get("size_bytes")),
        "created_at": when(model.get("created_at")),
    }


def dataset_row(dataset: dict[str, Any]) -> dict[str, Any]:
    manifest = _dict(dataset.get("manifest"))
    return {
        **dataset,
        "images": manifest.get("image_count"),
        "size": size(dataset.get("total_bytes")),
        "created_at": when(dataset.get("created_at")),
    }


def training_row(job: dict[str, Any]) -> dict[str, Any]:
    progress = _dict(job.get("progress"))
    total, step = progress.get("total_steps"), progress.get("step")
    text = f"{step or 0}/{total}" if total else None
    return {
        **job,
        "instance": job.get("instance_type"),
        "progress": text,
        "created_at": when(job.get("created_at")),
    }


def stop_reason(job: dict[str, Any]) -> str | None:
    """Why a job ended without completing: its failure reason, else who asked it to stop (the
    cause recorded with its move to STOPPING, e.g. "stop requested")."""
    if job.get("status") not in ("FAILED", "STOPPED", "STOPPING"):
        return None
    if job.get("failure_reason"):
        return str(job["failure_reason"])
    history = [h for h in job.get("history") or [] if isinstance(h, dict)]
    causes = [str(h["cause"]) for h in history if h.get("status") == "STOPPING" and h.get("cause")]
    return "; ".join(causes) or None


def training_sections(job: dict[str, Any]) -> list[Section]:
    plan, output = _dict(job.get("plan")), _dict(job.get("output"))
    config = _dict(job.get("config"))
    status = str(job.get("status"))
    if job.get("secondary_status"):
        status += f" ({job['secondary_status']})"
    samples = [s for s in job.get("samples") or [] if isinstance(s, dict)]
    return [
        (
            f"training {job.get('id')}",
            [
                ("name", job.get("name")),
                ("status", status),
                ("waiting", job.get("queue_reason")),  # QUEUED: why it waits (README "Training queue")
                ("priority", job.get("priority") if status.startswith("QUEUED") else None),
                ("sagemaker job", job.get("training_job_name")),  # Batch's name for it, when queued
                ("reason", stop_reason(job)),
                ("family", job.get("fm_type")),
                (
                    "components",
                    ", ".join(f"{role}={mid}" for role, mid in (job.get("components") or {}).items()) or None,
                ),
                ("base model", job.get("base_model_id")),
                ("dataset", job.get("dataset_id")),
                ("trigger word", job.get("trigger_word")),
                ("instance", f"{job.get('instance_type')}" + (" (spot)" if job.get("use_spot") else "")),
                ("created", when(job.get("created_at"))),
                ("updated", when(job.get("updated_at"))),
            ],
        ),
        ("progress", [("", progress_text(job))]),
        (
            "plan",
            [
                ("steps", plan_steps(plan)),
                ("estimate", plan_estimate(plan)),
                ("parameters", _key_parameters(config)),
            ],
        ),
        (
            "output",
            [
                ("LoRA model", output.get("lora_model_id")),
                ("size", size(output.get("lora_size_bytes"))),
                ("final loss", output.get("final_loss")),
                ("steps", output.get("steps")),
                (
                    "training time",
                    f"{float(output['training_seconds']):.0f}s" if output.get("training_seconds") else None,
                ),
                ("epochs kept", output.get("epochs")),
                ("samples", f"{len(samples)} images (loractl trainings samples)" if samples else None),
            ],
        ),
        (
            "history",
            [
                (when(h.get("at")) or "", f"{h.get('status')}  {h.get('cause', '')}".strip())
                for h in job.get("history") or []
                if isinstance(h, dict)
            ],
        ),
    ]


def plan_steps(plan: dict[str, Any]) -> str | None:
    if not plan:
        return None
    return (
        f"{plan.get('total_steps')} in all: {plan.get('steps_per_epoch')} per epoch "
        f"({plan.get('images_per_epoch')} images x repeats), {plan.get('epochs')} epochs"
    )


def plan_estimate(plan: dict[str, Any]) -> str | None:
    if not plan or plan.get("estimated_seconds") is None:
        return None
    minutes = float(plan["estimated_seconds"]) / 60
    return (
        f"~{minutes:.0f} min, ${float(plan.get('estimated_cost_usd', 0)):.2f} on demand, "
        f"${float(plan.get('estimated_spot_cost_usd', 0)):.2f} on spot"
    )


KEY_PARAMETERS = (
    "network_dim",
    "network_alpha",
    "learning_rate",
    "max_train_epochs",
    "max_train_steps",
    "resolution",
)


def _key_parameters(config: dict[str, Any]) -> str | None:
    shown = [
        f"{key} {number(v) if isinstance(v, float) else v}"
        for key in KEY_PARAMETERS
        if (v := config.get(key)) is not None
    ]
    return ", ".join(shown) or None


def model_sections(model: dict[str, Any]) -> list[Section]:
    versions = [v for v in model.get("versions") or [] if isinstance(v, dict)]
    return [
        (
            f"model {model.get('id')}",
            [
                ("name", model.get("name")),
                ("kind", model.get("kind")),
                ("family", model.get("fm_type")),
                ("component", model.get("component")),
                ("includes", ", ".join(model.get("included_components") or []) or None),
                ("status", model.get("status")),
                ("reason", model.get("failure_reason")),
                ("file", f"{model.get('filename')} ({size(model.get('size_bytes'))})"),
                ("sha256", model.get("sha256")),
                ("from training", model.get("source_job_id")),
                ("imported from", model.get("source_url")),
                ("created", when(model.get("created_at"))),
                (
                    "download",
                    "loractl models download " + str(model.get("id")) if model.get("download_url") else None,
                ),
            ],
        ),
        (
            "versions",
            [
                (f"epoch {v.get('epoch')}", f"{v.get('filename', '')} ({size(v.get('size_bytes'))})")
                for v in versions
            ],
        ),
    ]


def dataset_sections(dataset: dict[str, Any]) -> list[Section]:
    manifest = _dict(dataset.get("manifest"))
    concepts = [c for c in manifest.get("concepts") or [] if isinstance(c, dict)]
    return [
        (
            f"dataset {dataset.get('id')}",
            [
                ("name", dataset.get("name")),
                ("status", dataset.get("status")),
                ("reason", dataset.get("failure_reason")),
                ("files", f"{dataset.get('file_count')} ({size(dataset.get('total_bytes'))})"),
                ("images", manifest.get("image_count")),
                ("captioned", manifest.get("captioned_count")),
                ("cropped to", _dict(dataset.get("crop")) or None),
                ("missing captions", manifest.get("missing_captions") or None),
                ("created", when(dataset.get("created_at"))),
            ],
        ),
        (
            "concepts",
            [
                (
                    str(c.get("folder")),
                    f"{c.get('concept')}: {c.get('image_count')} images x {c.get('repeats')} repeats, "
                    f"{c.get('captioned_count')} captioned",
                )
                for c in concepts
            ],
        ),
        ("problems", [("-", problem) for problem in manifest.get("problems") or []]),
        ("left out by the crop", [("-", line) for line in dataset.get("file_errors") or []]),
        *_captions_sections(_dict(dataset.get("captions"))),
    ]


def _captions_sections(job: dict[str, Any]) -> list[Section]:
    """The captions job of a dataset made by ``datasets caption``: plan, progress, summary."""
    if not job:
        return []
    plan, progress, summary = _dict(job.get("plan")), _dict(job.get("progress")), _dict(job.get("summary"))
    rows: list[tuple[str, Any]] = [
        ("source", job.get("source_dataset_id")),
        ("state", job.get("state")),
        ("mode", job.get("mode")),
        ("trigger word", job.get("trigger_word")),
        ("instance", plan.get("instance_type")),
        (
            "estimate",
            f"{plan.get('estimated_seconds')} s, ${plan.get('estimated_cost_usd')}" if plan else None,
        ),
    ]
    if progress:
        rows.append(("progress", f"{progress.get('step')}/{progress.get('total_steps')} images"))
    if summary:
        rows += [
            ("captioned", summary.get("captioned")),
            ("kept", summary.get("kept")),
            ("cache hits", summary.get("cache_hits")),
            ("model runs", summary.get("model_runs")),
        ]
    failures = [f for f in summary.get("failures") or [] if isinstance(f, dict)]
    return [
        ("captions job", rows),
        ("images not captioned", [(str(f.get("path")), f.get("reason")) for f in failures]),
    ]
