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
    every = results.get("benchmarks", {})
    b = {k: v for k, v in every.items() if "error" not in v}
    failed = {k: v["error"] for k, v in every.items() if "error" in v}
    if p1a := b.get("P1A"):
        n = p1a["files"]
        ours = p1a["ours"]["seconds"]
        out.append(
            {
                "figure": f"P1a upload phase, {n:,} files of 4–64 KB, uploaded + labelled: vs a "
                "bare script doing the same requests (multi-file POSTs, then one name + "
                "meta_fields PATCH each, 8 threads)",
                "ours": _fmt_s(ours),
                "baseline": _fmt_s(p1a["bare"]["seconds"]),
                "value": f"{p1a['ratios']['bare_over_ours']:.2f}× the script's speed",
                "goal": "≥ 0.9×",
                "met": _met(p1a["goals"]["bare_over_ours"]["met"]),
            }
        )
        if "bare_meta_only" in p1a:
            out.append(
                {
                    "figure": "P1a, for the record: the bare script labelling without renaming "
                    "(files uploaded under their final names)",
                    "ours": _fmt_s(ours),
                    "baseline": _fmt_s(p1a["bare_meta_only"]["seconds"]),
                    "value": f"{p1a['ratios']['bare_meta_only_over_ours']:.2f}× its speed",
                    "goal": "—",
                    "met": "—",
                }
            )
        if "sdk" in p1a:
            out.append(
                {
                    "figure": f"P1a upload phase, {n:,} files: vs the ragflow-sdk one-file loop "
                    "(which labels nothing)",
                    "ours": _fmt_s(ours),
                    "baseline": _fmt_s(p1a["sdk"]["seconds"]),
                    "value": f"{p1a['ratios']['sdk_over_ours']:.2f}× faster",
                    "goal": "≥ 1.3×",
                    "met": _met(p1a["goals"]["sdk_over_ours"]["met"]),
                }
            )
    if p1b := b.get("P1B"):
        ours, floor = p1b["ours"], p1b["floor"]
        out.append(
            {
                "figure": f"P1b end to end, {p1b['files']:,} files to DONE (serial parser, "
                f"{p1b['parse_delay']} s per document): vs the floor (bare uploads, parse "
                "requests, paged wait)",
                "ours": _fmt_s(ours["seconds"]),
                "baseline": _fmt_s(floor["seconds"]),
                "value": f"{p1b['ratios']['ours_over_floor']:.3f}× the floor's time",
                "goal": "≤ 1.05×",
                "met": _met(p1b["goals"]["ours_over_floor"]["met"]),
            }
        )
        out.append(
            {
                "figure": "P1b time to the first DONE document",
                "ours": _fmt_s(ours.get("first_done_seconds")),
                "baseline": _fmt_s(floor.get("first_done_seconds")),
                "value": f"first DONE {ours.get('first_done_seconds') or 0:.2f} s in; the "
                f"uploads took {ours['durations'].get('upload', 0):.1f} s",
                "goal": "parsing starts while uploading",
                "met": _met(
                    (ours.get("first_done_seconds") or 1e9) < ours["durations"].get("upload", 0)
                ),
            }
        )
    if p2 := b.get("P2"):
        out.append(
            {
                "figure": f"P2 no-op resync, {p2['files']:,} files: vs scandir walk + one paged "
                "listing, one after the other",
                "ours": _fmt_s(p2["ours"]["seconds"]),
                "baseline": _fmt_s(p2["floor"]["seconds"]),
                "value": f"{p2['ratios']['ours_over_floor']:.2f}× the floor's time",
                "goal": "≤ 1.2× (stretch < 1.0×)",
                "met": _met(p2["goals"]["ours_over_floor"]["met"])
                + ("✅" if p2["goals"].get("stretch_below_floor", {}).get("met") else ""),
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
        if rss := p2.get("peak_rss_mb"):
            out.append(
                {
                    "figure": "P2 peak RSS of the no-op resync (its own process)",
                    "ours": f"{rss['ours']:.0f} MB",
                    "baseline": f"floor {rss['floor']:.0f} MB",
                    "value": f"{rss['ours']:.0f} MB",
                    "goal": "≤ 300 MB",
                    "met": _met(p2["goals"]["peak_rss_mb"]["met"]),
                }
            )
    if ls := b.get("LIST"):
        out.append(
            {
                "figure": f"LIST local listing, {ls['files']:,} files: LocalFolderSource.scan() "
                "vs a bare os.scandir walk",
                "ours": _fmt_s(ls["seconds"]["local-scan"]),
                "baseline": _fmt_s(ls["seconds"]["local-bare"]),
                "value": f"{ls['ratios']['local-scan']:.2f}× the walk's time "
                f"(inventory {ls['ratios']['local-inventory']:.2f}×"
                + (
                    f", collector paused {ls['ratios']['local-scan@paused']:.2f}×)"
                    if "local-scan@paused" in ls["ratios"]
                    else ")"
                ),
                "goal": "≤ 1.2×",
                "met": _met(ls["goals"]["scan_over_bare"]["met"]),
            }
        )
    if p6 := b.get("P6"):
        out.append(
            {
                "figure": f"P6 resync after moving {p6['moved']:,} and editing {p6['edited']:,} "
                f"of {p6['files']:,} files: vs 1.1 × the server's time parsing the edited files "
                "+ one listing",
                "ours": _fmt_s(p6["seconds"]),
                "baseline": _fmt_s(p6["budget_seconds"]),
                "value": f"{p6['counts']['replaced']} re-uploaded, "
                f"{p6['counts']['parse_requested']} re-parsed, {p6['counts']['moved']} renamed; "
                f"{p6['seconds'] / p6['budget_seconds']:.2f}× the budget",
                "goal": "exact counts, ≤ budget",
                "met": _met(p6["goals"]["exact_counts"]["met"])
                + _met(p6["goals"]["seconds"]["met"]),
            }
        )
    if sc := b.get("SCALE"):
        big = sc["big"]
        small = sc.get("small")
        lin = f", {sc['linearity']:.2f}× the per-file time at {small['files']:,}" if small else ""
        out.append(
            {
                "figure": f"SCALE planning {sc['files']:,} files against {sc['files']:,} "
                "documents (pure, in memory)",
                "ours": _fmt_s(big["seconds"]),
                "baseline": _fmt_s(small["seconds"]) + f" at {small['files']:,}" if small else "—",
                "value": f"{big['seconds']:.1f} s{lin}",
                "goal": "≤ 10 s",
                "met": _met(sc["goals"]["seconds"]["met"]),
            }
        )
        out.append(
            {
                "figure": f"SCALE peak RSS (its own process, {sc['files']:,} documents held)",
                "ours": f"{big['peak_rss_mb']:,.0f} MB",
                "baseline": f"{big['rss_after_build_mb']:,.0f} MB with the records alone",
                "value": f"{big['peak_rss_mb']:,.0f} MB",
                "goal": "≤ 1,500 MB",
                "met": _met(sc["goals"]["peak_rss_mb"]["met"]),
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
    for name, error in sorted(failed.items()):
        out.append(
            {
                "figure": f"{name} failed: {error[:120]}",
                "ours": "—",
                "baseline": "—",
                "value": "—",
                "goal": "—",
                "met": "❌",
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
        "127.0.0.1 (parse delay 0 except P1b and P6: one serial parser, 0.05 s per document).",
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

    b = {k: v for k, v in results.get("benchmarks", {}).items() if "error" not in v}
    panels: list[tuple[str, list[str], list[float], str, float | None]] = []
    if p1a := b.get("P1A"):
        names = ["ours", "bare script"]
        vals = [p1a["ours"]["seconds"], p1a["bare"]["seconds"]]
        if "sdk" in p1a:
            names.append("ragflow-sdk")
            vals.append(p1a["sdk"]["seconds"])
        panels.append((f"P1a upload + label\n{p1a['files']:,} files (s)", names, vals, "s", None))
    if p1b := b.get("P1B"):
        panels.append(
            (
                f"P1b to DONE, serial parser\n{p1b['files']:,} files (s)",
                ["ours", "floor", "1.05× floor"],
                [p1b["ours"]["seconds"], p1b["floor"]["seconds"], 1.05 * p1b["floor"]["seconds"]],
                "s",
                None,
            )
        )
    if p2 := b.get("P2"):
        panels.append(
            (
                f"P2 no-op resync\n{p2['files']:,} files (s)",
                ["ours", "floor", "1.2× floor"],
                [p2["ours"]["seconds"], p2["floor"]["seconds"], 1.2 * p2["floor"]["seconds"]],
                "s",
                None,
            )
        )
    if ls := b.get("LIST"):
        panels.append(
            (
                f"LIST local\n{ls['files']:,} files (s)",
                ["scan", "inventory", "bare walk"],
                [ls["seconds"][k] for k in ("local-scan", "local-inventory", "local-bare")],
                "s",
                1.2 * ls["seconds"]["local-bare"],
            )
        )
    if p6 := b.get("P6"):
        panels.append(
            (
                f"P6 moves resync\n{p6['files']:,} files (s)",
                ["ours", "budget"],
                [p6["seconds"], p6["budget_seconds"]],
                "s",
                None,
            )
        )
    if sc := b.get("SCALE"):
        names, vals = [f"{sc['files'] // 1000:,}k"], [sc["big"]["seconds"]]
        if small := sc.get("small"):
            names.append(f"{small['files'] // 1000:,}k")
            vals.append(small["seconds"])
        panels.append(("SCALE plan (s)\n(goal 10 s)", names, vals, "s", 10.0))
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
