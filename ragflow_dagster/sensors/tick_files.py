"""The files mode of a tick (one dynamic partition per file): adds, digests, reconcile requests
and deletions of removed files' partitions. Dagster-free."""

from __future__ import annotations

from dataclasses import replace

from ragflow_dagster.sensors.cursor import (
    MASK,
    PassState,
    ReconcileState,
    SensorCursor,
    file_hash,
    key_hash,
    short,
)
from ragflow_dagster.sensors.tick import RunSpec, Tick, TickOutcome
from ragflow_dagster.sources.base import SourceEntry
from ragflow_dagster.sync.identity import shard_of

__all__ = ["FilesTick"]


class FilesTick(Tick):
    """A tick of an ingestion partitioned per file."""

    def run(self) -> TickOutcome:
        return self._files()

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
                    acc_old=tuple(v & MASK for v in acc_old),
                    acc_new=tuple(v & MASK for v in acc_new),
                    acc_keys=tuple(v & MASK for v in acc_keys),
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
        changed = [i for i in range(shards) if i not in held and (acc_old[i] & MASK) != prev_d[i]]
        digests = tuple(
            ((prev_d[i] + acc_new[i]) if i in held else (acc_old[i] + acc_new[i])) & MASK
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
                i for i in range(shards) if (after[i] & MASK) != (acc_keys[i] & MASK)
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
        removed_sum = sum(key_hash(k) for k in removed) & MASK
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
                run_key = f"{self.name}:reconcile:{self.seq}:" + short(
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
            run_key = f"{self.name}:add:{self.seq}:" + short(adds[0], adds[-1], len(adds))
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
            total = sum(key_hash(k) for k in removed_now) & MASK
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
        rest_sum = sum(key_hash(k) for k in rest) & MASK
        keep = tuple(rest) if rc.removed_keys is not None else None
        return replace(rc, removed_sum=rest_sum, removed_count=len(rest), removed_keys=keep), (
            now_delete
        )
