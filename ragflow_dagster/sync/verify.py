"""The proof behind ``converged``: complete listings, and what a plan over one says.

A run may say ``converged`` only when a plan made from a *complete* listing of the dataset,
taken after its last change, has nothing left to do: exactly one managed, trusted, parsed
document per file, with the file's sha256, and no duplicates, leftovers or documents of removed
files. A listing is complete only when proven complete (:meth:`RAGFlowClient._pages` checks
every page against ``total``); one that changed while it was read is read again.
"""

from __future__ import annotations

import logging
import time

from ragflow_dagster.client import Document, RAGFlowClient, RAGFlowIncompleteListingError
from ragflow_dagster.sync.actions import Unchanged
from ragflow_dagster.sync.plan import Delete, Plan

logger = logging.getLogger("ragflow_dagster.sync")


def list_complete(
    client: RAGFlowClient,
    dataset_id: str,
    *,
    passes: int = 8,
    log: logging.Logger | None = None,
) -> list[Document]:
    """Every document of the dataset, from a listing proven complete.

    A pass that fails to prove itself (a page without data, a short page, documents deleted
    while it ran) is started again from the first page, up to ``passes`` times, with a short
    growing pause between passes (another run that deletes duplicates settles within seconds).

    Raises:
        RAGFlowIncompleteListingError: No pass could be proven complete.

    Example:
        >>> sorted(d.name for d in list_complete(client, ds.id))
        ['a.txt', 'b.txt']
    """
    log = log or logger
    last: RAGFlowIncompleteListingError | None = None
    for attempt in range(1, max(1, passes) + 1):
        try:
            return list(client.iter_documents(dataset_id))
        except RAGFlowIncompleteListingError as exc:
            last = exc
            log.info("dataset listing pass %d/%d not complete: %s", attempt, passes, exc)
            if attempt < passes:
                time.sleep(min(2.0, 0.1 * 2 ** (attempt - 1)))
    assert last is not None
    raise last


def verdict(plan: Plan, *, parse: bool = True) -> str | None:
    """Why a plan made from a complete listing shows the dataset *not* in sync (None: in sync).

    ``parse=False`` (a run told not to parse) accepts documents that are not parsed yet.

    Example:
        >>> verdict(Plan(actions=())) is None
        True
    """
    counts: dict[str, int] = {}
    for action in plan.actions:
        if isinstance(action, Unchanged):
            if action.pending and parse:
                counts["still parsing"] = counts.get("still parsing", 0) + 1
            continue
        if action.kind == "reparse" and not parse:
            continue
        key = action.kind
        if isinstance(action, Delete):
            key = f"delete ({action.reason})"
        counts[key] = counts.get(key, 0) + 1
    if plan.withheld_deletes:
        n = sum(len(d.doc_ids) for d in plan.withheld_deletes)
        counts["deletes withheld by the mass-delete guard"] = n
    if not counts:
        return None
    return "left to do: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def only_waiting(plan: Plan, *, parse: bool = True) -> bool:
    """True when nothing in the plan can be acted on now (it waits for parses or the guard)."""
    for action in plan.actions:
        if action.kind == "unchanged" or (action.kind == "reparse" and not parse):
            continue
        return False
    return True


__all__ = ["list_complete", "only_waiting", "verdict"]
