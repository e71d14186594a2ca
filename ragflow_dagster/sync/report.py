"""The sync report: what a sync did, in numbers and per file."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ragflow_dagster.drafts import draft_class

REPORT_COUNTS = (
    "scanned",
    "uploaded",
    "replaced",
    "moved",
    "deleted",
    "unchanged",
    "skipped",
    "failed",
    "adopted",
    "relabelled",
    "rechunked",
    "deduplicated",
    "reparsed",
    "parse_requested",
    "parsed",
    "parse_failed",
    "parse_pending",
    "metadata_reads",
)
"""Keys of :meth:`SyncReport.counts`; the first eight are the stable contract of the JSON report."""


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What happened to one path."""

    path: str
    action: str
    status: str  # "ok" | "failed" | "planned" | "withheld" | "pending"
    doc_id: str | None = None
    detail: str = ""


_OUTCOME_DRAFT = draft_class(FileOutcome)  # see ragflow_dagster.drafts


@dataclass
class SyncReport:
    """Counts, bytes, durations and per-file outcomes of one sync.

    Thread-safe for the executor's workers (``add``/``record``).

    Example:
        >>> r = SyncReport(dataset_id="d1", source_uri="file:///x")
        >>> r.add("uploaded", 2)
        >>> r.to_dict()["uploaded"]
        2
    """

    dataset_id: str
    source_uri: str
    dataset_name: str | None = None
    dry_run: bool = False
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REPORT_COUNTS, 0))
    bytes_uploaded: int = 0
    durations: dict[str, float] = field(default_factory=dict)
    outcomes: list[FileOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    guard_message: str | None = None
    listing_complete: bool = True
    api_calls: int = 0
    rounds: int = 0
    verified: bool = False
    """A plan over a complete listing taken after the run's last change had nothing left to do."""
    verification: str | None = None
    """What that plan still had to do, when it had something."""
    awaiting_parse: bool = False
    """All that is left is documents still parsing (a ``wait=False`` run ends like this)."""
    final_documents: list[Any] | None = field(default=None, repr=False, compare=False)
    """The dataset as the run's last complete listing showed it (taken after its last change);
    not part of :meth:`to_dict`."""
    error: str | None = None
    """Why the run stopped before it finished (server unreachable, source not listable, ...);
    the counts then hold only what was known at that point and ``converged`` is False."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_uploaded += n

    def record(
        self,
        path: str,
        action: str,
        status: str,
        *,
        doc_id: str | None = None,
        detail: str = "",
    ) -> None:
        with self._lock:
            self.outcomes.append(FileOutcome(path, action, status, doc_id, detail))
            if status == "failed" and action == "parse":
                self.errors.append(f"{path}: parse failed (document {doc_id}): {detail}")
            elif status == "failed":
                self.errors.append(f"{path}: {action}: {detail}")

    def record_ok(self, action: str, items: Iterable[tuple[str, str | None]]) -> None:
        """Record ``(path, doc_id)`` pairs as ``action`` / ``ok`` at once (a no-op resync's
        100,000 unchanged paths)."""
        draft, cls = _OUTCOME_DRAFT, FileOutcome
        out: list[FileOutcome] = []
        add = out.append
        for path, doc_id in items:
            o = draft()
            o.path = path
            o.action = action
            o.status = "ok"
            o.doc_id = doc_id
            o.detail = ""
            o.__class__ = cls
            add(o)
        with self._lock:
            self.outcomes.extend(out)

    @property
    def guard_refused(self) -> bool:
        return self.guard_message is not None

    @property
    def converged(self) -> bool:
        """A verified claim: a plan over a complete listing taken after the run's last change
        had nothing left to do (``verified``), the source was listed completely, and the run
        did not abort. See :attr:`reason` when it is False."""
        return (
            self.verified
            and self.error is None
            and self.counts.get("failed", 0) == 0
            and self.listing_complete
            and not self.guard_refused
            and self.counts.get("parse_failed", 0) == 0
        )

    @property
    def settled_but_parsing(self) -> bool:
        """Everything is in place and labelled; only parses are still running."""
        return (
            self.awaiting_parse
            and self.error is None
            and self.counts.get("failed", 0) == 0
            and self.counts.get("parse_failed", 0) == 0
            and self.listing_complete
            and not self.guard_refused
        )

    @property
    def reason(self) -> str | None:
        """Why the run is not converged (None when it is)."""
        if self.error is not None:
            return f"aborted: {self.error}"
        if not self.listing_complete:
            return "the source listing was incomplete"
        if self.guard_message:
            return self.guard_message
        if not self.verified:
            return self.verification or "the end state was not verified"
        if self.counts.get("failed", 0):
            return f"{self.counts['failed']} files failed"
        if self.counts.get("parse_failed", 0):
            return f"{self.counts['parse_failed']} documents failed to parse"
        return None

    @property
    def total_seconds(self) -> float:
        return self.durations.get("total", sum(self.durations.values()))

    def to_dict(self, *, max_outcomes: int | None = 0) -> dict[str, Any]:
        """Plain-JSON form. The counts sit at the top level (``scanned``, ``uploaded``, ...).

        Args:
            max_outcomes: How many per-file outcomes to include (None: all, 0: none).
        """
        total = self.total_seconds
        data: dict[str, Any] = dict(self.counts)
        data.update(
            dataset_id=self.dataset_id,
            dataset_name=self.dataset_name,
            source_uri=self.source_uri,
            dry_run=self.dry_run,
            converged=self.converged,
            verified=self.verified,
            reason=self.reason,
            error=self.error,
            listing_complete=self.listing_complete,
            guard_refused=self.guard_refused,
            guard_message=self.guard_message,
            bytes_uploaded=self.bytes_uploaded,
            durations_s={k: round(v, 3) for k, v in self.durations.items()},
            files_per_s=round(self.counts.get("scanned", 0) / total, 1) if total else None,
            upload_mb_per_s=round(self.bytes_uploaded / total / 1e6, 2) if total else None,
            api_calls=self.api_calls,
            rounds=self.rounds,
            errors=[self._named(e) for e in self.errors[:100]],
            decisions=self.decisions(),
        )
        if max_outcomes != 0:
            chosen = self.outcomes if max_outcomes is None else self.outcomes[:max_outcomes]
            data["outcomes"] = [
                {
                    "path": o.path,
                    "action": o.action,
                    "status": o.status,
                    "doc_id": o.doc_id,
                    "detail": o.detail,
                }
                for o in chosen
            ]
        return data

    def decisions(self) -> dict[str, dict[str, int]]:
        """Metadata and rule changes by kind, each with how many documents it applies to:
        ``{"relabel": {"department HR→People": 120}, "rechunk": {"chunk_method naive→qa": 3}}``
        (done, or planned in a dry run)."""
        wanted = "planned" if self.dry_run else "ok"
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for o in self.outcomes:
                if o.action in ("relabel", "rechunk") and o.status == wanted and o.detail:
                    per = out.setdefault(o.action, {})
                    for change in o.detail.split("; "):
                        per[change] = per.get(change, 0) + 1
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(**kwargs), sort_keys=False, default=str)

    def summary(self) -> str:
        """One human line per interesting figure (a dry run says what it *would* do).

        Example:
            >>> r = SyncReport(dataset_id="d1", source_uri="file:///x", dry_run=True)
            >>> r.add("scanned"); r.add("uploaded")
            >>> r.summary().splitlines()[1]
            'scanned 1 file: would upload 1, replace 0, move 0, delete 0; unchanged 0, skipped 0'
        """
        c = self.counts
        if self.error is not None:
            return f"dataset {self.dataset_name or self.dataset_id} <- {self.source_uri}\n" + (
                f"the run stopped: {self.error}"
            )
        would = "would " if self.dry_run else ""
        if self.dry_run:
            actions = (
                f"would upload {c['uploaded']}, replace {c['replaced']}, move {c['moved']}, "
                f"delete {c['deleted']}"
            )
        else:
            actions = (
                f"uploaded {c['uploaded']}, replaced {c['replaced']}, moved {c['moved']}, "
                f"deleted {c['deleted']}"
            )
        lines = [
            f"dataset {self.dataset_name or self.dataset_id} <- {self.source_uri}"
            + (" (dry run)" if self.dry_run else ""),
            f"scanned {_n(c['scanned'], 'file')}: {actions}; unchanged {c['unchanged']}, "
            f"skipped {c['skipped']}" + (f", failed {c['failed']}" if not self.dry_run else ""),
        ]
        extra = [
            (f"{would}adopt" if self.dry_run else "adopted", c["adopted"]),
            (f"{would}relabel" if self.dry_run else "relabelled", c["relabelled"]),
            (f"{would}deduplicate" if self.dry_run else "deduplicated", c["deduplicated"]),
            (f"{would}re-parse" if self.dry_run else "re-parsed", c["reparsed"]),
            (f"{would}re-chunk" if self.dry_run else "re-chunked", c.get("rechunked", 0)),
        ]
        if not self.dry_run:
            extra += [
                ("parsed", c["parsed"]),
                ("parse failed", c["parse_failed"]),
                ("still parsing", c["parse_pending"]),
            ]
        shown = [f"{label} {n}" for label, n in extra if n]
        if shown:
            lines.append(", ".join(shown))
        if not self.dry_run:
            lines.append(
                f"{self.bytes_uploaded / 1e6:.1f} MB uploaded in {self.total_seconds:.1f}s, "
                f"{_n(self.api_calls, 'API call')}"
            )
        else:
            lines.append(f"{_n(self.api_calls, 'API call')} (reads only)")
        verbs = {
            "relabel": ("would relabel", "relabelled"),
            "rechunk": ("would re-chunk", "re-chunked"),
        }
        for kind, changes in self.decisions().items():
            verb = verbs[kind][0 if self.dry_run else 1]
            ranked = sorted(changes.items(), key=lambda kv: (-kv[1], kv[0]))
            for change, n in ranked[:10]:
                lines.append(f"{verb} {n}: {change}")
            if len(ranked) > 10:
                lines.append(f"... and {_n(len(ranked) - 10, 'more change')}")
        if self.guard_message:
            lines.append(self.guard_message)
        if not self.listing_complete:
            lines.append("the source listing was incomplete: no document was deleted for it")
        for err in self.errors[:10]:
            lines.append(f"error: {self._named(err)}")
        if len(self.errors) > 10:
            lines.append(f"... and {_n(len(self.errors) - 10, 'more error')}")
        return "\n".join(lines)

    def _named(self, error: str) -> str:
        """``document <id>: ...`` with the file's path instead of the bare id, when known."""
        if not error.startswith("document "):
            return error
        doc_id, sep, rest = error[len("document ") :].partition(":")
        if not sep:
            return error
        with self._lock:
            path = next((o.path for o in self.outcomes if o.doc_id == doc_id), None)
        return f"{path} (document {doc_id}):{rest}" if path else error


def _n(count: int, noun: str) -> str:
    """``1 file``, ``2 files``.

    Example:
        >>> _n(1, "document"), _n(2, "API call")
        ('1 document', '2 API calls')
    """
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
