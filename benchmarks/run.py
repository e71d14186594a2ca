"""Run the benchmarks (``make bench``) and write ``benchmarks/results.{json,md,png}``.

Usage::

    python -m benchmarks.run                       # all, full size (about 50 min on 2 cores)
    python -m benchmarks.run --quick               # reduced sizes (about 10 min)
    python -m benchmarks.run --only P1A,P2,SCALE   # some of them; the others' results are kept

Each figure is a ratio (or a value against its goal) measured in one run: the contestants of a
benchmark run one after the other in the same process, on the same generated data.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import dump, log, machine_info

HERE = Path(__file__).resolve().parent

BENCHMARKS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # name: (module, full-size kwargs, quick kwargs)
    "P1A": ("benchmarks.p1a_upload", {"files": 5000}, {"files": 1000}),
    "P1B": ("benchmarks.p1b_parse", {"files": 5000}, {"files": 500}),
    "P2": ("benchmarks.p2_noop_resync", {"files": 100_000}, {"files": 20_000}),
    "LIST": ("benchmarks.list_local", {"files": 100_000}, {"files": 20_000}),
    "P3": (
        "benchmarks.p3_sensor_tick",
        {"files": 100_000, "keys": 100_000},
        {"files": 20_000, "keys": 20_000},
    ),
    "P4": ("benchmarks.p4_memory", {"size": 1 << 30}, {"size": 256 << 20}),
    "P5": ("benchmarks.p5_sensor_runs", {"files": 10_000}, {"files": 2_000}),
    "P6": ("benchmarks.p6_moves", {"files": 5000}, {"files": 1000}),
    "P7": ("benchmarks.p7_dagster_noop", {"files": 100_000}, {"files": 10_000}),
    "SCALE": (
        "benchmarks.scale_plan",
        {"files": 1_000_000, "compare": 100_000},
        {"files": 200_000, "compare": 20_000},
    ),
}
RETIRED = ("P1",)
"""Benchmarks replaced by others (P1 became P1A and P1B): dropped from results.json."""


def _runner(module: str) -> Callable[..., dict[str, Any]]:
    return importlib.import_module(module).run  # type: ignore[no-any-return]


def goals_met(entry: dict[str, Any]) -> bool | None:
    goals = entry.get("goals") or {}
    if not goals:
        return None
    return all(g.get("met") for g in goals.values())


def run(
    names: list[str],
    *,
    quick: bool = False,
    out_dir: Path = HERE,
    workdir: str | None = None,
) -> dict[str, Any]:
    """Run the named benchmarks, merge them into ``out_dir/results.json`` and render it."""

    results_path = out_dir / "results.json"
    results: dict[str, Any] = {}
    if results_path.exists():
        try:
            results = json.loads(results_path.read_text())
        except ValueError:
            results = {}
    machine = machine_info()
    results["machine"] = machine
    results.setdefault("benchmarks", {})
    for name in RETIRED:
        results["benchmarks"].pop(name, None)
    for name in names:
        module, full, small = BENCHMARKS[name]
        kwargs = dict(small if quick else full)
        if workdir:
            kwargs["workdir"] = workdir
        log(f"{name}: starting ({'quick' if quick else 'full size'}: {kwargs})")
        t0 = time.perf_counter()
        try:
            entry = _runner(module)(**kwargs)
        except Exception as exc:  # a broken benchmark must not hide the others' figures
            log(f"{name}: FAILED: {exc!r}")
            entry = {
                "name": name,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-4000:],
            }
        entry["quick"] = quick
        entry["wall_seconds"] = round(time.perf_counter() - t0, 1)
        entry["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        entry["machine"] = {k: machine.get(k) for k in ("nproc", "ram_gib", "python", "cpu")}
        results["benchmarks"][name] = entry
        log(f"{name}: done in {entry['wall_seconds']}s; goals met: {goals_met(entry)}")
        results["generated_at"] = time.strftime("%Y-%m-%d %H:%M %Z")
        _write(results, out_dir)
    return results


def _write(results: dict[str, Any], out_dir: Path) -> None:
    from benchmarks import report

    ordered = dict(sorted(results["benchmarks"].items()))
    results["benchmarks"] = ordered
    (out_dir / "results.json").write_text(dump(results) + "\n")
    (out_dir / "results.md").write_text(report.markdown(results))
    try:
        report.chart(results, out_dir / "results.png")
    except Exception as exc:  # the figures matter more than the picture
        log(f"chart not written: {exc!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--only", help="comma-separated subset, e.g. P1A,P3 (default: all)")
    ap.add_argument("--quick", action="store_true", help="reduced sizes")
    ap.add_argument("--out-dir", type=Path, default=HERE, help="where results.* are written")
    ap.add_argument("--workdir", help="scratch directory for generated trees (default: /tmp)")
    ap.add_argument(
        "--render-only", action="store_true", help="re-render results.md/png from results.json"
    )
    args = ap.parse_args(argv)
    if args.render_only:
        results = json.loads((args.out_dir / "results.json").read_text())
        _write(results, args.out_dir)
        print((args.out_dir / "results.md").read_text())
        return 0
    names = [n.strip().upper() for n in (args.only or ",".join(BENCHMARKS)).split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    results = run(names, quick=args.quick, out_dir=args.out_dir, workdir=args.workdir)
    from benchmarks import report

    print(report.markdown(results))
    failed = [n for n in names if "error" in results["benchmarks"][n]]
    for n in failed:
        print(f"{n} failed: {results['benchmarks'][n]['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
