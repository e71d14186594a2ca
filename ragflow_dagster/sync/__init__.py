"""The sync engine, usable without Dagster: plan (pure), execute (I/O), report."""

from ragflow_dagster.sync.identity import (
    MANAGED_BY,
    META_KEYS,
    document_name,
    managed_meta,
    managed_path,
    partition_key,
)
from ragflow_dagster.sync.plan import (
    Action,
    Adopt,
    Delete,
    Move,
    Plan,
    PlanOptions,
    Relabel,
    Reparse,
    Replace,
    Unchanged,
    Upload,
    plan_sync,
)
from ragflow_dagster.sync.report import REPORT_COUNTS, FileOutcome, SyncReport

__all__ = [
    "MANAGED_BY",
    "META_KEYS",
    "REPORT_COUNTS",
    "Action",
    "Adopt",
    "Delete",
    "FileOutcome",
    "Move",
    "Plan",
    "PlanOptions",
    "Relabel",
    "Reparse",
    "Replace",
    "SyncReport",
    "Unchanged",
    "Upload",
    "document_name",
    "managed_meta",
    "managed_path",
    "partition_key",
    "plan_sync",
]
