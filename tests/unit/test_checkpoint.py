"""The checkpoint: what a commit says about a partition's streams, and one poll in flight."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.checkpoint import CheckpointError, InFlight, Resume
from consumer.partitions import PartitionStreams


def test_the_position_is_the_first_row_an_open_window_needs() -> None:
    part: PartitionStreams[int] = PartitionStreams(Resume(0, 0), size=3, step=3)
    for offset, stream in enumerate("abab"):
        part.add(offset, stream, offset)
    part.read_through(3)
    assert part.commit().offset == 0
    part.add(4, "a", 4)  # a's window 0, 2, 4 closes; b's open from 1
    part.read_through(4)
    resume = part.commit()
    assert (resume.offset, resume.streams, resume.read) == (1, {"a": 5}, 5)


def test_with_no_window_open_the_position_is_past_the_last_row_read() -> None:
    part: PartitionStreams[int] = PartitionStreams(Resume(0, 0), size=2, step=2)
    for offset in range(4):
        part.add(offset, "a", offset)
    part.read_through(6)  # rows 4 and 5 were dead-lettered
    assert (part.commit().offset, part.commit().streams) == (7, {})


def test_metadata_from_another_tool_resumes_every_stream_at_the_offset() -> None:
    for metadata in (None, "", "hello", '["a"]', '{"x": 1}'):
        resume = Resume.decode(40, metadata)
        assert (resume.offset, resume.read, resume.streams) == (40, 40, {})


def test_unknown_or_broken_metadata_of_ours_is_a_clear_error() -> None:
    with pytest.raises(CheckpointError, match="version 2"):
        Resume.decode(40, '{"v": 2, "read": 50}')
    with pytest.raises(CheckpointError, match="malformed"):
        Resume.decode(40, '{"v": 1, "streams": {"a": 3}}')


def test_consumers_cutting_other_windows_cannot_resume_each_other() -> None:
    committed = Resume(100, 120, {"a": 110}, window=(50, 50))
    with pytest.raises(CheckpointError, match="50/50, this one uses 20/20"):
        PartitionStreams(committed, size=20, step=20)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    streams=st.lists(st.sampled_from("abc"), min_size=1, max_size=120),
    dead=st.sets(st.integers(0, 119)),
    cut=st.integers(0, 120),
    size=st.integers(1, 6),
    step_less=st.integers(0, 5),
)
def test_resuming_from_any_commit_cuts_the_windows_of_an_uninterrupted_run(
    streams: list[str], dead: set[int], cut: int, size: int, step_less: int
) -> None:
    """Stop after any row, commit, resume: the windows are those of one run, each once."""
    step = max(1, size - step_less)
    rows = [(o, None if o in dead else s) for o, s in enumerate(streams)]

    def feed(part: PartitionStreams[int], rows: list[tuple[int, str | None]]) -> list[tuple]:
        out = []
        for offset, stream in rows:
            if not part.admits(offset, stream) or stream is None:
                continue
            window = part.add(offset, stream, offset)
            if window is not None:
                out.append((stream, window.offsets))
        if rows:
            part.read_through(rows[-1][0])
        return out

    whole = feed(PartitionStreams(Resume(0, 0), size, step), rows)
    first = PartitionStreams(Resume(0, 0), size, step)
    before = feed(first, rows[:cut])
    resume = Resume.decode(first.commit().offset, first.commit().encode())
    after = feed(PartitionStreams(resume, size, step), rows[resume.offset :])
    assert before + after == whole
    assert len(set(before + after)) == len(before + after)
    # Dead-lettered rows below the commit are not dead-lettered again.
    again = [o for o in dead if o < len(rows) and not resume.handled(o, None)]
    assert all(o >= cut for o in again)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    streams=st.lists(st.sampled_from("abc"), min_size=1, max_size=120),
    gaps=st.lists(st.integers(-40, 100), min_size=120, max_size=120),
    dead=st.sets(st.integers(0, 119)),
    cut=st.integers(0, 120),
    size=st.integers(2, 8),
    seconds=st.sampled_from([30.0, 60.0, 150.0]),
    min_share=st.floats(0, 1),
)
def test_time_windows_resumed_from_any_commit_are_those_of_an_uninterrupted_run(
    streams: list[str],
    gaps: list[int],
    dead: set[int],
    cut: int,
    size: int,
    seconds: float,
    min_share: float,
) -> None:
    """As above, with windows that also close on time and merge below a minimum.

    Event times are seconds apart by ``gaps`` (some going back), so windows close on
    rows, on time, and merge; the run is stopped after any row and resumed.
    """
    min_rows = max(1, round(min_share * size))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = [start + timedelta(seconds=sum(gaps[: i + 1])) for i in range(len(streams))]
    rows = [(o, None if o in dead else s) for o, s in enumerate(streams)]

    def part(resume: Resume, merges: list[tuple[str, int]]) -> PartitionStreams[int]:
        return PartitionStreams(
            resume,
            size,
            size,
            seconds=seconds,
            min_rows=min_rows,
            on_merge=lambda stream, merge: merges.append((stream, merge.first_offset)),
        )

    def feed(part: PartitionStreams[int], rows: list[tuple[int, str | None]]) -> list[tuple]:
        out = []
        for offset, stream in rows:
            if not part.admits(offset, stream) or stream is None:
                continue
            window = part.add(offset, stream, offset, times[offset])
            if window is not None:
                out.append((stream, window.offsets, window.closed_by))
        if rows:
            part.read_through(rows[-1][0])
        return out

    whole = feed(part(Resume(0, 0), []), rows)
    first = part(Resume(0, 0), [])
    before = feed(first, rows[:cut])
    committed = first.commit()
    resume = Resume.decode(committed.offset, committed.encode())
    assert resume.time == (seconds, min_rows)
    after = feed(part(resume, []), rows[resume.offset :])
    assert before + after == whole
    assert len(set(before + after)) == len(before + after)
    # Every row of a stream is in exactly one window, but the open window's.
    for stream in set(streams):
        ours = [o for s, offsets, _ in whole if s == stream for o in offsets]
        assert ours == sorted(ours) and len(set(ours)) == len(ours)
    # Every window has from the minimum to the size of rows: the short ones merged.
    assert all(min_rows <= len(offsets) <= size for _, offsets, _ in whole)


def test_consumers_with_other_time_windows_cannot_resume_each_other() -> None:
    timed = Resume(100, 120, window=(50, 50), time=(60.0, 10))
    with pytest.raises(CheckpointError, match="50/50 closing after 60 s of event time"):
        PartitionStreams(timed, size=50, step=50)
    with pytest.raises(CheckpointError, match="this one uses 50/50 closing after 30 s"):
        PartitionStreams(timed, size=50, step=50, seconds=30, min_rows=10)
    with pytest.raises(CheckpointError, match=r"\(at least 5 rows\)"):
        PartitionStreams(timed, size=50, step=50, seconds=60, min_rows=5)
    PartitionStreams(timed, size=50, step=50, seconds=60, min_rows=10)  # the same: fine
    untimed = Resume(100, 120, window=(50, 50))
    with pytest.raises(CheckpointError, match="50/50, this one uses 50/50 closing after"):
        PartitionStreams(untimed, size=50, step=50, seconds=60, min_rows=10)


def done() -> Future[None]:
    future: Future[None] = Future()
    future.set_result(None)
    return future


def test_the_next_poll_waits_for_the_one_in_flight() -> None:
    in_flight = InFlight()
    first: Future[None] = Future()
    in_flight.hand_off(lambda: first)
    in_flight.settle(wait=False)
    assert in_flight.busy
    started = []

    def second() -> Future[None]:
        started.append(first.done())
        return done()

    first.set_result(None)
    in_flight.hand_off(second)
    assert started == [True]


def test_a_failed_poll_is_raised() -> None:
    in_flight = InFlight()
    failed: Future[None] = Future()
    failed.set_exception(OSError("disk full"))
    in_flight.hand_off(lambda: failed)
    with pytest.raises(OSError, match="disk full"):
        in_flight.settle(wait=True)
    assert not in_flight.busy


def test_polls_up_to_the_depth_go_in_flight_and_the_next_waits_for_the_first() -> None:
    in_flight = InFlight(depth=2)
    first: Future[None] = Future()
    second: Future[None] = Future()
    in_flight.hand_off(lambda: first)
    in_flight.hand_off(lambda: second)  # the first still running: no wait at depth 2
    started = []

    def third() -> Future[None]:
        started.append((first.done(), second.done()))
        return done()

    first.set_result(None)
    in_flight.hand_off(third)
    assert started == [(True, False)]
    second.set_result(None)
    in_flight.settle(wait=True)
    assert not in_flight.busy


def test_settling_collects_every_poll_and_raises_the_earliest_failure() -> None:
    in_flight = InFlight(depth=3)
    failures = []
    for error in (OSError("disk full"), RuntimeError("refused after a failure")):
        failed: Future[None] = Future()
        failed.set_exception(error)
        failures.append(failed)
    for future in [done(), *failures]:
        in_flight.hand_off(lambda future=future: future)
    with pytest.raises(OSError, match="disk full"):
        in_flight.settle(wait=True)
    assert not in_flight.busy
