"""A per-dataset lease between runs on one machine, to avoid wasted work (never for correctness).

Two runs that sync the same dataset at the same moment converge without it: every choice between
documents is made on what never changes, and each run proves its end state from a fresh listing
(:mod:`ragflow_dagster.sync.verify`). The lease only spares the second run the duplicate uploads
and the clean-up: it waits for the first, then finds nothing to do. It is an advisory
``flock`` on a file in the system's temporary directory, keyed by server and dataset, so it
serializes CLI runs, library calls and Dagster runs *on one machine*; across machines, Dagster's
per-dataset pool does the same job. A lease that cannot be had within ``timeout`` is given up
with a warning and the run goes on (correctness does not depend on it).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger("ragflow_dagster.sync")

try:  # POSIX only; elsewhere the lease is a no-op
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # an optional module: None marks it absent


def lease_path(base_url: str, dataset_id: str) -> Path:
    """The lock file of one dataset on one server.

    Example:
        >>> lease_path("http://127.0.0.1:9380", "ds1").name.startswith("ragflow-dagster-")
        True
    """
    key = hashlib.sha256(f"{base_url.rstrip('/')}\n{dataset_id}".encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"ragflow-dagster-{key}.lock"


@contextlib.contextmanager
def dataset_lease(
    base_url: str,
    dataset_id: str,
    *,
    timeout: float = 600.0,
    poll: float = 0.2,
    log: logging.Logger | None = None,
) -> Iterator[bool]:
    """Hold the dataset's lease for the ``with`` block; yields whether it was had.

    Example:
        >>> with dataset_lease("http://127.0.0.1:9380", "doctest-ds", timeout=1) as held:
        ...     held
        True
    """
    log = log or logger
    if fcntl is None:
        yield False
        return
    path = lease_path(base_url, dataset_id)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    held = False
    try:
        deadline = time.monotonic() + max(0.0, timeout)
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if not waited:
                    log.info("another sync of dataset %s runs here; waiting for it", dataset_id)
                    waited = True
                if time.monotonic() >= deadline:
                    log.warning(
                        "dataset %s: lease not had within %.0fs; syncing anyway (the end state "
                        "is verified either way)",
                        dataset_id,
                        timeout,
                    )
                    break
                time.sleep(poll)
        yield held
    finally:
        if held:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


__all__ = ["dataset_lease", "lease_path"]
