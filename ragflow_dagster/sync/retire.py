"""The deletes of a plan's execution: what a replace retires once its successor is parsed,
duplicates, stray leftovers and removed files (a part of :class:`~.execute.PlanExecutor`)."""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ragflow_dagster.client import RAGFlowClient, RAGFlowError, RAGFlowNotFoundError
from ragflow_dagster.sync.identity import document_name
from ragflow_dagster.sync.parse_wait import ParseTracker
from ragflow_dagster.sync.report import SyncReport

if TYPE_CHECKING:
    from ragflow_dagster.sync.actions import Delete


@dataclass
class Successor:
    """A document whose parse gates deletes: its path, what to delete once it is ``DONE``
    (ids and reason), and the name it got (renamed to the path's name after the deletes)."""

    path: str
    deletes: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    name: str = ""


class Retirement(abc.ABC):
    """The delete steps of :class:`~.execute.PlanExecutor`, which provides the attributes and
    the three methods declared here."""

    client: RAGFlowClient
    dataset_id: str
    report: SyncReport
    parses: ParseTracker
    log: logging.Logger
    opts: Any
    retry_paths: set[str]
    failed_paths: set[str]
    _successors: dict[str, Successor]
    _doc_path: dict[str, str]

    @abc.abstractmethod
    def _rename(self, doc_id: str, path: str, meta: dict[str, Any] | None) -> str:
        """Give ``doc_id`` the name of ``path``; returns the name it got."""

    @abc.abstractmethod
    def _fail(self, path: str, action: str, exc: BaseException) -> None:
        """Record a failed step of ``path``."""

    @abc.abstractmethod
    def _in_pool(self, phase: str, fn: Any, calls: Sequence[tuple[Any, ...]], total: int) -> None:
        """Run ``fn(*args)`` for each call on the worker pool."""

    def _retire_done(self, doc_ids: list[str]) -> None:
        """Retire what the just-parsed documents replace now, not after the whole wait (the old
        version of a file is not served twice for longer than its successor's parse)."""
        ready = [(i, self._successors.pop(i)) for i in doc_ids if i in self._successors]
        if ready:
            with ThreadPoolExecutor(max_workers=min(len(ready), self.opts.max_workers)) as pool:
                list(pool.map(lambda item: self._retire(*item), ready))

    def _retire(self, new_id: str, succ: Successor) -> None:
        """Delete what a parsed successor replaces, then give it back its path's name."""
        ok = all(self._delete(succ.path, ids, reason) for ids, reason in succ.deletes)
        if ok and succ.name and succ.name != document_name(succ.path):
            self._rename_back(new_id, succ.path)

    def _finish(self, deletes: Sequence[Delete] = ()) -> None:
        ready = [(i, succ) for i, succ in self._successors.items() if i in self.parses.done]
        if ready:
            self._in_pool("delete", self._retire, ready, len(ready))
        for new_id, succ in list(self._successors.items()):
            if new_id in self.parses.done:
                continue
            if new_id in self.parses.failed:
                self.report.record(
                    succ.path,
                    "delete",
                    "withheld",
                    doc_id=new_id,
                    detail="the new version failed to parse; the old one is kept",
                )
            elif new_id in self.parses.vanished:
                self.retry_paths.add(succ.path)
        for d in deletes:
            self._delete(d.path, d.doc_ids, d.reason)
        for doc_id in self.parses.vanished:
            path = self._doc_path.get(doc_id)
            if path is not None:
                self.retry_paths.add(path)
        self.report.add("parsed", len(self.parses.done))
        self.report.add("parse_failed", len(self.parses.failed))
        if self.opts.wait:
            self.report.add("parse_pending", len(self.parses.pending))
        for doc_id, msg in self.parses.failed.items():
            path = self._doc_path.get(doc_id, "?")
            self.failed_paths.add(path)  # retried already: another round would fail again
            self.report.record(path, "parse", "failed", doc_id=doc_id, detail=msg)

    def _rename_back(self, doc_id: str, path: str) -> None:
        try:
            self._rename(doc_id, path, None)
        except RAGFlowError as exc:
            self.log.warning("could not rename %s back to its path: %s", path, exc)

    def _delete(self, path: str, doc_ids: Sequence[str], reason: str) -> bool:
        """``reason``: removed / duplicate / superseded / stray, or ``retired`` (the old version of
        a path this run replaced; part of the replace, not counted on its own). A document that
        is gone already (another run deleted it) counts as deleted."""
        action = {"removed": "delete", "retired": "retire"}.get(reason, "deduplicate")
        try:
            self.client.delete_documents(self.dataset_id, list(doc_ids))
        except RAGFlowNotFoundError:
            try:
                left = list(self.client.documents_by_id(self.dataset_id, list(doc_ids)))
                if left:
                    self.client.delete_documents(self.dataset_id, left)
            except RAGFlowError as exc:
                self._fail(path, action, exc)
                return False
        except RAGFlowError as exc:
            self._fail(path, action, exc)
            return False
        for doc_id in doc_ids:
            self.report.record(path, action, "ok", doc_id=doc_id, detail=reason)
        return True


__all__ = ["Retirement", "Successor"]
