"""pytest fixtures for a RAGFlow sandbox (registered as the ``pytest11`` entry point
``ragflow_sandbox``, so any test suite with ``ragflow-sandbox`` installed gets them).

Fixtures:

``ragflow_sandbox``
    One server per test session (thread mode, temporary data dir). Tests share it, so they
    should create their own datasets.
``ragflow_sandbox_factory``
    A callable that starts extra servers with options (``parse_delay``, ``fault_rate``,
    ``mode="subprocess"``, ``data_dir`` ...); all of them stop when the test ends.

Example:
    >>> def test_lists_datasets(ragflow_sandbox):
    ...     import requests
    ...     r = requests.get(f"{ragflow_sandbox.base_url}/api/v1/datasets",
    ...                      headers={"Authorization": f"Bearer {ragflow_sandbox.api_key}"})
    ...     assert r.json()["code"] == 0
    >>> with run_sandbox() as server:  # what the fixture yields
    ...     test_lists_datasets(server)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .server import SandboxServer, run_sandbox


@pytest.fixture(scope="session")
def ragflow_sandbox() -> Iterator[SandboxServer]:
    """A sandbox server shared by the whole test session."""
    with run_sandbox() as server:
        yield server


@pytest.fixture
def ragflow_sandbox_factory() -> Iterator[Callable[..., SandboxServer]]:
    """Start extra sandbox servers: ``factory(parse_delay=1.0, mode="subprocess")``."""
    with contextlib.ExitStack() as stack:

        def start(**options: Any) -> SandboxServer:
            return stack.enter_context(run_sandbox(**options))

        yield start
