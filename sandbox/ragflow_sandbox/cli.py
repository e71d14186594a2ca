"""``ragflow-sandbox`` / ``python -m ragflow_sandbox``: serve until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import sys
from pathlib import Path

from . import constants as C
from .server import READY_MARKER, generate_api_key


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox options to ``parser``.

    Example:
        >>> p = argparse.ArgumentParser()
        >>> add_cli_arguments(p)
        >>> p.parse_args(["--port", "0"]).port
        0
    """
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=9380, help="TCP port, 0 for a free one (default 9380)"
    )
    parser.add_argument(
        "--data-dir",
        default=".sandbox",
        help="database and blobs; kept across restarts (default ./.sandbox)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="API key to accept (default: the key saved in the data dir, else a new one)",
    )
    parser.add_argument(
        "--fault-rate", type=float, default=0.0, help="fraction of /api/v1 requests that fail"
    )
    parser.add_argument("--fault-seed", type=int, default=None, help="seed of the fault draws")
    parser.add_argument(
        "--parse-delay",
        type=float,
        default=0.0,
        help="seconds each document stays RUNNING before it is parsed (default 0)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=C.DEFAULT_MAX_BODY_BYTES,
        help="request body limit in bytes (default 1 GiB, like RAGFlow)",
    )
    parser.add_argument(
        "--parser-threads", type=int, default=2, help="parser worker threads (default 2)"
    )
    parser.add_argument(
        "--parse-serial",
        action="store_true",
        help="one parser that spends --parse-delay on each document in turn (a real server's "
        "single task executor)",
    )
    parser.add_argument(
        "--log-level", default="warning", help="uvicorn log level (default warning)"
    )
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)


def _resolve_key(data_dir: Path, given: str | None) -> str:
    key_file = data_dir / "api_key"
    if given:
        return given
    if key_file.exists():
        return key_file.read_text().strip()
    key = generate_api_key()
    key_file.write_text(key + "\n")
    with contextlib.suppress(OSError):
        key_file.chmod(0o600)
    return key


def run_cli(args: argparse.Namespace) -> int:
    """Serve the sandbox with the parsed ``args`` until interrupted; returns the exit code."""
    import uvicorn

    from .app import SandboxConfig, build_app
    from .server import _bind, _url_host, uvicorn_config

    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    api_key = _resolve_key(data_dir, args.api_key)
    app = build_app(
        SandboxConfig(
            data_dir=str(data_dir),
            api_key=api_key,
            parse_delay=args.parse_delay,
            fault_rate=args.fault_rate,
            fault_seed=args.fault_seed,
            max_body_bytes=args.max_body_bytes,
            parser_threads=args.parser_threads,
            parse_serial=args.parse_serial,
        )
    )
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    base_url = f"http://{_url_host(args.host)}:{port}"

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if args.quiet:
                print(f"{READY_MARKER} {base_url}", flush=True)
            else:
                print(
                    f"RAGFlow sandbox serving at {base_url}  (API: {base_url}/api/v1)", flush=True
                )
                print(f"API key: {api_key}", flush=True)
                print(f"Data dir: {data_dir}", flush=True)
                print("Press Ctrl-C to stop.", flush=True)

    logging.basicConfig(
        level=args.log_level.upper() if isinstance(args.log_level, str) else logging.WARNING
    )
    server = _Server(uvicorn_config(app, log_level=args.log_level))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ragflow_sandbox``."""
    parser = argparse.ArgumentParser(
        prog="ragflow-sandbox", description="Run a RAGFlow-compatible sandbox server."
    )
    add_cli_arguments(parser)
    return run_cli(parser.parse_args(argv))
