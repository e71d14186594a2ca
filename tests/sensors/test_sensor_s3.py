"""The bucket sensor, evaluated with ``build_sensor_context`` against moto's S3 server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from ragflow_dagster.sensors import RECONCILE_TAG, SensorCursor
from ragflow_dagster.sources import S3Source, SkippedEntry


def _put(s3, bucket: str, keys: list[str], body: bytes = b"hello") -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=body + k.encode()), keys))


def _source(s3_endpoint, bucket: str, **kwargs) -> S3Source:
    return S3Source(
        bucket, "docs", endpoint_url=s3_endpoint.endpoint_url, region=s3_endpoint.region, **kwargs
    )


def _settle(driver, *, max_ticks: int = 30) -> list:
    """Tick, executing every requested run, until a tick asks for nothing and no pass or
    reconcile is pending. Returns all ticks."""
    ticks = []
    for _ in range(max_ticks):
        tick = driver.tick()
        ticks.append(tick)
        for run in tick.runs:  # only reconcile runs matter to the sensor
            if run.tags.get(RECONCILE_TAG):
                assert driver.execute(run) == dg.DagsterRunStatus.SUCCESS
        cursor = SensorCursor.decode(tick.cursor, mode="files", shards=256)
        idle = not tick.runs and not tick.added and not tick.deleted
        if idle and cursor.pass_state is None and cursor.reconcile is None:
            return ticks
    raise AssertionError(f"no steady state after {max_ticks} ticks")


def test_new_changed_and_removed_objects(kit, instance, s3_endpoint):
    s3 = s3_endpoint.client()
    bucket = s3_endpoint.new_bucket("sensor")
    keys = [f"docs/a/{i}.txt" for i in range(5)]
    _put(s3, bucket, [*keys, "other/outside.txt"])
    driver = kit.drive(kit.make_ingestion(_source(s3_endpoint, bucket)), instance)

    first = driver.tick()
    assert sorted(first.added) == [k.removeprefix("docs/") for k in keys]
    assert len(first.runs) == 1 and RECONCILE_TAG not in first.runs[0].tags
    assert driver.tick().runs == []

    s3.put_object(Bucket=bucket, Key=keys[0], Body=b"new content")
    changed = driver.tick()
    assert len(changed.runs) == 1 and changed.runs[0].tags[RECONCILE_TAG] == "full"
    assert changed.added == []

    s3.delete_object(Bucket=bucket, Key=keys[3])
    removed = driver.tick()
    assert len(removed.runs) == 1 and "removed" in removed.runs[0].tags["ragflow_dagster/reason"]
    assert removed.deleted == []
    assert driver.execute(removed.runs[0]) == dg.DagsterRunStatus.SUCCESS
    assert driver.tick().deleted == ["a/3.txt"]
    assert sorted(driver.partitions()) == ["a/0.txt", "a/1.txt", "a/2.txt", "a/4.txt"]


def test_listing_resumes_across_ticks_and_finds_removals(kit, instance, s3_endpoint):
    s3 = s3_endpoint.client()
    bucket = s3_endpoint.new_bucket("pages")
    keys = [f"docs/{i:03d}.txt" for i in range(35)]
    _put(s3, bucket, keys)
    source = _source(s3_endpoint, bucket, page_size=10)
    driver = kit.drive(kit.make_ingestion(source), instance, list_budget_seconds=0)

    # One page per tick: the first pass takes four ticks, each adding what it found.
    added = []
    for i in range(4):
        tick = driver.tick()
        added.append(len(tick.added))
        cursor = SensorCursor.decode(tick.cursor, mode="files", shards=256)
        assert (cursor.pass_state is None) == (i == 3)
        if i < 3:
            assert cursor.pass_state.position == keys[10 * i + 9]
        assert len(tick.runs) == 1
        assert driver.run_keys(tick.runs[0]) == tick.added
    assert added == [10, 10, 10, 5]
    assert len(driver.partitions()) == 35

    # Remove three, change one, add one: a few passes later the partitions match the bucket.
    for k in (keys[2], keys[17], keys[33]):
        s3.delete_object(Bucket=bucket, Key=k)
    s3.put_object(Bucket=bucket, Key=keys[20], Body=b"changed")
    s3.put_object(Bucket=bucket, Key="docs/999.txt", Body=b"new")
    ticks = _settle(driver)
    expected = sorted(
        {k.removeprefix("docs/") for k in keys} - {"002.txt", "017.txt", "033.txt"} | {"999.txt"}
    )
    assert sorted(driver.partitions()) == expected
    reconciles = [r for t in ticks for r in t.runs if r.tags.get(RECONCILE_TAG)]
    assert 1 <= len(reconciles) <= 3
    assert sorted(k for t in ticks for k in t.deleted) == ["002.txt", "017.txt", "033.txt"]
    assert max(len(t.cursor or "") for t in ticks) < 16 * 1024


def test_the_add_cap_stops_the_listing_and_the_next_tick_resumes(kit, instance, s3_endpoint):
    s3 = s3_endpoint.client()
    bucket = s3_endpoint.new_bucket("cap")
    keys = [f"docs/{i:03d}.txt" for i in range(25)]
    _put(s3, bucket, keys)
    driver = kit.drive(
        kit.make_ingestion(_source(s3_endpoint, bucket)), instance, max_partition_adds=10
    )
    sizes = [len(driver.tick().added) for _ in range(3)]
    assert sizes == [10, 10, 5]
    assert sorted(driver.partitions()) == [k.removeprefix("docs/") for k in keys]
    assert all(len(t.runs) == 1 for t in driver.ticks)
    assert driver.tick().runs == []


def test_fresh_objects_wait_for_the_settle_time(kit, instance, s3_endpoint):
    s3 = s3_endpoint.client()
    bucket = s3_endpoint.new_bucket("settle")
    _put(s3, bucket, ["docs/a.txt", "docs/b.txt"])
    driver = kit.drive(
        kit.make_ingestion(_source(s3_endpoint, bucket)), instance, settle_seconds=3600
    )
    tick = driver.tick()
    assert tick.added == [] and tick.runs == []
    assert "2 not settled yet" in (tick.skip or "")


def test_a_missing_bucket_skips(kit, instance, s3_endpoint):
    driver = kit.drive(kit.make_ingestion(_source(s3_endpoint, "no-such-bucket-here")), instance)
    tick = driver.tick()
    assert tick.runs == [] and tick.skip and "cannot list" in tick.skip


class _FlakyS3(S3Source):
    """Real S3 listing whose second page request 'fails' once (as S3Source reports it)."""

    failures = 1

    def iter_pages(self, *, start_after=None, filters=None):
        for i, (items, resume) in enumerate(
            super().iter_pages(start_after=start_after, filters=filters)
        ):
            if i == 1 and _FlakyS3.failures:
                _FlakyS3.failures -= 1
                yield [SkippedEntry("", "unreadable", "connection reset", True)], start_after
                return
            start_after = resume
            yield items, resume


def test_a_listing_that_breaks_off_resumes_where_it_stopped(kit, instance, s3_endpoint):
    s3 = s3_endpoint.client()
    bucket = s3_endpoint.new_bucket("flaky")
    keys = [f"docs/{i:03d}.txt" for i in range(25)]
    _put(s3, bucket, keys)
    source = _FlakyS3(
        bucket,
        "docs",
        endpoint_url=s3_endpoint.endpoint_url,
        region=s3_endpoint.region,
        page_size=10,
    )
    driver = kit.drive(kit.make_ingestion(source), instance)
    first = driver.tick()
    assert len(first.added) == 10
    cursor = SensorCursor.decode(first.cursor, mode="files", shards=256)
    assert cursor.pass_state is not None and cursor.pass_state.position == keys[9]
    ticks = _settle(driver)
    assert sorted(driver.partitions()) == [k.removeprefix("docs/") for k in keys]
    assert not [r for t in [first, *ticks] for r in t.runs if r.tags.get(RECONCILE_TAG)]
