"""The environment's proxy settings are honoured though they are read once per client.

requests reads the environment on every call by default; the client reads it when it is made
(``Transport.__init__``), so a proxy in ``HTTP_PROXY`` carries every request and ``NO_PROXY``
still exempts the server. The proxy here is a real loopback HTTP proxy (the test proxy accepts
absolute-form request lines, as a forward proxy gets them).
"""

from __future__ import annotations

from ragflow_dagster.client import RAGFlowClient

from .proxy import LyingProxy, Seen


def _env(monkeypatch, **values: str) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_http_proxy_from_the_environment_carries_every_request(ragflow_sandbox, monkeypatch):
    sb = ragflow_sandbox
    with LyingProxy(sb.base_url) as proxy:
        seen: list[Seen] = []
        proxy.before = seen.append
        _env(monkeypatch, HTTP_PROXY=proxy.base_url)
        with RAGFlowClient(sb.base_url, sb.api_key) as client:
            ds = client.create_dataset("via-env-proxy")
            assert list(client.iter_documents(ds.id)) == []
            client.delete_datasets([ds.id])
        assert len(seen) == client.request_count >= 3


def test_no_proxy_exempts_the_server(ragflow_sandbox, monkeypatch):
    sb = ragflow_sandbox
    with LyingProxy(sb.base_url) as proxy:
        seen: list[Seen] = []
        proxy.before = seen.append
        _env(monkeypatch, HTTP_PROXY=proxy.base_url, NO_PROXY="127.0.0.1,localhost")
        with RAGFlowClient(sb.base_url, sb.api_key) as client:
            client.ping()
            assert client.request_count == 1
        assert seen == []
