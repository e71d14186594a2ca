"""The pure tick logic of the source sensors (imports no Dagster; the glue is ``builders``).

One sensor per source (:func:`build_ragflow_sensor`). Each tick lists the source (stat / object
metadata only), works out what was added, changed and removed, manages the dynamic partitions
and requests **at most one run**:

* **One run per dataset at a time**: while a run of the dataset is queued or running (its job, or
  any run materializing its assets), a tick lists nothing and requests nothing; the cursor is
  kept, so the first tick after that run sees every change made meanwhile and folds them into
  one run. (The per-dataset pool with limit 1 serializes runs started by other means.)
* **Unpartitioned** (the default): one plain run when anything changed.
* **Per-file partitions** (opt-in): **additions** become new dynamic partitions (capped per
  tick, default 1000) and one run over the contiguous range of keys added in the tick (range
  tags + the assets' single-run backfill policy). An initial sync of 10,000 files takes 10 runs.
* **Changes and removals** are found without keeping every path in the cursor: the cursor holds
  per-shard additive digests (256 shards x the sum of 64-bit hashes of ``(path, change_token)``
  mod 2^64, about 2 KB). A shard whose digest is not what the previous tick left plus the files
  added since holds a changed or removed file; then the tick requests one *reconcile* run over
  every partition, which the ``documents`` asset treats as a full reconcile (unchanged files cost
  one listing). When the same tick also adds partitions, the two are one run.
* **Removed files** lose their documents in that reconcile run; their partitions are deleted on a
  later tick, once a reconcile run requested after the removal was seen has succeeded and no run
  of the job is queued or in progress (capped per tick, default 1000).
* **Settling**: a file modified less than ``settle_seconds`` ago is ignored (not added, not in the
  digests); a shard holding such a file keeps its digest until the file has settled.
* **Large S3 buckets**: the listing stops after ``list_budget_seconds`` (or when the add cap is
  reached) and the next tick resumes after the last key seen, with the partial digests in the
  cursor. Changes are judged once a pass is complete; removals found by a pass that took several
  ticks are narrowed down to the exact keys by the next pass (a bounded candidate list).
* ``run_key`` s derive from the cursor's tick number and what the run covers, so a tick evaluated
  twice from the same cursor requests the same runs.
* With hash-shard partitioning the digest shards *are* the partitions: one run over the range
  from the lowest to the highest changed shard.

:func:`build_ragflow_reconcile_schedule` is the alternative trigger: a full reconcile on a cron
schedule (nightly by default), which also catches anything the sensor is not running for.

Example:
    >>> import dagster as dg
    >>> from ragflow_dagster.assets import build_ragflow_ingestion
    >>> from ragflow_dagster.sensors import build_ragflow_reconcile_schedule, build_ragflow_sensor
    >>> ingestion = build_ragflow_ingestion(source="docs/", dataset="handbook")
    >>> sensor = build_ragflow_sensor(ingestion, minimum_interval_seconds=30, settle_seconds=60)
    >>> schedule = build_ragflow_reconcile_schedule(ingestion, cron_schedule="0 2 * * *")
    >>> sensor.name, schedule.name
    ('handbook_sensor', 'handbook_reconcile_schedule')
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ragflow_dagster.sensors.cursor import (
    MASK,
    PassState,
    ReconcileState,
    SensorCursor,
    file_hash,
    short,
)
from ragflow_dagster.sources.base import SourceEntry
from ragflow_dagster.sources.listing import Listing
from ragflow_dagster.sync.identity import shard_key, shard_of

if TYPE_CHECKING:
    from ragflow_dagster.partitions import Partitioning
    from ragflow_dagster.sources import FileFilters, Source

__all__ = [
    "RunLookup",
    "RunSpec",
    "RunState",
    "SensorSettings",
    "TickOutcome",
    "evaluate_tick",
]

RunState = Literal["success", "failed", "queued", "running", "missing"]


@dataclass(frozen=True)
class SensorSettings:
    """How a source sensor behaves.

    Attributes:
        settle_seconds: A file modified less than this long ago is left for a later tick
            (0: no settling).
        max_partition_adds: Dynamic partitions added per tick at most (the daemon adds them one
            by one, about 3 ms each on SQLite).
        max_partition_deletes: Dynamic partitions deleted per tick at most.
        list_budget_seconds: A listing that can resume (S3) stops after this long and the next
            tick continues from the last key (keep it well under the 60 s sensor timeout).
        max_removal_candidates: Keys a multi-tick pass tracks to pin down removed files.
        max_reconcile_attempts: Reconcile runs requested for the same state when they fail.
        reconcile_timeout_seconds: A requested reconcile run that never appears is requested
            again after this long.
        digest_shards: Shards of the change digests (files / unpartitioned modes).

    Example:
        >>> SensorSettings(settle_seconds=5, max_partition_adds=500).max_partition_adds
        500
    """

    settle_seconds: float = 60.0
    max_partition_adds: int = 1000
    max_partition_deletes: int = 1000
    list_budget_seconds: float = 35.0
    max_removal_candidates: int = 1000
    max_reconcile_attempts: int = 3
    reconcile_timeout_seconds: float = 3600.0
    digest_shards: int = 256

    def __post_init__(self) -> None:
        for name in ("max_partition_adds", "max_partition_deletes", "max_removal_candidates"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.settle_seconds < 0:
            raise ValueError(f"settle_seconds must be >= 0, got {self.settle_seconds}")
        if self.list_budget_seconds < 0:
            raise ValueError(f"list_budget_seconds must be >= 0, got {self.list_budget_seconds}")
        if not 1 <= self.digest_shards <= 4096:
            raise ValueError(f"digest_shards must be within 1..4096, got {self.digest_shards}")
        if self.max_reconcile_attempts < 1:
            raise ValueError("max_reconcile_attempts must be at least 1")


@dataclass(frozen=True)
class RunSpec:
    """A run the tick asks for (turned into a :class:`dagster.RunRequest`).

    Attributes:
        run_key: Idempotency key.
        range_start: First partition key of the range (None: unpartitioned).
        range_end: Last partition key of the range.
        reconcile: The run covers every partition (a full reconcile).
        reason: Why (``"added"``, ``"changed"``, ``"removed"``, ``"retry"``, ...).
        partitions: How many partitions the range covers.
    """

    run_key: str
    range_start: str | None
    range_end: str | None
    reconcile: bool
    reason: str
    partitions: int = 0


@dataclass(frozen=True)
class TickOutcome:
    """What one evaluation decided.

    Attributes:
        cursor: The cursor to store.
        add_keys: Dynamic partitions to add (in this order).
        delete_keys: Dynamic partitions to delete.
        runs: Runs to request (at most one).
        skip_reason: Why nothing is requested, when nothing is.
        stats: Figures of the tick (also kept in the cursor's ``last``).
    """

    cursor: SensorCursor
    add_keys: tuple[str, ...] = ()
    delete_keys: tuple[str, ...] = ()
    runs: tuple[RunSpec, ...] = ()
    skip_reason: str | None = None
    stats: Mapping[str, Any] = field(default_factory=dict)


class RunLookup(Protocol):
    """How a tick learns about runs of the job (the Dagster instance, in a sensor)."""

    def status(self, run_key: str, since: float) -> RunState:
        """State of the run with this key, or ``"success"`` when any full reconcile of the job
        created after ``since`` succeeded."""
        ...

    def pinned_keys(self) -> frozenset[str]:
        """Partition keys that queued or in-progress runs of the job name as the ends of their
        range (or as their partition): deleting one would break that run."""
        ...

    def busy(self) -> str | None:
        """A queued or in-progress run of this dataset (its description), or None."""
        ...


def evaluate_tick(
    *,
    source: Source,
    partitioning: Partitioning,
    cursor: SensorCursor,
    settings: SensorSettings,
    runs: RunLookup,
    partitions: Sequence[str] | None = None,
    filters: FileFilters | None = None,
    name: str = "ragflow",
    now: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TickOutcome:
    """One sensor tick, without Dagster: list, compare, decide.

    Args:
        source: The source to list.
        partitioning: The ingestion's partitioning.
        cursor: The cursor of the previous tick (:meth:`SensorCursor.initial` for the first).
        settings: Caps, settle time, budgets.
        runs: Run lookups (status of reconcile runs, whether the job is busy).
        partitions: Current dynamic partition keys, in insertion order (files mode).
        filters: Cheap filters (content filters are left to the run).
        name: Prefix of the run keys.
        now: Wall-clock time of the tick (epoch seconds; default: now).
        clock: Monotonic clock for the listing budget.

    Returns:
        The :class:`TickOutcome`.

    Raises:
        SourceError: The source cannot be listed at all (the caller skips the tick).
    """
    now = time.time() if now is None else now
    if runs.busy() is not None:
        # One run per dataset at a time: while one is queued or running, nothing is listed and
        # the cursor stays as it is, so every change since the last request is seen (and folded
        # into one run) by the first tick after that run.
        busy = runs.busy()
        return TickOutcome(
            cursor=cursor,
            skip_reason=f"{busy} is queued or running for this dataset; changes since the last "
            "request wait for the next tick after it",
            stats={"tick": cursor.seq, "busy": busy},
        )
    cls: type[Tick] = Tick
    if partitioning.kind == "files":
        from ragflow_dagster.sensors.tick_files import FilesTick

        cls = FilesTick
    return cls(
        source, partitioning, cursor, settings, runs, partitions, filters, name, now, clock
    ).run()


class Tick:
    """The shared part of a tick (listing loop, digest modes, messages)."""

    def __init__(
        self,
        source: Source,
        partitioning: Partitioning,
        cursor: SensorCursor,
        settings: SensorSettings,
        runs: RunLookup,
        partitions: Sequence[str] | None,
        filters: FileFilters | None,
        name: str,
        now: float,
        clock: Callable[[], float],
    ) -> None:
        self.source = source
        self.parts = partitioning
        self.cursor = cursor
        self.settings = settings
        self.runs = runs
        self.partitions = list(partitions or ())
        self.filters = filters
        self.name = name
        self.now = now
        self.clock = clock
        self.seq = cursor.seq + 1
        self.stats: dict[str, Any] = {"tick": self.seq}

    # -- entry point ---------------------------------------------------------------------------
    def run(self) -> TickOutcome:
        return self._digest_only()

    # -- shared listing loop -------------------------------------------------------------------
    def _list(
        self, start_after: str | None, on_entry: Callable[[SourceEntry], bool]
    ) -> tuple[bool, str | None, bool, int]:
        """Feed settled and unsettled entries to ``on_entry`` (which returns False to stop).

        Returns ``(done, resume_position, unlisted, files)``.
        """
        listing = Listing(self.source, filters=self.filters, start_after=start_after, paged=True)
        t0 = self.clock()
        budget = self.settings.list_budget_seconds
        unlisted = False
        files = 0
        for page in listing:
            for skip in page.skipped:
                if skip.unlisted and not (listing.resumable and skip.path == ""):
                    unlisted = True  # (a root gap of a paged listing is a break-off)
            last_done: str | None = None
            for rec in page.entries:  # the cheap filters are applied already
                if on_entry(rec):
                    files += 1
                    last_done = rec.path
                elif listing.resumable:
                    # Stop before this entry: resume right after the last one handled.
                    resume = listing.cursor_after(last_done) if last_done else page.start
                    return False, resume, unlisted, files
                else:
                    files += 1
            if listing.resumable:
                if page.resume is None:
                    return True, None, unlisted, files
                if page.broke_off or self.clock() - t0 >= budget:
                    return False, page.resume, unlisted, files
        return True, None, unlisted, files

    # -- shards / unpartitioned ------------------------------------------------------------------
    def _digest_only(self) -> TickOutcome:
        shards = self.cursor.shards
        prev = self.cursor.pass_state
        if prev is None:
            acc = [0] * shards
            held: set[int] = set()
            position = None
            unlisted_before = False
            ticks = 0
            files_before = 0
            started = self.now
        else:
            acc = list(prev.acc_old)
            held = set(prev.held)
            position = prev.position
            unlisted_before = prev.unlisted
            ticks = prev.ticks
            files_before = prev.files
            started = prev.started
        settle = self.settings.settle_seconds
        settle_cut = self.now - settle if settle > 0 else float("inf")
        unsettled = 0

        def on_entry(e: SourceEntry) -> bool:
            nonlocal unsettled
            shard = shard_of(e.path, shards)
            if e.modified > settle_cut:
                unsettled += 1
                held.add(shard)
            else:
                acc[shard] += file_hash(e.path, e.change_token)
            return True

        done, position, unlisted, files = self._list(position, on_entry)
        unlisted = unlisted or unlisted_before
        ticks += 1
        self.stats.update(listed=files, unsettled=unsettled, pass_complete=done, pass_ticks=ticks)
        if not done:
            cursor = replace(
                self.cursor,
                seq=self.seq,
                pass_state=PassState(
                    position=position,
                    acc_old=tuple(v & MASK for v in acc),
                    acc_new=(0,) * shards,
                    acc_keys=(0,) * shards,
                    held=frozenset(held),
                    unlisted=unlisted,
                    ticks=ticks,
                    files=files_before + files,
                    started=started,
                ),
            )
            return self._finish_digest(cursor, [])
        prev_d = self.cursor.digests
        changed = [i for i in range(shards) if i not in held and (acc[i] & MASK) != prev_d[i]]
        digests = tuple(prev_d[i] if i in held else (acc[i] & MASK) for i in range(shards))
        self.stats.update(changed_shards=len(changed), held_shards=len(held))
        cursor = replace(self.cursor, seq=self.seq, digests=digests, pass_state=None)
        return self._finish_digest(cursor, changed)

    def _finish_digest(self, cursor: SensorCursor, changed: list[int]) -> TickOutcome:
        s = self.settings
        rc = cursor.reconcile
        retry = False
        if rc is not None and not changed:
            state = self.runs.status(rc.run_key, rc.since)
            self.stats["reconcile_run"] = state
            if state == "success":
                rc = None
            elif state == "failed" and not rc.gave_up:
                if rc.attempt < s.max_reconcile_attempts:
                    retry = True
                    changed = list(range(cursor.shards))
                else:
                    rc = replace(rc, gave_up=True)
                    self.stats["reconcile_gave_up"] = rc.run_key
            elif state == "missing" and self.now - rc.since > s.reconcile_timeout_seconds:
                retry = True
                changed = list(range(cursor.shards))
        runs: list[RunSpec] = []
        if changed:
            attempt = (rc.attempt + 1) if (retry and rc is not None) else 1
            reason = "retry" if retry else "changed"
            lo: str | None
            hi: str | None
            if self.parts.kind == "shards":
                lo, hi = (
                    shard_key(min(changed), cursor.shards),
                    shard_key(max(changed), cursor.shards),
                )
                count = max(changed) - min(changed) + 1
                full = count == cursor.shards
            else:
                lo = hi = None
                count = 0
                full = True
            run_key = f"{self.name}:{'reconcile' if full else 'shards'}:{self.seq}:" + short(
                lo, hi, attempt, *cursor.digests[:4]
            )
            runs.append(RunSpec(run_key, lo, hi, full, reason, count))
            rc = ReconcileState(run_key=run_key, since=self.now, attempt=attempt)
        stats = {**self.stats, "runs": len(runs)}
        cursor = replace(cursor, reconcile=rc, last=stats)
        return TickOutcome(
            cursor=cursor,
            runs=tuple(runs),
            skip_reason=None if runs else self._skip_message(cursor),
            stats=stats,
        )

    def _skip_message(self, cursor: SensorCursor) -> str:
        st = self.stats
        parts = [f"listed {st.get('listed', 0)} files"]
        if cursor.pass_state is not None:
            parts.append(f"listing continues next tick (pass tick {st.get('pass_ticks')})")
        if st.get("unsettled"):
            parts.append(f"{st['unsettled']} not settled yet")
        if st.get("deletions_waiting"):
            parts.append(f"partition deletions wait for {st['deletions_waiting']}")
        if st.get("reconcile_run") in ("queued", "running", "missing"):
            parts.append(f"reconcile run {st['reconcile_run']}")
        if st.get("reconcile_gave_up"):
            parts.append(
                "the reconcile run failed repeatedly; waiting for a successful full "
                "reconcile (schedule or a manual run tagged ragflow_dagster/reconcile)"
            )
        return "nothing new: " + "; ".join(parts)
