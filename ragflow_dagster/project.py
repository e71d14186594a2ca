"""The runnable project behind ``definitions.py``: configuration from the environment, and the
embedded default (the bundled sample documents synced into a local sandbox server).

Environment:

=========================  ===================================================================
``RAGFLOW_BASE_URL``       the RAGFlow server; unset → the embedded sandbox (loudly logged)
``RAGFLOW_API_KEY``        its API key (required with ``RAGFLOW_BASE_URL``)
``RAGFLOW_SOURCE``         a folder or ``s3://bucket/prefix`` (default: ``examples/sample_docs``)
``RAGFLOW_DATASET``        the dataset name (default: ``acme_handbook``)
``RAGFLOW_PARTITIONING``   ``none`` (default), ``shards`` or ``files``
``RAGFLOW_SANDBOX_DIR``    where the embedded sandbox keeps its data (default:
                           ``$DAGSTER_HOME/ragflow-sandbox`` or ``.sandbox/``)
=========================  ===================================================================
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import requests

logger = logging.getLogger("ragflow_dagster")

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DOCS = REPO_ROOT / "examples" / "sample_docs"
DEFAULT_DATASET = "acme_handbook"
_STATE_FILE = "server.json"


@dataclass(frozen=True)
class ServerInfo:
    """Where a RAGFlow server answers and with which key."""

    base_url: str
    api_key: str
    embedded: bool = False


def sandbox_dir() -> Path:
    """The embedded sandbox's data directory."""
    explicit = os.environ.get("RAGFLOW_SANDBOX_DIR")
    if explicit:
        return Path(explicit)
    home = os.environ.get("DAGSTER_HOME")
    return Path(home) / "ragflow-sandbox" if home else Path.cwd() / ".sandbox"


def _healthy(base_url: str, api_key: str) -> bool:
    try:
        resp = requests.get(
            f"{base_url}/api/v1/datasets",
            params={"page_size": 1},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=2,
        )
        return resp.status_code == 200 and resp.json().get("code") == 0
    except (requests.RequestException, ValueError):
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_embedded_sandbox(data_dir: Path | None = None, *, timeout: float = 30.0) -> ServerInfo:
    """Reuse the embedded sandbox if one answers for ``data_dir``, else start one.

    The server runs as a child process of this one and stops when this process exits. Its data
    (and its API key) persist in ``data_dir``, so the next start sees the same datasets.
    """
    root = data_dir or sandbox_dir()
    root.mkdir(parents=True, exist_ok=True)
    state_path = root / _STATE_FILE
    state: dict[str, object] = {}
    if state_path.exists():
        try:
            state = json.loads(state_path.read_text())
        except ValueError:
            state = {}
    api_key = str(state.get("api_key") or "ragflow-" + secrets.token_urlsafe(24))
    base_url = str(state.get("base_url") or "")
    if base_url and _healthy(base_url, api_key):
        return ServerInfo(base_url, api_key, embedded=True)

    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-m",
        "ragflow_sandbox",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(root / "data"),
        "--api-key",
        api_key,
    ]
    log_file = open(root / "server.log", "ab")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(
        cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    log_file.close()
    deadline = time.monotonic() + timeout
    while not _healthy(base_url, api_key):
        if proc.poll() is not None:
            raise RuntimeError(
                f"the embedded RAGFlow sandbox exited with code {proc.returncode}; "
                f"see {root / 'server.log'}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the embedded RAGFlow sandbox did not answer within {timeout}s")
        time.sleep(0.1)
    state_path.write_text(json.dumps({"base_url": base_url, "api_key": api_key, "pid": proc.pid}))

    def _stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    atexit.register(_stop)
    return ServerInfo(base_url, api_key, embedded=True)


def server_from_env() -> ServerInfo:
    """``RAGFLOW_BASE_URL``/``RAGFLOW_API_KEY``, or the embedded sandbox when no URL is set."""
    base_url = os.environ.get("RAGFLOW_BASE_URL", "").strip()
    if base_url:
        api_key = os.environ.get("RAGFLOW_API_KEY", "")
        if not api_key:
            raise RuntimeError("RAGFLOW_BASE_URL is set but RAGFLOW_API_KEY is not")
        return ServerInfo(base_url.rstrip("/"), api_key)
    info = ensure_embedded_sandbox()
    banner = (
        f"RAGFLOW_BASE_URL is not set: using the LOCAL RAGFlow SANDBOX at {info.base_url} "
        f"(data in {sandbox_dir()}). Set RAGFLOW_BASE_URL and RAGFLOW_API_KEY for a real server."
    )
    logger.warning("=" * 24 + " %s " + "=" * 24, banner)
    print(f"*** {banner} ***", file=sys.stderr)
    return info


def source_from_env() -> str:
    return os.environ.get("RAGFLOW_SOURCE", "").strip() or str(SAMPLE_DOCS)


def dataset_from_env() -> str:
    return os.environ.get("RAGFLOW_DATASET", "").strip() or DEFAULT_DATASET


_PARTITIONINGS: dict[str, Literal["none", "shards", "files"]] = {
    "none": "none",
    "shards": "shards",
    "files": "files",
}


def partitioning_from_env() -> Literal["none", "shards", "files"]:
    value = os.environ.get("RAGFLOW_PARTITIONING", "none").strip() or "none"
    if value not in _PARTITIONINGS:
        raise ValueError(f"RAGFLOW_PARTITIONING must be none, shards or files, got {value!r}")
    return _PARTITIONINGS[value]


@dataclass(frozen=True)
class Project:
    """The project's ``Definitions`` and what they were built from."""

    defs: object  # dg.Definitions (kept untyped so this module imports without Dagster)
    ingestion: object  # RAGFlowIngestion
    server: ServerInfo


def build_project(server: ServerInfo | None = None) -> Project:
    """The project's ``Definitions``: one ingestion configured from the environment."""
    import dagster as dg

    from ragflow_dagster.assets import build_ragflow_ingestion
    from ragflow_dagster.resource import RAGFlowResource

    info = server or server_from_env()
    ingestion = build_ragflow_ingestion(
        source=source_from_env(),
        dataset=dataset_from_env(),
        partitioning=partitioning_from_env(),
    )
    if info.embedded:
        resource = RAGFlowResource(base_url=info.base_url, api_key=info.api_key)
    else:
        resource = RAGFlowResource(
            base_url=dg.EnvVar("RAGFLOW_BASE_URL"), api_key=dg.EnvVar("RAGFLOW_API_KEY")
        )
    from ragflow_dagster.sensors import build_ragflow_reconcile_schedule, build_ragflow_sensor

    defs = dg.Definitions(
        assets=list(ingestion.assets),
        jobs=[ingestion.job],
        resources={ingestion.resource_key: resource},
        sensors=[build_ragflow_sensor(ingestion)],
        schedules=[build_ragflow_reconcile_schedule(ingestion)],
    )
    return Project(defs=defs, ingestion=ingestion, server=info)
