"""``ragflow-dagster sync --metadata-file / --rules-file`` against the sandbox (real HTTP)."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest

from ragflow_dagster.cli import main
from ragflow_dagster.client import RAGFlowClient
from ragflow_dagster.sync.identity import managed_path

_names = itertools.count()


@pytest.fixture
def server(ragflow_sandbox, monkeypatch):
    monkeypatch.setenv("RAGFLOW_BASE_URL", ragflow_sandbox.base_url)
    monkeypatch.setenv("RAGFLOW_API_KEY", ragflow_sandbox.api_key)
    return ragflow_sandbox


def _docs(server, name: str) -> dict:
    with RAGFlowClient(server.base_url, server.api_key) as client:
        ds = client.find_dataset(name)
        assert ds is not None
        return {managed_path(d.meta_fields): d for d in client.iter_documents(ds.id)}


def _sync(*args: str | Path) -> int:
    return main(["sync", *(str(a) for a in args), "--no-progress"])


def test_metadata_and_rules_files_then_a_dry_run_shows_the_relabel(server, tmp_path, capsys):
    src = tmp_path / "src"
    for rel, text in {
        "hr/2024/policy.md": "---\ntitle: Policy\n---\nremote work two days\n",
        "faq/q.txt": "Q: docking?\nA: charging\n",
        "b.txt": "bravo\n",
    }.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    (src / "b.txt.meta.json").write_text('{"owner": "ada"}')
    meta = tmp_path / "meta.yaml"
    meta.write_text(
        "static:\n  - glob: 'hr/**'\n    set: {department: HR}\n"
        "from_path:\n  - regex: '^(?P<team>[^/]+)/(?P<year>\\d{4})/'\n    types: {year: int}\n"
        "front_matter:\n  keys: [title]\n"
        "sidecar: true\n"
    )
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"glob": "faq/**", "chunk_method": "qa"}]))
    name = f"cli-map-{os.getpid()}-{next(_names)}"
    args = ("--dataset", name, "--metadata-file", meta, "--rules-file", rules)
    assert _sync(src, *args) == 0
    docs = _docs(server, name)
    assert sorted(docs) == ["b.txt", "faq/q.txt", "hr/2024/policy.md"]
    policy = docs["hr/2024/policy.md"].meta_fields
    assert (policy["department"], policy["team"], policy["year"], policy["title"]) == (
        "HR",
        "hr",
        2024,
        "Policy",
    )
    assert docs["b.txt"].meta_fields["owner"] == "ada"
    assert docs["faq/q.txt"].chunk_method == "qa"

    meta.write_text(meta.read_text().replace("department: HR", "department: People"))
    capsys.readouterr()
    assert _sync(src, *args, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would relabel 1: department HR→People" in out
    assert _docs(server, name)["hr/2024/policy.md"].meta_fields["department"] == "HR"


@pytest.mark.parametrize(
    ("flag", "text", "needle"),
    [
        ("--rules-file", '[{"glob": "*", "chunk_method": "fancy"}]', "chunk_method 'fancy'"),
        ("--metadata-file", "static: [{glob: '*', set: {a: 1}, extra: 2}]", "extra"),
        ("--metadata-file", "from_path: [{regex: '(no group)'}]", "no named group"),
    ],
)
def test_bad_mapping_files_are_usage_errors_before_anything(
    server, tmp_path, capsys, flag, text, needle
):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("alpha")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    name = f"cli-bad-{os.getpid()}-{next(_names)}"
    assert _sync(tmp_path / "src", "--dataset", name, flag, bad) == 2
    err = capsys.readouterr().err
    assert flag in err and needle in err
    with RAGFlowClient(server.base_url, server.api_key) as client:
        assert client.find_dataset(name) is None


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "metadata"


def test_the_readme_example_runs_as_documented(server, tmp_path, capsys):
    """README, "Metadata mapping": the commands on examples/metadata, and what they print."""
    docs = tmp_path / "docs"
    import shutil

    shutil.copytree(EXAMPLE / "docs", docs)
    name = f"cli-example-{os.getpid()}-{next(_names)}"
    args = (
        "--dataset",
        name,
        "--metadata-file",
        EXAMPLE / "metadata.yaml",
        "--rules-file",
        EXAMPLE / "rules.yaml",
    )
    assert _sync(docs, *args) == 0
    by_path = _docs(server, name)
    assert sorted(by_path) == ["eng/2023/design.txt", "faq/docking.txt", "hr/2024/leave.md"]
    leave = by_path["hr/2024/leave.md"].meta_fields
    assert {k: leave[k] for k in ("department", "team", "year", "title", "reviewed")} == {
        "department": "HR",
        "team": "hr",
        "year": 2024,
        "title": "Leave policy",
        "reviewed": "2024-05-01",
    }
    assert "draft" not in leave
    design = by_path["eng/2023/design.txt"]
    assert design.meta_fields["owner"] == "platform-team"
    assert design.meta_fields["tags"] == ["robot", "charging"]
    assert design.parser_config["chunk_token_num"] == 128
    assert by_path["faq/docking.txt"].chunk_method == "qa"

    (docs / "eng/2023/design.txt.meta.json").write_text('{"owner": "robotics"}')
    capsys.readouterr()
    assert _sync(docs, *args, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would relabel 1: owner platform-team→robotics" in out
    assert "would relabel 1: tags -[robot, charging]" in out
    assert _sync(docs, *args) == 0
    out = capsys.readouterr().out
    assert "relabelled 1: owner platform-team→robotics" in out
    assert "parsed" not in out.split("\n")[2]  # nothing re-parsed
