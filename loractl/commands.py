"""The subcommands of loractl: each takes the parsed arguments and returns the exit status."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from functions.domain.catalog import DEFAULT_INSTANCE_TYPE, FmType, ResourceStatus
from functions.domain.dataset_rules import UPLOAD_URLS_PER_RESPONSE, DeclaredFile, check_declared_files
from functions.domain.families import ComponentRole
from functions.domain.ids import ID_LENGTH, is_valid_id
from functions.domain.statuses import TERMINAL_STATUSES as DOMAIN_TERMINAL_STATUSES
from functions.domain.statuses import JobStatus
from functions.domain.zip_datasets import ZipRefused, is_zip_name
from loractl import api_shapes, views
from loractl.caption_sheet import CaptionedImage, caption_sheet
from loractl.client import ApiClient, ApiConnectionError, page_items
from loractl.config import resolve_connection
from loractl.contact_sheet import contact_sheet
from loractl.local_files import caption_problems, is_ignored
from loractl.output import emit, errors
from loractl.parameter_file import defaults_as_toml
from loractl.uploads import FileTarget, ResumeState, download, plan_parts, upload_files, upload_parts
from loractl.zip_datasets import extract_dataset_zip

EXIT_OK, EXIT_JOB_FAILED = 0, 4
TERMINAL_STATUSES = tuple(status.value for status in DOMAIN_TERMINAL_STATUSES)
RESOURCE_STATUSES = tuple(status.value for status in ResourceStatus)
JOB_STATUSES = tuple(status.value for status in JobStatus)
# The list routes' page size: Query(ge=1, le=100), default 50 (functions/api/routes/*.py list_*).
PAGE_SIZE, MAX_PAGE_SIZE = 50, 100
POLL_SECONDS = 2.0


class UsageError(Exception):
    """Bad arguments or local input (exit status 2); ``details`` lists each problem."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class WaitTimeout(Exception):
    """``--timeout`` ran out while the job was still running (exit status 6)."""


@contextmanager
def api(args: argparse.Namespace) -> Iterator[ApiClient]:
    connection = resolve_connection(args.endpoint, args.token, args.profile, args.region, args.aws_profile)
    client = ApiClient(connection)
    try:
        yield client
    finally:
        client.close()


RESOURCE_PATHS = {"model": "/models", "dataset": "/datasets", "training": "/trainings"}


def resolve_id(client: ApiClient, kind: str, value: str) -> str:
    """A full id as given, or the one id that starts with ``value`` (like git's short hashes).

    Prefixes are matched against the caller's own records, newest first; an ambiguous or
    unknown prefix is a usage error that names the candidates.
    """
    text = value.strip().lower()
    if is_valid_id(text) or len(text) >= ID_LENGTH:
        return text
    if not text:
        raise UsageError(f"empty {kind} id")
    matches = [
        str(r["id"]) for r in client.list_all(RESOURCE_PATHS[kind]) if str(r.get("id", "")).startswith(text)
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(
            f"no {kind} id starts with {value!r} (ids are 26 characters; `loractl {kind}s list`)"
        )
    raise UsageError(f"{kind} id prefix {value!r} is ambiguous: {', '.join(matches[:10])}")


def _page(client: ApiClient, path: str, args: argparse.Namespace, **params: Any) -> list[dict[str, Any]]:
    """One page (``--limit``, ``--next-token``) or every row (``--all``); says when more rows exist."""
    if args.limit is not None and not 1 <= args.limit <= MAX_PAGE_SIZE:
        raise UsageError(f"--limit must be between 1 and {MAX_PAGE_SIZE}")
    if args.all:
        return client.list_all(path, **params)
    page = client.get(path, limit=args.limit or PAGE_SIZE, next_token=args.next_token, **params)
    token = page.get("next_token") if isinstance(page, dict) else None
    if token:
        errors.print(f"more rows: add --next-token {token} (or --all)", highlight=False, markup=False)
    return page_items(page)


def _transfer_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=errors,
        transient=False,
    )


def _read_parameter_file(path_text: str) -> dict[str, Any]:
    """A Kohya parameter file: TOML (``.toml``) or JSON (anything else)."""
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"config file {path}: {error}") from error
    if not isinstance(data, dict):
        raise UsageError(f"config file {path}: must hold a table/object of parameters")
    return data


# --- models ---------------------------------------------------------------------------------


def models_upload(args: argparse.Namespace) -> int:
    file = Path(args.file)
    if not file.is_file():
        raise UsageError(f"{file} is not a file")
    if file.suffix.lower() != ".safetensors":
        raise UsageError(f"{file.name}: only .safetensors files are accepted")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    size = file.stat().st_size
    with api(args) as client:
        pending = ResumeState.pending(file)
        if pending and pending.get("parts"):
            model_id, upload_id = str(pending["model_id"]), str(pending["upload_id"])
            part_size, parts = int(pending["part_size"]), list(pending["parts"])
            sent = len(pending.get("etags", {}))
            errors.print(f"resuming the upload of model {model_id} ({sent} parts already sent)")
        else:
            body = {
                "name": args.name or file.stem,
                "kind": args.kind,
                "fm_type": args.fm_type,
                "filename": stored_filename(file.name),
                "size_bytes": size,
                **({"component": args.component} if args.component else {}),
            }
            created = client.post("/models", body)
            model_id = str(api_shapes.created_record(created, "model")["id"])
            upload_id, part_size, parts = api_shapes.multipart_upload(created)
        resume = ResumeState(file, upload_id)
        extra = {"model_id": model_id, "part_size": part_size, "parts": parts}
        with _transfer_progress() as progress:
            task = progress.add_task(file.name, total=size)
            etags = upload_parts(
                file,
                plan_parts(parts, part_size, size),
                lambda n: progress.advance(task, n),
                resume,
                extra,
                args.workers,
            )
        model = client.post(f"/models/{model_id}/complete", {"parts": etags})
        resume.clear()
    record = (
        api_shapes.created_record(model, "model") if isinstance(model, dict) and "model" in model else model
    )
    emit(record, args.output, sections=views.model_sections(record))
    return EXIT_OK


def stored_filename(name: str) -> str:
    """A local file name as the API accepts it (CreateModelRequest.filename:
    ``^[A-Za-z0-9][A-Za-z0-9._-]*\\.safetensors$``, at most 128 characters):
    "SD 1.5 (pruned).safetensors" -> "SD-1.5-pruned-.safetensors"."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name[: -len(".safetensors")])
    stem = stem if stem[:1].isalnum() else "m" + stem
    return stem[: 128 - len(".safetensors")] + ".safetensors"


def models_import(args: argparse.Namespace) -> int:
    """POST /models with source_url; --wait polls until the import ends."""
    name = (
        args.name
        or (args.filename or args.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])[:100]
        or "imported"
    )
    body = {"name": name, "kind": args.kind, "fm_type": args.fm_type, "source_url": args.url}
    optional = {"filename": args.filename, "sha256": args.sha256, "component": args.component}
    body.update({k: v for k, v in optional.items() if v})
    if args.token_env:
        token = os.environ.get(args.token_env, "").strip()
        if not token:
            raise UsageError(f"--token-env: the environment variable {args.token_env} is not set or empty")
        body["access_token"] = token
    with api(args) as client:
        model = api_shapes.created_record(client.post("/models", body), "model")
        while args.wait and model.get("status") == "processing":
            time.sleep(POLL_SECONDS)
            model = client.get(f"/models/{model['id']}")
    emit(model, args.output, sections=views.model_sections(model))
    return 3 if model.get("status") == "failed" else EXIT_OK


def models_list(args: argparse.Namespace) -> int:
    with api(args) as client:
        items = _page(client, "/models", args, kind=args.kind, fm_type=args.fm_type, status=args.status)
    emit([views.model_row(m) for m in items], args.output, views.MODEL_COLUMNS, "models")
    return EXIT_OK


def models_get(args: argparse.Namespace) -> int:
    with api(args) as client:
        model = client.get(f"/models/{resolve_id(client, 'model', args.id)}")
    emit(model, args.output, sections=views.model_sections(model))
    return EXIT_OK


def models_delete(args: argparse.Namespace) -> int:
    with api(args) as client:
        model_id = resolve_id(client, "model", args.id)
        result = client.delete(f"/models/{model_id}")
    emit(result or {"id": model_id, "deleted": True}, args.output)
    return EXIT_OK


def _download_model(
    client: ApiClient, model_id: str, directory: Path, output: str, epoch: int | None = None
) -> Path:
    """The model's file, or with ``epoch`` that saved epoch's LoRA version (``GET /models/{id}?epoch=``)."""
    model = client.get(f"/models/{model_id}", **({"epoch": epoch} if epoch is not None else {}))
    url = api_shapes.download_url(model)
    if not url:
        raise UsageError(f"model {model_id} has no download URL (status {model.get('status')!r})")
    version = api_shapes.model_version(model, epoch)
    filename = (version or model).get("filename") or f"{model_id}.safetensors"
    target = directory / str(filename)
    with _transfer_progress() as progress:
        task = progress.add_task(target.name, total=None)
        download(
            url,
            target,
            lambda n: progress.advance(task, n),
            lambda total: progress.update(task, total=total or None),
        )
    result = {"model_id": model_id, "path": str(target), "size_bytes": target.stat().st_size}
    if epoch is not None:
        result["epoch"] = epoch
    emit(result, output)
    return target


def models_download(args: argparse.Namespace) -> int:
    if args.epoch is not None and args.epoch < 1:
        raise UsageError("--epoch must be at least 1")
    with api(args) as client:
        model_id = resolve_id(client, "model", args.id)
        _download_model(client, model_id, Path(args.directory), args.output, args.epoch)
    return EXIT_OK


# --- datasets -------------------------------------------------------------------------------


def collect_dataset_files(root: Path) -> list[tuple[str, Path]]:
    """Every file under ``root`` as (relative POSIX path, path), operating-system litter
    (``.DS_Store``, ``Thumbs.db``, ``._*``) skipped with a note; other hidden files are kept so
    the dataset rules report them instead of loractl silently dropping them."""
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    found = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())
    skipped = [relative for relative, _ in found if is_ignored(relative)]
    if skipped:
        names = ", ".join(sorted({Path(s).name for s in skipped}))
        errors.print(f"skipped {len(skipped)} system file(s) ({names})", highlight=False, markup=False)
    files = [(relative, path) for relative, path in found if not is_ignored(relative)]
    if not files:
        raise UsageError(f"{root} holds no files: expected <repeats>_<concept>/<image> and .txt captions")
    return files


def datasets_upload(args: argparse.Namespace) -> int:
    source = Path(args.directory)
    if source.is_file() and is_zip_name(source.name):
        with tempfile.TemporaryDirectory(prefix="loractl-zip-") as folder:
            try:
                extract_dataset_zip(source, Path(folder), repeats=args.repeats, concept=args.concept)
            except ZipRefused as refused:
                raise UsageError(f"{source}: {refused}; nothing was uploaded") from refused
            return _upload_folder(args, Path(folder), args.name or source.stem)
    if args.repeats is not None or args.concept is not None:
        raise UsageError("--repeats and --concept are only for a .zip of images without concept folders")
    return _upload_folder(args, source, args.name or source.resolve().name)


def _upload_folder(args: argparse.Namespace, root: Path, name: str) -> int:
    files = collect_dataset_files(root)
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    local = [DeclaredFile(relative, path.stat().st_size) for relative, path in files]
    declared = [{"path": f.path, "size_bytes": f.size_bytes} for f in local]
    # The server's own rules, run locally first: every problem is listed before anything is sent.
    problems: list[dict[str, Any]] = []
    for problem in check_declared_files(local):
        index = int(problem.field.split("[")[1].split("]")[0]) if "[" in problem.field else None
        problems.append(
            {"field": declared[index]["path"] if index is not None else str(root), "problem": problem.problem}
        )
    if not problems:  # the layout is right: now the pairing the manifest would check after upload
        problems = [{"field": str(root), "problem": text} for text in caption_problems(local)]
    if problems:
        raise UsageError(
            f"{root}: {len(problems)} problem(s) with the dataset; nothing was uploaded", problems
        )
    by_path = dict(files)
    with api(args) as client:
        # The API checks every path and size against the dataset rules and answers 400 with
        # every problem (field files[i].path) before any URL is issued: nothing is uploaded then.
        created = client.post("/datasets", {"name": name, "files": declared})
        dataset_id = str(api_shapes.created_record(created, "dataset")["id"])
        first = api_shapes.dataset_uploads(created)
        batches = _upload_batches(client, dataset_id, first, [p for p, _ in files][len(first) :])
        with _transfer_progress() as progress:
            task = progress.add_task(f"{len(files)} files", total=sum(f.size_bytes for f in local))
            for uploads in batches:
                targets = [
                    FileTarget(
                        by_path[str(u["path"])], str(u["path"]), str(u["url"]), dict(u.get("headers") or {})
                    )
                    for u in uploads
                ]
                upload_files(targets, lambda n: progress.advance(task, n), args.workers)
        dataset = client.post(f"/datasets/{dataset_id}/complete", {})
        # The service decodes every file in the background before the dataset is usable.
        while isinstance(dataset, dict) and dataset.get("status") == "validating":
            time.sleep(POLL_SECONDS)
            dataset = client.get(f"/datasets/{dataset_id}")
    record = dataset.get("dataset", dataset) if isinstance(dataset, dict) else dataset
    emit(record, args.output, sections=views.dataset_sections(record))
    if isinstance(record, dict) and record.get("status") == "invalid":
        found = (record.get("manifest") or {}).get("problems") or []
        for line in found:
            errors.print(f"  {line}", highlight=False, markup=False)
        errors.print(f"[yellow]the dataset arrived but its manifest lists {len(found)} problem(s)[/yellow]")
        return 3
    return EXIT_OK


def _upload_batches(
    client: ApiClient, dataset_id: str, first: list[dict[str, Any]], rest: list[str]
) -> Iterator[list[dict[str, Any]]]:
    """The first batch of presigned PUTs, then fresh batches for the rest, asked for just in time.

    Asking per batch (rather than all URLs up front) keeps URLs from expiring on slow links.
    """
    yield first
    for start in range(0, len(rest), UPLOAD_URLS_PER_RESPONSE):
        paths = rest[start : start + UPLOAD_URLS_PER_RESPONSE]
        yield api_shapes.dataset_uploads(client.post(f"/datasets/{dataset_id}/uploads", {"paths": paths}))


def datasets_list(args: argparse.Namespace) -> int:
    with api(args) as client:
        items = _page(client, "/datasets", args, status=args.status)
    emit([views.dataset_row(d) for d in items], args.output, views.DATASET_COLUMNS, "datasets")
    return EXIT_OK


def datasets_get(args: argparse.Namespace) -> int:
    with api(args) as client:
        dataset = client.get(f"/datasets/{resolve_id(client, 'dataset', args.id)}")
    emit(dataset, args.output, sections=views.dataset_sections(dataset))
    return EXIT_OK


def datasets_captions(args: argparse.Namespace) -> int:
    """Every image of a ready dataset with its caption; ``--contact-sheet`` also draws them."""
    items: list[dict[str, Any]] = []
    with api(args) as client:
        dataset_id = resolve_id(client, "dataset", args.id)
        token: str | None = None
        while True:
            params: dict[str, Any] = {"with_captions": "true", "limit": 100}
            if token:
                params["next_token"] = token
            page = client.get(f"/datasets/{dataset_id}/files", **params)
            items += page_items(page)
            token = page.get("next_token") if isinstance(page, dict) else None
            if not token:
                break
    rows = [{"path": i["path"], "caption": i.get("caption") or "(no caption)"} for i in items]
    if args.contact_sheet:
        sheet = caption_sheet(
            [CaptionedImage(i["path"], i.get("caption"), _preview(i.get("thumbnail_url"))) for i in items],
            Path(args.contact_sheet),
        )
        errors.print(f"contact sheet of {len(items)} image(s): {sheet}", highlight=False, markup=False)
    emit(rows if args.output != "json" else items, args.output, columns=["path", "caption"])
    return EXIT_OK


def _preview(url: str | None) -> bytes | None:
    if not url:
        return None
    response = httpx.get(url, timeout=60, follow_redirects=True)
    return response.content if response.status_code == 200 else None


def _crop_request(args: argparse.Namespace) -> dict[str, Any]:
    """The crop fields of ``datasets prepare``/``crop``, shaped like ``POST /datasets/{id}/crop``."""
    if args.resolution is None and args.fm_type is None:
        raise UsageError("give --resolution (pixels) or --fm-type (its native resolution)")
    fields = {"width": args.resolution, "height": args.height, "fm_type": args.fm_type}
    return {
        **{k: v for k, v in fields.items() if v is not None},
        "mode": args.mode,
        "upscale": args.upscale,
    }


def datasets_prepare(args: argparse.Namespace) -> int:
    """Crop every image of a local dataset with the service's own function; copy the captions."""
    from functions.domain.dataset_preparation import (
        NATIVE_SIDE,
        CropMode,
        CropSpec,
        output_name,
        side_problem,
    )
    from functions.domain.image_preparation import ImageProblem, prepare_image  # Pillow: only here

    request = _crop_request(args)
    width = request.get("width") or NATIVE_SIDE[FmType(request["fm_type"])]
    height = request.get("height") or width
    problems = [p for p in (side_problem("--resolution", width), side_problem("--height", height)) if p]
    if problems:
        raise UsageError("; ".join(problems))
    spec = CropSpec(width, height, CropMode(args.mode), args.upscale)
    root, output = Path(args.directory), Path(args.destination)
    if output.resolve() == root.resolve() or root.resolve() in output.resolve().parents:
        raise UsageError("DESTINATION must be a folder outside the dataset (originals are never overwritten)")
    failed: list[str] = []
    files = []
    for relative, path in collect_dataset_files(root):
        if relative.count("/") != 1:  # only <repeats>_<concept>/<file>: what upload accepts
            failed.append(f"{relative}: not directly inside a <repeats>_<concept> folder")
        else:
            files.append((relative, path))
    kept_stems: set[str] = set()
    smaller = 0
    for relative, path in files:
        if relative.lower().endswith(".txt"):
            continue
        try:
            prepared = prepare_image(path.read_bytes(), relative, spec)
        except ImageProblem as problem:
            failed.append(f"{relative}: {problem}")
            continue
        smaller += _image_size(prepared) != (width, height)
        target = output / output_name(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(prepared)
        kept_stems.add(relative.rsplit(".", 1)[0])
    for relative, path in files:
        if relative.lower().endswith(".txt") and relative.rsplit(".", 1)[0] in kept_stems:
            (output / relative).parent.mkdir(parents=True, exist_ok=True)
            (output / relative).write_bytes(path.read_bytes())
    for line in failed:
        errors.print(f"  left out {line}", highlight=False, markup=False)
    if smaller:
        errors.print(
            f"{smaller} image(s) smaller than {width}x{height} were cropped to its shape but not enlarged "
            "(add --upscale to enlarge them)",
            highlight=False,
            markup=False,
        )
    emit(
        {
            "output": str(output),
            "images": len(kept_stems),
            "smaller_than_target": smaller,
            "left_out": len(failed),
            "width": width,
            "height": height,
        },
        args.output,
    )
    return EXIT_OK


def _image_size(data: bytes) -> tuple[int, int]:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size


def datasets_crop(args: argparse.Namespace) -> int:
    with api(args) as client:
        body = _crop_request(args)
        args.id = resolve_id(client, "dataset", args.id)
        if args.name:
            body["name"] = args.name
        else:
            source = client.get(f"/datasets/{args.id}")
            size = f"{body.get('width') or body.get('fm_type')}" + (
                f"x{body['height']}" if "height" in body else ""
            )
            body["name"] = f"{source.get('name', args.id)} {size}"[:100]
        dataset = client.post(f"/datasets/{args.id}/crop", body)
        while args.wait and dataset.get("status") == "processing":
            time.sleep(POLL_SECONDS)
            dataset = client.get(f"/datasets/{dataset['id']}")
    emit(dataset, args.output, sections=views.dataset_sections(dataset))
    return 3 if dataset.get("status") in ("failed", "invalid") else EXIT_OK


def caption_request(args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``datasets caption``, shaped like ``POST /datasets/{id}/captions`` (only what
    was given: the service's defaults are the defaults)."""
    body: dict[str, Any] = {
        "mode": args.mode,
        "use_tagger": not args.no_tagger,
        "use_captioner": args.captioner,
    }
    if args.trigger_word is not None:
        body["trigger_word"] = args.trigger_word
    tagger: dict[str, Any] = {}
    if args.general_threshold is not None:
        tagger["general_threshold"] = args.general_threshold
    if args.character_threshold is not None:
        tagger["character_threshold"] = args.character_threshold
    if args.exclude_tags:
        tagger["excluded_tags"] = [t.strip() for t in args.exclude_tags.split(",") if t.strip()]
    if args.character_tags_first:
        tagger["character_tags_first"] = True
    if args.rating != "none":
        tagger["rating"] = args.rating
    if tagger:
        body["tagger"] = tagger
    if args.max_caption_tokens is not None:
        body["max_caption_tokens"] = args.max_caption_tokens
    return body


def datasets_caption(args: argparse.Namespace) -> int:
    """Caption a dataset's images server side (a small SageMaker job) into a new dataset."""
    with api(args) as client:
        body = caption_request(args)
        args.id = resolve_id(client, "dataset", args.id)
        if args.name:
            body["name"] = args.name
        else:
            source = client.get(f"/datasets/{args.id}")
            body["name"] = f"{source.get('name', args.id)} captioned"[:100]
        dataset = client.post(f"/datasets/{args.id}/captions", body)
        while args.wait and dataset.get("status") in ("processing", "validating"):
            time.sleep(POLL_SECONDS)
            dataset = client.get(f"/datasets/{dataset['id']}")
    emit(dataset, args.output, sections=views.dataset_sections(dataset))
    return 3 if dataset.get("status") in ("failed", "invalid") else EXIT_OK


def datasets_delete(args: argparse.Namespace) -> int:
    with api(args) as client:
        dataset_id = resolve_id(client, "dataset", args.id)
        result = client.delete(f"/datasets/{dataset_id}")
    emit(result or {"id": dataset_id, "deleted": True}, args.output)
    return EXIT_OK


# --- configs --------------------------------------------------------------------------------


def configs_defaults(args: argparse.Namespace) -> int:
    with api(args) as client:
        response = client.get("/configs/defaults", fm_type=args.fm_type)
    defaults = response.get("defaults", response) if isinstance(response, dict) else response
    if args.json or args.format == "json":
        emit(response if args.json else defaults, "json")
    else:
        sys.stdout.write(defaults_as_toml(response))
    return EXIT_OK


def configs_validate(args: argparse.Namespace) -> int:
    config = _read_parameter_file(args.file)
    body: dict[str, Any] = {"fm_type": args.fm_type, "config": config}
    if args.instance_type and not args.dataset:
        raise UsageError("--instance-type plans a job: give --dataset too")
    with api(args) as client:
        if args.dataset:
            body["dataset_id"] = resolve_id(client, "dataset", args.dataset)
            body["instance_type"] = args.instance_type or DEFAULT_INSTANCE_TYPE
        result = client.post("/configs/validate", body)
    plan = result.get("plan") or {}
    emit(
        result,
        args.output,
        sections=[
            (
                "valid",
                [
                    ("family", result.get("fm_type")),
                    ("parameters", f"{len(result.get('config') or {})} (normalised)"),
                ],
            ),
            (
                "plan" + (f" on {body['instance_type']}" if plan else ""),
                [
                    ("steps", views.plan_steps(plan)),
                    ("estimate", views.plan_estimate(plan)),
                    (
                        "",
                        None
                        if plan
                        else "add --dataset DATASET_ID (and --instance-type) to see steps, time and cost",
                    ),
                ],
            ),
        ],
    )
    return EXIT_OK


# --- trainings ------------------------------------------------------------------------------


def _read_sample_prompts(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``--sample-prompt TEXT`` (repeatable) then the entries of ``--sample-prompts FILE``.

    The file is JSON (a list) or TOML (``[[prompts]]`` tables) of objects with ``prompt`` and
    optional ``negative_prompt``, ``seed``, ``steps``, ``width``, ``height``, ``cfg_scale``; the
    server validates every field.
    """
    prompts: list[dict[str, Any]] = [{"prompt": text} for text in args.sample_prompt or []]
    if args.sample_prompts:
        path = Path(args.sample_prompts)
        if not path.is_file():
            raise UsageError(f"sample prompts file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text).get("prompts") if path.suffix.lower() == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
            raise UsageError(f"sample prompts file {path}: {error}") from error
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise UsageError(f"sample prompts file {path}: must hold a list of objects with a 'prompt'")
        prompts += data
    return prompts


def trainings_create(args: argparse.Namespace) -> int:
    config = _read_parameter_file(args.config) if args.config else {}
    prompts = _read_sample_prompts(args)
    with api(args) as client:
        base_model_id = resolve_id(client, "model", args.model)
        body: dict[str, Any] = {
            # the base model's family unless given: the API refuses a mismatch either way
            "fm_type": args.fm_type or client.get(f"/models/{base_model_id}").get("fm_type"),
            "base_model_id": base_model_id,
            "dataset_id": resolve_id(client, "dataset", args.dataset),
            "instance_type": args.instance_type or DEFAULT_INSTANCE_TYPE,
            "config": config,
        }
        components = _components(client, args.component or [])
        if components:
            body["components"] = components
    return _create_training(args, body, prompts)


def _components(client: Any, values: list[str]) -> dict[str, str]:
    """``--component ROLE=MODEL`` values as the API's ``components`` (model ids resolved)."""
    roles = [role.value for role in ComponentRole]
    components: dict[str, str] = {}
    for value in values:
        role, sep, model = value.partition("=")
        if not sep or not model:
            raise UsageError(f"--component {value!r}: give ROLE=MODEL, e.g. t5xxl=MODEL_ID")
        if role not in roles:
            raise UsageError(f"--component {value!r}: the role must be one of {', '.join(roles)}")
        if role in components:
            raise UsageError(f"--component: {role} is given twice")
        components[role] = resolve_id(client, "model", model)
    return components


def _create_training(args: argparse.Namespace, body: dict[str, Any], prompts: list[dict[str, Any]]) -> int:
    if prompts:
        body["sample_prompts"] = prompts
    optional = {
        "name": args.name,
        "use_spot": args.spot,
        "max_runtime_seconds": args.max_runtime,
        "webhook_url": args.webhook_url,
        "trigger_word": getattr(args, "trigger_word", None),
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    key = args.idempotency_key or str(uuid.uuid4())
    with api(args) as client:
        created = client.post("/trainings", body, headers={"Idempotency-Key": key})
        job = api_shapes.created_record(created, "training") if "training" in created else created
        if not args.wait:
            emit(job, args.output, sections=views.training_sections(job))
            return EXIT_JOB_FAILED if job.get("status") == "FAILED" else EXIT_OK
        return _follow(client, str(job["id"]), args.output, timeout=None)


def _describe_progress(job: dict[str, Any]) -> str:
    progress = api_shapes.progress_of(job)
    parts = [str(job.get("status")), str(job.get("secondary_status") or job.get("queue_reason") or "")]
    if progress.get("loss") is not None:
        parts.append(f"loss {float(progress['loss']):.4f}")
    if progress.get("total_steps"):
        parts.append(f"step {progress.get('step', 0)}/{progress['total_steps']}")
    if progress.get("eta_seconds") and job.get("status") not in TERMINAL_STATUSES:
        parts.append(f"ETA {float(progress['eta_seconds']):.0f}s")
    return "  ".join(p for p in parts if p)


def _follow(client: ApiClient, job_id: str, output: str, timeout: float | None) -> int:
    """Poll the job with a live bar (status, step/total, loss, ETA) until it ends."""
    deadline = None if timeout is None else time.monotonic() + timeout
    columns = (
        TextColumn("[bold]{task.fields[job]}"),
        BarColumn(),
        TextColumn("{task.description}"),
        TimeRemainingColumn(),
    )
    last_line = ""
    with Progress(*columns, console=errors, transient=output != "table") as bar:
        task = bar.add_task("starting", total=None, job=job_id)
        while True:
            try:
                job = client.get(f"/trainings/{job_id}")
            except ApiConnectionError:
                if deadline is not None and time.monotonic() > deadline:
                    raise
                time.sleep(POLL_SECONDS)
                continue
            progress = api_shapes.progress_of(job)
            total = progress.get("total_steps")
            description = _describe_progress(job)
            bar.update(task, description=description, total=total or None, completed=progress.get("step", 0))
            if not errors.is_terminal and description != last_line:
                # no live bar without a terminal (pipes, CI, make): one line per change instead
                errors.print(f"{job_id}  {description}", highlight=False, markup=False)
                last_line = description
            if job.get("status") in TERMINAL_STATUSES:
                if job["status"] == "COMPLETED" and total:
                    bar.update(task, completed=total)
                break
            if deadline is not None and time.monotonic() > deadline:
                emit(job, output, sections=views.training_sections(job))
                raise WaitTimeout(
                    f"gave up waiting after {timeout:.0f}s; training {job_id} is still {job.get('status')}"
                )
            time.sleep(POLL_SECONDS)
    emit(job, output, sections=views.training_sections(job))
    if job["status"] != "COMPLETED":
        reason = views.stop_reason(job) or "no reason given"
        message = f"training {job_id} ended {job['status']}: {reason}"
        if output == "json":
            error = {"code": f"TRAINING_{job['status']}", "message": message, "details": []}
            sys.stderr.write(json.dumps({"error": error, "exit_code": EXIT_JOB_FAILED}) + "\n")
        else:
            errors.print(f"[red]training {job_id} ended {job['status']}:[/red] {reason}", highlight=False)
        return EXIT_JOB_FAILED
    return EXIT_OK


def trainings_list(args: argparse.Namespace) -> int:
    with api(args) as client:
        items = _page(client, "/trainings", args, status=args.status)
    emit([views.training_row(j) for j in items], args.output, views.TRAINING_COLUMNS, "trainings")
    return EXIT_OK


def trainings_get(args: argparse.Namespace) -> int:
    with api(args) as client:
        job = client.get(f"/trainings/{resolve_id(client, 'training', args.id)}")
    emit(job, args.output, sections=views.training_sections(job))
    return EXIT_OK


def trainings_stop(args: argparse.Namespace) -> int:
    with api(args) as client:
        job = client.post(f"/trainings/{resolve_id(client, 'training', args.id)}/stop", {})
    emit(job, args.output, sections=views.training_sections(job))
    return EXIT_OK


def trainings_delete(args: argparse.Namespace) -> int:
    with api(args) as client:
        params = {"delete_lora": "true"} if args.delete_lora else {}
        job_id = resolve_id(client, "training", args.id)
        result = client.delete(f"/trainings/{job_id}", **params)
    emit(result or {"id": job_id, "deleted": True}, args.output)
    return EXIT_OK


def trainings_wait(args: argparse.Namespace) -> int:
    with api(args) as client:
        return _follow(client, resolve_id(client, "training", args.id), args.output, args.timeout)


def trainings_download(args: argparse.Namespace) -> int:
    with api(args) as client:
        job = client.get(f"/trainings/{resolve_id(client, 'training', args.id)}")
        lora_id = api_shapes.lora_model_id(job)
        if job.get("status") != "COMPLETED" or not lora_id:
            raise UsageError(f"training {args.id} has no LoRA to download (status {job.get('status')!r})")
        _download_model(client, lora_id, Path(args.directory), args.output)
    return EXIT_OK


# --- logs and the loss curve -----------------------------------------------------------------

LOG_PAGE_LINES = 1000  # the API's largest page: fewest requests while following
DRAIN_EMPTY_PAGES = 2  # after the job ended, empty pages in a row that mean the log is complete


def _print_log_lines(page: dict[str, Any], as_json: bool) -> int:
    """Print a page's lines (JSON Lines with --json); returns how many there were."""
    lines = [line for line in page.get("lines") or [] if isinstance(line, dict)]
    for line in lines:
        if as_json:
            sys.stdout.write(json.dumps(line) + "\n")
        else:
            sys.stdout.write(f"{line.get('timestamp', '')}  {line.get('message', '')}\n")
    sys.stdout.flush()
    return len(lines)


def follow_log(
    client: ApiClient, job_id: str, token: str, as_json: bool, poll_seconds: float = POLL_SECONDS
) -> None:
    """Print new lines as they arrive until the job has ended and its log is drained.

    A job's last lines can reach CloudWatch Logs after its final status, so following stops
    only once the job is terminal and ``DRAIN_EMPTY_PAGES`` polls in a row found nothing new.
    """
    empty_after_end = 0
    while True:
        page = client.get(f"/trainings/{job_id}/logs", next_token=token, limit=LOG_PAGE_LINES)
        token = str(page["next_token"])
        if _print_log_lines(page, as_json):
            empty_after_end = 0
            continue  # more may be waiting: read on without sleeping
        if client.get(f"/trainings/{job_id}").get("status") in TERMINAL_STATUSES:
            empty_after_end += 1
            if empty_after_end >= DRAIN_EMPTY_PAGES:
                return
        time.sleep(poll_seconds)


def trainings_logs(args: argparse.Namespace) -> int:
    """The newest lines of the job's log (or the first with --head); --follow keeps printing."""
    with api(args) as client:
        args.id = resolve_id(client, "training", args.id)
        start = "head" if args.head else "tail"
        page = client.get(f"/trainings/{args.id}/logs", limit=args.limit, start=start)
        _print_log_lines(page, args.json)
        if args.follow:
            follow_log(client, args.id, str(page["next_token"]), args.json)
    return EXIT_OK


def trainings_plot(args: argparse.Namespace) -> int:
    """Write the job's loss curve as a PNG chart."""
    from loractl.loss_chart import render_loss_chart  # Pillow is only needed here

    output = Path(args.file or f"{args.id}-loss.png")
    if output.suffix.lower() != ".png":
        raise UsageError(f"FILE must name a .png file, not {output.name!r}")
    with api(args) as client:
        args.id = resolve_id(client, "training", args.id)
        curve = client.get(f"/trainings/{args.id}/metrics")
    points = [p for p in curve.get("points") or [] if isinstance(p, dict) and "step" in p]
    try:
        image = render_loss_chart(points, f"training {args.id}: loss by step")
    except ValueError as error:
        raise UsageError(f"training {args.id}: {error}") from error
    output.parent.mkdir(parents=True, exist_ok=True)
    image.save(output, format="PNG")
    emit({"path": str(output), "points": len(points), "stride": curve.get("stride")}, args.output)
    return EXIT_OK


def trainings_samples(args: argparse.Namespace) -> int:
    """Download a job's sample images and write its contact sheet (rows epochs, columns prompts)."""
    output = Path(args.directory)
    with api(args) as client:
        args.id = resolve_id(client, "training", args.id)
        job = client.get(f"/trainings/{args.id}")
        samples = api_shapes.samples_of(job)
        if not samples:
            raise UsageError(
                f"training {args.id} has no sample images (status {job.get('status')!r}; samples are "
                "listed once it completed with sample_prompts)"
            )
        folder = output / str(job["id"])
        files: dict[tuple[int, int], Path] = {}
        for sample in samples:
            epoch, index = int(sample["epoch"]), int(sample["prompt_index"])
            target = folder / f"epoch{epoch:03d}_prompt{index:02d}.png"
            download(str(sample["download_url"]), target, lambda n: None, lambda total: None)
            files[(epoch, index)] = target
    prompts = api_shapes.sample_prompt_texts(job)
    epochs = sorted({epoch for epoch, _ in files})
    sheet = contact_sheet(files, epochs, prompts, output / f"{job['id']}-contact-sheet.png")
    emit(
        {
            "training_id": job["id"],
            "samples": len(files),
            "directory": str(folder),
            "contact_sheet": str(sheet),
        },
        args.output,
    )
    return EXIT_OK


# --- local ----------------------------------------------------------------------------------


def local_serve(arguments: Sequence[str]) -> int:
    """Run the local runtime's own command (``lora-local``, i.e. ``python -m local_runtime``).

    A child process, not an import: the CLI works without the local runtime's dependencies, and
    ``local_runtime`` may use ``loractl`` (never the reverse). Ctrl-C reaches the child too (same
    process group): it shuts down by itself and this process waits for it; SIGTERM is passed on.
    """
    child = subprocess.Popen([sys.executable, "-m", "local_runtime", "serve", *arguments])
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: child.terminate())
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue  # the child received the same SIGINT and is stopping
    finally:
        signal.signal(signal.SIGTERM, previous)
