"""Sensors and schedules that decide *when* an ingestion runs.

One sensor per source (:func:`build_ragflow_sensor`). Each tick lists the source (stat / object
metadata only), works out what was added, changed and removed, manages the dynamic partitions
and requests **at most one run**:

* **Additions** become new dynamic partitions (capped per tick, default 1000) and one run over the
  contiguous range of keys added in the tick (range tags + the assets' single-run backfill
  policy). An initial sync of 10,000 files takes 10 runs.
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
  from the lowest to the highest changed shard. Unpartitioned: one plain run when anything
  changed.

:func:`build_ragflow_reconcile_schedule` is the alternative trigger: a full reconcile on a cron
schedule (nightly by default), which also catches anything the sensor is not running for.

Example:
    >>> import dagster as dg
    >>> from ragflow_dagster.assets import build_ragflow_ingestion
    >>> ingestion = build_ragflow_ingestion(source="docs/", dataset="handbook")
    >>> sensor = build_ragflow_sensor(ingestion, minimum_interval_seconds=30, settle_seconds=60)
    >>> schedule = build_ragflow_reconcile_schedule(ingestion, cron_schedule="0 2 * * *")
    >>> sensor.name, schedule.name
    ('handbook_sensor', 'handbook_reconcile_schedule')
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, Protocol

import dagster as dg

from ragflow_dagster.sources.base import SkippedEntry, SourceEntry, SourceError
from ragflow_dagster.sync.identity import shard_key, shard_of

if TYPE_CHECKING:
    from ragflow_dagster.assets import RAGFlowIngestion
    from ragflow_dagster.partitions import Partitioning
    from ragflow_dagster.sources import FileFilters, Source

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
RUN_KEY_TAG = "dagster/run_key"
PARTITION_TAG = "dagster/partition"
RECONCILE_TAG = "ragflow_dagster/reconcile"
"""Tag on runs that act on every partition (``"full"``): the sensor's reconcile runs and the
schedule's. Any successful run of the job carrying it lets the sensor delete the partitions of
removed files it has seen before that run was created."""
REASON_TAG = "ragflow_dagster/reason"
TRIGGER_TAG = "ragflow_dagster/trigger"

CURSOR_VERSION = 1
_MASK = (1 << 64) - 1
_COMPRESS_ABOVE = 1024

RunState = Literal["success", "failed", "queued", "running", "missing"]


# ------------------------------------------------------------------------------------------------
# settings and records
# ------------------------------------------------------------------------------------------------


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
class PassState:
    """A listing pass that spans several ticks (resumable sources only).

    Attributes:
        position: Full key to resume after (S3 ``StartAfter``).
        acc_old: Per-shard digest so far of settled files whose partition existed when listed.
        acc_new: Per-shard digest so far of files whose partition this pass added.
        acc_keys: Per-key-shard sum of key hashes of listed files that have a partition.
        held: Shards holding a file that had not settled.
        candidates: Partition keys suspected removed and not seen yet in this pass.
        unlisted: Part of the source could not be listed in this pass.
        ticks: Ticks this pass has taken so far.
        files: Files listed so far.
        started: When the pass started (epoch seconds).
    """

    position: str | None
    acc_old: tuple[int, ...]
    acc_new: tuple[int, ...]
    acc_keys: tuple[int, ...]
    held: frozenset[int] = frozenset()
    candidates: tuple[str, ...] | None = None
    unlisted: bool = False
    ticks: int = 0
    files: int = 0
    started: float = 0.0


@dataclass(frozen=True)
class ReconcileState:
    """The latest reconcile run the sensor requested, and the removals it is to settle.

    Attributes:
        run_key: Its run key.
        since: When it was requested (epoch seconds).
        attempt: 1 for the first request of this state, 2 for its first retry, ...
        removed_sum: Sum of the key hashes of the removed keys still to delete (``None``: the
            run is for changes only).
        removed_count: How many removed keys are still to delete.
        removed_keys: The keys themselves when few enough (else they are recomputed from a
            complete listing and checked against ``removed_sum``).
        gave_up: The last attempt failed; only a successful full reconcile (schedule, manual
            run tagged ``ragflow_dagster/reconcile: full``) moves things on.
    """

    run_key: str
    since: float
    attempt: int = 1
    removed_sum: int | None = None
    removed_count: int = 0
    removed_keys: tuple[str, ...] | None = None
    gave_up: bool = False


@dataclass(frozen=True)
class SensorCursor:
    """Everything a source sensor remembers between ticks (kilobytes, never a map of paths).

    Attributes:
        mode: ``"files"``, ``"shards"`` or ``"none"`` (a cursor of another mode is discarded).
        shards: Number of digest shards.
        seq: Tick number (part of every run key).
        digests: Per-shard digest of the settled files at the end of the last complete pass
            (files mode: of the files that have a partition).
        pass_state: The pass in progress, if any.
        suspects: Key shards where a multi-tick pass found partitions without files.
        reconcile: The latest reconcile request.
        last: Figures of the last tick (shown in the UI).

    Example:
        >>> c = SensorCursor.initial("files", 256)
        >>> SensorCursor.decode(c.encode(), mode="files", shards=256) == c
        True
    """

    mode: str
    shards: int
    seq: int = 0
    digests: tuple[int, ...] = ()
    pass_state: PassState | None = None
    suspects: frozenset[int] = frozenset()
    reconcile: ReconcileState | None = None
    last: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def initial(cls, mode: str, shards: int) -> SensorCursor:
        return cls(mode=mode, shards=shards, digests=(0,) * shards)

    # -- (de)serialisation ---------------------------------------------------------------------
    def encode(self) -> str:
        """Compact JSON (zlib + base64 with a ``z1:`` prefix once over a kilobyte)."""
        data: dict[str, Any] = {
            "v": CURSOR_VERSION,
            "mode": self.mode,
            "shards": self.shards,
            "seq": self.seq,
            "digests": _pack(self.digests),
        }
        if self.pass_state is not None:
            p = self.pass_state
            data["pass"] = {
                "pos": p.position,
                "old": _pack(p.acc_old),
                "new": _pack(p.acc_new),
                "keys": _pack(p.acc_keys),
                "held": sorted(p.held),
                "cand": list(p.candidates) if p.candidates is not None else None,
                "unlisted": p.unlisted,
                "ticks": p.ticks,
                "files": p.files,
                "started": round(p.started, 3),
            }
        if self.suspects:
            data["suspects"] = sorted(self.suspects)
        if self.reconcile is not None:
            r = self.reconcile
            data["reconcile"] = {
                "run_key": r.run_key,
                "since": round(r.since, 3),
                "attempt": r.attempt,
                "removed_sum": None if r.removed_sum is None else format(r.removed_sum, "x"),
                "removed_count": r.removed_count,
                "removed_keys": list(r.removed_keys) if r.removed_keys is not None else None,
                "gave_up": r.gave_up,
            }
        if self.last:
            data["last"] = dict(self.last)
        text = json.dumps(data, separators=(",", ":"), sort_keys=True)
        if len(text) > _COMPRESS_ABOVE:
            return "z1:" + base64.b64encode(zlib.compress(text.encode(), 9)).decode()
        return text

    @classmethod
    def decode(cls, text: str | None, *, mode: str, shards: int) -> SensorCursor:
        """Parse a cursor; an empty, foreign or unreadable one gives a fresh cursor."""
        if not text:
            return cls.initial(mode, shards)
        try:
            if text.startswith("z1:"):
                text = zlib.decompress(base64.b64decode(text[3:])).decode()
            data = json.loads(text)
            if data.get("v") != CURSOR_VERSION or data["mode"] != mode or data["shards"] != shards:
                return cls.initial(mode, shards)
            digests = _unpack(data["digests"], shards)
            pass_state = None
            if data.get("pass"):
                p = data["pass"]
                pass_state = PassState(
                    position=p["pos"],
                    acc_old=_unpack(p["old"], shards),
                    acc_new=_unpack(p["new"], shards),
                    acc_keys=_unpack(p["keys"], shards),
                    held=frozenset(int(s) for s in p.get("held", ())),
                    candidates=tuple(p["cand"]) if p.get("cand") is not None else None,
                    unlisted=bool(p.get("unlisted")),
                    ticks=int(p.get("ticks", 0)),
                    files=int(p.get("files", 0)),
                    started=float(p.get("started", 0.0)),
                )
            reconcile = None
            if data.get("reconcile"):
                r = data["reconcile"]
                reconcile = ReconcileState(
                    run_key=r["run_key"],
                    since=float(r["since"]),
                    attempt=int(r.get("attempt", 1)),
                    removed_sum=int(r["removed_sum"], 16) if r.get("removed_sum") else None,
                    removed_count=int(r.get("removed_count", 0)),
                    removed_keys=(
                        tuple(r["removed_keys"]) if r.get("removed_keys") is not None else None
                    ),
                    gave_up=bool(r.get("gave_up")),
                )
            return cls(
                mode=mode,
                shards=shards,
                seq=int(data.get("seq", 0)),
                digests=digests,
                pass_state=pass_state,
                suspects=frozenset(int(s) for s in data.get("suspects", ())),
                reconcile=reconcile,
                last=data.get("last") or {},
            )
        except (ValueError, KeyError, TypeError, zlib.error, struct.error):
            return cls.initial(mode, shards)


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


# ------------------------------------------------------------------------------------------------
# hashing helpers
# ------------------------------------------------------------------------------------------------


def _h64(text: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "big"
    )


def file_hash(path: str, change_token: str) -> int:
    """64-bit hash of a file's identity and change token (the digest's summand).

    Example:
        >>> file_hash("a.txt", "1-2") != file_hash("a.txt", "1-3")
        True
    """
    return _h64(path + "\x00" + change_token)


def key_hash(key: str) -> int:
    """64-bit hash of a partition key (its shard is ``key_hash(key) % shards``)."""
    return _h64("k\x00" + key)


def _pack(values: Sequence[int]) -> str:
    if not any(values):
        return ""
    return base64.b64encode(struct.pack(f"<{len(values)}Q", *values)).decode()


def _unpack(text: str, shards: int) -> tuple[int, ...]:
    if not text:
        return (0,) * shards
    raw = base64.b64decode(text)
    values = struct.unpack(f"<{len(raw) // 8}Q", raw)
    if len(values) != shards:
        raise ValueError("digest length does not match the shard count")
    return tuple(values)


def _short(*parts: Any) -> str:
    return hashlib.sha1("\x00".join(str(p) for p in parts).encode()).hexdigest()[:10]


# ------------------------------------------------------------------------------------------------
# listing
# ------------------------------------------------------------------------------------------------

_PAGE_END = object()


def _listing(
    source: Source, filters: FileFilters | None, start_after: str | None
) -> tuple[Iterator[Any], bool]:
    """Records of the source, with ``_PAGE_END`` markers between resumable pages.

    Returns the iterator and whether the listing can resume (``iter_pages``).
    """
    pages = getattr(source, "iter_pages", None)
    if callable(pages):

        def paged() -> Iterator[Any]:
            for items, resume in pages(start_after=start_after, filters=filters):
                yield from items
                yield (_PAGE_END, resume)

        return paged(), True
    try:
        records = source.scan(filters=filters)  # type: ignore[call-arg]
    except TypeError:
        records = source.scan()
    return iter(records), False


# ------------------------------------------------------------------------------------------------
# the tick
# ------------------------------------------------------------------------------------------------


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
    return _Tick(
        source, partitioning, cursor, settings, runs, partitions, filters, name, now, clock
    ).run()


class _Tick:
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
        if self.parts.kind == "files":
            return self._files()
        return self._digest_only()

    # -- shared listing loop -------------------------------------------------------------------
    def _list(
        self, start_after: str | None, on_entry: Callable[[SourceEntry], bool]
    ) -> tuple[bool, str | None, bool, int]:
        """Feed settled and unsettled entries to ``on_entry`` (which returns False to stop).

        Returns ``(done, resume_position, unlisted, files)``.
        """
        records, resumable = _listing(self.source, self.filters, start_after)
        t0 = self.clock()
        budget = self.settings.list_budget_seconds
        check = self.filters.check_entry if self.filters is not None else None
        unlisted = False
        files = 0
        position = start_after
        last_done: str | None = None
        prefix = getattr(self.source, "prefix", "") or ""
        broke = False
        for rec in records:
            if isinstance(rec, tuple) and rec and rec[0] is _PAGE_END:
                position = rec[1]
                last_done = None
                if position is None:
                    return True, None, unlisted, files
                if broke or self.clock() - t0 >= budget:
                    return False, position, unlisted, files
                continue
            if isinstance(rec, SkippedEntry):
                if rec.unlisted and resumable and rec.path == "":
                    broke = True  # the listing broke off: the next tick retries from here
                elif rec.unlisted:
                    unlisted = True
                continue
            if check is not None and check(rec) is not None:
                continue
            if on_entry(rec):
                files += 1
                last_done = rec.path
            elif resumable:
                # Stop before this entry: resume right after the last one handled.
                resume = prefix + last_done if last_done is not None else position
                return False, resume, unlisted, files
            else:
                files += 1
        return True, None, unlisted, files

    # -- files mode ----------------------------------------------------------------------------
    def _files(self) -> TickOutcome:
        s = self.settings
        shards = self.cursor.shards
        key_for = self.parts.key_for
        present = self.partitions
        registered = set(present)
        prev = self.cursor.pass_state
        fresh_pass = prev is None
        if prev is None:
            acc_old = [0] * shards
            acc_new = [0] * shards
            acc_keys = [0] * shards
            held: set[int] = set()
            cand = self._start_candidates(registered)
            unlisted_before = False
            ticks = 0
            files_before = 0
            started = self.now
            position = None
        else:
            acc_old = list(prev.acc_old)
            acc_new = list(prev.acc_new)
            acc_keys = list(prev.acc_keys)
            held = set(prev.held)
            cand = set(prev.candidates) if prev.candidates is not None else None
            unlisted_before = prev.unlisted
            ticks = prev.ticks
            files_before = prev.files
            started = prev.started
            position = prev.position

        settle_cut = self.now - s.settle_seconds if s.settle_seconds > 0 else float("inf")
        cap = s.max_partition_adds
        adds: list[str] = []
        added_set: set[str] = set()
        deferred = 0
        unsettled = 0
        seen: set[str] = set()

        def on_entry(e: SourceEntry) -> bool:
            nonlocal deferred, unsettled
            path = e.path
            key = key_for(path)
            shard = shard_of(path, shards)
            assert key is not None
            is_registered = key in registered
            if is_registered:
                seen.add(key)
                k = key_hash(key)
                acc_keys[k % shards] += k
            if e.modified > settle_cut:
                unsettled += 1
                if is_registered:
                    held.add(shard)
                return True
            if is_registered:
                acc_old[shard] += file_hash(path, e.change_token)
                return True
            if key in added_set:  # two paths, one key: cannot happen short of a hash collision
                return True
            if len(adds) >= cap:
                deferred += 1
                return False  # resumable listings stop here; full ones keep counting
            adds.append(key)
            added_set.add(key)
            seen.add(key)
            acc_new[shard] += file_hash(path, e.change_token)
            k = key_hash(key)
            acc_keys[k % shards] += k
            return True

        done, position, unlisted, files = self._list(position, on_entry)
        unlisted = unlisted or unlisted_before
        ticks += 1
        single_tick = fresh_pass and done
        if cand is not None:
            cand -= seen
        self.stats.update(
            listed=files,
            added=len(adds),
            deferred_adds=deferred,
            unsettled=unsettled,
            partitions=len(present),
            pass_complete=done,
            pass_ticks=ticks,
        )

        if not done:
            new_cursor = replace(
                self.cursor,
                seq=self.seq,
                pass_state=PassState(
                    position=position,
                    acc_old=tuple(v & _MASK for v in acc_old),
                    acc_new=tuple(v & _MASK for v in acc_new),
                    acc_keys=tuple(v & _MASK for v in acc_keys),
                    held=frozenset(held),
                    candidates=tuple(sorted(cand)) if cand is not None else None,
                    unlisted=unlisted,
                    ticks=ticks,
                    files=files_before + files,
                    started=started,
                ),
            )
            # Mid-pass: additions only; reconcile decisions wait for the end of the pass, but
            # a pending reconcile can still finish (deletions of already confirmed keys).
            return self._finish_files(
                new_cursor, adds, changed=[], removed=None, exact=False, seen=seen
            )

        # -- end of a pass: compare digests ----------------------------------------------------
        prev_d = self.cursor.digests
        changed = [i for i in range(shards) if i not in held and (acc_old[i] & _MASK) != prev_d[i]]
        digests = tuple(
            ((prev_d[i] + acc_new[i]) if i in held else (acc_old[i] + acc_new[i])) & _MASK
            for i in range(shards)
        )
        removed: list[str] | None
        suspects: frozenset[int] = frozenset()
        if unlisted:
            removed = None  # part of the source is unknown: no removal is certain
        elif single_tick:
            removed = [k for k in present if k not in seen]
        else:
            removed = sorted(cand & registered) if cand is not None else []
            after = [0] * shards
            for key in (*present, *adds):
                k = key_hash(key)
                after[k % shards] += k
            suspects = frozenset(
                i for i in range(shards) if (after[i] & _MASK) != (acc_keys[i] & _MASK)
            )
        self.stats.update(
            changed_shards=len(changed),
            removed=len(removed or ()),
            suspect_shards=len(suspects),
            held_shards=len(held),
        )
        new_cursor = replace(
            self.cursor, seq=self.seq, digests=digests, pass_state=None, suspects=suspects
        )
        return self._finish_files(
            new_cursor, adds, changed=changed, removed=removed, exact=single_tick, seen=seen
        )

    def _start_candidates(self, registered: set[str]) -> set[str] | None:
        """Candidates for a new pass: partitions in the suspect key shards, within the budget."""
        suspects = self.cursor.suspects
        if not suspects:
            return None
        shards = self.cursor.shards
        by_shard: dict[int, list[str]] = {}
        for key in registered:
            i = key_hash(key) % shards
            if i in suspects:
                by_shard.setdefault(i, []).append(key)
        chosen: set[str] = set()
        budget = self.settings.max_removal_candidates
        for i in sorted(by_shard, key=lambda i: len(by_shard[i])):
            keys = by_shard[i]
            if chosen and len(chosen) + len(keys) > budget:
                continue
            chosen.update(keys[:budget])
        return chosen

    def _finish_files(
        self,
        cursor: SensorCursor,
        adds: list[str],
        *,
        changed: list[int],
        removed: list[str] | None,
        exact: bool,
        seen: set[str],
    ) -> TickOutcome:
        """Decide the reconcile request, the deletions and the run of this tick.

        ``removed`` is None when nothing is known about removals this tick, and exact when
        ``exact`` (a complete listing in one tick without unlisted parts).
        """
        s = self.settings
        present = self.partitions
        registered = set(present)
        rc = cursor.reconcile
        known = removed if (exact and removed is not None) else None
        removed = removed or []
        removed_sum = sum(key_hash(k) for k in removed) & _MASK
        reasons: list[str] = []
        if changed:
            reasons.append("changed")
        if removed and not (
            rc is not None and rc.removed_sum == removed_sum and rc.removed_count == len(removed)
        ):
            reasons.append("removed")
        deletes: list[str] = []
        retry = False

        if rc is not None and not reasons:
            state = self.runs.status(rc.run_key, rc.since)
            self.stats["reconcile_run"] = state
            if state == "success":
                if rc.removed_sum is None:
                    rc = None
                else:
                    rc, deletes = self._deletions(rc, known, registered, seen)
            elif state == "failed" and not rc.gave_up:
                if rc.attempt < s.max_reconcile_attempts:
                    retry = True
                else:
                    rc = replace(rc, gave_up=True)
                    self.stats["reconcile_gave_up"] = rc.run_key
            elif state == "missing" and self.now - rc.since > s.reconcile_timeout_seconds:
                retry = True
        elif rc is not None and reasons:
            # A reconcile that has not started yet will see these changes too.
            state = self.runs.status(rc.run_key, rc.since)
            if state == "queued":
                self.stats["absorbed_by"] = rc.run_key
                rc = self._with_removals(rc, removed, removed_sum)
                reasons = []

        runs: list[RunSpec] = []
        if reasons or retry:
            all_keys = [*present, *adds]
            attempt = (rc.attempt + 1) if (retry and rc is not None) else 1
            reason = "+".join(reasons) if reasons else "retry"
            if all_keys:
                run_key = f"{self.name}:reconcile:{self.seq}:" + _short(
                    all_keys[0], all_keys[-1], len(all_keys), removed_sum, attempt
                )
                runs.append(
                    RunSpec(
                        run_key,
                        all_keys[0],
                        all_keys[-1],
                        True,
                        reason + ("+added" if adds else ""),
                        len(all_keys),
                    )
                )
                base = ReconcileState(run_key=run_key, since=self.now, attempt=attempt)
                if retry and rc is not None:
                    rc = replace(rc, run_key=run_key, since=self.now, attempt=attempt)
                else:
                    rc = self._with_removals(base, removed, removed_sum)
            else:
                rc = None
        elif adds:
            run_key = f"{self.name}:add:{self.seq}:" + _short(adds[0], adds[-1], len(adds))
            runs.append(RunSpec(run_key, adds[0], adds[-1], False, "added", len(adds)))

        stats = {**self.stats, "deleted": len(deletes), "runs": len(runs)}
        cursor = replace(cursor, reconcile=rc, last=stats)
        skip = None
        if deletes and not runs:
            skip = (
                f"deleting {len(deletes)} partitions of removed files (their reconcile run "
                "succeeded)"
            )
        elif not runs and not adds:
            skip = self._skip_message(cursor)
        return TickOutcome(
            cursor=cursor,
            add_keys=tuple(adds),
            delete_keys=tuple(deletes),
            runs=tuple(runs),
            skip_reason=skip,
            stats=stats,
        )

    def _with_removals(
        self, rc: ReconcileState, removed: list[str], removed_sum: int
    ) -> ReconcileState:
        if not removed:
            return replace(rc, removed_sum=None, removed_count=0, removed_keys=None)
        keep = tuple(removed) if len(removed) <= self.settings.max_removal_candidates else None
        return replace(rc, removed_sum=removed_sum, removed_count=len(removed), removed_keys=keep)

    def _deletions(
        self,
        rc: ReconcileState,
        removed_now: list[str] | None,
        registered: set[str],
        seen: set[str],
    ) -> tuple[ReconcileState | None, list[str]]:
        """Partitions to delete now that the reconcile run succeeded (capped).

        ``removed_now`` is the exact removed set when this tick listed everything; otherwise
        only the keys recorded with the reconcile request are deleted, minus any seen again.
        """
        cap = self.settings.max_partition_deletes
        if rc.removed_keys is not None:
            if removed_now is not None:
                still = set(removed_now)
                pending = [k for k in rc.removed_keys if k in registered and k in still]
            else:
                pending = [k for k in rc.removed_keys if k in registered and k not in seen]
        elif removed_now is not None:
            total = sum(key_hash(k) for k in removed_now) & _MASK
            if total != rc.removed_sum or len(removed_now) != rc.removed_count:
                return rc, []  # cannot happen without a change, which requests a new reconcile
            pending = removed_now
        else:
            self.stats["deletions_waiting"] = "a complete listing"
            return rc, []
        pinned = self.runs.pinned_keys() if pending else frozenset()
        now_delete = [k for k in pending if k not in pinned][:cap]
        chosen = set(now_delete)
        rest = [k for k in pending if k not in chosen]
        if pinned.intersection(pending):
            self.stats["deletions_waiting"] = "queued or running runs whose range ends there"
        if not rest:
            return None, now_delete
        rest_sum = sum(key_hash(k) for k in rest) & _MASK
        keep = tuple(rest) if rc.removed_keys is not None else None
        return replace(rc, removed_sum=rest_sum, removed_count=len(rest), removed_keys=keep), (
            now_delete
        )

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
                    acc_old=tuple(v & _MASK for v in acc),
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
        changed = [i for i in range(shards) if i not in held and (acc[i] & _MASK) != prev_d[i]]
        digests = tuple(prev_d[i] if i in held else (acc[i] & _MASK) for i in range(shards))
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
            run_key = f"{self.name}:{'reconcile' if full else 'shards'}:{self.seq}:" + _short(
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


# ------------------------------------------------------------------------------------------------
# Dagster glue
# ------------------------------------------------------------------------------------------------

_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


class InstanceRunLookup:
    """:class:`RunLookup` over a Dagster instance.

    Example:
        >>> lookup = InstanceRunLookup(dg.DagsterInstance.ephemeral(), "handbook_sync")
        >>> lookup.status("nope", 0.0)
        'missing'
    """

    def __init__(self, instance: dg.DagsterInstance, job_name: str) -> None:
        self.instance = instance
        self.job_name = job_name

    def status(self, run_key: str, since: float) -> RunState:
        own = self.instance.get_runs(
            filters=dg.RunsFilter(job_name=self.job_name, tags={RUN_KEY_TAG: run_key}), limit=10
        )
        full = self.instance.get_runs(
            filters=dg.RunsFilter(
                job_name=self.job_name,
                tags={RECONCILE_TAG: "full"},
                statuses=[dg.DagsterRunStatus.SUCCESS],
                created_after=datetime.fromtimestamp(since, tz=timezone.utc),
            ),
            limit=1,
        )
        statuses = {r.status for r in own}
        if full or dg.DagsterRunStatus.SUCCESS in statuses:
            return "success"
        if statuses & {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED}:
            return "queued"
        if statuses & {
            dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED,
            dg.DagsterRunStatus.CANCELING,
        }:
            return "running"
        if statuses:
            return "failed"
        return "missing"

    def pinned_keys(self) -> frozenset[str]:
        keys: set[str] = set()
        runs = self.instance.get_runs(
            filters=dg.RunsFilter(job_name=self.job_name, statuses=_IN_FLIGHT), limit=1000
        )
        for run in runs:
            for tag in (RANGE_START_TAG, RANGE_END_TAG, PARTITION_TAG):
                value = run.tags.get(tag)
                if value:
                    keys.add(value)
        return frozenset(keys)


def _run_request(spec: RunSpec, *, job_name: str, trigger: str) -> dg.RunRequest:
    tags = {REASON_TAG: spec.reason, TRIGGER_TAG: trigger}
    if spec.range_start is not None and spec.range_end is not None:
        tags[RANGE_START_TAG] = spec.range_start
        tags[RANGE_END_TAG] = spec.range_end
    if spec.reconcile:
        tags[RECONCILE_TAG] = "full"
    return dg.RunRequest(run_key=spec.run_key, job_name=job_name, tags=tags)


def _settings_from(settings: SensorSettings | None, overrides: Mapping[str, Any]) -> SensorSettings:
    base = settings or SensorSettings()
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **given) if given else base


def build_ragflow_sensor(
    ingestion: RAGFlowIngestion,
    *,
    name: str | None = None,
    minimum_interval_seconds: int = 30,
    settle_seconds: float | None = None,
    max_partition_adds: int | None = None,
    max_partition_deletes: int | None = None,
    list_budget_seconds: float | None = None,
    settings: SensorSettings | None = None,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    description: str | None = None,
) -> dg.SensorDefinition:
    """A sensor that keeps an ingestion's partitions and runs in step with its source.

    Works for a local folder and for an S3 bucket, and for every partitioning (``files``:
    dynamic partitions per file; ``shards``: a run over the changed shards; ``none``: a run
    when anything changed).

    Args:
        ingestion: What :func:`~ragflow_dagster.assets.build_ragflow_ingestion` returned.
        name: Sensor name (default ``<ingestion name>_sensor``).
        minimum_interval_seconds: Seconds between ticks.
        settle_seconds: Files modified more recently than this are left for a later tick
            (default 60).
        max_partition_adds: Partitions added per tick at most (default 1000).
        max_partition_deletes: Partitions deleted per tick at most (default 1000).
        list_budget_seconds: Time a resumable (S3) listing may take per tick (default 35).
        settings: All knobs at once (the keyword arguments above override it).
        default_status: Whether the sensor runs as soon as it is loaded.
        description: Shown in the UI.

    Returns:
        The :class:`dagster.SensorDefinition` (targets ``ingestion.job``).

    Example:
        >>> from ragflow_dagster.assets import build_ragflow_ingestion
        >>> ingestion = build_ragflow_ingestion(source="s3://bucket/docs", dataset="manuals")
        >>> build_ragflow_sensor(ingestion, settle_seconds=120).name
        'manuals_sensor'
    """
    conf = _settings_from(
        settings,
        {
            "settle_seconds": settle_seconds,
            "max_partition_adds": max_partition_adds,
            "max_partition_deletes": max_partition_deletes,
            "list_budget_seconds": list_budget_seconds,
        },
    )
    parts = ingestion.partitioning
    sensor_name = name or f"{ingestion.name}_sensor"
    job_name = ingestion.job.name
    shards = parts.shards if parts.kind == "shards" else conf.digest_shards
    source = ingestion.source
    filters = ingestion.filters

    def evaluate(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        cursor = SensorCursor.decode(context.cursor, mode=parts.kind, shards=shards)
        keys = (
            context.instance.get_dynamic_partitions(parts.name) if parts.kind == "files" else None
        )
        try:
            outcome = evaluate_tick(
                source=source,
                partitioning=parts,
                cursor=cursor,
                settings=conf,
                runs=InstanceRunLookup(context.instance, job_name),
                partitions=keys,
                filters=filters,
                name=sensor_name,
            )
        except SourceError as exc:
            return dg.SkipReason(f"cannot list {source.uri}: {exc}")
        context.log.info("%s tick: %s", sensor_name, json.dumps(dict(outcome.stats)))
        requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
        if outcome.add_keys:
            requests.append(dg.AddDynamicPartitionsRequest(parts.name, list(outcome.add_keys)))
        if outcome.delete_keys:
            requests.append(
                dg.DeleteDynamicPartitionsRequest(parts.name, list(outcome.delete_keys))
            )
        return dg.SensorResult(
            run_requests=[
                _run_request(spec, job_name=job_name, trigger=sensor_name) for spec in outcome.runs
            ],
            dynamic_partitions_requests=requests or None,
            cursor=outcome.cursor.encode(),
            skip_reason=outcome.skip_reason if not outcome.runs else None,
        )

    return dg.SensorDefinition(
        name=sensor_name,
        evaluation_fn=evaluate,
        minimum_interval_seconds=minimum_interval_seconds,
        description=description
        or f"Watches {source.uri} (settle {conf.settle_seconds:g}s, up to "
        f"{conf.max_partition_adds} partition adds / {conf.max_partition_deletes} deletes per "
        "tick) and requests runs of "
        f"{job_name}: one over the files added in a tick, a full reconcile when files changed "
        "or were removed.",
        job=ingestion.job,
        default_status=default_status,
    )


def build_ragflow_reconcile_schedule(
    ingestion: RAGFlowIngestion,
    *,
    cron_schedule: str = "0 2 * * *",
    name: str | None = None,
    execution_timezone: str | None = None,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
    description: str | None = None,
) -> dg.ScheduleDefinition:
    """A schedule that runs a full reconcile of the ingestion (nightly by default).

    The run covers every partition (the range from the first to the last dynamic partition,
    every shard, or the unpartitioned assets), so the ``documents`` asset also deletes
    documents whose file is gone. It is tagged ``ragflow_dagster/reconcile: full``, which also
    lets the sensor finish deleting partitions of removed files.

    Args:
        ingestion: What :func:`~ragflow_dagster.assets.build_ragflow_ingestion` returned.
        cron_schedule: When (cron syntax).
        name: Schedule name (default ``<ingestion name>_reconcile_schedule``).
        execution_timezone: Time zone of the cron expression (default UTC).
        default_status: Whether the schedule runs as soon as it is loaded.
        description: Shown in the UI.

    Example:
        >>> from ragflow_dagster.assets import build_ragflow_ingestion
        >>> ingestion = build_ragflow_ingestion(source="docs/", dataset="handbook",
        ...                                     partitioning="shards", shards=16)
        >>> build_ragflow_reconcile_schedule(ingestion, cron_schedule="30 3 * * *").cron_schedule
        '30 3 * * *'
    """
    parts = ingestion.partitioning
    job_name = ingestion.job.name
    schedule_name = name or f"{ingestion.name}_reconcile_schedule"

    def evaluate(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        try:
            when = context.scheduled_execution_time
        except Exception:  # evaluated outside the daemon (tests, previews)
            when = None
        stamp = when.isoformat() if when is not None else str(int(time.time()))
        tags = {RECONCILE_TAG: "full", REASON_TAG: "schedule", TRIGGER_TAG: schedule_name}
        if parts.kind == "files":
            keys = context.instance.get_dynamic_partitions(parts.name)
            if not keys:
                return dg.SkipReason(f"no partitions of {parts.name} yet (the sensor adds them)")
            tags[RANGE_START_TAG] = keys[0]
            tags[RANGE_END_TAG] = keys[-1]
        elif parts.kind == "shards":
            tags[RANGE_START_TAG] = shard_key(0, parts.shards)
            tags[RANGE_END_TAG] = shard_key(parts.shards - 1, parts.shards)
        return dg.RunRequest(run_key=f"{schedule_name}:{stamp}", job_name=job_name, tags=tags)

    return dg.ScheduleDefinition(
        name=schedule_name,
        cron_schedule=cron_schedule,
        job=ingestion.job,
        execution_fn=evaluate,
        execution_timezone=execution_timezone,
        default_status=default_status,
        description=description
        or f"Full reconcile of {ingestion.source.uri} into RAGFlow ({cron_schedule}).",
    )


__all__ = [
    "RECONCILE_TAG",
    "InstanceRunLookup",
    "PassState",
    "ReconcileState",
    "RunLookup",
    "RunSpec",
    "SensorCursor",
    "SensorSettings",
    "TickOutcome",
    "build_ragflow_reconcile_schedule",
    "build_ragflow_sensor",
    "evaluate_tick",
    "file_hash",
    "key_hash",
]


def ensure_pool_limit(instance: dg.DagsterInstance, pool: str, limit: int = 1) -> bool:
    """Give the concurrency pool ``pool`` a limit of ``limit`` unless it already has one.

    The sensors and schedules of an ingestion call it on every evaluation, so a dataset's
    runs are serialized without any setup (with ``concurrency: pools: granularity: run`` in
    ``dagster.yaml`` the run queue holds the second run; otherwise its step waits for the slot).

    Returns:
        True when the limit was set by this call.

    Example:
        >>> import dagster as dg
        >>> with dg.instance_for_test() as instance:
        ...     ensure_pool_limit(instance, "ragflow_handbook"), ensure_pool_limit(
        ...         instance, "ragflow_handbook")
        (True, False)
    """
    storage = instance.event_log_storage
    if pool in storage.get_concurrency_keys():
        return False
    storage.set_concurrency_slots(pool, limit)
    return True
