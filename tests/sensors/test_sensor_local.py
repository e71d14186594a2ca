"""The folder sensor, evaluated with ``build_sensor_context`` on a real temp tree."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import dagster as dg

from ragflow_dagster.sensors import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    RECONCILE_TAG,
    RUN_KEY_TAG,
    SensorCursor,
    build_ragflow_reconcile_schedule,
)
from ragflow_dagster.sources import FileFilters, LocalFolderSource, SkippedEntry
from ragflow_dagster.sync.identity import partition_key, shard_key, shard_of


def _tree(kit, root: Path, n: int, prefix: str = "docs") -> list[str]:
    paths = [f"{prefix}/{i // 100:03d}/file-{i:05d}.txt" for i in range(n)]
    for p in paths:
        kit.write(root, p, p)
    return paths


def test_new_files_get_partitions_and_one_run_over_the_added_range(kit, instance, tmp_path):
    paths = _tree(kit, tmp_path, 5)
    driver = kit.drive(kit.make_ingestion(LocalFolderSource(tmp_path)), instance)

    first = driver.tick()
    assert sorted(first.added) == sorted(paths)
    assert len(first.runs) == 1
    run = first.runs[0]
    assert sorted(driver.run_keys(run)) == sorted(paths)
    assert RECONCILE_TAG not in run.tags
    assert run.tags["ragflow_dagster/reason"] == "added"

    second = driver.tick()
    assert second.runs == [] and second.added == [] and second.deleted == []
    assert second.skip and second.skip.startswith("nothing new")

    kit.write(tmp_path, "docs/new.txt", "new")
    third = driver.tick()
    assert third.added == ["docs/new.txt"]
    assert len(third.runs) == 1 and driver.run_keys(third.runs[0]) == ["docs/new.txt"]


def test_a_repeated_tick_asks_for_the_same_run(kit, instance, tmp_path):
    _tree(kit, tmp_path, 3)
    ingestion = kit.make_ingestion(LocalFolderSource(tmp_path))
    sensor = kit.drive(ingestion, instance).sensor
    results = [sensor(dg.build_sensor_context(instance=instance, cursor=None)) for _ in range(2)]
    assert results[0].run_requests[0].run_key == results[1].run_requests[0].run_key
    assert results[0].cursor == results[1].cursor
    # A later tick with new files gets a new key.
    kit.write(tmp_path, "late.txt")
    later = sensor(dg.build_sensor_context(instance=instance, cursor=results[0].cursor))
    assert later.run_requests[0].run_key != results[0].run_requests[0].run_key


def test_a_changed_file_requests_one_full_reconcile(kit, instance, tmp_path):
    paths = _tree(kit, tmp_path, 6)
    driver = kit.drive(kit.make_ingestion(LocalFolderSource(tmp_path)), instance)
    driver.tick()
    assert driver.tick().runs == []

    kit.write(tmp_path, paths[2], "changed content", age=300)
    tick = driver.tick()
    assert tick.added == [] and tick.deleted == []
    assert len(tick.runs) == 1
    run = tick.runs[0]
    assert run.tags[RECONCILE_TAG] == "full"
    assert run.tags["ragflow_dagster/reason"] == "changed"
    assert driver.run_keys(run) == driver.partitions()
    assert driver.tick().runs == []  # the change is known now


def test_added_and_changed_in_one_tick_is_one_run(kit, instance, tmp_path):
    paths = _tree(kit, tmp_path, 4)
    driver = kit.drive(kit.make_ingestion(LocalFolderSource(tmp_path)), instance)
    driver.tick()
    kit.write(tmp_path, paths[0], "edited", age=200)
    kit.write(tmp_path, "zz/new.txt", "new")
    tick = driver.tick()
    assert tick.added == ["zz/new.txt"]
    assert len(tick.runs) == 1
    assert tick.runs[0].tags[RECONCILE_TAG] == "full"
    assert driver.run_keys(tick.runs[0]) == driver.partitions()
    assert len(driver.partitions()) == 5


def test_removed_files_lose_their_partitions_after_the_reconcile_succeeded(kit, instance, tmp_path):
    paths = _tree(kit, tmp_path, 6)
    driver = kit.drive(kit.make_ingestion(LocalFolderSource(tmp_path)), instance)
    driver.tick()
    (tmp_path / paths[1]).unlink()
    (tmp_path / paths[4]).unlink()

    seen = driver.tick()
    assert seen.deleted == []
    assert len(seen.runs) == 1 and seen.runs[0].tags[RECONCILE_TAG] == "full"
    assert "removed" in seen.runs[0].tags["ragflow_dagster/reason"]
    reconcile = seen.runs[0]
    assert set(driver.run_keys(reconcile)) >= {paths[1], paths[4]}

    waiting = driver.tick()  # the run has not happened yet
    assert waiting.runs == [] and waiting.deleted == []
    assert "reconcile run missing" in (waiting.skip or "")
    assert len(driver.partitions()) == 6

    assert driver.execute(reconcile) == dg.DagsterRunStatus.SUCCESS
    done = driver.tick()
    assert sorted(done.deleted) == sorted([paths[1], paths[4]])
    assert done.skip and done.skip.startswith("deleting 2 partitions")
    assert done.runs == []
    assert sorted(driver.partitions()) == sorted(set(paths) - {paths[1], paths[4]})
    assert driver.tick().runs == [] and driver.ticks[-1].deleted == []


def test_a_running_run_of_the_dataset_holds_every_request_back(kit, instance, tmp_path):
    from dagster._core.test_utils import create_run_for_test

    paths = _tree(kit, tmp_path, 4)
    ingestion = kit.make_ingestion(LocalFolderSource(tmp_path))
    driver = kit.drive(ingestion, instance)
    driver.tick()
    keys = driver.partitions()
    first, last = keys[0], keys[-1]
    # a run of another job (the UI's asset job) materializing the dataset's asset
    running = create_run_for_test(
        instance,
        job_name="__ASSET_JOB",
        status=dg.DagsterRunStatus.STARTED,
        asset_selection=frozenset(ingestion.asset_keys.values()),
        tags={RANGE_START_TAG: first, RANGE_END_TAG: keys[1]},
    )
    (tmp_path / first).unlink()
    (tmp_path / last).unlink()
    kit.write(tmp_path, "late.txt")
    held = driver.tick()
    assert held.runs == [] and held.added == [] and held.deleted == []
    assert "queued or running" in held.skip
    instance.report_run_failed(instance.get_run_by_id(running.run_id))
    (run,) = driver.tick().runs  # the removals and the addition, in one reconcile
    assert run.tags[RECONCILE_TAG] == "full"
    assert driver.execute(run) == dg.DagsterRunStatus.SUCCESS
    assert sorted(driver.tick().deleted) == sorted([first, last])
    assert sorted(driver.partitions()) == sorted({*paths, "late.txt"} - {first, last})


def test_a_failing_reconcile_is_retried_then_left_to_a_full_reconcile(kit, instance, tmp_path):
    paths = _tree(kit, tmp_path, 3)
    ingestion = kit.make_ingestion(LocalFolderSource(tmp_path))
    driver = kit.drive(ingestion, instance)
    driver.tick()
    (tmp_path / paths[0]).unlink()
    run = driver.tick().runs[0]
    keys = {run.run_key}
    for _attempt in range(2):
        assert driver.execute(run, fail=True) == dg.DagsterRunStatus.FAILURE
        retry = driver.tick()
        assert len(retry.runs) == 1 and retry.deleted == []
        run = retry.runs[0]
        assert run.tags["ragflow_dagster/reason"] == "retry"
        keys.add(run.run_key)
    assert len(keys) == 3
    assert driver.execute(run, fail=True) == dg.DagsterRunStatus.FAILURE
    gave_up = driver.tick()
    assert gave_up.runs == [] and gave_up.deleted == []
    assert "failed repeatedly" in (gave_up.skip or "")
    assert driver.tick().runs == []

    # The nightly schedule's full reconcile succeeds: the sensor finishes the job.
    schedule = build_ragflow_reconcile_schedule(ingestion)
    request = schedule.evaluate_tick(dg.build_schedule_context(instance=instance)).run_requests[0]
    assert request.tags[RECONCILE_TAG] == "full"
    assert driver.execute(request) == dg.DagsterRunStatus.SUCCESS
    assert driver.tick().deleted == [paths[0]]


def test_files_being_written_wait_until_they_settle(kit, instance, tmp_path):
    paths = _tree(kit, tmp_path, 2)
    driver = kit.drive(kit.make_ingestion(LocalFolderSource(tmp_path)), instance, settle_seconds=60)
    driver.tick()
    assert sorted(driver.partitions()) == sorted(paths)

    kit.write(tmp_path, "fresh.txt", "still writing", age=0)
    kit.write(tmp_path, paths[0], "being rewritten", age=0)
    tick = driver.tick()
    assert tick.added == [] and tick.runs == []
    assert "2 not settled yet" in (tick.skip or "")

    for rel in ("fresh.txt", paths[0]):
        stamp = time.time() - 120
        os.utime(tmp_path / rel, (stamp, stamp))
    settled = driver.tick()
    assert settled.added == ["fresh.txt"]
    assert len(settled.runs) == 1
    # The rewritten file was held back with its shard; now it shows as a change.
    assert settled.runs[0].tags[RECONCILE_TAG] == "full"
    assert "changed" in settled.runs[0].tags["ragflow_dagster/reason"]
    assert driver.tick().runs == []


def test_adds_and_deletes_are_capped_per_tick_and_continue(kit, instance, tmp_path):
    paths = _tree(kit, tmp_path, 25)
    driver = kit.drive(
        kit.make_ingestion(LocalFolderSource(tmp_path)),
        instance,
        max_partition_adds=10,
        max_partition_deletes=10,
    )
    sizes = []
    for _ in range(3):
        tick = driver.tick()
        sizes.append(len(tick.added))
        assert len(tick.runs) == 1 and driver.run_keys(tick.runs[0]) == tick.added
    assert sizes == [10, 10, 5]
    assert driver.tick().runs == []
    assert sorted(driver.partitions()) == sorted(paths)

    shutil.rmtree(tmp_path / "docs")
    kit.write(tmp_path, "keep.txt")
    tick = driver.tick()
    assert tick.added == ["keep.txt"] and len(tick.runs) == 1
    assert driver.execute(tick.runs[0]) == dg.DagsterRunStatus.SUCCESS
    deleted = [len(driver.tick().deleted) for _ in range(4)]
    assert deleted == [10, 10, 5, 0]
    assert driver.partitions() == ["keep.txt"]


def test_initial_sync_of_10k_files_takes_few_runs_and_a_small_cursor(kit, instance, tmp_path):
    n = 10_000
    root = tmp_path / "big"
    stamp = time.time() - 600
    for d in range(100):
        folder = root / f"dir-{d:02d}"
        folder.mkdir(parents=True)
        for i in range(n // 100):
            p = folder / f"doc-{i:03d}.md"
            p.write_bytes(b"x")
            os.utime(p, (stamp, stamp))
    driver = kit.drive(kit.make_ingestion(LocalFolderSource(root)), instance)
    covered: list[str] = []
    runs = 0
    cursor_sizes = []
    tick_seconds = []
    for _ in range(30):
        t0 = time.monotonic()
        tick = driver.tick()
        tick_seconds.append(time.monotonic() - t0)
        cursor_sizes.append(len(tick.cursor or ""))
        if not tick.runs:
            break
        runs += len(tick.runs)
        assert len(tick.added) <= 1000
        covered.extend(driver.run_keys(tick.runs[0]))
    assert runs <= 25, runs
    assert runs == 10
    assert len(covered) == n and set(covered) == set(driver.partitions())
    assert max(cursor_sizes) < 8 * 1024, cursor_sizes
    assert max(tick_seconds) < 20, tick_seconds
    print(
        f"10k initial sync: {runs} runs, cursor <= {max(cursor_sizes)} B, "
        f"slowest tick {max(tick_seconds):.2f}s"
    )


def test_filters_keep_files_out_of_partitions(kit, instance, tmp_path):
    kit.write(tmp_path, "a.pdf")
    kit.write(tmp_path, "b.tmp")
    kit.write(tmp_path, "node_modules/c.pdf")
    filters = FileFilters(extensions=["pdf"], exclude_dirs=["node_modules"])
    driver = kit.drive(kit.make_ingestion(LocalFolderSource(tmp_path), filters=filters), instance)
    assert driver.tick().added == ["a.pdf"]


def test_long_paths_use_hashed_keys_and_are_removed_too(kit, instance, tmp_path):
    long_rel = "deep/" + "very-long-folder-name/" * 4 + "report.pdf"
    kit.write(tmp_path, long_rel)
    kit.write(tmp_path, "short.pdf")
    driver = kit.drive(kit.make_ingestion(LocalFolderSource(tmp_path)), instance)
    tick = driver.tick()
    hashed = partition_key(long_rel)
    assert hashed.startswith("h-") and hashed in tick.added
    (tmp_path / long_rel).unlink()
    run = driver.tick().runs[0]
    driver.execute(run)
    assert driver.tick().deleted == [hashed]


def test_a_missing_folder_skips_without_touching_anything(kit, instance, tmp_path):
    _tree(kit, tmp_path / "src", 3)
    driver = kit.drive(kit.make_ingestion(LocalFolderSource(tmp_path / "src")), instance)
    driver.tick()
    before = driver.cursor
    (tmp_path / "src").rename(tmp_path / "elsewhere")
    tick = driver.tick()
    assert tick.runs == [] and tick.deleted == []
    assert tick.skip and "does not exist" in tick.skip
    assert driver.cursor == before
    assert len(driver.partitions()) == 3


class _PartlyUnreadable(LocalFolderSource):
    """A folder whose ``hidden/`` subfolder cannot be listed (as for a permission error)."""

    def scan(self, filters=None):
        for rec in super().scan(filters):
            if rec.path.startswith("hidden/"):
                continue
            yield rec
        yield SkippedEntry("hidden/", "unreadable", "Permission denied", unlisted=True)


def test_an_unreadable_folder_is_not_taken_for_removed(kit, instance, tmp_path):
    _tree(kit, tmp_path, 3)
    _tree(kit, tmp_path, 2, prefix="hidden")
    driver = kit.drive(kit.make_ingestion(LocalFolderSource(tmp_path), name="unr"), instance)
    driver.tick()
    assert len(driver.partitions()) == 5
    cursor = driver.cursor
    driver = kit.drive(kit.make_ingestion(_PartlyUnreadable(tmp_path), name="unr"), instance)
    driver.cursor = cursor
    for _ in range(3):
        tick = driver.tick()
        assert tick.deleted == []
        for run in tick.runs:
            assert driver.execute(run) == dg.DagsterRunStatus.SUCCESS
    assert len(driver.partitions()) == 5


def test_shard_partitioning_requests_only_the_changed_shards(kit, instance, tmp_path):
    paths = _tree(kit, tmp_path, 40)
    shards = 8
    driver = kit.drive(
        kit.make_ingestion(LocalFolderSource(tmp_path), kind="shards", shards=shards), instance
    )
    first = driver.tick()
    assert first.added == [] and len(first.runs) == 1
    used = sorted({shard_of(p, shards) for p in paths})
    assert first.runs[0].tags[RANGE_START_TAG] == shard_key(used[0], shards)
    assert first.runs[0].tags[RANGE_END_TAG] == shard_key(used[-1], shards)
    assert driver.tick().runs == []

    target = paths[7]
    kit.write(tmp_path, target, "edited", age=100)
    tick = driver.tick()
    assert len(tick.runs) == 1
    key = shard_key(shard_of(target, shards), shards)
    assert tick.runs[0].tags[RANGE_START_TAG] == key == tick.runs[0].tags[RANGE_END_TAG]
    assert RECONCILE_TAG not in tick.runs[0].tags
    assert driver.execute(tick.runs[0]) == dg.DagsterRunStatus.SUCCESS

    gone = paths[13]
    (tmp_path / gone).unlink()
    tick = driver.tick()
    key = shard_key(shard_of(gone, shards), shards)
    assert tick.runs[0].tags[RANGE_START_TAG] == key == tick.runs[0].tags[RANGE_END_TAG]


def test_unpartitioned_ingestion_runs_once_per_change(kit, instance, tmp_path):
    paths = _tree(kit, tmp_path, 3)
    driver = kit.drive(kit.make_ingestion(LocalFolderSource(tmp_path), kind="none"), instance)
    first = driver.tick()
    assert len(first.runs) == 1 and RANGE_START_TAG not in first.runs[0].tags
    assert first.runs[0].tags[RECONCILE_TAG] == "full"
    assert driver.execute(first.runs[0]) == dg.DagsterRunStatus.SUCCESS
    assert driver.tick().runs == []
    (tmp_path / paths[0]).unlink()
    assert len(driver.tick().runs) == 1


def test_schedule_requests_a_full_reconcile(kit, instance, tmp_path):
    _tree(kit, tmp_path, 3)
    ingestion = kit.make_ingestion(LocalFolderSource(tmp_path))
    schedule = build_ragflow_reconcile_schedule(ingestion, cron_schedule="15 1 * * *")
    assert schedule.cron_schedule == "15 1 * * *"
    empty = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
    assert not empty.run_requests and "no partitions" in (empty.skip_message or "")

    driver = kit.drive(ingestion, instance)
    driver.tick()
    request = schedule.evaluate_tick(dg.build_schedule_context(instance=instance)).run_requests[0]
    assert driver.run_keys(request) == driver.partitions()
    assert request.tags[RECONCILE_TAG] == "full"

    sharded = kit.make_ingestion(LocalFolderSource(tmp_path), name="s", kind="shards", shards=4)
    req = (
        build_ragflow_reconcile_schedule(sharded)
        .evaluate_tick(dg.build_schedule_context(instance=instance))
        .run_requests[0]
    )
    assert (req.tags[RANGE_START_TAG], req.tags[RANGE_END_TAG]) == ("shard-0", "shard-3")


def test_cursor_round_trips_and_bad_cursors_start_over():
    cursor = SensorCursor.initial("files", 256)
    assert SensorCursor.decode(cursor.encode(), mode="files", shards=256) == cursor
    assert SensorCursor.decode("garbage", mode="files", shards=256) == cursor
    assert SensorCursor.decode(cursor.encode(), mode="shards", shards=256).mode == "shards"
    assert len(cursor.encode()) < 200


def test_run_keys_carry_the_run_key_tag_when_executed(kit, instance, tmp_path):
    _tree(kit, tmp_path, 2)
    driver = kit.drive(kit.make_ingestion(LocalFolderSource(tmp_path)), instance)
    run = driver.tick().runs[0]
    driver.execute(run)
    found = instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run.run_key}))
    assert len(found) == 1 and found[0].status == dg.DagsterRunStatus.SUCCESS
