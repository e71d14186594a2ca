"""When the parse wait polls: soon after the last document finishes, with few polls.

The server here is a script of finish times on a fake clock (the wait's only inputs are the
states a poll returns and the time), so the assertions are about the schedule, not wall time.
The wait against the sandbox over HTTP is covered by the engine tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from ragflow_dagster.sync import parse_wait
from ragflow_dagster.sync.parse_wait import ParseTracker, ParseWaitOptions, wait_for_parses

POLL_COST = 0.01
"""Fake seconds one poll takes (the request and the run's work on its answer)."""


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


@dataclass(frozen=True)
class State:
    run: str
    progress_msg: str = ""


class ScriptedServer:
    """Documents finish at fixed times; each poll costs ``POLL_COST``."""

    def __init__(self, clock: FakeTime, finish_at: dict[str, float]) -> None:
        self.clock = clock
        self.finish_at = finish_at
        self.polls: list[float] = []

    def documents_by_id(self, dataset_id: str, ids: list[str]) -> dict[str, Any]:
        self.polls.append(self.clock.now)
        states = {
            i: State("DONE" if self.clock.now >= self.finish_at[i] else "RUNNING") for i in ids
        }
        self.clock.now += POLL_COST
        return states


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(parse_wait, "time", fake)
    return fake


def _wait(clock: FakeTime, finish_at: dict[str, float]) -> ScriptedServer:
    server = ScriptedServer(clock, finish_at)
    tracker = ParseTracker()
    for doc_id in finish_at:
        tracker.watch(doc_id)
    wait_for_parses(server, "ds", tracker, ParseWaitOptions())  # type: ignore[arg-type]
    assert tracker.done == set(finish_at) and not tracker.pending
    return server


@pytest.mark.parametrize("count", [8, 12, 50])
def test_the_end_of_a_serial_parse_is_seen_soon_after_it_happens(
    clock: FakeTime, count: int
) -> None:
    # one parser, 0.055 s per document (the P6 benchmark's server)
    per_doc = 0.055
    finish_at = {f"d{k}": per_doc * (k + 1) for k in range(count)}
    server = _wait(clock, finish_at)
    last = max(finish_at.values())
    # the wait ends within one document's parse time of the last finish ...
    assert server.polls[-1] - last < per_doc, server.polls
    # ... without polling more often than documents finish, give or take the first polls
    assert len(server.polls) <= count // 2 + 4, server.polls


def test_a_long_wait_polls_at_the_longest_interval(clock: FakeTime) -> None:
    # 1,000 documents at 0.5 s each: about 500 s of parsing
    finish_at = {f"d{k}": 0.5 * (k + 1) for k in range(1000)}
    server = _wait(clock, finish_at)
    # never two polls while half a document is parsed (the requests one poll costs stretch
    # the pause while many are pending: 1,000 ids are 10 requests)
    gaps = [b - a for a, b in zip(server.polls, server.polls[1:], strict=False)]
    assert min(gaps[3:]) >= 0.25 - 1e-9, gaps[:8]  # after the back-off before a first finish
    assert len(server.polls) < 0.6 * len(finish_at)
    assert server.polls[-1] - max(finish_at.values()) < 0.5


def test_next_interval_lands_the_next_poll_on_the_predicted_end() -> None:
    opts = ParseWaitOptions(poll_interval=0.2)
    # 0.055 s per document, 8 pending, one of them half done: all done in 7.5 * 0.055 s ->
    # three polls 0.1375 s apart, not 0.2
    pause = parse_wait._next_interval(0.2, 4, 8, opts, per_document=0.055)
    assert pause == pytest.approx(7.5 * 0.055 / 3)
    # the end is near: poll when it is due
    assert parse_wait._next_interval(0.2, 4, 2, opts, per_document=0.055) == pytest.approx(
        1.5 * 0.055
    )
    # slow documents: no poll more often than one finishes
    assert parse_wait._next_interval(0.2, 1, 50, opts, per_document=0.5) == pytest.approx(
        0.5, rel=0.02
    )
