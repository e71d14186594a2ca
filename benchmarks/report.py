"""Render ``benchmarks/results.json`` as a markdown table and a PNG chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _fmt_s(x: float | None) -> str:
    return "—" if x is None else (f"{x:.2f} s" if x < 100 else f"{x:.0f} s")


def _met(flag: bool | None) -> str:
    return "—" if flag is None else ("✅" if flag else "❌")


def rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """One row per figure: benchmark, what we measured, baseline, ratio or value, goal, met."""
    out: list[dict[str, str]] = []
    b = results.get("benchmarks", {})
    if p1 := b.get("P1"):
        n = p1["files"]
        ours = p1["ours"]["seconds"]
        if "sdk" in p1:
            out.append(
                {
                    "figure": f"P1 initial sync, {n:,} files of 4–64 KB: vs ragflow-sdk loop",
                    "ours": _fmt_s(ours),
                    "baseline": _fmt_s(p1["sdk"]["seconds"]),
                    "value": f"{p1['ratios']['sdk_over_ours']:.1f}× faster",
                    "goal": "≥ 10×",
                    "met": _met(p1["goals"]["sdk_over_ours"]["met"]),
                }
            )
        out.append(
            {
                "figure": f"P1 initial sync, {n:,} files: vs floor (bare POSTs + parse)",
                "ours": _fmt_s(ours),
                "baseline": _fmt_s(p1["floor_seconds"]),
                "value": f"{p1['ratios']['floor_over_ours']:.2f}× the floor's speed",
                "goal": "≥ 0.7×",
                "met": _met(p1["goals"]["floor_over_ours"]["met"]),
            }
        )
    if p2 := b.get("P2"):
        out.append(
            {
                "figure": f"P2 no-op resync, {p2['files']:,} files: vs scandir + one listing",
                "ours": _fmt_s(p2["ours"]["seconds"]),
                "baseline": _fmt_s(p2["floor"]["seconds"]),
                "value": f"{p2['ratios']['ours_over_floor']:.2f}× the floor's time",
                "goal": "≤ 1.3×",
                "met": _met(p2["goals"]["ours_over_floor"]["met"]),
            }
        )
        out.append(
            {
                "figure": "P2 API calls of the no-op resync",
                "ours": str(p2["api_calls"]["ours_max"]),
                "baseline": f"⌈N/100⌉+5 = {p2['api_calls']['budget']}",
                "value": str(p2["api_calls"]["ours_max"]),
                "goal": f"≤ {p2['api_calls']['budget']}",
                "met": _met(p2["goals"]["api_calls"]["met"]),
            }
        )
    if p3 := b.get("P3"):
        if loc := p3.get("local"):
            out.append(
                {
                    "figure": f"P3 sensor tick, {loc['files']:,} local files (steady tick)",
                    "ours": _fmt_s(loc["tick_seconds"]),
                    "baseline": _fmt_s(loc.get("scandir_seconds")),
                    "value": _fmt_s(loc["tick_seconds"]),
                    "goal": "≤ 3 s",
                    "met": _met(loc["goal_met"]),
                }
            )
        if s3 := p3.get("s3"):
            out.append(
                {
                    "figure": f"P3 sensor tick, {s3['keys']:,} S3 keys (moto): vs bare "
                    "list_objects_v2 loop",
                    "ours": _fmt_s(s3["tick_seconds"]),
                    "baseline": _fmt_s(s3["bare_seconds"]),
                    "value": f"{s3['ratio']:.2f}× the bare loop's time",
                    "goal": "≤ 1.2×",
                    "met": _met(s3["goal_met"]),
                }
            )
    if p4 := b.get("P4"):
        out.append(
            {
                "figure": f"P4 peak RSS syncing one {p4['file_bytes'] / 2**30:.2f} GiB file",
                "ours": f"{p4['peak_rss_mb']:.0f} MB",
                "baseline": f"file {p4['file_bytes'] / 1e6:,.0f} MB",
                "value": f"{p4['peak_rss_mb']:.0f} MB",
                "goal": "≤ 150 MB",
                "met": _met(p4["goals"]["peak_rss_mb"]["met"]),
            }
        )
    if p5 := b.get("P5"):
        out.append(
            {
                "figure": f"P5 Dagster runs for a {p5['files']:,}-file initial sync via the sensor",
                "ours": str(p5["runs"]),
                "baseline": f"{p5['files']:,} (one run per file)",
                "value": f"{p5['runs']} runs in {p5['ticks']} ticks",
                "goal": "≤ 25",
                "met": _met(p5["goals"]["runs"]["met"]),
            }
        )
    return out


def markdown(results: dict[str, Any]) -> str:
    """The results table (markdown) with the machine line under it."""
    lines = [
        "| Figure | Ours | Baseline | Result | Goal | Met |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for r in rows(results):
        lines.append(
            f"| {r['figure']} | {r['ours']} | {r['baseline']} | {r['value']} | {r['goal']} | "
            f"{r['met']} |"
        )
    m = results.get("machine", {})
    lines += [
        "",
        f"Measured {results.get('generated_at', '?')} on {m.get('nproc')} cores "
        f"({m.get('cpu', m.get('machine', '?'))}), {m.get('ram_gib')} GiB RAM, "
        f"Python {m.get('python')}, {m.get('platform')}; sandbox RAGFlow in its own process on "
        "127.0.0.1, parse delay 0.",
    ]
    quick = sorted(k for k, v in results.get("benchmarks", {}).items() if v.get("quick"))
    if quick:
        lines.append(f"Quick (reduced-size) runs: {', '.join(quick)}.")
    return "\n".join(lines) + "\n"


def chart(results: dict[str, Any], path: str | Path) -> None:
    """A compact PNG: one panel per benchmark, ours next to the baseline, goal marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = results.get("benchmarks", {})
    panels: list[tuple[str, list[str], list[float], str, float | None]] = []
    if p1 := b.get("P1"):
        names = ["ours", "floor"]
        vals = [p1["ours"]["seconds"], p1["floor_seconds"]]
        if "sdk" in p1:
            names.append("ragflow-sdk")
            vals.append(p1["sdk"]["seconds"])
        panels.append((f"P1 initial sync\n{p1['files']:,} files (s)", names, vals, "s", None))
    if p2 := b.get("P2"):
        panels.append(
            (
                f"P2 no-op resync\n{p2['files']:,} files (s)",
                ["ours", "floor", "1.3× floor"],
                [p2["ours"]["seconds"], p2["floor"]["seconds"], 1.3 * p2["floor"]["seconds"]],
                "s",
                None,
            )
        )
    if p3 := b.get("P3"):
        names, vals = [], []
        if loc := p3.get("local"):
            names.append("local tick")
            vals.append(loc["tick_seconds"])
        if s3 := p3.get("s3"):
            names += ["S3 tick", "bare S3 loop"]
            vals += [s3["tick_seconds"], s3["bare_seconds"]]
        panels.append(("P3 sensor tick (s)\n(local goal 3 s)", names, vals, "s", 3.0))
    if p4 := b.get("P4"):
        panels.append(("P4 peak RSS (MB)\n1 GiB file", ["ours"], [p4["peak_rss_mb"]], "MB", 150.0))
    if p5 := b.get("P5"):
        panels.append(
            (f"P5 runs for {p5['files']:,} files", ["ours"], [float(p5["runs"])], "", 25.0)
        )
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 3.2), dpi=90)
    if len(panels) == 1:
        axes = [axes]
    colors = {"ours": "#2b7bb9"}
    for ax, (title, names, vals, _unit, goal) in zip(axes, panels, strict=True):
        bars = ax.bar(names, vals, color=[colors.get(n, "#b0b0b0") for n in names])
        for bar, v in zip(bars, vals, strict=True):
            ax.annotate(
                f"{v:.1f}" if v < 100 else f"{v:.0f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        if goal is not None:
            ax.axhline(goal, color="#d62728", linestyle="--", linewidth=1)
            ax.annotate("goal", (len(names) - 0.5, goal), color="#d62728", fontsize=7, va="bottom")
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=7, rotation=20)
        ax.tick_params(axis="y", labelsize=7)
        ax.margins(y=0.15)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
