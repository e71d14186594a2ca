"""Fixtures of the sandbox tests (the server itself comes from the ``ragflow_sandbox`` plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ragflow_sandbox import SandboxServer

from .helpers import Api


@pytest.fixture(scope="session")
def api(ragflow_sandbox: SandboxServer) -> Api:
    return Api(ragflow_sandbox)


@pytest.fixture
def kb(api: Api) -> Iterator[str]:
    kb_id = api.dataset()
    yield kb_id
    api.delete("/datasets", json={"ids": [kb_id]})
