"""``make demo``: materialise the whole graph headless and print the checks and the sync report.

The run is recorded in the persistent Dagster instance of ``$DAGSTER_HOME`` (default:
``.dagster/`` in the current folder, the same one ``make dev`` uses), so the UI shows the demo's
runs, partitions, materializations and check results afterwards.

The very last line printed is the sync report as one JSON object. A run that failed prints
``"converged": false`` and its error there, never a zero-filled success-shaped line.

Example:
    .. code-block:: console

        $ make demo                          # or: python -m ragflow_dagster.demo [-v]
        9 files -> 9 partitions (0 for removed files)
        ...
        {"converged": true, "scanned": 9, "uploaded": 9, ...}
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
ENV_DAGSTER_HOME = "DAGSTER_HOME"
DEFAULT_HOME = ".dagster"

_SUMMARY_KEYS = (
    "scanned",
    "uploaded",
    "replaced",
    "moved",
    "deleted",
    "unchanged",
    "skipped",
    "failed",
)


def dagster_home() -> Path:
    """The persistent instance folder: ``$DAGSTER_HOME``, else ``./.dagster`` (created, and
    exported so the embedded sandbox keeps its data beside it, as under ``make dev``)."""
    home = Path(os.environ.get(ENV_DAGSTER_HOME) or Path.cwd() / DEFAULT_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(_INSTANCE_YAML)
    os.environ[ENV_DAGSTER_HOME] = str(home)
    return home


_INSTANCE_YAML = "# The Dagster instance of make demo and make dev.\ntelemetry:\n  enabled: false\n"


def run_demo(*, instance: Any = None, verbose: bool = False) -> dict[str, Any]:
    """Sync the configured source once through the Dagster job.

    Args:
        instance: The Dagster instance to record the run in (default: the persistent one of
            :func:`dagster_home`).
        verbose: Show Dagster's own event log (INFO) instead of warnings only.

    Returns:
        ``{"success": bool, "report": dict, "error": str | None, "checks": [...]}``.
    """
    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    if instance is None:
        dagster_home()
        instance = dg.DagsterInstance.get()
    from ragflow_dagster.project import build_project

    project = build_project()
    ingestion: Any = project.ingestion
    defs: Any = project.defs
    tags: dict[str, str] = {}
    parts = ingestion.partitioning
    if parts.kind == "files":
        from ragflow_dagster.sources import build_inventory

        inventory = build_inventory(ingestion.source, ingestion.filters, compute_sha256=False)
        keys = list(dict.fromkeys(parts.key_for(e.path) for e in inventory.entries))
        name = parts.name
        existing = set(instance.get_dynamic_partitions(name))
        instance.add_dynamic_partitions(name, [k for k in keys if k not in existing])
        gone = [k for k in instance.get_dynamic_partitions(name) if k not in set(keys)]
        all_keys = instance.get_dynamic_partitions(name)
        if all_keys:
            tags = {RANGE_START: all_keys[0], RANGE_END: all_keys[-1]}
        print(
            f"{_n(len(keys), 'file')} -> {_n(len(all_keys), 'partition')} "
            f"({len(gone)} for removed files)"
        )
    elif parts.kind == "shards":
        keys = parts.partitions_def.get_partition_keys()
        tags = {RANGE_START: keys[0], RANGE_END: keys[-1]}
    job = defs.resolve_job_def(ingestion.job.name)
    level = "INFO" if verbose else "WARNING"
    result = job.execute_in_process(
        instance=instance,
        tags=tags,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": level}}}},
    )

    checks = []
    print("\nAsset checks:")
    for evaluation in result.get_asset_check_evaluations():
        status = "PASS" if evaluation.passed else "FAIL"
        line = (
            f"[{status}] {evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            f" - {evaluation.description}"
        )
        checks.append(line)
        print("  " + line)
    if not checks:
        print("  (none ran)")
    report: dict[str, Any] = {}
    for mat in result.asset_materializations_for_node(_node_name(ingestion)):
        value = mat.metadata.get("report")
        # runs over many partitions keep only the numbers in the metadata
        report = (
            value.value
            if value is not None
            else {
                k: v.value
                for k, v in mat.metadata.items()
                if isinstance(v.value, (int, float, bool))
            }
        )
        break
    return {
        "success": result.success,
        "report": report,
        "error": None
        if result.success
        else _first_failure(result, base_url=project.server.base_url),
        "checks": checks,
        "run_id": result.run_id,
    }


def _first_failure(result: Any, *, base_url: str) -> str:
    """The first failed step's error, one line, without Dagster's wrapping."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            step = event.step_key or "a step"
            if error is None:
                return f"{step} failed"
            # the innermost cause is the one that names the problem (Dagster wraps it)
            while error.cause is not None and error.cls_name in _WRAPPERS:
                error = error.cause
            lines = (error.message or error.cls_name or "failed").strip().splitlines()
            message = lines[0] if lines else "failed"
            prefix = f"{error.cls_name}: "
            if prefix in message:  # "package.module.Class: text" -> "text"
                message = message.split(prefix, 1)[1]
            if (error.cls_name or "").lstrip("_").startswith(("RAGFlow", "TransportError")):
                message = f"RAGFlow at {base_url}: {message}"
            return f"{step}: {message}"
    return "the run failed (see the log above)"


_WRAPPERS = {"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"}


def summary_line(outcome: dict[str, Any]) -> str:
    """The demo's last line: the report as one JSON object, ``converged`` first.

    A failed run shows ``"converged": false`` and its error with only the numbers the run
    actually produced (none when it stopped before the sync), never zeros it did not count.

    Example:
        >>> summary_line({"success": False, "report": {}, "error": "boom"})
        '{"converged": false, "error": "boom"}'
    """
    report = dict(outcome.get("report") or {})
    converged = bool(outcome.get("success")) and bool(report.get("converged", bool(report)))
    line: dict[str, Any] = {"converged": converged}
    error = outcome.get("error") or report.get("error")
    if error:
        line["error"] = error
    if report:
        line.update({k: report[k] for k in _SUMMARY_KEYS if k in report})
        line.update(
            {
                k: v
                for k, v in report.items()
                if k not in line and k not in ("outcomes", "converged", "error")
            }
        )
    return json.dumps(line, default=str)


def _demo_logging(*, verbose: bool) -> contextlib.AbstractContextManager[None]:
    """The CLI's logging (one handler, each line once, restored afterwards), minus the sandbox
    banner that project.py both logs and prints."""
    from ragflow_dagster.cli import cli_logging

    return cli_logging(verbose=1 if verbose else 0, quiet=False)


class _NoBanner(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "RAGFLOW_BASE_URL is not set" not in record.getMessage()


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _node_name(ingestion: Any) -> str:
    return ingestion.asset_keys["documents"].to_python_identifier()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ragflow_dagster.demo [-v]``; exit code 0 when the run succeeded."""
    parser = argparse.ArgumentParser(prog="python -m ragflow_dagster.demo")
    parser.add_argument("-v", "--verbose", action="store_true", help="Dagster's event log too")
    args = parser.parse_args(argv)
    banner = _NoBanner()
    project_logger = logging.getLogger("ragflow_dagster")
    project_logger.addFilter(banner)
    try:
        with _demo_logging(verbose=args.verbose):
            outcome = run_demo(verbose=args.verbose)
    except Exception as exc:  # the definitions could not even be built: say why, in one line
        outcome = {"success": False, "report": {}, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        project_logger.removeFilter(banner)
    if not outcome["success"]:
        print("\nthe run did not succeed; its error is on the last line", file=sys.stderr)
    else:
        home = os.environ.get(ENV_DAGSTER_HOME)
        print(f"\nrecorded in the Dagster instance at {home}: `make dev` shows it")
    print(summary_line(outcome))
    return 0 if outcome["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
