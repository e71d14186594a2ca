"""Shared pieces of the benchmarks: machine facts, generated trees, the sandbox, raw HTTP helpers.

Everything here talks to the server with plain ``requests`` (no project code), so the baselines
("floors") measure what the HTTP API itself costs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

API = "/api/v1"
PAGE_SIZE = 100
"""Largest page size today's RAGFlow accepts."""

_WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
    "sync",
    "dataset",
    "document",
    "parse",
    "chunk",
    "retrieval",
    "sensor",
    "partition",
    "asset",
    "bucket",
    "folder",
    "upload",
    "replace",
    "delete",
    "ragflow",
    "dagster",
    "report",
    "metadata",
    "identity",
    "inventory",
    "planner",
    "executor",
    "streaming",
    "hash",
]


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    """Facts about the machine the figures were measured on."""
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    try:
        import psutil

        info["ram_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover - psutil is a dev dependency
        info["ram_gib"] = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    for pkg in ("ragflow-dagster", "ragflow-sdk", "dagster", "moto", "requests"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            info.setdefault("versions", {})[pkg] = version(pkg)
    return info


@dataclass
class Stopwatch:
    """Wall-clock phases, in seconds."""

    phases: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - t0


def log(msg: str) -> None:
    """One progress line on stderr (the figures go to stdout and the results files)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- generated trees


def _text_blob(seed: int, size: int = 1 << 20) -> bytes:
    rng = random.Random(seed)
    words: list[str] = []
    total = 0
    while total < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 14)))
        words.append(line)
        total += len(line) + 1
    return ("\n".join(words) + "\n").encode()


def generate_tree(
    root: str | os.PathLike[str],
    count: int,
    *,
    min_size: int = 4 * 1024,
    max_size: int = 64 * 1024,
    seed: int = 7,
    per_dir: int = 500,
    ext: str = ".txt",
    prefix: str = "f",
) -> tuple[list[str], int]:
    """Write ``count`` text files of ``min_size``..``max_size`` bytes with distinct contents.

    Files go into sub-directories of ``per_dir`` files (``d0000/f000000.txt``). Returns the
    relative paths and the total bytes. Deterministic for a given seed.

    Example:
        >>> import tempfile
        >>> paths, total = generate_tree(tempfile.mkdtemp(), 10, min_size=10, max_size=20)
        >>> len(paths), paths[0]
        (10, 'd0000/f000000.txt')
    """
    root = Path(root)
    rng = random.Random(seed)
    blob = _text_blob(seed, max(1 << 20, max_size * 2))
    paths: list[str] = []
    total = 0
    made: set[str] = set()
    for i in range(count):
        d = f"d{i // per_dir:04d}"
        if d not in made:
            (root / d).mkdir(parents=True, exist_ok=True)
            made.add(d)
        rel = f"{d}/{prefix}{i:06d}{ext}"
        head = f"file {rel} seed {seed}\n".encode()
        size = max(rng.randint(min_size, max_size), len(head))
        start = rng.randrange(0, len(blob) - size)
        data = head + blob[start : start + size - len(head)]
        with open(root / rel, "wb") as fh:
            fh.write(data)
        paths.append(rel)
        total += len(data)
    return paths, total


# --------------------------------------------------------------------------- sandbox


@contextlib.contextmanager
def sandbox(
    *,
    mode: str = "subprocess",
    data_dir: str | os.PathLike[str] | None = None,
    max_body_bytes: int | None = None,
    parse_delay: float = 0.0,
    parse_serial: bool = False,
) -> Iterator[Any]:
    """A sandbox RAGFlow server on 127.0.0.1 (its own process by default, so the client and the
    server do not share one GIL). ``parse_serial``: one parser spending ``parse_delay`` on each
    document in turn, as a real server's task executor."""
    from ragflow_sandbox import run_sandbox

    kwargs: dict[str, Any] = {"mode": mode, "parse_delay": parse_delay}
    if parse_serial:
        kwargs["parse_serial"] = True
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    if max_body_bytes is not None:
        kwargs["max_body_bytes"] = max_body_bytes
    with run_sandbox(**kwargs) as server:
        yield server


class CallCounter:
    """Counts HTTP requests made through ``requests`` sessions it is attached to (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_route: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.by_route.values())

    @staticmethod
    def route_of(response: requests.Response) -> str:
        """``"METHOD /path"`` of a response's request, ids shown as ``{id}``."""
        req = response.request
        path = requests.utils.urlparse(req.url or "").path
        route = "/".join("{id}" if len(p) >= 24 and p.isalnum() else p for p in path.split("/"))
        return f"{req.method} {route}"

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        route = self.route_of(response)
        with self._lock:
            self.by_route[route] += 1

    def attach(self, session: requests.Session) -> None:
        session.hooks.setdefault("response", []).append(self.hook)

    def attach_client(self, client: Any) -> None:
        """Attach to a ``RAGFlowClient`` (its pooled session)."""
        self.attach(client._session)


@dataclass
class OurSync:
    """One timed run of our engine into a new dataset (see :func:`our_sync`)."""

    report: Any
    seconds: float
    dataset_id: str
    counter: CallCounter
    started_ms: float  # wall clock at the start, epoch milliseconds (for process_begin_at)

    def record(self) -> dict[str, Any]:
        """The fields every benchmark reports of our run."""
        return {
            "seconds": self.seconds,
            "durations": {k: round(v, 3) for k, v in self.report.durations.items()},
            "api_calls": self.counter.total,
            "calls_by_route": dict(self.counter.by_route),
        }


def our_sync(
    base_url: str,
    api_key: str,
    root: Path,
    *,
    name: str,
    workers: int,
    files_per_request: int,
    options: Any,
) -> OurSync:
    """Sync ``root`` into a new dataset ``<name>-<ns>`` with our client and engine, counting
    the requests of the sync itself (not the dataset's creation)."""
    from ragflow_dagster.client import RAGFlowClient
    from ragflow_dagster.sources import LocalFolderSource
    from ragflow_dagster.sync.engine import sync_source

    with RAGFlowClient(
        base_url,
        api_key,
        pool_size=max(16, workers * 2),
        max_files_per_request=files_per_request,
    ) as client:
        ds = client.create_dataset(f"{name}-{time.time_ns()}")
        counter = CallCounter()
        counter.attach_client(client)
        started_ms = time.time() * 1000
        t0 = time.perf_counter()
        report = sync_source(client, LocalFolderSource(root), ds.id, options)
        seconds = time.perf_counter() - t0
    return OurSync(report, seconds, ds.id, counter, started_ms)


def session_for(api_key: str, pool: int = 16) -> requests.Session:
    """A keep-alive session with the bearer header."""
    s = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=pool)
    s.mount("http://", adapter)
    s.headers["Authorization"] = f"Bearer {api_key}"
    return s


def api_json(resp: requests.Response) -> Any:
    """The ``data`` of a RAGFlow reply; raises on an error reply."""
    body = resp.json()
    if resp.status_code >= 300 or body.get("code") != 0:
        raise RuntimeError(f"{resp.request.method} {resp.request.url}: {resp.status_code} {body}")
    return body.get("data")


def create_dataset(session: requests.Session, base_url: str, name: str) -> str:
    """Create a dataset with a raw POST; return its id."""
    data = api_json(session.post(f"{base_url}{API}/datasets", json={"name": name}))
    return str(data["id"])


def list_all_documents(
    session: requests.Session, base_url: str, dataset_id: str, **params: Any
) -> list[dict[str, Any]]:
    """Every document of a dataset, paged at 100 (raw requests, oldest first)."""
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        data = api_json(
            session.get(
                f"{base_url}{API}/datasets/{dataset_id}/documents",
                params={
                    "page": page,
                    "page_size": PAGE_SIZE,
                    "orderby": "create_time",
                    "desc": "false",
                    **params,
                },
            )
        )
        docs = data.get("docs") or []
        out.extend(docs)
        total = int(data.get("total") or 0)
        if len(docs) < PAGE_SIZE or len(out) >= total:
            return out
        page += 1


def wait_until_parsed(
    session: requests.Session,
    base_url: str,
    dataset_id: str,
    *,
    expected: int,
    timeout: float = 600.0,
    interval: float = 0.2,
) -> dict[str, int]:
    """Poll the dataset's listing (pages of 100) until ``expected`` documents have finished."""
    deadline = time.monotonic() + timeout
    while True:
        docs = list_all_documents(session, base_url, dataset_id)
        runs = Counter(str(d.get("run")) for d in docs)
        finished = runs["DONE"] + runs["FAIL"] + runs["CANCEL"]
        if finished >= expected or time.monotonic() > deadline:
            return dict(runs)
        time.sleep(interval)


def ceil_div(a: int, b: int) -> int:
    return math.ceil(a / b)


def peak_rss_mb() -> float:
    """This process's own peak RSS in MB: ``VmHWM`` of ``/proc/self/status`` (it starts afresh
    at ``exec``, unlike ``ru_maxrss``, which a child started by ``subprocess`` inherits from its
    parent on Linux); ``ru_maxrss`` elsewhere."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) * 1024 / 1e6, 1)
    import resource

    kb = 1024 if sys.platform != "darwin" else 1
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kb / 1e6, 1)


def rss_note() -> dict[str, float]:
    """Peak RSS of this process and of its waited-for children, in MB."""
    import resource

    kb = 1024 if sys.platform != "darwin" else 1
    return {
        "self_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kb / 1e6, 1),
        "children_peak_mb": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kb / 1e6, 1
        ),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``(seconds, result)`` of one call."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=str)


def scandir_walk(root: str) -> list[tuple[str, int, int]]:
    """The bare walk every listing is measured against (P2's floor, LIST's baseline): every
    regular file under ``root`` with its size and mtime, what any walk must learn."""
    out: list[tuple[str, int, int]] = []
    stack = [(root, "")]
    while stack:
        path, rel = stack.pop()
        with os.scandir(path) as it:
            for e in it:
                name = rel + e.name
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, name + "/"))
                elif e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    out.append((name, st.st_size, st.st_mtime_ns))
    return out
