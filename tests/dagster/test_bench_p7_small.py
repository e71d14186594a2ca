"""A small P7 (no-op reconcile through the Dagster job) as a correctness check: counts, not
times."""

from benchmarks.p7_dagster_noop import run


def test_p7_small_dagster_noop_changes_nothing_and_calls_no_more_than_the_engine(tmp_path):
    result = run(files=120, repeat=1, workdir=str(tmp_path))
    assert result["noop"] is True
    calls = result["api_calls"]
    assert calls["dagster"] <= calls["engine"] + 5
    assert calls["engine"] == 3  # one dataset lookup and two listing pages
    assert result["dagster"]["120"]["materializations"] == 2  # documents and chunks, once each
    assert result["peak_rss_mb"]["dagster"] > 0
