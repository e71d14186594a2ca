"""A sync process that SIGKILLs itself at a chosen point (run as a script by the R2 tests).

The client talks real HTTP to the sandbox; the only thing added is a hook around three client
methods that kills the process (``kill -9``, no cleanup, no ``finally``) at the requested point:

- ``upload``: a timer fires while the n-th upload request is in flight (the sandbox holds upload
  requests with injected latency, so the kill lands before or after the server stored the files);
- ``after_upload``: the n-th upload returned, its documents are not labelled yet;
- ``after_label``: the n-th ``update_document`` (a label, or a replace's new version) succeeded
  (a refused one, e.g. a name conflict answered with the next name, does not count);
- ``before_delete`` / ``during_delete`` / ``after_delete``: around the n-th ``delete_documents``.

Without ``--kill-at`` it just syncs and exits 0 when the sync converged. It prints
``KILLPOINT <point> <n>`` to stderr right before killing itself.

Usage: ``python kill_driver.py SRC DATASET [--kill-at POINT --nth N --delay-ms MS] [--no-lease]``
(``RAGFLOW_BASE_URL`` and ``RAGFLOW_API_KEY`` come from the environment).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from ragflow_dagster.client import RAGFlowClient
from ragflow_dagster.sources import LocalFolderSource
from ragflow_dagster.sync.engine import SyncOptions, sync_source

POINTS = (
    "upload",
    "after_upload",
    "after_label",
    "before_delete",
    "during_delete",
    "after_delete",
)


def die(point: str, nth: int) -> None:
    """Announce the kill point, then SIGKILL this process."""
    sys.stderr.write(f"KILLPOINT {point} {nth}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(client: RAGFlowClient, point: str, nth: int, delay_s: float) -> None:
    """Wrap the client method that belongs to ``point`` so the n-th call kills the process."""
    method = {
        "upload": "upload_documents",
        "after_upload": "upload_documents",
        "after_label": "update_document",
        "before_delete": "delete_documents",
        "during_delete": "delete_documents",
        "after_delete": "delete_documents",
    }[point]
    real: Callable[..., Any] = getattr(client, method)
    lock = threading.Lock()
    calls = [0]

    @functools.wraps(real)
    def hooked(*args: Any, **kwargs: Any) -> Any:
        if point in ("after_upload", "after_label", "after_delete"):
            # the n-th call that *succeeded*: a refused one (a name conflict the executor
            # answers with the next candidate name) changed nothing
            result = real(*args, **kwargs)
            with lock:
                calls[0] += 1
                mine = calls[0]
            if mine == nth:
                die(point, nth)
            return result
        with lock:
            calls[0] += 1
            mine = calls[0]
        if mine != nth:
            return real(*args, **kwargs)
        if point == "before_delete":
            die(point, nth)
        timer = threading.Timer(delay_s, die, args=(point, nth))  # upload, during_delete
        timer.daemon = True
        timer.start()
        return real(*args, **kwargs)

    setattr(client, method, hooked)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("src")
    parser.add_argument("dataset")
    parser.add_argument("--kill-at", choices=POINTS)
    parser.add_argument("--nth", type=int, default=1)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=4, help="files per upload request")
    parser.add_argument("--no-lease", action="store_true", help="overlap other runs freely")
    args = parser.parse_args(argv)
    client = RAGFlowClient(
        os.environ["RAGFLOW_BASE_URL"],
        os.environ["RAGFLOW_API_KEY"],
        max_files_per_request=args.batch,
        backoff=0.05,
        max_backoff=0.5,
    )
    with client:
        dataset = client.find_dataset(args.dataset) or client.create_dataset(args.dataset)
        if args.kill_at:
            arm(client, args.kill_at, args.nth, args.delay_ms / 1000)
        report = sync_source(
            client,
            LocalFolderSource(args.src),
            dataset.id,
            SyncOptions(
                max_workers=4, allow_mass_delete=True, parse_timeout=120, lease=not args.no_lease
            ),
        )
    print(json.dumps(report.to_dict()))
    return 0 if report.converged else 1


if __name__ == "__main__":
    sys.exit(main())
