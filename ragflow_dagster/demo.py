"""``make demo``: materialise the whole graph headless and print the checks and the sync report.

The very last line printed is the sync report as one JSON object.
"""

from __future__ import annotations

import json
import logging
import sys

import dagster as dg

from ragflow_dagster.project import build_project

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def run_demo(*, instance: dg.DagsterInstance | None = None) -> dict:
    """Sync the configured source once through the Dagster job; returns the sync report."""
    project = build_project()
    ingestion = project.ingestion
    defs = project.defs
    instance = instance or dg.DagsterInstance.ephemeral()
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
        print(f"{len(keys)} files -> {len(all_keys)} partitions ({len(gone)} for removed files)")
    elif parts.kind == "shards":
        keys = parts.partitions_def.get_partition_keys()
        tags = {RANGE_START: keys[0], RANGE_END: keys[-1]}
    job = defs.resolve_job_def(ingestion.job.name)
    result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)

    print("\nAsset checks:")
    for evaluation in result.get_asset_check_evaluations():
        status = "PASS" if evaluation.passed else "FAIL"
        print(
            f"  [{status}] {evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            f" - {evaluation.description}"
        )
    report: dict = {}
    for mat in result.asset_materializations_for_node(_node_name(ingestion)):
        value = mat.metadata.get("report")
        # runs over many partitions keep only the numbers in the metadata
        report = (
            value.value
            if value is not None
            else {  # type: ignore[assignment]
                k: v.value
                for k, v in mat.metadata.items()
                if isinstance(v.value, (int, float, bool))
            }
        )
        break
    if not result.success:
        print("\nthe run did not succeed; see the log above", file=sys.stderr)
    return {"success": result.success, "report": report}


def _node_name(ingestion) -> str:
    return ingestion.asset_keys["documents"].to_python_identifier()


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    outcome = run_demo()
    report = outcome["report"]
    keys = ("scanned", "uploaded", "replaced", "moved", "deleted", "unchanged", "skipped", "failed")
    summary = {k: report.get(k, 0) for k in keys}
    summary.update({k: v for k, v in report.items() if k not in summary and k != "outcomes"})
    print(json.dumps(summary))
    return 0 if outcome["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
