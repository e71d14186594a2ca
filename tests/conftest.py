"""Shared test fixtures.

``s3_endpoint``: one moto S3 server (``moto.server.ThreadedMotoServer``, a real S3 HTTP endpoint)
on 127.0.0.1 for the whole session, with dummy credentials in the environment. It stops by
itself at the end of the session. Tests share the server, so each one makes its own bucket::

    def test_something(s3_endpoint):
        bucket = s3_endpoint.new_bucket()
        s3 = s3_endpoint.client()
        s3.put_object(Bucket=bucket, Key="a.txt", Body=b"hi")
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

_DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class S3Endpoint:
    """A running S3-compatible endpoint for tests.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``.
        region: Region the clients use.
    """

    endpoint_url: str
    region: str
    _counter: itertools.count = field(default_factory=itertools.count, repr=False)

    def client(self, **config: Any) -> Any:
        """A new boto3 S3 client for this endpoint (``config``: botocore ``Config`` options)."""
        import boto3
        from botocore.config import Config

        options: dict[str, Any] = {
            "s3": {"addressing_style": "path"},
            "retries": {"max_attempts": 2, "mode": "standard"},
            "max_pool_connections": 32,
        }
        options.update(config)
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(**options),
        )

    def new_bucket(self, prefix: str = "test") -> str:
        """Create a bucket with a unique name and return the name."""
        name = f"{prefix}-{os.getpid()}-{next(self._counter)}".lower()
        self.client().create_bucket(Bucket=name)
        return name

    def __getitem__(self, key: str) -> Any:  # dict-style access: s3_endpoint["endpoint_url"]
        return getattr(self, key)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    """A moto S3 server on 127.0.0.1 (random free port) for the whole test session."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as mp:
        for key, value in _DUMMY_AWS_ENV.items():
            mp.setenv(key, value)
        no_proxy = os.environ.get("NO_PROXY", "")
        mp.setenv("NO_PROXY", ",".join(filter(None, [no_proxy, "127.0.0.1", "localhost"])))
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield S3Endpoint(endpoint_url=f"http://{host}:{port}", region="us-east-1")
        finally:
            server.stop()
