"""loractl: the command-line client of lora-on-aws (a deployed stack or the local runtime)."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from rich.text import Text

from functions.domain.catalog import DEFAULT_INSTANCE_TYPE
from functions.domain.families import FAMILIES, ComponentRole
from loractl import commands
from loractl.api_shapes import UnexpectedResponseError
from loractl.client import ApiConnectionError, ApiError
from loractl.config import ConfigError
from loractl.output import errors
from loractl.uploads import DEFAULT_WORKERS, TransferError

EXIT_OK, EXIT_USAGE, EXIT_API, EXIT_JOB_FAILED, EXIT_CONNECTION, EXIT_TIMEOUT = 0, 2, 3, 4, 5, 6
# --fm-type's choices, from the family specs: a new family needs no change here.
FM_TYPES = [fm_type.value for fm_type in FAMILIES]
COMPONENT_ROLES = [role.value for role in ComponentRole]
NATIVE_SIDES = " / ".join(f"{spec.fm_type.value} {spec.native_side}" for spec in FAMILIES.values())
EPILOG = """\
global options (before or after the subcommand):
  -o, --output json|table|id        output format (default table); --json is -o json
  --endpoint / LORACTL_ENDPOINT     API base URL
  --token / LORACTL_TOKEN           bearer token (local runtime); without one, requests are
                                    SigV4-signed with the standard AWS credential chain
  --profile / LORACTL_PROFILE       profile in the config file ($LORACTL_CONFIG or
                                    ~/.config/loractl/config.toml; `local serve` writes 'local')
  --region, --aws-profile           SigV4 region and AWS credentials profile

IDs: the full 26-character id, or any unique prefix of it (like git).

exit codes:
  0  success
  2  usage error (bad arguments, unreadable file, invalid local dataset, no endpoint)
  3  the API refused the request (the error and every problem field are printed)
  4  the training job ended FAILED or STOPPED (trainings create --wait / trainings wait)
  5  connection error (endpoint unreachable, upload/download failed, no AWS credentials)
  6  timed out waiting (trainings wait --timeout): the job is still running
  With --json (-o json) errors are a JSON object on stderr: {"error": {"code", "message", "details"}}.

examples:
  loractl local serve
  loractl models upload base.safetensors --fm-type sd15
  loractl datasets upload ./my-dataset --name cats
  loractl trainings create --model MODEL_ID --dataset DATASET_ID --config lora.toml --wait
  loractl trainings logs JOB_ID --follow
  loractl trainings plot JOB_ID loss.png
  loractl trainings download JOB_ID ./loras
  loractl console                   the same in a browser (trainings, uploads, charts, samples)
"""
OUTPUT_FORMATS = ("table", "json", "id")

Handler = Callable[[argparse.Namespace], int]


def _add_global_flags(parser: argparse.ArgumentParser, on_subcommand: bool) -> None:
    """The connection and output flags, accepted before and after the subcommand.

    On the subcommands every default is SUPPRESS, so a flag given after the subcommand sets
    the value and one given before it (parsed by the root parser) is not overwritten by a default.
    """
    default: Any = argparse.SUPPRESS if on_subcommand else None
    group = parser.add_argument_group("global options (before or after the subcommand)")
    group.add_argument("--endpoint", default=default, help="API base URL (env LORACTL_ENDPOINT)")
    group.add_argument(
        "--token", default=default, help="bearer token for the local runtime (env LORACTL_TOKEN)"
    )
    group.add_argument("--profile", default=default, help="config-file profile (env LORACTL_PROFILE)")
    group.add_argument("--region", default=default, help="AWS region for SigV4 (default: from the endpoint)")
    group.add_argument(
        "--aws-profile",
        default=default,
        help="AWS credentials profile for SigV4 (default: the standard chain)",
    )
    group.add_argument(
        "-o",
        "--output",
        choices=OUTPUT_FORMATS,
        default=default,
        help="table (default), json, or id (just the id(s), one per line, for scripts)",
    )
    group.add_argument(
        "--json", dest="output", action="store_const", const="json", default=default, help="same as -o json"
    )


def _command(
    parent: argparse._SubParsersAction, name: str, handler: Handler, help_: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = parent.add_parser(name, help=help_, description=help_)
    _add_global_flags(parser, on_subcommand=True)
    parser.set_defaults(handler=handler)
    return parser


def _id_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "id", metavar=f"{what.upper()}_ID", help=f"the {what}'s id (or a unique prefix of it)"
    )


def _fm_type(
    parser: argparse.ArgumentParser, required: bool = True, help_: str = "base-model family"
) -> None:
    parser.add_argument("--fm-type", choices=FM_TYPES, required=required, help=help_)


def _paging(
    parser: argparse.ArgumentParser, statuses: Sequence[str], normalise: Callable[[str], str]
) -> None:
    parser.add_argument(
        "--status",
        type=normalise,
        choices=list(statuses),
        help=f"only this status (any case): {', '.join(statuses)}",
    )
    parser.add_argument(
        "--limit", type=int, help=f"rows per page, 1-{commands.MAX_PAGE_SIZE} (default {commands.PAGE_SIZE})"
    )
    paging = parser.add_mutually_exclusive_group()
    paging.add_argument("--all", action="store_true", help="follow next tokens and list every row")
    paging.add_argument("--next-token", help="the next page (the token a previous page printed)")


def _models(root: argparse._SubParsersAction) -> None:
    group = root.add_parser("models", help="base checkpoints and LoRAs").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    upload = _command(
        group, "upload", commands.models_upload, "upload a .safetensors file (parallel multipart)"
    )
    upload.add_argument("file", metavar="FILE", help="the .safetensors checkpoint or LoRA")
    _fm_type(upload)
    upload.add_argument(
        "--kind", choices=["checkpoint", "lora"], default="checkpoint", help="default checkpoint"
    )
    upload.add_argument("--name", help="display name (default: the file name)")
    upload.add_argument(
        "--component",
        choices=COMPONENT_ROLES,
        help="FLUX.1 / SD 3.5: this file is the family's ae, clip_l, clip_g or t5xxl component, "
        "not its main checkpoint (docs/flux-and-sd35.md)",
    )
    upload.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"parallel part uploads (default {DEFAULT_WORKERS})",
    )
    imported = _command(
        group,
        "import",
        commands.models_import,
        "have the service fetch a .safetensors model from an https URL",
    )
    imported.add_argument("url", metavar="URL", help="https address of the .safetensors file")
    _fm_type(imported)
    imported.add_argument(
        "--kind", choices=["checkpoint", "lora"], default="checkpoint", help="default checkpoint"
    )
    imported.add_argument("--name", help="display name (default: the file name)")
    imported.add_argument(
        "--component",
        choices=COMPONENT_ROLES,
        help="FLUX.1 / SD 3.5: this file is the family's ae, clip_l, clip_g or t5xxl component, "
        "not its main checkpoint (docs/flux-and-sd35.md)",
    )
    imported.add_argument(
        "--filename", help="stored file name (needed when the URL has no .safetensors name)"
    )
    imported.add_argument("--sha256", help="expected SHA-256 of the file (hex); a mismatch fails the import")
    imported.add_argument(
        "--token-env",
        metavar="VAR",
        help="a gated model (e.g. FLUX.1-dev): the environment variable holding your hub access "
        "token, e.g. HF_TOKEN (read from the environment, never the command line, which other "
        "users of the machine can see); used for this import only, never stored",
    )
    imported.add_argument("--wait", action="store_true", help="wait until the model is ready or failed")
    listing = _command(group, "list", commands.models_list, "list your models, newest first")
    listing.add_argument("--kind", choices=["checkpoint", "lora"])
    _fm_type(listing, required=False)
    _paging(listing, commands.RESOURCE_STATUSES, str.lower)
    _id_argument(_command(group, "get", commands.models_get, "show one model"), "model")
    _id_argument(_command(group, "delete", commands.models_delete, "delete a model and its file"), "model")
    download = _command(group, "download", commands.models_download, "download a model's file")
    _id_argument(download, "model")
    download.add_argument(
        "directory", metavar="DIRECTORY", nargs="?", default=".", help="where to write it (default: here)"
    )
    download.add_argument(
        "--epoch", type=int, help="a trained LoRA's saved epoch (save_every_n_epochs); default: the final one"
    )


def _datasets(root: argparse._SubParsersAction) -> None:
    group = root.add_parser("datasets", help="Kohya-layout image datasets").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    upload = _command(
        group,
        "upload",
        commands.datasets_upload,
        "check and upload a <repeats>_<concept>/ folder tree, or a .zip of one (unpacked here, with guards)",
    )
    upload.add_argument(
        "directory",
        metavar="DIRECTORY",
        help="the dataset folder holding <repeats>_<concept>/ folders, or a .zip file of it",
    )
    upload.add_argument(
        "--repeats", type=int, help="for a .zip of images not in <repeats>_<concept>/ folders: the repeats"
    )
    upload.add_argument("--concept", help="with --repeats: the concept's folder name (default 'concept')")
    upload.add_argument("--name", help="display name (default: the folder name)")
    upload.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"parallel file uploads (default {DEFAULT_WORKERS})",
    )
    listing = _command(group, "list", commands.datasets_list, "list your datasets, newest first")
    _paging(listing, commands.RESOURCE_STATUSES, str.lower)
    _id_argument(
        _command(group, "get", commands.datasets_get, "show one dataset and its manifest"), "dataset"
    )
    _id_argument(
        _command(group, "delete", commands.datasets_delete, "delete a dataset and its files"), "dataset"
    )
    captions = _command(
        group, "captions", commands.datasets_captions, "list a ready dataset's images with their captions"
    )
    _id_argument(captions, "dataset")
    captions.add_argument(
        "--contact-sheet",
        metavar="FILE",
        help="also draw the images' previews with their captions into one image (e.g. sheet.jpg)",
    )
    caption = _command(
        group,
        "caption",
        commands.datasets_caption,
        "caption an uploaded dataset's images into a new dataset (WD14 tags and/or a BLIP sentence)",
    )
    _id_argument(caption, "dataset")
    caption.add_argument("--name", help="the new dataset's name (default: '<source name> captioned')")
    caption.add_argument(
        "--mode",
        choices=["missing", "overwrite", "prepend", "append"],
        default="missing",
        help="missing: only images without a caption (default); overwrite; prepend/append to existing ones",
    )
    caption.add_argument("--trigger-word", help="put first in every caption (one part: no comma)")
    caption.add_argument("--no-tagger", action="store_true", help="do not use the WD14 tagger")
    caption.add_argument("--captioner", action="store_true", help="also write a BLIP sentence")
    caption.add_argument("--general-threshold", type=float, help="WD14 general tag threshold (default 0.35)")
    caption.add_argument(
        "--character-threshold", type=float, help="WD14 character tag threshold (default 0.35)"
    )
    caption.add_argument("--exclude-tags", metavar="TAGS", help="comma-separated tags never to write")
    caption.add_argument(
        "--character-tags-first", action="store_true", help="character tags before the others"
    )
    caption.add_argument(
        "--rating", choices=["none", "first", "last"], default="none", help="where the rating tag goes"
    )
    caption.add_argument(
        "--max-caption-tokens", type=int, help="the captioner's longest sentence (default 40)"
    )
    caption.add_argument(
        "--wait", action="store_true", help="wait until the new dataset is ready (or failed)"
    )
    prepare = _command(
        group,
        "prepare",
        commands.datasets_prepare,
        "crop and resize a local dataset folder before uploading it (as the service's crop does)",
    )
    prepare.add_argument("directory", metavar="DIRECTORY", help="the dataset folder to read (left as it is)")
    prepare.add_argument(
        "destination",
        metavar="DESTINATION",
        help="folder to write the prepared dataset to (outside DIRECTORY)",
    )
    _crop_arguments(prepare)
    crop = _command(
        group, "crop", commands.datasets_crop, "make a cropped copy of an uploaded dataset (server side)"
    )
    _id_argument(crop, "dataset")
    crop.add_argument("--name", help="the new dataset's name (default: '<source name> <width>x<height>')")
    crop.add_argument("--wait", action="store_true", help="wait until the new dataset is ready")
    _crop_arguments(crop)


def _crop_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resolution", type=int, help="target width in pixels (square unless --height)")
    parser.add_argument("--height", type=int, help="target height in pixels (default: the width)")
    parser.add_argument(
        "--fm-type", choices=FM_TYPES, help=f"use the family's native side ({NATIVE_SIDES}) as resolution"
    )
    parser.add_argument(
        "--mode", choices=["center", "smart"], default="center", help="which part to keep (default center)"
    )
    parser.add_argument(
        "--upscale",
        action="store_true",
        help="also enlarge images smaller than the target (default: they are only cropped, and stay smaller)",
    )


def _configs(root: argparse._SubParsersAction) -> None:
    group = root.add_parser("configs", help="Kohya training parameters").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    defaults = _command(
        group,
        "defaults",
        commands.configs_defaults,
        "print the recommended parameters (TOML with every settable key, its help and range as comments)",
    )
    _fm_type(defaults)
    defaults.add_argument("--format", choices=["toml", "json"], default="toml", help="default toml")
    validate = _command(
        group,
        "validate",
        commands.configs_validate,
        "validate a TOML/JSON parameter file (with --dataset: also plan steps, time and cost)",
    )
    validate.add_argument("file", metavar="FILE", help="TOML (.toml) or JSON parameter file")
    _fm_type(validate)
    validate.add_argument("--dataset", help="dataset id (or prefix): also show the job's plan")
    validate.add_argument(
        "--instance-type", help=f"instance type for the plan (default {DEFAULT_INSTANCE_TYPE})"
    )


def _trainings(root: argparse._SubParsersAction) -> None:
    group = root.add_parser("trainings", help="LoRA training jobs").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = _command(group, "create", commands.trainings_create, "start a training job")
    create.add_argument("--model", required=True, help="base checkpoint id (or prefix)")
    create.add_argument("--dataset", required=True, help="dataset id (or prefix)")
    create.add_argument(
        "--component",
        action="append",
        metavar="ROLE=MODEL",
        help="FLUX.1 / SD 3.5: a component model by role, e.g. t5xxl=MODEL_ID (or prefix); repeatable",
    )
    _fm_type(create, required=False, help_="base-model family (default: the base model's)")
    create.add_argument("--instance-type", help=f"e.g. ml.g5.xlarge (default {DEFAULT_INSTANCE_TYPE})")
    create.add_argument(
        "--config", help="TOML or JSON file of Kohya parameters (default: the family's defaults)"
    )
    create.add_argument("--name", help="display name")
    create.add_argument(
        "--spot",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="managed spot (default: the deployment's)",
    )
    create.add_argument("--max-runtime", type=int, help="seconds (default: the deployment's)")
    create.add_argument(
        "--sample-prompt",
        action="append",
        metavar="TEXT",
        help="render this prompt at each saved epoch (repeatable)",
    )
    create.add_argument(
        "--sample-prompts",
        metavar="FILE",
        help="JSON list or TOML [[prompts]] of {prompt, negative_prompt, seed, steps, width, height, ...}",
    )
    create.add_argument(
        "--webhook-url",
        help="https URL that receives a signed POST when the job ends (docs/notifications.md)",
    )
    create.add_argument(
        "--trigger-word",
        metavar="TEXT",
        help="activation text put first in every caption (and kept first when shuffling); "
        "images without a caption get it alone",
    )
    create.add_argument("--idempotency-key", help="retry-safe key (default: a new one per invocation)")
    create.add_argument(
        "--wait", action="store_true", help="follow the job with a progress bar until it ends"
    )
    listing = _command(group, "list", commands.trainings_list, "list your trainings, newest first")
    _paging(listing, commands.JOB_STATUSES, str.upper)
    _id_argument(
        _command(group, "get", commands.trainings_get, "show one training with its live progress"), "job"
    )
    _id_argument(_command(group, "stop", commands.trainings_stop, "stop a running training"), "job")
    delete = _command(group, "delete", commands.trainings_delete, "delete a finished training")
    _id_argument(delete, "job")
    delete.add_argument("--delete-lora", action="store_true", help="also delete the LoRA it produced")
    wait = _command(group, "wait", commands.trainings_wait, "follow a training until it ends")
    _id_argument(wait, "job")
    wait.add_argument(
        "--timeout", type=float, help="give up after this many seconds (exit 6; default: wait for the end)"
    )
    download = _command(
        group, "download", commands.trainings_download, "download the LoRA of a completed training"
    )
    _id_argument(download, "job")
    download.add_argument(
        "directory", metavar="DIRECTORY", nargs="?", default=".", help="where to write it (default: here)"
    )
    logs = _command(group, "logs", commands.trainings_logs, "print a training's log (the newest lines)")
    _id_argument(logs, "job")
    logs.add_argument("--limit", type=int, default=100, help="lines to show first (1-1000, default 100)")
    logs.add_argument("--head", action="store_true", help="start from the first line instead of the newest")
    logs.add_argument(
        "--follow", action="store_true", help="keep printing new lines until the job ends and its log is read"
    )
    plot = _command(group, "plot", commands.trainings_plot, "write a PNG chart of a training's loss curve")
    _id_argument(plot, "job")
    plot.add_argument("file", metavar="FILE", nargs="?", help="PNG file to write (default: <id>-loss.png)")

    samples = _command(
        group,
        "samples",
        commands.trainings_samples,
        "download a training's sample images and write a contact sheet (epochs x prompts)",
    )
    _id_argument(samples, "job")
    samples.add_argument(
        "directory",
        metavar="DIRECTORY",
        nargs="?",
        default=".",
        help="folder for the images and the contact sheet (default: here)",
    )


def _local(root: argparse._SubParsersAction) -> None:
    group = root.add_parser("local", help="the local runtime (everything on this machine)").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    serve = group.add_parser(
        "serve",
        help="start the local runtime until Ctrl-C (its options: loractl local serve --help)",
        add_help=False,  # --help goes to the local runtime, which owns these options
    )
    serve.add_argument("serve_args", nargs=argparse.REMAINDER, help="the local runtime's options")
    serve.set_defaults(handler=lambda args: commands.local_serve(args.serve_args))


def _console(root: argparse._SubParsersAction) -> None:
    from loractl.console.launch import add_console_arguments, run_console

    console = _command(
        root, "console", run_console, "open the web console (served on 127.0.0.1 until Ctrl-C)"
    )
    add_console_arguments(console)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loractl",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"loractl {version()}")
    _add_global_flags(parser, on_subcommand=False)
    root = parser.add_subparsers(dest="group", required=True, metavar="GROUP")
    _models(root)
    _datasets(root)
    _configs(root)
    _trainings(root)
    _local(root)
    _console(root)
    return parser


def version() -> str:
    """The installed distribution's version (pyproject.toml's), or the source tree's marker."""
    try:
        return importlib.metadata.version("lora-on-aws")
    except importlib.metadata.PackageNotFoundError:
        return "0+source"


def _wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON, read before parsing (for argparse's own errors)."""
    items = list(argv)
    return any(
        item in ("--json", "--output=json", "-ojson")
        or (item in ("-o", "--output") and index + 1 < len(items) and items[index + 1] == "json")
        for index, item in enumerate(items)
    )


def _fail(
    as_json: bool,
    status: int,
    code: str,
    message: str,
    details: Sequence[dict[str, Any]] = (),
    http_status: int | None = None,
) -> int:
    """Report an error on stderr: plain words, or with --json one JSON object (with the HTTP
    status when the API answered); returns ``status``, the exit code."""
    if as_json:
        payload: dict[str, Any] = {
            "error": {"code": code, "message": message, "details": list(details)},
            "exit_code": status,
        }
        if http_status is not None:
            payload["http_status"] = http_status
        sys.stderr.write(json.dumps(payload) + "\n")
    else:
        label = code.lower().replace("_", " ")
        errors.print(Text.assemble((label, "red"), ": ", message), soft_wrap=True, highlight=False)
        for detail in details:
            line = f"  - {detail.get('field', '?')}: {detail.get('problem', detail)}"
            errors.print(line, markup=False, highlight=False, soft_wrap=True)
    return status


# Global flags that take no value (every other one is followed by its value unless written a=b).
_SWITCHES = frozenset({"--json", "--version", "-h", "--help"})


def serve_arguments(arguments: Sequence[str]) -> list[str] | None:
    """What follows ``local serve`` when that is the command (global flags may come before it).

    Read before argparse because every option after ``serve`` belongs to the local runtime
    (argparse's REMAINDER does not collect a first argument that looks like an option).
    """
    items, index = list(arguments), 0
    while index < len(items) and items[index].startswith("-"):
        flag = items[index]
        takes_value = not (flag in _SWITCHES or "=" in flag or (flag.startswith("-o") and len(flag) > 2))
        index += 2 if takes_value else 1
    return items[index + 2 :] if items[index : index + 2] == ["local", "serve"] else None


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    local_serve = serve_arguments(arguments)
    if local_serve is not None:
        return commands.local_serve(local_serve)
    as_json = _wants_json(arguments)
    parser = build_parser()
    if as_json:
        _report_usage_errors_as_json(parser)
    try:
        args = parser.parse_args(arguments)
    except SystemExit as exit_:  # argparse exits 2 on usage errors and 0 for --help / --version
        return int(exit_.code or 0)
    args.output = args.output or "table"
    args.json = args.output == "json"
    try:
        return int(args.handler(args))
    except commands.UsageError as error:
        return _fail(as_json, EXIT_USAGE, "USAGE_ERROR", str(error), error.details)
    except ConfigError as error:
        return _fail(as_json, EXIT_USAGE, "CONFIGURATION_ERROR", str(error))
    except ApiError as error:
        if as_json:
            return _fail(True, EXIT_API, error.code, error.message, error.details, error.status)
        errors.print(error.describe(), markup=False, highlight=False, soft_wrap=True)
        return EXIT_API
    except UnexpectedResponseError as error:
        return _fail(as_json, EXIT_API, "UNEXPECTED_RESPONSE", str(error))
    except (ApiConnectionError, TransferError) as error:
        return _fail(as_json, EXIT_CONNECTION, "CONNECTION_ERROR", str(error))
    except commands.WaitTimeout as error:
        return _fail(as_json, EXIT_TIMEOUT, "TIMEOUT", str(error))
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130


def _report_usage_errors_as_json(parser: argparse.ArgumentParser) -> None:
    """Make argparse's usage errors (in the root parser and every subparser) print JSON."""

    def error(self: argparse.ArgumentParser, message: str) -> NoReturn:
        _fail(True, EXIT_USAGE, "USAGE_ERROR", f"{self.prog}: {message}")
        raise SystemExit(EXIT_USAGE)

    for each in _all_parsers(parser):
        each.error = types.MethodType(error, each)  # type: ignore[method-assign]


def _all_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _all_parsers(child)


if __name__ == "__main__":
    sys.exit(main())
