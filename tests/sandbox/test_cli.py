"""``ragflow-sandbox`` / ``python -m ragflow_sandbox`` and its CLI helpers."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from ragflow_sandbox import add_cli_arguments


def test_cli_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.port, args.data_dir) == ("127.0.0.1", 9380, ".sandbox")
    assert args.api_key is None and args.fault_rate == 0.0 and args.parse_delay == 0.0
    assert args.max_body_bytes == 1024**3


def test_module_serves_and_prints_url_and_key(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "ragflow_sandbox",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while not any(line.startswith("API key:") for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            lines.append(proc.stdout.readline().strip())  # type: ignore[union-attr]
        url = next(line for line in lines if "serving at" in line).split()[4]
        key = next(line for line in lines if line.startswith("API key:")).split()[-1]
        assert key.startswith("ragflow-") and (tmp_path / "api_key").read_text().strip() == key
        res = requests.get(
            f"{url}/api/v1/datasets", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        assert res.json() == {"code": 0, "data": [], "total_datasets": 0}
    finally:
        proc.terminate()
        code = proc.wait(timeout=15)
    # uvicorn shuts down and re-raises the signal: ended by SIGTERM, not by an error exit
    assert code == -signal.SIGTERM, code
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/api/v1/datasets", timeout=5)
