"""``loractl local serve`` / ``make serve`` / ``python -m local_runtime serve``: run until Ctrl-C."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from local_runtime.defaults import DEFAULT_API_PORT, DEFAULT_DATA_DIR, DEFAULT_USER, RUNTIME_INFO_FILE
from loractl.config import config_path

if TYPE_CHECKING:  # the runtime (moto, the handlers) is imported only when serving
    from local_runtime.runtime import LocalRuntimeOptions, RuntimeInfo
    from loractl.console.server import ConsoleServer


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
        "--max-concurrent-jobs",
        type=int,
        default=1,
        help="trainings run at once: the local training queue's GPU budget (default 1)",
    )
    parser.add_argument(
        "--direct-launch",
        action="store_true",
        help="call CreateTrainingJob directly instead of queueing trainings in the local AWS Batch",
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
        queue_trainings=not args.direct_launch,
        write_cli_config=not args.no_cli_config,
        log_level="INFO" if args.verbose else "WARNING",
        **{
            name: value
            for name, value in (("api_handler", args.api_handler), ("events_handler", args.events_handler))
            if value
        },
    )


def banner(info: RuntimeInfo, wrote_config: bool, console_url: str | None = None) -> str:
    lines = [
        "lora-on-aws local runtime is up",
        f"  API            {info.api_url}",
        f"  AWS emulator   {info.aws_endpoint_url}  (DynamoDB + S3, moto)",
        f"  SageMaker      {info.sagemaker_endpoint_url}  (local job runner)",
        f"  data dir       {info.data_dir}",
    ]
    lines += [f"  token ({user}) {token}" for user, token in info.tokens.items()]
    if console_url:
        lines.append(f"  console        {console_url}  (open it in a browser; the link holds a secret)")
    if info.restored_items or info.restored_objects:
        lines.append(f"  restored       {info.restored_items} records, {info.restored_objects} files")
    if info.interrupted_jobs:
        lines.append(
            f"  marked failed  {', '.join(info.interrupted_jobs)} (were running when the runtime stopped)"
        )
    if wrote_config:
        lines.append(f"  loractl profile 'local' written to {config_path()}")
    lines.append(loractl_hint())
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def loractl_hint() -> str:
    """How to run loractl from this shell: it is only on the PATH once the venv is activated."""
    script = Path(sys.executable).parent / "loractl"
    on_path = shutil.which("loractl")
    if on_path and Path(on_path).resolve() == script.resolve():
        return "  run loractl      loractl models list   (loractl --help)"
    shown = _relative(script)
    if not script.exists():
        return "  run loractl      python -m loractl.main models list   (or pip install -e '.[cli]')"
    return (
        f"  run loractl      {shown} models list   "
        f"(or put it on your PATH: source {_relative(script.parent / 'activate')})"
    )


def _relative(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (what a user would type)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def running_instance(data_dir: Path) -> dict[str, Any] | None:
    """The runtime.json of a runtime still running on ``data_dir`` (its process alive), if any."""
    path = data_dir / RUNTIME_INFO_FILE
    try:
        info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        os.kill(int(info["pid"]), 0)  # signal 0: only checks that the process exists
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no file, unreadable, or left behind by a runtime that is gone (kill -9)
    return info


def start_console(info: RuntimeInfo, user: str) -> ConsoleServer:
    """The browser console (loractl/console) as ``user`` (the first --user), on a free loopback port."""
    from loractl.client import ApiClient
    from loractl.config import Connection
    from loractl.console.server import ConsoleServer

    return ConsoleServer(ApiClient(Connection(info.api_url, token=info.tokens[user]))).start()


def run_serve(args: argparse.Namespace) -> int:
    from local_runtime.runtime import LocalRuntime

    options = options_from_arguments(args)
    other = running_instance(options.data_dir.resolve())
    if other is not None:
        print(
            f"a local runtime is already running on {options.data_dir} (pid {other.get('pid')}, "
            f"API {other.get('api_url')}): use it, stop it first (Ctrl-C in its terminal), "
            "or start another with --data-dir DIR --port 0",
            file=sys.stderr,
            flush=True,
        )
        return 1
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
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            print(
                f"port {options.api_port} is in use (another local runtime?): stop it, or pass --port N "
                "(--port 0 picks a free one)",
                file=sys.stderr,
                flush=True,
            )
            return 1
        console = start_console(info, options.users[0])
        print(banner(info, options.write_cli_config, console.login_url), flush=True)
        stop_requested.wait()
        console.stop()
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
