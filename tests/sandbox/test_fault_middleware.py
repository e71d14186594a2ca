"""``FaultMiddleware`` is plain ASGI; resets go through the server's connection registry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import requests

from ragflow_sandbox import SandboxServer
from ragflow_sandbox.faults import ConnectionRegistry, FaultMiddleware, Faults


async def _ok_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _call(app: Any, path: str = "/api/v1/datasets") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "client": ("127.0.0.1", 1)}
    asyncio.run(app(scope, receive, send))
    return sent


@pytest.mark.parametrize("kind", ["reset_before", "reset_after"])
def test_without_a_known_connection_a_reset_becomes_a_502_page(kind: str) -> None:
    faults = Faults()
    faults.configure({"rate": 1.0, "kinds": [kind]})
    for connections in (None, ConnectionRegistry()):
        sent = _call(FaultMiddleware(_ok_app, faults, connections=connections))
        assert sent[0]["status"] == 502 and b"nginx" in sent[-1]["body"]
    assert faults.config.injected == {kind: 2}
    assert _call(FaultMiddleware(_ok_app, faults), path="/_sandbox/health")[0]["status"] == 200


@pytest.mark.parametrize("mode", ["thread", "subprocess"])
def test_the_server_resets_the_connection_in_both_modes(
    ragflow_sandbox_factory: Callable[..., SandboxServer], mode: str
) -> None:
    server = ragflow_sandbox_factory(mode=mode)
    server.set_faults(rate=1.0, kinds=["reset_before"], methods=["GET"])
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.api_url}/datasets", headers=headers, timeout=10)
    assert server.faults()["injected"] == {"reset_before": 1}
