"""A tiny HTTP client for the sandbox tests, plus a polling helper."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import requests

from ragflow_sandbox import SandboxServer


class Api:
    """Thin wrapper: ``api.get("/datasets")`` → decoded JSON of ``/api/v1/datasets``."""

    def __init__(self, server: SandboxServer, *, key: str | None = None) -> None:
        self.server = server
        self.base = server.api_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key or server.api_key}"

    def raw(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.base + path, timeout=30, **kwargs)

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.raw(method, path, **kwargs)
        assert response.status_code == 200, (response.status_code, response.text)
        return response.json()

    def get(self, path: str, **kw: Any) -> dict[str, Any]:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> dict[str, Any]:
        return self.call("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> dict[str, Any]:
        return self.call("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> dict[str, Any]:
        return self.call("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> dict[str, Any]:
        return self.call("DELETE", path, **kw)

    # --- shortcuts ---------------------------------------------------------------------------

    def dataset(self, name: str | None = None, **fields: Any) -> str:
        res = self.post("/datasets", json={"name": name or f"ds-{uuid.uuid4().hex[:10]}", **fields})
        assert res["code"] == 0, res
        return res["data"]["id"]

    def upload(
        self, kb: str, files: dict[str, bytes] | list[tuple[str, bytes]]
    ) -> list[dict[str, Any]]:
        items = files.items() if isinstance(files, dict) else files
        res = self.post(f"/datasets/{kb}/documents", files=[("file", (n, b)) for n, b in items])
        assert res["code"] == 0, res
        return res["data"]

    def docs(self, kb: str, **params: Any) -> dict[str, Any]:
        res = self.get(f"/datasets/{kb}/documents", params=params)
        assert res["code"] == 0, res
        return res["data"]

    def doc(self, kb: str, doc_id: str) -> dict[str, Any]:
        return self.docs(kb, id=doc_id)["docs"][0]

    def parse(self, kb: str, ids: list[str]) -> dict[str, Any]:
        res = self.post(f"/datasets/{kb}/documents/parse", json={"document_ids": ids})
        assert res["code"] == 0, res
        return res

    def wait(self, kb: str, ids: list[str], *, timeout: float = 15.0) -> dict[str, dict[str, Any]]:
        """Poll until every document left UNSTART/RUNNING; returns them by id."""
        deadline = time.monotonic() + timeout
        while True:
            docs: dict[str, dict[str, Any]] = {}
            for start in range(0, len(ids), 100):
                part = ids[start : start + 100]
                docs.update({d["id"]: d for d in self.docs(kb, ids=part, page_size=100)["docs"]})
            if all(d["run"] not in ("RUNNING", "UNSTART") for d in docs.values()):
                return docs
            assert time.monotonic() < deadline, f"parse did not finish: {docs}"
            time.sleep(0.02)


def poll(predicate: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Call ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(interval)
