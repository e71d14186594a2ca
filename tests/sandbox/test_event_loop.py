"""Storage runs off the event loop: a write stuck on SQLite's lock does not stall other requests."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import requests

from ragflow_sandbox import SandboxServer


def test_a_write_waiting_on_the_database_lock_does_not_block_reads(
    ragflow_sandbox_factory: Callable[..., SandboxServer],
) -> None:
    server = ragflow_sandbox_factory()
    url = f"{server.api_url}/datasets"
    headers = {"Authorization": f"Bearer {server.api_key}"}
    assert requests.get(url, headers=headers, timeout=10).json()["code"] == 0
    blocker = sqlite3.connect(server.data_dir / "sandbox.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds SQLite's write lock; WAL readers go on
    created: dict[int, Any] = {}

    def create(i: int) -> None:
        res = requests.post(url, headers=headers, json={"name": f"waits-{i:02d}"}, timeout=120)
        created[i] = res.json()

    # more writers than the worker threads (40): queued writes must not hold one each
    writers = [threading.Thread(target=create, args=(i,)) for i in range(45)]
    for writer in writers:
        writer.start()
    try:
        # the first create waits in busy_timeout, the others for the write lock; on the
        # event loop (or holding every worker thread) they would stall all of these reads
        answers = [requests.get(url, headers=headers, timeout=5).json() for _ in range(20)]
        health = requests.get(f"{server.base_url}/_sandbox/health", timeout=5)
        assert [a["code"] for a in answers] == [0] * 20
        assert all(a["total_datasets"] == 0 for a in answers)
        assert health.status_code == 200
        assert created == {} and all(w.is_alive() for w in writers)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        for writer in writers:
            writer.join(timeout=120)
    assert sorted(created) == list(range(45))
    assert all(res["code"] == 0 for res in created.values())
    listed = requests.get(url, headers=headers, params={"page_size": 100}, timeout=10).json()
    assert sorted(d["name"] for d in listed["data"]) == [f"waits-{i:02d}" for i in range(45)]
