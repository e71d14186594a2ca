"""State survives restarts and crashes (subprocess mode: SIGKILL, then restart)."""

from __future__ import annotations

from pathlib import Path

from ragflow_sandbox import SandboxServer

from .helpers import Api


def test_crash_and_restart_keeps_data_and_resumes_parsing(
    ragflow_sandbox_factory, tmp_path: Path
) -> None:
    server: SandboxServer = ragflow_sandbox_factory(
        mode="subprocess", data_dir=tmp_path, parse_delay=1.0
    )
    api = Api(server)
    kb = api.dataset("persisted")
    docs = api.upload(kb, [("a.txt", b"persist me\n"), ("b.txt", b"and me\n")])
    ids = [d["id"] for d in docs]
    api.patch(f"/datasets/{kb}/documents/{ids[0]}", json={"meta_fields": {"source_path": "/a.txt"}})
    api.parse(kb, ids[:1])
    port, pid = server.port, server.pid
    server.kill()
    assert not server.running
    server.restart()
    assert server.running and server.port == port and server.pid != pid
    api = Api(server)
    assert api.get(f"/datasets/{kb}")["data"]["name"] == "persisted"
    listed = {d["id"]: d for d in api.docs(kb)["docs"]}
    assert set(listed) == set(ids)
    assert listed[ids[0]]["meta_fields"] == {"source_path": "/a.txt"}
    assert api.raw("GET", f"/datasets/{kb}/documents/{ids[1]}").content == b"and me\n"
    done = api.wait(kb, ids[:1], timeout=20)[ids[0]]  # the RUNNING task resumes after the crash
    assert done["run"] == "DONE" and done["chunk_count"] == 1


def test_thread_mode_restart_on_same_data_dir(ragflow_sandbox_factory, tmp_path: Path) -> None:
    server: SandboxServer = ragflow_sandbox_factory(data_dir=tmp_path, api_key="ragflow-fixed-key")
    kb = Api(server).dataset("kept")
    server.restart()
    again = Api(server)
    assert again.get(f"/datasets/{kb}")["data"]["name"] == "kept"
    assert (tmp_path / "sandbox.db").exists() and (tmp_path / "blobs").is_dir()
