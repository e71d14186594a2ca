"""``ragflow-dagster sync`` takes any fsspec URI as its source (here ``memory://``, in-process)."""

from __future__ import annotations

import fsspec
import requests

from ragflow_dagster.cli import main


def _raw_docs(sb, name: str) -> list[dict]:
    h = {"Authorization": f"Bearer {sb.api_key}"}
    ds = requests.get(
        f"{sb.base_url}/api/v1/datasets", params={"name": name}, headers=h, timeout=30
    ).json()
    ds_id = ds["data"][0]["id"]
    r = requests.get(
        f"{sb.base_url}/api/v1/datasets/{ds_id}/documents",
        params={"page_size": 100},
        headers=h,
        timeout=30,
    )
    return r.json()["data"]["docs"]


def test_sync_from_a_memory_filesystem_uri(ragflow_sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("RAGFLOW_BASE_URL", ragflow_sandbox.base_url)
    monkeypatch.setenv("RAGFLOW_API_KEY", ragflow_sandbox.api_key)
    fs = fsspec.filesystem("memory")
    root = f"/cli-fsspec-{tmp_path.name}"
    fs.pipe({f"{root}/a.txt": b"alpha\n", f"{root}/sub/b.md": b"# beta\n"})
    stats = tmp_path / "stats.json"
    argv = ["sync", f"memory://{root}", "--dataset", "cli-fsspec", "--stats-file", str(stats)]
    assert main(argv) == 0
    docs = _raw_docs(ragflow_sandbox, "cli-fsspec")
    assert sorted(d["meta_fields"]["source_path"] for d in docs) == ["a.txt", "sub/b.md"]
    assert {d["run"] for d in docs} == {"DONE"}
    assert main(argv) == 0  # a second run changes nothing
    assert len(_raw_docs(ragflow_sandbox, "cli-fsspec")) == 2
