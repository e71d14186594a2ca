"""``ragflow-dagster sync SOURCE --routes-file routes.yaml``: one source into several datasets.

The routes file is YAML or JSON (a ``.json`` file is read as JSON, anything else as YAML, which
also reads JSON)::

    # routes.yaml
    routes:
      - {glob: "engineering/**", dataset: eng}
      - {glob: ["policies/**", "*.policy.md"], dataset: {name: policies, chunk_method: naive}}
    default_dataset: general     # optional: else files no route matches are skipped (unrouted)

The source is listed once; each dataset gets its own plan, its own mass-delete guard and its own
summary on stdout. Exit code ``0`` when every dataset converged, ``1`` when any did not (or the
run stopped), ``2`` for a bad routes file. ``--stats-file`` gets the routed report: per dataset
the keys of a single sync's report, plus the unrouted files.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ragflow_dagster.cli_options import UsageError
from ragflow_dagster.sync.routing import RouteTable

__all__ = ["load_routes_file", "run_routed"]


def load_routes_file(path: Path) -> RouteTable:
    """The :class:`RouteTable` of a YAML / JSON routes file (a bare list of routes works too).

    Raises:
        UsageError: The file cannot be read or is not a valid route table (one line).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "routes.yaml"
        >>> _ = p.write_text("routes:\\n  - {glob: 'eng/**', dataset: eng}\\n")
        >>> load_routes_file(p).dataset_names
        ('eng',)
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--routes-file {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".json":
            data: Any = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (ValueError, Exception) as exc:
        raise UsageError(f"--routes-file {path}: not valid YAML/JSON: {exc}") from None
    if isinstance(data, list):
        data = {"routes": data}
    if not isinstance(data, dict):
        raise UsageError(f"--routes-file {path}: expected a mapping with 'routes:'")
    from pydantic import ValidationError

    try:
        return RouteTable.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "routes"
        raise UsageError(f"--routes-file {path}: {where}: {first.get('msg')}") from None


def run_routed(
    client: Any,
    source: Any,
    routes: RouteTable,
    options: Any,
    args: argparse.Namespace,
    *,
    progress: Any,
) -> int:
    """Run the routed sync for ``ragflow-dagster sync``; print one summary per dataset."""
    from ragflow_dagster.cli import (
        EXIT_FAILED,
        EXIT_OK,
        exit_code_for,
        explain_error,
        write_stats,
    )
    from ragflow_dagster.client import RAGFlowError
    from ragflow_dagster.sources import SourceError
    from ragflow_dagster.sync.routed import RoutedSyncReport, sync_routed

    report: RoutedSyncReport | None = None
    error: str | None = None
    try:
        with client:
            report = sync_routed(
                client,
                source,
                routes,
                options,
                progress=progress,
                log=logging.getLogger("ragflow_dagster.sync"),
            )
    except RAGFlowError as exc:
        error = explain_error(exc, client.base_url)
    except SourceError as exc:
        error = f"SOURCE {args.source}: {exc}"
    finally:
        progress.close()
    waited = not args.no_wait and not args.dry_run
    if report is None:
        data = {"source_uri": source.uri, "converged": False, "error": error, "datasets": {}}
        if args.stats_file is not None:
            write_stats(args.stats_file, data)
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    codes = {name: exit_code_for(r, waited=waited) for name, r in report.reports.items()}
    code = EXIT_OK if all(c == EXIT_OK for c in codes.values()) else EXIT_FAILED
    data = report.to_dict()
    data["failed_datasets"] = [n for n, c in codes.items() if c != EXIT_OK]
    data["converged"] = code == EXIT_OK
    if args.stats_file is not None and not write_stats(args.stats_file, data):
        code = EXIT_FAILED
    for name, r in report.reports.items():
        ok = codes[name] == EXIT_OK
        if args.quiet and ok:
            continue
        stream = sys.stdout if ok else sys.stderr
        verdict = "converged" if ok else "NOT converged"
        if args.dry_run:
            verdict = "dry run: nothing changed" + ("" if ok else "; NOT converged")
        print(r.summary(), file=stream)
        print(f"{name}: {verdict}", file=stream)
        print(file=stream)
    if not args.quiet:
        n = len(report.unrouted)
        line = f"unrouted: {n} file{'' if n == 1 else 's'} matched no route (skipped)"
        if n:
            line += ": " + ", ".join(s.path for s in report.unrouted[:5]) + (", ..." * (n > 5))
        print(line)
        print(
            f"{len(report.reports)} datasets from one listing of {report.source_uri}: "
            + (
                ("dry run: all planned" if args.dry_run else "all converged")
                if code == EXIT_OK
                else "failed: " + ", ".join(data["failed_datasets"])
            )
        )
    return code
