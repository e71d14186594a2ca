"""Overlapping runs that are killed at random points (issue: exactly-once, the soak variant).

Each cycle changes the folder (new files, edits of the same and of another size, deletions,
moves within and across extensions), then starts two sync processes at once without the lease;
one of them SIGKILLs itself at a random point while the other runs on. After all cycles a clean
run must converge, and the dataset is compared by raw HTTP with the folder, bytes included.
``make test`` runs a small version; ``make soak`` runs 1,000 files.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from .raw import assert_exact, dataset_id, read_tree

DRIVER = Path(__file__).with_name("kill_driver.py")
POINTS = ("upload", "after_upload", "after_label", "before_delete", "during_delete", "after_delete")


def _body(rng: random.Random, tag: str) -> bytes:
    return (
        tag + " " + " ".join(rng.choice("abcdefgh") * 4 for _ in range(rng.randrange(5, 40)))
    ).encode()


def _mutate(src: Path, rng: random.Random, k: int, n: int) -> None:
    files = sorted(p for p in src.rglob("*") if p.is_file())
    for p in rng.sample(files, max(1, n // 50)):  # edits, half of them keep the size
        body = p.read_bytes()
        p.write_bytes(body.upper() if rng.random() < 0.5 else body + b" more")
    for p in rng.sample(files, max(1, n // 100)):  # deletions
        if p.exists():
            p.unlink()
    for i, p in enumerate(rng.sample(files, max(1, n // 100))):  # moves, some change extension
        if p.exists():
            suffix = ".md" if rng.random() < 0.3 else p.suffix
            p.rename(p.with_name(f"moved{k}-{i}{suffix}"))
    for i in range(max(1, n // 50)):  # new files
        q = src / f"new{k}" / f"n{i:03d}.txt"
        q.parent.mkdir(parents=True, exist_ok=True)
        q.write_bytes(_body(rng, f"new {k} {i}"))


def _start(sb, src: Path, name: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "RAGFLOW_BASE_URL": sb.base_url, "RAGFLOW_API_KEY": sb.api_key}
    return subprocess.Popen(
        [sys.executable, str(DRIVER), str(src), name, "--no-lease", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _overlap_with_kills(
    factory, tmp_path: Path, *, n: int, cycles: int, seed: int, min_kills: int = 0
) -> dict:
    """``cycles`` rounds of a victim (killed at a random point) racing a survivor, then a final
    run; more rounds (up to 3) while fewer than ``min_kills`` kills landed: a victim whose point
    is never reached (the survivor left it nothing to do) finishes instead of dying."""
    rng = random.Random(seed)
    src = tmp_path / "src"
    for i in range(n):
        p = src / f"d{i % 9}" / f"f{i:05d}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_body(rng, f"file {i}"))
    sb = factory(mode="subprocess", parse_delay=0.01)
    name = f"overlap-{seed}"
    requests.post(
        f"{sb.base_url}/api/v1/datasets",
        json={"name": name},
        headers={"Authorization": f"Bearer {sb.api_key}"},
        timeout=30,
    ).raise_for_status()
    stats = {"cycles": 0, "kills": 0, "survivor_converged": 0}
    k = -1
    while (k := k + 1) < cycles or (stats["kills"] < min_kills and k < cycles + 3):
        if k:
            _mutate(src, rng, k, n)
        point = rng.choice(POINTS)
        victim = _start(sb, src, name, "--kill-at", point, "--nth", str(rng.randint(1, 3)))
        survivor = _start(sb, src, name)
        _out, v_err = victim.communicate(timeout=600)
        _out, s_err = survivor.communicate(timeout=600)
        # the run that is not killed proves its end state while the other one dies
        assert survivor.returncode == 0, s_err[-2000:]
        # the victim dies at its point, or finishes when the other run left it nothing to do
        assert victim.returncode in (-9, 0, 1), v_err[-2000:]
        stats["kills"] += victim.returncode == -9
        stats["survivor_converged"] += survivor.returncode == 0
        stats["cycles"] += 1
    final = subprocess.run(
        [sys.executable, str(DRIVER), str(src), name],
        env={**os.environ, "RAGFLOW_BASE_URL": sb.base_url, "RAGFLOW_API_KEY": sb.api_key},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert final.returncode == 0, final.stderr[-3000:]
    assert json.loads(final.stdout.strip().splitlines()[-1])["converged"]
    ds = dataset_id(sb.base_url, sb.api_key, name)
    assert_exact(sb.base_url, sb.api_key, ds, read_tree(src), check_bytes=n <= 200)
    return stats


def test_overlapping_runs_with_random_kills_end_exact(ragflow_sandbox_factory, tmp_path):
    stats = _overlap_with_kills(
        ragflow_sandbox_factory, tmp_path, n=60, cycles=3, seed=5, min_kills=1
    )
    assert stats["cycles"] >= 3 and stats["kills"] >= 1, stats


@pytest.mark.soak
@pytest.mark.timeout(3000)
@pytest.mark.parametrize("seed", [31, 32])
def test_soak_1000_files_overlapping_runs_random_kills(ragflow_sandbox_factory, tmp_path, seed):
    stats = _overlap_with_kills(ragflow_sandbox_factory, tmp_path, n=1000, cycles=6, seed=seed)
    print(f"SOAK seed={seed} {json.dumps(stats)}")
    assert stats["cycles"] == 6
