"""``ragflow-dagster sync`` end to end against the sandbox server (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragflow_dagster.cli import main, parse_size
from ragflow_dagster.client import RAGFlowClient
from ragflow_dagster.sync.identity import managed_path

_names = itertools.count()


def _dataset() -> str:
    return f"cli-{os.getpid()}-{next(_names)}"


@pytest.fixture
def server(ragflow_sandbox, monkeypatch):
    monkeypatch.setenv("RAGFLOW_BASE_URL", ragflow_sandbox.base_url)
    monkeypatch.setenv("RAGFLOW_API_KEY", ragflow_sandbox.api_key)
    return ragflow_sandbox


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def _docs(server, name: str) -> dict[str, object]:
    with RAGFlowClient(server.base_url, server.api_key) as client:
        ds = client.find_dataset(name)
        assert ds is not None
        return {managed_path(d.meta_fields): d for d in client.iter_documents(ds.id)}


def _sync(*args: str | Path) -> int:
    return main(["sync", *(str(a) for a in args), "--no-progress"])


def test_sync_creates_the_dataset_waits_for_parsing_and_writes_stats(server, tmp_path, capsys):
    src = _tree(
        tmp_path / "src",
        {
            "a.md": "# Alpha\nThe alpha handbook.",
            "sub/b.txt": "Bravo notes about vacation policy.",
            "sub/deep/c.txt": "Charlie.",
        },
    )
    name = _dataset()
    stats = tmp_path / "out" / "stats.json"
    assert _sync(src, "--dataset", name, "--stats-file", stats) == 0
    report = json.loads(stats.read_text())
    for key in (
        "scanned",
        "uploaded",
        "replaced",
        "moved",
        "deleted",
        "unchanged",
        "skipped",
        "failed",
    ):
        assert key in report
    assert report["uploaded"] == 3 and report["failed"] == 0 and report["converged"] is True
    out = capsys.readouterr().out
    assert "uploaded 3" in out and "converged" in out
    docs = _docs(server, name)
    assert set(docs) == {"a.md", "sub/b.txt", "sub/deep/c.txt"}
    assert all(d.run == "DONE" and d.chunk_count > 0 for d in docs.values())

    # Again: nothing to do.
    assert _sync(src, "--dataset", name, "--stats-file", stats) == 0
    again = json.loads(stats.read_text())
    assert again["unchanged"] == 3 and again["uploaded"] == 0

    # A change and a removal.
    (src / "a.md").write_text("# Alpha\nRewritten.")
    (src / "sub/deep/c.txt").unlink()
    assert _sync(src, "--dataset", name, "--stats-file", stats) == 0
    third = json.loads(stats.read_text())
    assert (third["replaced"], third["deleted"], third["unchanged"]) == (1, 1, 1)
    assert set(_docs(server, name)) == {"a.md", "sub/b.txt"}


def test_legacy_filters_apply(server, tmp_path):
    src = _tree(
        tmp_path / "src",
        {
            "keep.md": "keep",
            "skip.tmp": "temp",
            "node_modules/x.md": "vendored",
            ".hidden/y.md": "hidden",
            "big.md": "x" * 5000,
            "deep/er/z.md": "too deep",
        },
    )
    name = _dataset()
    stats = tmp_path / "stats.json"
    code = _sync(
        src,
        "--dataset",
        name,
        "--extensions",
        "md",
        "txt",
        "--exclude-dirs",
        "node_modules",
        "--exclude-patterns",
        "*.tmp",
        "--max-size",
        "1k",
        "--max-depth",
        "2",
        "--stats-file",
        stats,
    )
    assert code == 0
    assert set(_docs(server, name)) == {"keep.md"}
    assert json.loads(stats.read_text())["uploaded"] == 1


def test_dry_run_changes_nothing(server, tmp_path, capsys):
    src = _tree(tmp_path / "src", {"a.txt": "a", "b.txt": "b"})
    name = _dataset()
    stats = tmp_path / "stats.json"
    assert _sync(src, "--dataset", name, "--dry-run", "--stats-file", stats) == 0
    report = json.loads(stats.read_text())
    assert report["dry_run"] is True and report["uploaded"] == 2
    assert "dry run" in capsys.readouterr().out
    with RAGFlowClient(server.base_url, server.api_key) as client:
        assert client.find_dataset(name) is None


def test_mass_delete_guard_exits_1_until_allowed(server, tmp_path, capsys):
    src = _tree(tmp_path / "src", {f"f{i}.txt": f"file {i}" for i in range(4)})
    name = _dataset()
    stats = tmp_path / "stats.json"
    assert _sync(src, "--dataset", name, "--no-wait") == 0
    for i in range(3):
        (src / f"f{i}.txt").unlink()
    assert _sync(src, "--dataset", name, "--stats-file", stats) == 1
    report = json.loads(stats.read_text())
    assert report["guard_refused"] is True and report["deleted"] == 0
    assert "mass-delete guard" in capsys.readouterr().err
    assert len(_docs(server, name)) == 4
    assert _sync(src, "--dataset", name, "--allow-mass-delete", "--stats-file", stats) == 0
    assert json.loads(stats.read_text())["deleted"] == 3
    assert set(_docs(server, name)) == {"f3.txt"}


def test_a_failed_parse_exits_1(server, tmp_path, capsys):
    src = _tree(tmp_path / "src", {"ok.txt": "fine", "bad.txt": "RAGFLOW_SANDBOX_FAIL"})
    stats = tmp_path / "stats.json"
    assert _sync(src, "--dataset", _dataset(), "--stats-file", stats) == 1
    report = json.loads(stats.read_text())
    assert report["parse_failed"] == 1 and report["converged"] is False
    assert "NOT converged" in capsys.readouterr().err


def test_bad_api_key_exits_1(server, tmp_path, capsys):
    src = _tree(tmp_path / "src", {"a.txt": "a"})
    code = _sync(src, "--dataset", _dataset(), "--api-key", "ragflow-wrong")
    assert code == 1
    assert "error: RAGFlow" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--min-size", "10", "--max-size", "5"], "--min-size"),
        (["--max-size", "lots"], "argument --max-size"),
        (["--modified-after", "yesterday"], "argument --modified-after"),
        (["--modified-after", "2024-02-01", "--modified-before", "2024-01-01"], "--modified-after"),
        (["--encoding", "klingon"], "argument --encoding"),
        (["--min-text-ratio", "2"], "argument --min-text-ratio"),
        (["--max-workers", "0"], "argument --max-workers"),
        (["--max-depth", "0"], "argument --max-depth"),
        (["--parser-config", "{oops"], "argument --parser-config"),
        (["--s3-endpoint-url", "http://127.0.0.1:1"], "--s3-endpoint-url"),
    ],
)
def test_bad_input_is_a_usage_error_naming_the_flag(server, tmp_path, capsys, extra, needle):
    tmp_path.joinpath("a.txt").write_text("a")
    assert _code(["sync", str(tmp_path), "--dataset", "x", *extra]) == 2
    assert needle in capsys.readouterr().err


def test_missing_server_and_source_are_usage_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RAGFLOW_BASE_URL", raising=False)
    monkeypatch.delenv("RAGFLOW_API_KEY", raising=False)
    assert main(["sync", str(tmp_path), "--dataset", "x"]) == 2
    assert "RAGFLOW_BASE_URL" in capsys.readouterr().err
    monkeypatch.setenv("RAGFLOW_BASE_URL", "http://127.0.0.1:9")
    assert main(["sync", str(tmp_path), "--dataset", "x"]) == 2
    assert "RAGFLOW_API_KEY" in capsys.readouterr().err
    monkeypatch.setenv("RAGFLOW_API_KEY", "ragflow-x")
    assert main(["sync", str(tmp_path / "nope"), "--dataset", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_s3_source(server, s3_endpoint, tmp_path):
    s3 = s3_endpoint.client()
    bucket = s3_endpoint.new_bucket("cli")
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"handbook/p{i}.txt", Body=f"page {i}".encode())
    s3.put_object(Bucket=bucket, Key="other/x.txt", Body=b"not ours")
    name = _dataset()
    stats = tmp_path / "stats.json"
    code = _sync(
        f"s3://{bucket}/handbook",
        "--dataset",
        name,
        "--s3-endpoint-url",
        s3_endpoint.endpoint_url,
        "--stats-file",
        stats,
    )
    assert code == 0
    assert json.loads(stats.read_text())["uploaded"] == 3
    assert set(_docs(server, name)) == {"p0.txt", "p1.txt", "p2.txt"}


def test_console_script_runs_as_a_process(server, tmp_path):
    src = _tree(tmp_path / "src", {"one.txt": "one", "two.txt": "two"})
    stats = tmp_path / "stats.json"
    script = Path(sys.executable).with_name("ragflow-dagster")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "ragflow_dagster.cli"]
    env = {**os.environ, "RAGFLOW_BASE_URL": server.base_url, "RAGFLOW_API_KEY": server.api_key}
    proc = subprocess.run(
        [*cmd, "sync", str(src), "--dataset", _dataset(), "--stats-file", str(stats)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "uploaded 2" in proc.stdout
    assert server.api_key not in proc.stdout + proc.stderr
    assert json.loads(stats.read_text())["uploaded"] == 2
    helped = subprocess.run([*cmd, "sandbox", "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 2 and "invalid choice" in helped.stderr  # now `ragflow-sandbox`


def test_parse_size():
    assert parse_size("1000") == 1000
    assert parse_size("64k") == 64_000
    assert parse_size("1.5MB") == 1_500_000
    assert parse_size("1MiB") == 1_048_576


def _code(argv: list[str]) -> int:
    """Exit code of ``main`` (argparse errors raise SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_progress_bars_show_the_phases_when_asked(server, tmp_path, capsys):
    src = _tree(tmp_path / "src", {f"p{i}.txt": f"page {i}" for i in range(3)})
    assert main(["sync", str(src), "--dataset", _dataset(), "--progress"]) == 0
    err = capsys.readouterr().err
    assert "uploading" in err and "parsing" in err and "3/3" in err


def test_no_progress_frames_when_stderr_is_not_a_terminal(server, tmp_path, capsys):
    src = _tree(tmp_path / "src", {f"p{i}.txt": f"page {i}" for i in range(3)})
    assert main(["sync", str(src), "--dataset", _dataset()]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # no bars and no log lines in a redirected stderr
    assert "uploaded 3" in captured.out


def test_sync_does_not_import_dagster(server, tmp_path):
    src = _tree(tmp_path / "src", {"a.txt": "a"})
    code = (
        "import sys; from ragflow_dagster.cli import main; "
        f"rc = main(['sync', {str(src)!r}, '--dataset', {_dataset()!r}, '--no-progress', "
        "'--quiet']); print('dagster' in sys.modules, rc)"
    )
    env = {**os.environ, "RAGFLOW_BASE_URL": server.base_url, "RAGFLOW_API_KEY": server.api_key}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.split() == ["False", "0"], proc.stderr
