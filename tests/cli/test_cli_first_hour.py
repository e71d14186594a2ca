"""A newcomer's mistakes, each answered by one clear line; counters that tell the truth.

Real servers only: the sandbox over HTTP on 127.0.0.1, moto's S3 server, and a closed port.
End states are read with raw ``requests`` calls, not with our client. Retry behaviour is asserted
on request counts (the report's ``api_calls``), never on wall time.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from ragflow_dagster.cli import DEFAULT_BACKOFF, DEFAULT_MAX_RETRIES, main

_names = itertools.count()
SECRET = "ragflow-TOPSECRET-4f9c2a"


def _dataset() -> str:
    return f"first-hour-{os.getpid()}-{next(_names)}"


@pytest.fixture
def server(ragflow_sandbox, monkeypatch):
    monkeypatch.setenv("RAGFLOW_BASE_URL", ragflow_sandbox.base_url)
    monkeypatch.setenv("RAGFLOW_API_KEY", ragflow_sandbox.api_key)
    return ragflow_sandbox


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed when the block ends: nothing listens there


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def _code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse errors
        return int(exc.code or 0)


def _raw_datasets(server, name: str) -> list[dict]:
    """Datasets of that name, asked over raw HTTP."""
    resp = requests.get(
        f"{server.base_url}/api/v1/datasets",
        params={"name": name, "page_size": 100},
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=10,
    )
    body = resp.json()
    if body.get("code") != 0:  # the server answers "no such dataset" with a non-zero code
        return []
    return [d for d in body.get("data") or [] if d.get("name") == name]


def _raw_documents(server, dataset_id: str) -> list[dict]:
    resp = requests.get(
        f"{server.base_url}/api/v1/datasets/{dataset_id}/documents",
        params={"page_size": 100},
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=10,
    )
    return resp.json()["data"]["docs"]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------- input errors


def test_a_url_without_scheme_is_one_usage_line_and_no_request(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAGFLOW_API_KEY", SECRET)
    code = _code(["sync", str(tmp_path), "--dataset", "x", "--base-url", "127.0.0.1:9380"])
    err = capsys.readouterr().err
    assert code == 2
    assert _lines(err) == [
        "ragflow-dagster sync: error: --base-url: base_url '127.0.0.1:9380' has no scheme: "
        "use e.g. http://127.0.0.1:9380",
        "see 'ragflow-dagster sync --help'",
    ]


def test_a_closed_port_fails_after_the_default_retries_in_one_line(
    tmp_path, closed_port, monkeypatch, capsys
):
    monkeypatch.setenv("RAGFLOW_API_KEY", SECRET)
    stats = tmp_path / "stats.json"
    url = f"http://127.0.0.1:{closed_port}"
    code = main(
        ["sync", str(tmp_path), "--dataset", "x", "--base-url", url, "--stats-file", str(stats)]
    )
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    (line,) = _lines(captured.err)  # one line: no retry chatter, no traceback
    assert line.startswith(f"error: cannot reach RAGFlow at {url}: connection refused")
    assert f"({DEFAULT_MAX_RETRIES + 1} attempts)" in line and "--base-url" in line
    report = json.loads(stats.read_text())
    assert report["api_calls"] == DEFAULT_MAX_RETRIES + 1
    # the default backoff (doubling, jitter below the nominal delay) keeps this well under 3 s
    assert sum(DEFAULT_BACKOFF * 2**i for i in range(DEFAULT_MAX_RETRIES)) < 3


def test_max_retries_tunes_the_attempts(tmp_path, closed_port, monkeypatch, capsys):
    monkeypatch.setenv("RAGFLOW_API_KEY", SECRET)
    stats = tmp_path / "stats.json"
    url = f"http://127.0.0.1:{closed_port}"
    argv = ["sync", str(tmp_path), "--dataset", "x", "--base-url", url, "--stats-file", str(stats)]
    assert main([*argv, "--max-retries", "0", "--timeout", "2"]) == 1
    assert "(1 attempt)" in capsys.readouterr().err
    assert json.loads(stats.read_text())["api_calls"] == 1


def test_an_unknown_host_is_not_retried():
    """Resolving a name that does not exist fails the same way every time: no retry.

    The failure is produced without a DNS query (nothing may leave the machine): a numeric-only
    lookup of a name raises the resolver's own "name not known" error.
    """
    import urllib3.exceptions as u3
    from urllib3.connection import HTTPConnection

    from ragflow_dagster.client.transport import _transport_failure

    try:
        socket.getaddrinfo("no-such-host.example", 80, flags=socket.AI_NUMERICHOST)
    except socket.gaierror as gai:
        cause = gai
    else:  # pragma: no cover
        pytest.fail("a numeric-only lookup of a name must fail")
    conn = HTTPConnection("no-such-host.example", 80)
    try:
        raise u3.NameResolutionError("no-such-host.example", conn, cause) from cause
    except u3.NameResolutionError as exc:
        failure = requests.exceptions.ConnectionError(u3.MaxRetryError(None, "/", exc))
    text, retryable = _transport_failure(failure, 30.0)
    assert text == "unknown host 'no-such-host.example'" and retryable is False


def test_a_wrong_key_is_one_line_after_one_request_with_a_hint(server, tmp_path, capsys):
    src = _tree(tmp_path / "src", {"a.txt": "a"})
    stats = tmp_path / "stats.json"
    code = main(
        ["sync", str(src), "--dataset", _dataset(), "--api-key", SECRET, "--stats-file", str(stats)]
    )
    (line,) = _lines(capsys.readouterr().err)
    assert code == 1
    assert "refused the API key" in line and "check RAGFLOW_API_KEY / --api-key" in line
    assert "<Unauthorized" not in line and SECRET not in line
    report = json.loads(stats.read_text())
    assert report["api_calls"] == 1 and report["converged"] is False


def test_a_key_with_a_trailing_newline_works(server, tmp_path, monkeypatch, capsys):
    """A key read from a secret file ends in a newline: it is stripped where the client is built."""
    monkeypatch.setenv("RAGFLOW_API_KEY", server.api_key + "\n")
    src = _tree(tmp_path / "src", {"a.txt": "alpha"})
    name = _dataset()
    assert main(["sync", str(src), "--dataset", name, "--no-wait"]) == 0
    (ds,) = _raw_datasets(server, name)
    assert [d["name"] for d in _raw_documents(server, ds["id"])] == ["a.txt"]


@pytest.mark.parametrize(
    ("key", "url_kind"),
    [
        (SECRET, "sandbox"),  # refused by the server
        (SECRET + "\n", "closed"),  # stripped, then no server
        ("ragflow-TOP\nSECRET-4f9c2a", "sandbox"),  # a newline inside: refused locally
        (SECRET, "no-scheme"),
    ],
)
def test_the_key_is_never_printed(ragflow_sandbox, tmp_path, closed_port, key, url_kind):
    url = {
        "sandbox": ragflow_sandbox.base_url,
        "closed": f"http://127.0.0.1:{closed_port}",
        "no-scheme": "127.0.0.1:9380",
    }[url_kind]
    src = _tree(tmp_path / "src", {"a.txt": "a"})
    env = {**os.environ, "RAGFLOW_BASE_URL": url, "RAGFLOW_API_KEY": key}
    proc = subprocess.run(
        [sys.executable, "-m", "ragflow_dagster.cli", "sync", str(src), "--dataset", "k", "-vv"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode in (1, 2), out
    assert "Traceback" not in out
    for part in ("TOPSECRET", "TOP", "SECRET-4f9c2a"):
        assert part not in out


# --------------------------------------------------------------------------- stats file


def test_the_stats_file_is_written_when_the_run_aborts(tmp_path, closed_port, monkeypatch):
    monkeypatch.setenv("RAGFLOW_API_KEY", SECRET)
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"converged": True}))  # the previous run's verdict
    url = f"http://127.0.0.1:{closed_port}"
    argv = ["sync", str(tmp_path), "--dataset", "x", "--base-url", url, "--max-retries", "0"]
    assert main([*argv, "--stats-file", str(stats)]) == 1
    report = json.loads(stats.read_text())
    assert report["converged"] is False
    assert "connection refused" in report["error"] and "127.0.0.1" in report["error"]
    assert report["uploaded"] == 0 and report["dataset_name"] == "x"


def test_the_stats_file_is_written_for_bad_input_found_late(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAGFLOW_API_KEY", "ragflow-TOP SECRET")  # a space: refused locally
    monkeypatch.setenv("RAGFLOW_BASE_URL", "http://127.0.0.1:9")
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"converged": True}))
    assert main(["sync", str(tmp_path), "--dataset", "x", "--stats-file", str(stats)]) == 2
    report = json.loads(stats.read_text())
    assert report["converged"] is False and report["error"].startswith("bad input: --api-key")
    assert "SECRET" not in stats.read_text() + capsys.readouterr().err


# --------------------------------------------------------------------------- honest counters


def test_dry_run_says_would_upload(server, tmp_path, capsys):
    src = _tree(tmp_path / "src", {f"d{i}.txt": f"doc {i}" for i in range(9)})
    name = _dataset()
    stats = tmp_path / "stats.json"
    assert main(["sync", str(src), "--dataset", name, "--dry-run", "--stats-file", str(stats)]) == 0
    out = capsys.readouterr().out
    assert "would upload 9" in out and "uploaded 9" not in out
    report = json.loads(stats.read_text())
    assert report["dry_run"] is True and report["uploaded"] == 9 and report["api_calls"] == 1
    assert _raw_datasets(server, name) == []  # nothing was created

    assert main(["sync", str(src), "--dataset", name, "--no-wait"]) == 0
    capsys.readouterr()
    (src / "d0.txt").write_text("changed")
    (src / "new.txt").write_text("new")
    assert main(["sync", str(src), "--dataset", name, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would upload 1, replace 1, move 0, delete 0; unchanged 8" in out


def test_a_no_op_sync_reports_its_real_api_calls_and_singular_nouns(server, tmp_path, capsys):
    src = _tree(tmp_path / "src", {"only.txt": "one"})
    name = _dataset()
    stats = tmp_path / "stats.json"
    assert main(["sync", str(src), "--dataset", name]) == 0
    capsys.readouterr()
    assert main(["sync", str(src), "--dataset", name, "--stats-file", str(stats)]) == 0
    out = capsys.readouterr().out
    report = json.loads(stats.read_text())
    # find the dataset, list its documents: two requests, and the report says so
    assert report["unchanged"] == 1 and report["api_calls"] == 2
    assert "scanned 1 file:" in out and "2 API calls" in out


def test_a_failed_parse_is_counted_and_named_by_its_file(server, tmp_path, capsys):
    src = _tree(tmp_path / "src", {"ok.txt": "fine", "bad.txt": "RAGFLOW_SANDBOX_FAIL"})
    stats = tmp_path / "stats.json"
    assert main(["sync", str(src), "--dataset", _dataset(), "--stats-file", str(stats)]) == 1
    err = capsys.readouterr().err
    report = json.loads(stats.read_text())
    assert report["parse_failed"] == 1 and report["converged"] is False
    assert "parse failed 1" in err
    (error,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert error.startswith("error: bad.txt: parse failed (document ")
    assert report["errors"][0].startswith("bad.txt: parse failed (document ")


def test_the_guard_names_the_cli_flag(server, tmp_path, capsys):
    src = _tree(tmp_path / "src", {f"f{i}.txt": f"file {i}" for i in range(4)})
    name = _dataset()
    assert main(["sync", str(src), "--dataset", name, "--no-wait"]) == 0
    for i in range(3):
        (src / f"f{i}.txt").unlink()
    assert main(["sync", str(src), "--dataset", name]) == 1
    err = capsys.readouterr().err
    assert "(--allow-mass-delete)" in err and "allow_mass_delete" not in err


# --------------------------------------------------------------------------- output hygiene


def test_argument_errors_are_one_line_and_a_pointer_to_help(capsys):
    assert _code(["sync", "--max-workers", "0"]) == 2
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 2 and lines[1] == "see 'ragflow-dagster sync --help'"
    assert "usage:" not in "\n".join(lines)


def test_each_log_line_once_across_runs_in_one_process(server, tmp_path, capsys):
    src = _tree(tmp_path / "src", {"a.txt": "a"})
    name = _dataset()
    for _ in range(2):
        assert main(["sync", str(src), "--dataset", name, "-v", "--no-wait"]) == 0
        err = capsys.readouterr().err
        assert len(re.findall(r"plan for " + re.escape(name), err)) == 1
    # and the process's logging is left as it was (a library user's handlers still get records)
    import logging

    pkg = logging.getLogger("ragflow_dagster")
    assert pkg.propagate is True and pkg.handlers == [] and pkg.level == logging.NOTSET


def test_progress_rates_are_sane(server, tmp_path, capsys):
    src = _tree(tmp_path / "src", {f"p{i}.txt": f"page {i}" for i in range(20)})
    assert main(["sync", str(src), "--dataset", _dataset(), "--progress"]) == 0
    err = capsys.readouterr().err
    rates = [float(r) for r in re.findall(r"([\d.]+)file/s", err)]
    assert all(r < 100_000 for r in rates), rates


# --------------------------------------------------------------------------- no stray dataset


def test_a_source_that_cannot_be_listed_leaves_no_dataset(server, s3_endpoint, tmp_path, capsys):
    name = _dataset()
    stats = tmp_path / "stats.json"
    code = main(
        [
            "sync",
            f"s3://nonexistent-bucket-{os.getpid()}/x",
            "--dataset",
            name,
            "--s3-endpoint-url",
            s3_endpoint.endpoint_url,
            "--stats-file",
            str(stats),
        ]
    )
    (line,) = _lines(capsys.readouterr().err)
    assert code == 1 and line.startswith("error: SOURCE s3://nonexistent-bucket")
    assert _raw_datasets(server, name) == []
    assert json.loads(stats.read_text())["converged"] is False


# --------------------------------------------------------------------------- the client itself


def test_the_client_strips_the_key_and_refuses_bad_ones_without_showing_them(ragflow_sandbox):
    from ragflow_dagster.client import RAGFlowClient

    with RAGFlowClient(ragflow_sandbox.base_url, f"  {ragflow_sandbox.api_key}\r\n") as client:
        assert client.find_dataset("no-such-dataset-anywhere") is None  # the key was accepted
        assert client.request_count == 1
    for bad in ("ragflow-TOP SECRET", "ragflow-TOP\nSECRET", "ragflow-TOPSECRET\x00", "\n"):
        with pytest.raises(ValueError) as info:
            RAGFlowClient(ragflow_sandbox.base_url, bad)
        assert "api_key" in str(info.value)
        assert "TOP" not in str(info.value) and "SECRET" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("127.0.0.1:9380", "has no scheme: use e.g. http://127.0.0.1:9380"),
        ("localhost", "has no scheme"),
        ("ftp://127.0.0.1:9380", "must be http or https"),
        ("http://127.0.0.1:port", "the port is not a number"),
        ("http:///api/v1", "has no host"),
        ("", "base_url is required"),
    ],
)
def test_the_client_refuses_unusable_base_urls_at_construction(url, needle):
    from ragflow_dagster.client import RAGFlowClient

    with pytest.raises(ValueError, match=re.escape(needle)):
        RAGFlowClient(url, SECRET)
