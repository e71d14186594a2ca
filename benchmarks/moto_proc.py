"""A moto S3 server in its own process, pre-filled with generated keys (for P3).

``python -m benchmarks.moto_proc --keys N --bucket NAME`` starts moto's standalone server on
127.0.0.1 (a free port), fills the bucket through moto's backend (fast: no HTTP per key), prints
one JSON line ``{"endpoint_url": ..., "bucket": ..., "keys": N}`` and serves until its stdin is
closed, so it never outlives the benchmark that started it.

Use :func:`moto_server` from Python.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class MotoServer:
    endpoint_url: str
    bucket: str
    keys: int
    pid: int

    def client(self) -> object:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=16),
        )


def key_name(i: int, per_dir: int = 1000) -> str:
    return f"d{i // per_dir:04d}/f{i:06d}.txt"


@contextlib.contextmanager
def moto_server(keys: int, *, bucket: str = "bench-bucket") -> Iterator[MotoServer]:
    """Start the moto process, yield its address; it stops when the block exits."""
    for k, v in DUMMY_ENV.items():
        os.environ.setdefault(k, v)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.moto_proc", "--keys", str(keys), "--bucket", bucket],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **DUMMY_ENV},
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the moto process did not start")
        info = json.loads(line)
        yield MotoServer(info["endpoint_url"], info["bucket"], info["keys"], proc.pid)
    finally:
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, required=True)
    ap.add_argument("--bucket", default="bench-bucket")
    args = ap.parse_args(argv)
    os.environ.update(DUMMY_ENV)
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
        backend.create_bucket(args.bucket, "us-east-1")
        for i in range(args.keys):
            backend.put_object(args.bucket, key_name(i), b"generated object %d\n" % i)
        print(
            json.dumps(
                {"endpoint_url": f"http://{host}:{port}", "bucket": args.bucket, "keys": args.keys}
            ),
            flush=True,
        )
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
