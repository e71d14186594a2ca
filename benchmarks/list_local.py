"""LIST: listing N local files — ``LocalFolderSource`` against a bare ``os.scandir`` walk.

The tree (``N`` empty files, 100 per folder) is listed by the variants below interleaved
round-robin in one fresh process (one warm-up round, then ``rounds``, 15 by default: one walk
varies by ±15 % on the shared 2-core machine; medians):

* ``local-bare``: a bare ``os.scandir`` walk collecting ``(path, size, mtime_ns)``;
* ``local-scan``: ``LocalFolderSource(root).scan()`` (one ``SourceEntry`` per file);
* ``local-inventory``: ``build_inventory`` (no hashing);
* ``local-bare@paused``, ``local-scan@paused``: the first two with the collector paused around
  the whole walk (the local walk pauses it itself since 2026-12-02).

Goal: ``local-scan`` at most 1.2× the bare walk (``local-inventory`` is reported next to it).
Uses :mod:`benchmarks.bench_sources` (its tree and child processes).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from typing import Any

from benchmarks.bench_sources import _child, make_tree
from benchmarks.common import dump, log

GOAL_RATIO = 1.2
DEFAULT_FILES = 100_000
VARIANTS = (
    "local-bare",
    "local-scan",
    "local-inventory",
    "local-bare@paused",
    "local-scan@paused",
)


def run(
    *, files: int = DEFAULT_FILES, rounds: int = 15, workdir: str | None = None
) -> dict[str, Any]:
    """Run LIST and return its result record."""
    with tempfile.TemporaryDirectory(
        prefix="bench-list-", dir=workdir, ignore_cleanup_errors=True
    ) as root:
        make_tree(root, files)
        log(f"LIST: {files} files created; {rounds} interleaved rounds")
        timed = _child("--child-time", str(rounds), "1", ",".join(VARIANTS), root)
        wall = {n: statistics.median(v) for n, v in timed["wall"].items()}
        cpu = {n: statistics.median(v) for n, v in timed["cpu"].items()}
        ratios = {
            n: round(wall[n] / wall["local-bare@paused" if "@" in n else "local-bare"], 3)
            for n in VARIANTS
            if not n.startswith("local-bare")
        }
        counts = timed["counts"]
        same = len(set(counts.values())) == 1 and counts["local-bare"] == files
        return {
            "name": "LIST local listing",
            "files": files,
            "rounds": rounds,
            "seconds": {n: round(wall[n], 4) for n in VARIANTS},
            "cpu_seconds": {n: round(cpu[n], 4) for n in VARIANTS},
            "all_seconds": {n: [round(x, 4) for x in timed["wall"][n]] for n in VARIANTS},
            "counts": counts,
            "ratios": ratios,
            "goals": {
                "scan_over_bare": {
                    "goal": f"<= {GOAL_RATIO}",
                    "met": ratios["local-scan"] <= GOAL_RATIO,
                },
                "same_files": {"goal": f"== {files}", "met": same},
            },
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=DEFAULT_FILES)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    print(dump(run(files=args.files, rounds=args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
