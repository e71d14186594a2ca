"""Counting a sync's outcomes, describing its actions, and hashing a download to prove it
(helpers of the executor)."""

from __future__ import annotations

import hashlib

from ragflow_dagster.sync.actions import Action, Delete, Move, Rechunk, Relabel, Reparse, Replace
from ragflow_dagster.sync.report import SyncReport

ACTION_COUNT = {  # plan action kind -> report count
    "upload": "uploaded",
    "replace": "replaced",
    "adopt": "adopted",
    "move": "moved",
    "relabel": "relabelled",
    "rechunk": "rechunked",
    "reparse": "reparsed",
    "unchanged": "unchanged",
}
"""The report count each action kind adds to."""


class HashSink:
    """A writable stream that only hashes (for proving a download)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        self.size += len(data)
        return len(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def count_outcomes(report: SyncReport) -> None:
    """Derive the action counts of ``report`` from its per-file outcomes."""
    for key in set(ACTION_COUNT.values()) | {"deleted", "deduplicated", "failed"}:
        report.counts[key] = 0
    failed_paths = set()
    for o in report.outcomes:
        if o.status == "failed":
            failed_paths.add(o.path)
        elif o.status == "ok":
            if o.action == "delete":
                report.counts["deleted"] += 1
            elif o.action == "deduplicate":
                report.counts["deduplicated"] += 1
            elif o.action in ACTION_COUNT:
                report.counts[ACTION_COUNT[o.action]] += 1
    report.counts["failed"] = len(failed_paths)


def planned_detail(action: Action) -> str:
    """What an action changes, for the report (``department HR→People``)."""
    if isinstance(action, Move):
        return f"from {action.from_path}"
    if isinstance(action, Rechunk):
        return "; ".join((action.reason, *action.changes))
    if isinstance(action, Relabel):
        return "; ".join(action.changes)
    if isinstance(action, Replace):
        return action.detail
    if isinstance(action, Delete):
        return action.reason
    if isinstance(action, Reparse):
        return action.reason
    return ""


__all__ = ["ACTION_COUNT", "HashSink", "count_outcomes", "planned_detail"]
