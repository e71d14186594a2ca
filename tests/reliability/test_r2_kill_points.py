"""R2, aimed: ``kill -9`` of the sync process at named points of each phase, then a rerun.

``kill_driver.py`` (next to this file) is a real sync process that SIGKILLs itself at a chosen
point: while an upload request is in flight, between an upload and its labelling, inside a
replace (after the new version is labelled, around the deletion of the old one) and inside a
delete. After the kills a clean run must converge to exactly one managed document per file with
the right sha256: zero lost, zero duplicates, no unlabelled leftovers.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ragflow_dagster.client import RAGFlowClient
from ragflow_dagster.sync.identity import managed_path

DRIVER = Path(__file__).with_name("kill_driver.py")

# phase -> the kill points that belong to it
PHASES: dict[str, tuple[str, ...]] = {
    "upload": ("upload",),
    "upload_to_label": ("after_upload",),
    "replace": ("after_upload", "after_label", "before_delete", "during_delete", "after_delete"),
    "delete": ("before_delete", "during_delete", "after_delete"),
}


def _write(root: Path, rel: str, rng: random.Random) -> bytes:
    body = (f"{rel} " + " ".join(rng.choice("abcdefgh") * 3 for _ in range(40))).encode()
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return body


def _assert_exact(base_url: str, key: str, dataset: str, files: dict[str, bytes]) -> None:
    with RAGFlowClient(base_url, key) as client:
        ds = client.find_dataset(dataset)
        assert ds is not None
        by_path: dict[str, list] = {}
        for doc in client.iter_documents(ds.id):
            path = managed_path(doc.meta_fields)
            assert path is not None, f"unlabelled leftover {doc.name} ({doc.run})"
            by_path.setdefault(path, []).append(doc)
    dupes = {p: len(v) for p, v in by_path.items() if len(v) > 1}
    assert not dupes, f"duplicates: {dupes}"
    assert sorted(by_path) == sorted(files), (
        f"lost {sorted(set(files) - set(by_path))[:5]}, "
        f"orphaned {sorted(set(by_path) - set(files))[:5]}"
    )
    for path, [doc] in by_path.items():
        assert doc.meta_fields["sha256"] == hashlib.sha256(files[path]).hexdigest(), path


def _drive(sb, src: Path, dataset: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAGFLOW_BASE_URL": sb.base_url, "RAGFLOW_API_KEY": sb.api_key}
    return subprocess.run(
        [sys.executable, str(DRIVER), str(src), dataset, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _mutate(phase: str, src: Path, files: dict[str, bytes], rng: random.Random, k: int) -> None:
    """Give the next run work of the phase under test."""
    if phase in ("upload", "upload_to_label"):
        for i in range(12):
            rel = f"new{k}/n{i:03d}.txt"
            files[rel] = _write(src, rel, rng)
    elif phase == "replace":
        for rel in rng.sample(sorted(files), 6):
            body = files[rel] + f" changed in round {k}".encode()
            (src / rel).write_bytes(body)
            files[rel] = body
    else:
        for rel in rng.sample(sorted(files), 6):
            (src / rel).unlink()
            del files[rel]


def _r2_phase(factory, tmp_path: Path, phase: str, *, n: int, kills: int, seed: int) -> list:
    rng = random.Random(f"{phase}-{seed}")
    src = tmp_path / "src"
    files = {f"d{i % 5}/f{i:04d}.txt": b"" for i in range(n)}
    for rel in files:
        files[rel] = _write(src, rel, rng)
    sb = factory(mode="subprocess", parse_delay=0.02)
    dataset = f"r2-{phase}-{seed}"
    if phase in ("replace", "delete"):
        first = _drive(sb, src, dataset)
        assert first.returncode == 0, first.stderr[-2000:]
    done = []
    for k in range(kills):
        if k or phase in ("replace", "delete"):
            _mutate(phase, src, files, rng, k)
        point = rng.choice(PHASES[phase])
        # the upload phases have at least three upload requests (12 files, 4 per request)
        nth = rng.randint(1, 3) if phase in ("upload", "upload_to_label") else 1
        delay_ms = rng.uniform(0, 150)
        if point in ("upload", "during_delete"):
            # hold the requests so that the timer fires while one is in flight
            method = "POST" if point == "upload" else "DELETE"
            sb.set_faults(
                rate=1.0,
                kinds=["latency"],
                routes="/documents$",
                methods=[method],
                latency_ms=150,
                seed=seed + k,
            )
        proc = _drive(
            sb, src, dataset, "--kill-at", point, "--nth", str(nth), "--delay-ms", f"{delay_ms}"
        )
        sb.clear_faults()
        assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stderr[-2000:])
        assert f"KILLPOINT {point} {nth}" in proc.stderr
        done.append((point, nth))
    final = _drive(sb, src, dataset)
    assert final.returncode == 0, final.stderr[-3000:]
    report = json.loads(final.stdout.strip().splitlines()[-1])
    assert report["converged"]
    _assert_exact(sb.base_url, sb.api_key, dataset, files)
    return done


@pytest.mark.parametrize("phase", list(PHASES))
def test_r2_kill_9_at_each_phase_then_rerun(ragflow_sandbox_factory, tmp_path, phase):
    kills = _r2_phase(ragflow_sandbox_factory, tmp_path, phase, n=30, kills=2, seed=3)
    assert len(kills) == 2


@pytest.mark.soak
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("seed", [21, 22])
def test_r2_soak_kill_9_at_each_phase(ragflow_sandbox_factory, tmp_path, phase, seed):
    kills = _r2_phase(ragflow_sandbox_factory, tmp_path, phase, n=200, kills=6, seed=seed)
    assert len(kills) == 6
