"""``loractl console``: start the console against the configured API and open it in a browser."""

from __future__ import annotations

import argparse
import sys
import webbrowser

from loractl.client import ApiClient
from loractl.config import resolve_connection
from loractl.console.server import ConsoleServer


def add_console_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument(
        "--no-browser", action="store_true", help="only print the URL (open it yourself; it holds the secret)"
    )


def run_console(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C; the API connection is the CLI's (flags, environment, profile)."""
    connection = resolve_connection(args.endpoint, args.token, args.profile, args.region, args.aws_profile)
    client = ApiClient(connection)  # fails here, before serving, when no credentials are found
    console = ConsoleServer(client, port=args.port)
    print(
        f"console for {connection.endpoint}\n  open  {console.login_url}\nPress Ctrl-C to stop.", flush=True
    )
    if not args.no_browser:
        webbrowser.open(console.login_url)
    try:
        console.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        console.stop()
        client.close()
    return 0
