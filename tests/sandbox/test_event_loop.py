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
    created: dict[str, Any] = {}

    def create() -> None:
        res = requests.post(url, headers=headers, json={"name": "waits-for-lock"}, timeout=60)
        created.update(res.json())

    writer = threading.Thread(target=create)
    writer.start()
    try:
        # the create waits in busy_timeout; on the event loop it would stall all of these
        answers = [requests.get(url, headers=headers, timeout=5).json() for _ in range(20)]
        health = requests.get(f"{server.base_url}/_sandbox/health", timeout=5)
        assert [a["code"] for a in answers] == [0] * 20
        assert all(a["total_datasets"] == 0 for a in answers)
        assert health.status_code == 200
        assert writer.is_alive() and created == {}
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        writer.join(timeout=60)
    assert created["code"] == 0 and created["data"]["name"] == "waits-for-lock"
    names = [d["name"] for d in requests.get(url, headers=headers, timeout=10).json()["data"]]
    assert names == ["waits-for-lock"]
