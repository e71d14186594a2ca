"""The sensor and the runs through a real ``dagster-daemon`` on a PostgreSQL-backed instance.

PostgreSQL 15 is started in a temp dir on a free loopback port (as the ``postgres`` user: initdb
refuses root), the instance uses ``dagster-postgres`` and the queued run coordinator with pools
enforced per run, and a real ``dagster-daemon run`` subprocess ticks the sensor and launches the
runs. Files are added, changed and removed while it ticks; then a second sensor fires two runs of
the same dataset at once. Everything is read back from outside: the instance's run records and
the dataset by raw HTTP.
"""

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ragflow_dagster.sync.identity import managed_path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DATASET = "daemon_pg"
JOB = f"{DATASET}_sync"
INITDB_ARGS = ["-U", "dagster", "-A", "trust", "--no-sync", "-E", "UTF8"]
POSTGRES_ARGS = ["-h", "127.0.0.1", "-F", "-c", "max_connections=200"]

pytestmark = pytest.mark.skipif(
    not (PG_BIN / "initdb").exists() or shutil.which("setpriv") is None,
    reason="PostgreSQL 15 (and setpriv) are needed",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _poll(what: str, fn: Callable[[], Any], *, timeout: float, interval: float = 0.25) -> Any:
    """``fn()`` once it is truthy; fails with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop a process started with its own session, and everything it started."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # run workers left behind by the daemon


@contextlib.contextmanager
def postgres() -> Iterator[int]:
    """A throwaway PostgreSQL 15 on a free loopback port, run as the ``postgres`` user."""
    import psycopg2

    root = Path(tempfile.mkdtemp(prefix="ragflow-pg-", dir="/tmp"))
    as_pg = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
    proc = None
    try:
        shutil.chown(root, "postgres", "postgres")
        data = root / "data"
        subprocess.run(
            [*as_pg, str(PG_BIN / "initdb"), "-D", str(data), *INITDB_ARGS],
            check=True,
            capture_output=True,
            timeout=60,
        )
        port = _free_port()
        log = open(root / "postgres.log", "wb")  # noqa: SIM115 - handed to the server
        server = [str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root)]
        proc = subprocess.Popen(
            [*as_pg, *server, *POSTGRES_ARGS],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

        def ready() -> bool:
            assert proc is not None and proc.poll() is None, (root / "postgres.log").read_text()
            try:
                psycopg2.connect(
                    host="127.0.0.1", port=port, user="dagster", dbname="postgres"
                ).close()
                return True
            except psycopg2.OperationalError:
                return False

        _poll("PostgreSQL to accept connections", ready, timeout=30)
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE dagster")
        conn.close()
        yield port
    finally:
        if proc is not None:
            _stop_group(proc, signal.SIGINT)  # fast shutdown
        shutil.rmtree(root, ignore_errors=True)


DEFS = """
import time
from pathlib import Path

import dagster as dg

from ragflow_dagster.assets import build_ragflow_ingestion
from ragflow_dagster.resource import RAGFlowResource
from ragflow_dagster.sensors import build_ragflow_sensor
from ragflow_dagster.sync.engine import SyncOptions

FLAG = Path({flag!r})
ingestion = build_ragflow_ingestion(
    source={source!r}, dataset={dataset!r}, sync_options=SyncOptions(parse_timeout=60)
)
sensor = build_ragflow_sensor(
    ingestion,
    minimum_interval_seconds=1,
    settle_seconds=0,
    default_status=dg.DefaultSensorStatus.RUNNING,
)


@dg.sensor(job=ingestion.job, minimum_interval_seconds=1,
           default_status=dg.DefaultSensorStatus.RUNNING)
def two_triggers(context):
    # Two people press "materialize" at the same moment: two runs of one dataset, one tick.
    if not FLAG.exists():
        return dg.SkipReason("no flag")
    stamp = FLAG.read_text()
    return [dg.RunRequest(run_key=f"{{stamp}}-a"), dg.RunRequest(run_key=f"{{stamp}}-b")]


defs = dg.Definitions(
    assets=ingestion.assets,
    jobs=[ingestion.job],
    sensors=[sensor, two_triggers],
    resources={{"ragflow": RAGFlowResource(base_url={base_url!r}, api_key={api_key!r})}},
)
"""

DAGSTER_YAML = """
storage:
  postgres:
    postgres_db:
      username: dagster
      password: ""
      hostname: 127.0.0.1
      db_name: dagster
      port: {port}
      scheme: postgresql+psycopg2
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
concurrency:
  pools:
    granularity: run
telemetry:
  enabled: false
"""


def _dataset_state(sandbox: Any) -> dict[str, str]:
    """``path -> run state`` of the managed documents, by raw HTTP (``{}`` before it exists)."""
    h = {"Authorization": f"Bearer {sandbox.api_key}"}
    base = f"{sandbox.base_url}/api/v1/datasets"
    answer = requests.get(base, params={"name": DATASET}, headers=h, timeout=10).json()
    found = answer.get("data") if answer.get("code") == 0 else None
    if not found:
        return {}
    body = requests.get(
        f"{base}/{found[0]['id']}/documents", params={"page_size": 100}, headers=h, timeout=10
    ).json()["data"]
    out: dict[str, list[str]] = {}
    for d in body["docs"]:
        path = managed_path(d.get("meta_fields") or {})
        if path:
            out.setdefault(path, []).append(d["run"])
    return {p: ",".join(runs) for p, runs in out.items()}


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stamp = time.time() - 5
    os.utime(path, (stamp, stamp))


def test_daemon_on_postgres_one_run_per_dataset_at_a_time(ragflow_sandbox, tmp_path):
    import dagster as dg

    source = tmp_path / "docs"
    for i in range(3):
        _write(source, f"doc{i}.md", f"document {i} about zeppelins\n")
    flag = tmp_path / "fire"
    home = tmp_path / "home"
    home.mkdir()
    defs = tmp_path / "defs.py"
    defs.write_text(
        textwrap.dedent(
            DEFS.format(
                flag=str(flag),
                source=str(source),
                dataset=DATASET,
                base_url=ragflow_sandbox.base_url,
                api_key=ragflow_sandbox.api_key,
            )
        )
    )
    with postgres() as port:
        (home / "dagster.yaml").write_text(DAGSTER_YAML.format(port=port))
        env = {**os.environ, "DAGSTER_HOME": str(home)}
        daemon_log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 - handed to the daemon
        daemon = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-f", str(defs)],
            cwd=tmp_path,
            env=env,
            stdout=daemon_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        daemon_log.close()
        old_home = os.environ.get("DAGSTER_HOME")
        os.environ["DAGSTER_HOME"] = str(home)
        try:
            with dg.DagsterInstance.get() as instance:
                _scenario(instance, ragflow_sandbox, source, flag, daemon, tmp_path)
        finally:
            if old_home is None:
                os.environ.pop("DAGSTER_HOME", None)
            else:
                os.environ["DAGSTER_HOME"] = old_home
            _stop_group(daemon)


def _scenario(instance: Any, sandbox: Any, source: Path, flag: Path, daemon: Any, tmp: Path):
    import dagster as dg

    def runs() -> list[Any]:
        assert daemon.poll() is None, (tmp / "daemon.log").read_text()[-3000:]
        return list(instance.get_run_records(filters=dg.RunsFilter(job_name=JOB)))

    def settled(expected: dict[str, str]) -> bool:
        recs = runs()
        busy = [r for r in recs if not r.dagster_run.is_finished]
        return not busy and _dataset_state(sandbox) == expected

    def expected() -> dict[str, str]:
        return {str(p.relative_to(source)): "DONE" for p in source.rglob("*") if p.is_file()}

    # 1. the first tick syncs the folder
    _poll("the initial sync", lambda: settled(expected()), timeout=60)
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs())

    # 2. added, changed and removed while the daemon ticks
    _write(source, "new/added.md", "a new document\n")
    _write(source, "doc0.md", "document 0, rewritten\n")
    (source / "doc2.md").unlink()
    _poll("the changes to land", lambda: settled(expected()), timeout=60)

    # 3. two triggers fire together: the queue holds the second run until the first is done
    before = {r.dagster_run.run_id for r in runs()}
    flag.write_text(str(time.time()))
    pair = _poll(
        "the two triggered runs to finish",
        lambda: (
            len(new := [r for r in runs() if r.dagster_run.run_id not in before]) >= 2
            and all(r.dagster_run.is_finished for r in new)
            and new
        ),
        timeout=60,
    )
    flag.unlink()
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in pair)

    # exactly one run of the dataset at a time, over the whole scenario
    recs = sorted(runs(), key=lambda r: r.start_time or 0)
    assert len(recs) >= 4
    for a, b in itertools.pairwise(recs):
        assert a.start_time and a.end_time and b.start_time
        assert b.start_time >= a.end_time, (
            f"runs {a.dagster_run.run_id[:8]} and {b.dagster_run.run_id[:8]} overlapped"
        )
    first, second = sorted(pair, key=lambda r: r.start_time)[:2]
    assert second.create_timestamp.timestamp() < first.end_time  # it was queued meanwhile...
    assert second.start_time >= first.end_time  # ...and only started once the first finished
    assert {r.dagster_run.tags.get("ragflow_dagster/dataset") for r in recs} == {DATASET}
    assert instance.event_log_storage.get_concurrency_info(f"ragflow_{DATASET}").slot_count == 1

    # the end state, by raw HTTP: one parsed document per file
    assert (
        _dataset_state(sandbox)
        == expected()
        == {
            "doc0.md": "DONE",
            "doc1.md": "DONE",
            "new/added.md": "DONE",
        }
    )
