"""``evaluate_tick`` without Dagster: the decisions that need a controlled clock or run states."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from ragflow_dagster.partitions import Partitioning
from ragflow_dagster.sensors import SensorCursor, SensorSettings, evaluate_tick
from ragflow_dagster.sources import LocalFolderSource


@dataclass
class ScriptedRuns:
    """Run states as the test says (our own RunLookup protocol, not a mock of a library)."""

    state: str = "missing"
    pinned: frozenset[str] = frozenset()
    asked: list[str] = field(default_factory=list)

    def status(self, run_key: str, since: float) -> str:
        self.asked.append(run_key)
        return self.state

    def pinned_keys(self) -> frozenset[str]:
        return self.pinned

    def busy(self) -> str | None:
        """A queued or running reconcile, or a run pinned to partitions, is in flight."""
        if self.state in ("queued", "running") or self.pinned:
            return f"a {self.state} run"
        return None


def _tick(root, cursor, partitions, runs, *, now=None, **settings):
    out = evaluate_tick(
        source=LocalFolderSource(root),
        partitioning=Partitioning.files("t_files"),
        cursor=cursor,
        settings=SensorSettings(settle_seconds=0, **settings),
        runs=runs,
        partitions=partitions,
        name="t",
        now=now,
    )
    return out, [*partitions, *out.add_keys]


def test_no_request_while_a_run_of_the_dataset_is_queued_or_running(kit, tmp_path):
    for i in range(3):
        kit.write(tmp_path, f"f{i}.txt", str(i))
    runs = ScriptedRuns()
    out, keys = _tick(tmp_path, SensorCursor.initial("files", 256), [], runs)
    kit.write(tmp_path, "f0.txt", "changed", age=100)
    out, keys = _tick(tmp_path, out.cursor, keys, runs)
    first = out.runs[0]
    assert first.reconcile
    held = out.cursor
    for state, name in (("queued", "f1.txt"), ("running", "f2.txt")):
        runs.state = state
        kit.write(tmp_path, name, f"changed while {state}", age=100)
        kit.write(tmp_path, "new_" + name, "added", age=100)
        out, keys = _tick(tmp_path, out.cursor, keys, runs)
        assert out.runs == () and out.add_keys == () and out.delete_keys == ()
        assert "queued or running" in out.skip_reason
        assert out.cursor == held  # nothing seen is forgotten: the next tick compares to this
    runs.state = "success"
    out, keys = _tick(tmp_path, out.cursor, keys, runs)
    (run,) = out.runs  # every change made meanwhile, folded into one run
    assert run.reconcile and run.run_key != first.run_key
    assert sorted(out.add_keys) == ["new_f1.txt", "new_f2.txt"]
    assert "changed" in run.reason and "added" in run.reason


def test_a_reconcile_that_never_appears_is_requested_again(kit, tmp_path):
    kit.write(tmp_path, "a.txt")
    kit.write(tmp_path, "b.txt")
    runs = ScriptedRuns()
    out, keys = _tick(tmp_path, SensorCursor.initial("files", 256), [], runs, now=1_000_000)
    (tmp_path / "a.txt").unlink()
    out, keys = _tick(tmp_path, out.cursor, keys, runs, now=1_000_100)
    lost = out.runs[0]
    out, keys = _tick(tmp_path, out.cursor, keys, runs, now=1_000_200)
    assert out.runs == ()
    out, keys = _tick(tmp_path, out.cursor, keys, runs, now=1_000_100 + 3601)
    assert len(out.runs) == 1 and out.runs[0].reason == "retry"
    assert out.runs[0].run_key != lost.run_key
    assert out.cursor.reconcile.attempt == 2


def test_removed_keys_wait_while_a_run_is_pinned_to_them(kit, tmp_path):
    for name in ("a.txt", "b.txt", "c.txt"):
        kit.write(tmp_path, name)
    runs = ScriptedRuns()
    out, keys = _tick(tmp_path, SensorCursor.initial("files", 256), [], runs)
    (tmp_path / "a.txt").unlink()
    (tmp_path / "c.txt").unlink()
    out, keys = _tick(tmp_path, out.cursor, keys, runs)
    runs.state = "success"
    runs.pinned = frozenset({"a.txt"})  # an in-flight run names it: the dataset is busy
    out, keys = _tick(tmp_path, out.cursor, keys, runs)
    assert out.delete_keys == ()
    runs.pinned = frozenset()
    out, keys = _tick(tmp_path, out.cursor, keys, runs)
    assert sorted(out.delete_keys) == ["a.txt", "c.txt"]
    assert out.cursor.reconcile is None


def test_a_file_that_comes_back_keeps_its_partition(kit, tmp_path):
    kit.write(tmp_path, "a.txt")
    kit.write(tmp_path, "b.txt")
    runs = ScriptedRuns()
    out, keys = _tick(tmp_path, SensorCursor.initial("files", 256), [], runs)
    (tmp_path / "a.txt").unlink()
    out, keys = _tick(tmp_path, out.cursor, keys, runs)
    assert out.runs[0].reconcile
    kit.write(tmp_path, "a.txt", "back again")
    runs.state = "success"
    out, keys = _tick(tmp_path, out.cursor, keys, runs)
    assert out.delete_keys == ()
    assert "a.txt" in keys


def test_a_paged_fsspec_source_is_listed_across_ticks_through_the_one_listing_adapter(tmp_path):
    """The sensor lists through ``sources.listing.Listing``: a resumable source stops within the
    tick's budget and the next tick resumes after the last file it handled."""
    import fsspec

    from ragflow_dagster.sources.fsspec import FsspecSource

    fs = fsspec.filesystem("memory")
    root = f"/tick-{tmp_path.name}"
    fs.pipe({f"{root}/d{i % 3}/f{i:03d}.txt": f"file {i}".encode() for i in range(25)})
    source = FsspecSource(f"memory://{root}", page_size=4)
    assert source.supports_resumable_listing
    clock = itertools.count(0, 1000).__next__  # every page ends past the budget
    cursor, keys, ticks = SensorCursor.initial("files", 256), [], 0
    while ticks < 20:
        ticks += 1
        out = evaluate_tick(
            source=source,
            partitioning=Partitioning.files("t_files"),
            cursor=cursor,
            settings=SensorSettings(settle_seconds=0, list_budget_seconds=1),
            runs=ScriptedRuns(),
            partitions=keys,
            name="t",
            now=10_000.0,
            clock=clock,
        )
        cursor, keys = out.cursor, [*keys, *out.add_keys]
        if len(keys) == 25:
            break
    assert sorted(keys) == sorted(f"d{i % 3}/f{i:03d}.txt" for i in range(25))
    assert ticks >= 4  # pages of 4 files, one page per tick: it resumed, it did not restart
