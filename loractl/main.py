"""loractl: the command-line client of lora-on-aws (a deployed stack or the local runtime)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from loractl import commands
from loractl.api_shapes import UnexpectedResponseError
from loractl.client import ApiConnectionError, ApiError
from loractl.config import ConfigError
from loractl.output import errors
from loractl.uploads import DEFAULT_WORKERS, TransferError

EXIT_OK, EXIT_USAGE, EXIT_API, EXIT_JOB_FAILED, EXIT_CONNECTION = 0, 2, 3, 4, 5
EPILOG = """\
connection (flags > environment > config file):
  --endpoint / LORACTL_ENDPOINT     API base URL
  --token / LORACTL_TOKEN           bearer token (local runtime); without one, requests are
                                    SigV4-signed with the standard AWS credential chain
  --profile / LORACTL_PROFILE       profile in the config file ($LORACTL_CONFIG or
                                    ~/.config/loractl/config.toml; `local serve` writes 'local')

exit codes:
  0  success
  2  usage error (bad arguments, unreadable file, invalid local dataset, no endpoint)
  3  the API refused the request (the error and every problem field are printed)
  4  the training job ended FAILED or STOPPED (trainings create --wait / trainings wait)
  5  connection error (endpoint unreachable, upload/download failed, no AWS credentials)

examples:
  loractl local serve
  loractl models upload base.safetensors --fm-type sd15
  loractl datasets upload ./my-dataset --name cats
  loractl trainings create --model MODEL_ID --dataset DATASET_ID --fm-type sd15 \\
      --instance-type ml.g5.xlarge --config lora.toml --wait
  loractl trainings logs JOB_ID --follow
  loractl trainings plot JOB_ID --output loss.png
  loractl trainings download JOB_ID ./loras
"""

Handler = Callable[[argparse.Namespace], int]


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("--endpoint", help="API base URL (env LORACTL_ENDPOINT)")
    group.add_argument("--token", help="bearer token for the local runtime (env LORACTL_TOKEN)")
    group.add_argument("--profile", help="config-file profile (env LORACTL_PROFILE)")
    group.add_argument("--region", help="AWS region for SigV4 (default: from the endpoint)")
    group.add_argument(
        "--aws-profile", help="AWS credentials profile for SigV4 (default: the standard chain)"
    )
    group.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _command(
    parent: argparse._SubParsersAction, name: str, handler: Handler, help_: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = parent.add_parser(name, help=help_, description=help_)
    _add_connection_flags(parser)
    parser.set_defaults(handler=handler)
    return parser


def _fm_type(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--fm-type", choices=["sd15", "sdxl"], required=required, help="base-model family")


def _models(root: argparse._SubParsersAction) -> None:
    group = root.add_parser("models", help="base checkpoints and LoRAs").add_subparsers(
        dest="action", required=True
    )
    upload = _command(
        group, "upload", commands.models_upload, "upload a .safetensors file (parallel multipart)"
    )
    upload.add_argument("file", type=str)
    _fm_type(upload)
    upload.add_argument("--kind", choices=["checkpoint", "lora"], default="checkpoint")
    upload.add_argument("--name", help="display name (default: the file name)")
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
    imported.add_argument("url")
    _fm_type(imported)
    imported.add_argument("--kind", choices=["checkpoint", "lora"], default="checkpoint")
    imported.add_argument("--name", help="display name (default: the file name)")
    imported.add_argument(
        "--filename", help="stored file name (needed when the URL has no .safetensors name)"
    )
    imported.add_argument("--sha256", help="expected SHA-256 of the file (hex); a mismatch fails the import")
    imported.add_argument("--wait", action="store_true", help="wait until the model is ready or failed")
    listing = _command(group, "list", commands.models_list, "list your models, newest first")
    listing.add_argument("--kind", choices=["checkpoint", "lora"])
    _fm_type(listing, required=False)
    listing.add_argument("--status")
    listing.add_argument("--limit", type=int)
    _command(group, "get", commands.models_get, "show one model").add_argument("id")
    _command(group, "delete", commands.models_delete, "delete a model and its file").add_argument("id")
    download = _command(group, "download", commands.models_download, "download a model's file")
    download.add_argument("id")
    download.add_argument("directory", nargs="?", default=".")
    download.add_argument(
        "--epoch", type=int, help="a trained LoRA's saved epoch (save_every_n_epochs); default: the final one"
    )


def _datasets(root: argparse._SubParsersAction) -> None:
    group = root.add_parser("datasets", help="Kohya-layout image datasets").add_subparsers(
        dest="action", required=True
    )
    upload = _command(
        group, "upload", commands.datasets_upload, "check and upload a <repeats>_<concept>/ folder tree"
    )
    upload.add_argument("directory")
    upload.add_argument("--name", help="display name (default: the folder name)")
    upload.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"parallel file uploads (default {DEFAULT_WORKERS})",
    )
    listing = _command(group, "list", commands.datasets_list, "list your datasets, newest first")
    listing.add_argument("--status")
    listing.add_argument("--limit", type=int)
    _command(group, "get", commands.datasets_get, "show one dataset and its manifest").add_argument("id")
    _command(group, "delete", commands.datasets_delete, "delete a dataset and its files").add_argument("id")
    prepare = _command(
        group,
        "prepare",
        commands.datasets_prepare,
        "crop and resize a local dataset folder before uploading it (as the service's crop does)",
    )
    prepare.add_argument("directory")
    prepare.add_argument("--output", required=True, help="folder to write the prepared dataset to")
    _crop_arguments(prepare)
    crop = _command(
        group, "crop", commands.datasets_crop, "make a cropped copy of an uploaded dataset (server side)"
    )
    crop.add_argument("id")
    crop.add_argument("--name", help="the new dataset's name (default: '<source name> <width>x<height>')")
    crop.add_argument("--wait", action="store_true", help="wait until the new dataset is ready")
    _crop_arguments(crop)


def _crop_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resolution", type=int, help="target width in pixels (square unless --height)")
    parser.add_argument("--height", type=int, help="target height in pixels")
    parser.add_argument(
        "--fm-type", choices=["sd15", "sdxl"], help="use the family's native side (512 / 1024) as resolution"
    )
    parser.add_argument("--mode", choices=["center", "smart"], default="center", help="which part to keep")
    parser.add_argument("--upscale", action="store_true", help="also enlarge images smaller than the target")


def _configs(root: argparse._SubParsersAction) -> None:
    group = root.add_parser("configs", help="Kohya training parameters").add_subparsers(
        dest="action", required=True
    )
    defaults = _command(group, "defaults", commands.configs_defaults, "print the recommended parameters")
    _fm_type(defaults)
    defaults.add_argument("--format", choices=["toml", "json"], default="toml")
    validate = _command(group, "validate", commands.configs_validate, "validate a TOML/JSON parameter file")
    validate.add_argument("file")
    _fm_type(validate)


def _trainings(root: argparse._SubParsersAction) -> None:
    group = root.add_parser("trainings", help="LoRA training jobs").add_subparsers(
        dest="action", required=True
    )
    create = _command(group, "create", commands.trainings_create, "start a training job")
    create.add_argument("--model", required=True, help="base checkpoint id")
    create.add_argument("--dataset", required=True, help="dataset id")
    _fm_type(create)
    create.add_argument("--instance-type", required=True, help="e.g. ml.g5.xlarge")
    create.add_argument("--config", help="TOML or JSON file of Kohya parameters")
    create.add_argument("--name")
    create.add_argument(
        "--spot",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="managed spot (default: the deployment's)",
    )
    create.add_argument("--max-runtime", type=int, help="seconds")
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
    create.add_argument("--idempotency-key", help="retry-safe key (default: a new one per invocation)")
    create.add_argument(
        "--wait", action="store_true", help="follow the job with a progress bar until it ends"
    )
    listing = _command(group, "list", commands.trainings_list, "list your trainings, newest first")
    listing.add_argument("--status")
    listing.add_argument("--limit", type=int)
    _command(group, "get", commands.trainings_get, "show one training with its live progress").add_argument(
        "id"
    )
    _command(group, "stop", commands.trainings_stop, "stop a running training").add_argument("id")
    delete = _command(group, "delete", commands.trainings_delete, "delete a finished training")
    delete.add_argument("id")
    delete.add_argument("--delete-lora", action="store_true", help="also delete the LoRA it produced")
    wait = _command(group, "wait", commands.trainings_wait, "follow a training until it ends")
    wait.add_argument("id")
    wait.add_argument("--timeout", type=float, help="give up after this many seconds")
    download = _command(
        group, "download", commands.trainings_download, "download the LoRA of a completed training"
    )
    download.add_argument("id")
    download.add_argument("directory", nargs="?", default=".")
    logs = _command(group, "logs", commands.trainings_logs, "print a training's log (the newest lines)")
    logs.add_argument("id")
    logs.add_argument("--limit", type=int, default=100, help="lines to show first (1-1000, default 100)")
    logs.add_argument("--head", action="store_true", help="start from the first line instead of the newest")
    logs.add_argument(
        "--follow", action="store_true", help="keep printing new lines until the job ends and its log is read"
    )
    plot = _command(group, "plot", commands.trainings_plot, "write a PNG chart of a training's loss curve")
    plot.add_argument("id")
    plot.add_argument("--output", help="PNG file to write (default: <id>-loss.png)")

    samples = _command(
        group,
        "samples",
        commands.trainings_samples,
        "download a training's sample images and write a contact sheet (epochs x prompts)",
    )
    samples.add_argument("id")
    samples.add_argument("--output", default=".", help="folder for the images and the contact sheet")


def _local(root: argparse._SubParsersAction) -> None:
    group = root.add_parser("local", help="the local runtime (everything on this machine)").add_subparsers(
        dest="action", required=True
    )
    serve = group.add_parser("serve", help="start the local runtime until Ctrl-C")
    from local_runtime.serve import add_serve_arguments  # the local runtime is only needed here

    add_serve_arguments(serve)
    serve.set_defaults(handler=commands.local_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loractl",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root = parser.add_subparsers(dest="group", required=True)
    _models(root)
    _datasets(root)
    _configs(root)
    _trainings(root)
    _local(root)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on usage errors and 0 for --help
        return int(exit_.code or 0)
    try:
        return int(args.handler(args))
    except commands.UsageError as error:
        errors.print(f"[red]usage error:[/red] {error}")
        return EXIT_USAGE
    except ConfigError as error:
        errors.print(f"[red]configuration error:[/red] {error}")
        return EXIT_USAGE
    except ApiError as error:
        errors.print(error.describe(), markup=False, highlight=False)
        return EXIT_API
    except UnexpectedResponseError as error:
        errors.print(f"[red]unexpected API response:[/red] {error}")
        return EXIT_API
    except (ApiConnectionError, TransferError) as error:
        errors.print(f"[red]connection error:[/red] {error}")
        return EXIT_CONNECTION
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
