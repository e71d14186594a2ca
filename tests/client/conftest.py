"""Fixtures for the client tests: a client on the sandbox, a fresh dataset, request counting."""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Iterator

import pytest

from ragflow_dagster.client import RAGFlowClient


class RequestLog(logging.Handler):
    """Counts the client's attempts as it logs them (one DEBUG record per HTTP attempt)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def attempts(self, method: str, route: str = "") -> list[logging.LogRecord]:
        """Attempt records for ``method`` whose path matches the regex ``route``."""
        out = []
        for r in self.records:
            if (
                r.msg.startswith("RAGFlow %s %s -> ")
                and r.args[0] == method
                and re.search(route, r.args[1])
            ):
                out.append(r)
        return out

    def retries(self) -> list[logging.LogRecord]:
        return [r for r in self.records if "retry" in r.getMessage()]

    def clear(self) -> None:
        self.records.clear()


@pytest.fixture
def request_log() -> Iterator[RequestLog]:
    handler = RequestLog()
    log = logging.getLogger("ragflow_dagster.client")
    old = log.level
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(old)


@pytest.fixture
def sandbox(ragflow_sandbox):
    """The session sandbox, with faults switched off again after each test."""
    ragflow_sandbox.clear_faults()
    try:
        yield ragflow_sandbox
    finally:
        ragflow_sandbox.clear_faults()


def make_client(sb, **kw) -> RAGFlowClient:
    opts = {"timeout": 10.0, "max_retries": 8, "backoff": 0.01, "max_backoff": 0.05}
    opts.update(kw)
    return RAGFlowClient(sb.base_url, sb.api_key, **opts)


@pytest.fixture
def client(sandbox) -> Iterator[RAGFlowClient]:
    with make_client(sandbox) as c:
        yield c


@pytest.fixture
def dataset(client):
    ds = client.create_dataset(f"client-test-{uuid.uuid4().hex[:12]}")
    try:
        yield ds
    finally:
        with contextlib.suppress(Exception):  # the test may have deleted it already
            client.delete_datasets([ds.id])
