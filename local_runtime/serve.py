"""``loractl local serve`` / ``make serve`` / ``python -m local_runtime serve``: run until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from local_runtime.defaults import DEFAULT_API_PORT, DEFAULT_DATA_DIR, DEFAULT_USER
from loractl.config import config_path

if TYPE_CHECKING:  # the runtime (moto, the handlers) is imported only when serving
    from local_runtime.runtime import LocalRuntimeOptions, RuntimeInfo


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=int, default=DEFAULT_API_PORT, help="API port (0: a free one; default %(default)s)"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="state folder (default %(default)s)"
    )
    parser.add_argument(
        "--aws-port", type=int, default=0, help="moto (DynamoDB + S3) port (default: a free one)"
    )
    parser.add_argument(
        "--sagemaker-port", type=int, default=0, help="local SageMaker port (default: a free one)"
    )
    parser.add_argument(
        "--user",
        action="append",
        dest="users",
        metavar="NAME",
        help=f"add a user and token (repeatable; the first gets the 'local' profile; default {DEFAULT_USER})",
    )
    parser.add_argument(
        "--max-concurrent-jobs", type=int, default=1, help="trainings run at once (default 1)"
    )
    parser.add_argument(
        "--no-cli-config", action="store_true", help="do not write the loractl 'local' profile"
    )
    parser.add_argument("--api-handler", default=None, help=argparse.SUPPRESS)  # tests: another handler build
    parser.add_argument("--events-handler", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--verbose", action="store_true", help="log every request and the handlers' INFO logs"
    )


def options_from_arguments(args: argparse.Namespace) -> LocalRuntimeOptions:
    from local_runtime.runtime import LocalRuntimeOptions

    if args.max_concurrent_jobs < 1:
        raise SystemExit("--max-concurrent-jobs must be at least 1")
    return LocalRuntimeOptions(
        data_dir=args.data_dir,
        api_port=args.port,
        aws_port=args.aws_port,
        sagemaker_port=args.sagemaker_port,
        users=tuple(args.users or [DEFAULT_USER]),
        max_concurrent_jobs=args.max_concurrent_jobs,
        write_cli_config=not args.no_cli_config,
        log_level="INFO" if args.verbose else "WARNING",
        **{
            name: value
            for name, value in (("api_handler", args.api_handler), ("events_handler", args.events_handler))
            if value
        },
    )


def banner(info: RuntimeInfo, wrote_config: bool) -> str:
    lines = [
        "lora-on-aws local runtime is up",
        f"  API            {info.api_url}",
        f"  AWS emulator   {info.aws_endpoint_url}  (DynamoDB + S3, moto)",
        f"  SageMaker      {info.sagemaker_endpoint_url}  (local job runner)",
        f"  data dir       {info.data_dir}",
    ]
    lines += [f"  token ({user}) {token}" for user, token in info.tokens.items()]
    if info.restored_items or info.restored_objects:
        lines.append(f"  restored       {info.restored_items} records, {info.restored_objects} files")
    if info.interrupted_jobs:
        lines.append(
            f"  marked failed  {', '.join(info.interrupted_jobs)} (were running when the runtime stopped)"
        )
    if wrote_config:
        lines.append(f"  loractl profile 'local' written to {config_path()}")
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def run_serve(args: argparse.Namespace) -> int:
    from local_runtime.runtime import LocalRuntime

    options = options_from_arguments(args)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s"
    )
    runtime = LocalRuntime(options)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        try:
            info = runtime.start()
        except ImportError as error:
            print(f"cannot load the service's Lambda handlers: {error}", file=sys.stderr, flush=True)
            return 1
        print(banner(info, options.write_cli_config), flush=True)
        stop_requested.wait()
        print("stopping: saving state ...", flush=True)
    finally:
        runtime.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_runtime", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_arguments(commands.add_parser("serve", help="start the local runtime"))
    args = parser.parse_args(argv)
    return run_serve(args)
