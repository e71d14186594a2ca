"""``ragflow-dagster sync SOURCE --routes-file`` against the sandbox (real HTTP on 127.0.0.1);
end states by raw HTTP listings."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest

from ragflow_dagster.cli import main
from ragflow_dagster.sync.identity import managed_path
from tests.reliability.raw import dataset_id, raw_documents

_names = itertools.count()


@pytest.fixture
def server(ragflow_sandbox, monkeypatch):
    monkeypatch.setenv("RAGFLOW_BASE_URL", ragflow_sandbox.base_url)
    monkeypatch.setenv("RAGFLOW_API_KEY", ragflow_sandbox.api_key)
    return ragflow_sandbox


@pytest.fixture
def prefix() -> str:
    return f"clir-{os.getpid()}-{next(_names)}"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def _paths(sb, name: str) -> set[str]:
    docs = raw_documents(sb.base_url, sb.api_key, dataset_id(sb.base_url, sb.api_key, name))
    return {managed_path(d["meta_fields"]) for d in docs}  # type: ignore[misc]


def _sync(*args: str | Path) -> int:
    return main(["sync", *(str(a) for a in args), "--no-progress"])


TREE = {
    "eng/a.md": "# Alpha\nengines.",
    "eng/x/b.txt": "Bravo bearings.",
    "sales/c.md": "# Charlie\ncontracts.",
    "misc/d.txt": "Delta.",
}


def test_routes_yaml_one_summary_per_dataset_and_stats(server, tmp_path, prefix, capsys):
    src = _tree(tmp_path / "src", TREE)
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"routes:\n"
        f"  - {{glob: 'eng/**', dataset: {prefix}-eng}}\n"
        f"  - {{glob: 'sales/**', dataset: {{name: {prefix}-sales, chunk_method: naive}}}}\n"
    )
    stats = tmp_path / "stats.json"
    assert _sync(src, "--routes-file", routes, "--stats-file", stats) == 0
    out = capsys.readouterr().out
    assert f"dataset {prefix}-eng <- " in out and f"dataset {prefix}-sales <- " in out
    assert f"{prefix}-eng: converged" in out and f"{prefix}-sales: converged" in out
    assert "unrouted: 1 file matched no route (skipped): misc/d.txt" in out
    data = json.loads(stats.read_text())
    assert data["converged"] is True and data["source_listings"] == 1
    assert data["unrouted_paths"] == ["misc/d.txt"]
    assert data["datasets"][f"{prefix}-eng"]["uploaded"] == 2
    assert data["datasets"][f"{prefix}-sales"]["uploaded"] == 1
    assert _paths(server, f"{prefix}-eng") == {"eng/a.md", "eng/x/b.txt"}
    assert _paths(server, f"{prefix}-sales") == {"sales/c.md"}


def test_json_routes_default_dataset_and_a_failing_dataset_exits_1(
    server, tmp_path, prefix, capsys
):
    src = _tree(tmp_path / "src", {**TREE, **{f"eng/{i}.md": f"part {i}" for i in range(4)}})
    routes = tmp_path / "routes.json"
    routes.write_text(
        json.dumps(
            {
                "routes": [
                    {"glob": "eng/**", "dataset": f"{prefix}-eng"},
                    {"glob": "sales/**", "dataset": f"{prefix}-sales"},
                ],
                "default_dataset": f"{prefix}-general",
            }
        )
    )
    assert _sync(src, "--routes-file", routes) == 0
    assert _paths(server, f"{prefix}-general") == {"misc/d.txt"}
    capsys.readouterr()
    for rel in ("eng/0.md", "eng/1.md", "eng/2.md", "eng/3.md", "eng/a.md"):
        (src / rel).unlink()  # 5 of eng's 6: its guard refuses; the others are fine
    (src / "misc/e.txt").write_text("Echo.")
    stats = tmp_path / "stats.json"
    assert _sync(src, "--routes-file", routes, "--stats-file", stats) == 1
    captured = capsys.readouterr()
    assert f"{prefix}-eng: NOT converged" in captured.err
    assert "--allow-mass-delete" in captured.err
    assert f"{prefix}-general: converged" in captured.out
    assert f"failed: {prefix}-eng" in captured.out
    assert json.loads(stats.read_text())["failed_datasets"] == [f"{prefix}-eng"]
    assert _paths(server, f"{prefix}-general") == {"misc/d.txt", "misc/e.txt"}
    assert len(_paths(server, f"{prefix}-eng")) == 6


def test_bad_routes_files_are_usage_errors_before_any_request(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RAGFLOW_BASE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("RAGFLOW_API_KEY", "k")
    src = _tree(tmp_path / "src", TREE)
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - {glob: 'eng/**'}\n")
    assert _sync(src, "--routes-file", bad) == 2
    assert "routes.0.dataset: Field required" in capsys.readouterr().err
    assert _sync(src, "--routes-file", tmp_path / "missing.yaml") == 2
    assert "No such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        _sync(src, "--routes-file", bad, "--dataset", "x")
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
