"""A partition's streams fed a poll at once: the windows and commits of feeding it row by row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.checkpoint import Resume
from consumer.partitions import PartitionStreams
from consumer.windowing import Merge, Window

START = datetime(2026, 1, 1, tzinfo=UTC)

Rows = list[tuple[int, str | None]]
"""(offset, stream) per row; None for a dead-lettered row, which no windower sees."""


def by_row(part: PartitionStreams[int], rows: Rows, times: list[datetime]) -> list[tuple]:
    """The poll fed as the loop fed it before add_many: row by row."""
    out = []
    for offset, stream in rows:
        if stream is None or not part.admits(offset, stream):
            continue
        window = part.add(offset, stream, offset, times[offset])
        if window is not None:
            out.append((stream, window))
    if rows:
        part.read_through(rows[-1][0])
    return out


def at_once(part: PartitionStreams[int], rows: Rows, times: list[datetime]) -> list[tuple]:
    """The poll's admitted rows fed in one call."""
    kept = [(o, s) for o, s in rows if s is not None and part.admits(o, s)]
    offsets = [o for o, _ in kept]
    out: list[tuple[str, Window[int]]] = part.add_many(
        offsets,
        [s for _, s in kept if s is not None],
        offsets,
        None if part.time is None else [times[o] for o in offsets],
    )
    if rows:
        part.read_through(rows[-1][0])
    return out


@settings(max_examples=400, derandomize=True, deadline=None)
@given(
    streams=st.lists(st.sampled_from("aab c"), min_size=1, max_size=120),
    seconds_apart=st.lists(st.integers(-40, 100), min_size=120, max_size=120),
    cuts=st.lists(st.integers(0, 120), max_size=8),
    restart=st.integers(0, 120),
    size=st.integers(1, 7),
    step_less=st.integers(0, 6),
    seconds=st.sampled_from([None, None, 30.0, 60.0, 150.0]),
    min_share=st.floats(0, 1),
)
def test_a_poll_added_at_once_gives_the_windows_and_commits_of_its_rows_one_by_one(
    streams: list[str],
    seconds_apart: list[int],
    cuts: list[int],
    restart: int,
    size: int,
    step_less: int,
    seconds: float | None,
    min_share: float,
) -> None:
    """Several streams (a space is a dead letter), sliding or time windows, polls cut
    anywhere, and a restart from the commit after any poll that reads the rows from the
    committed offset again: each poll's windows, their order, the merges and every
    commit are those of adding the rows one by one."""
    if seconds is not None:
        size = step = max(size, 2)
    else:
        step = max(1, size - step_less)
    min_rows = max(1, round(min_share * size))
    time = None if seconds is None else (seconds, min_rows)
    times = [START + timedelta(seconds=sum(seconds_apart[: i + 1])) for i in range(len(streams))]
    rows: Rows = [(o, None if s == " " else s) for o, s in enumerate(streams)]

    def part(resume: Resume, merges: list[tuple[str, Merge]]) -> PartitionStreams[int]:
        return PartitionStreams(
            resume,
            size,
            step,
            seconds=None if time is None else time[0],
            min_rows=min_rows,
            on_merge=lambda stream, merge: merges.append((stream, merge)),
        )

    bounds = [0, *sorted(c for c in cuts if c <= len(rows)), len(rows)]
    one_merges: list[tuple[str, Merge]] = []
    many_merges: list[tuple[str, Merge]] = []
    one, many = part(Resume(0, 0), one_merges), part(Resume(0, 0), many_merges)
    restarted = False
    for start, end in pairwise(bounds):
        if not restarted and start >= restart:
            # Restart both from the commit: the rows from its offset are read again.
            restarted = True
            resume = Resume.decode(one.commit().offset, one.commit().encode())
            assert many.commit() == resume
            one, many = part(resume, one_merges), part(resume, many_merges)
            start = resume.offset
        assert at_once(many, rows[start:end], times) == by_row(one, rows[start:end], times)
        assert many_merges == one_merges
        assert many.commit() == one.commit()
        assert many.streams == one.streams


def test_several_streams_give_their_windows_in_the_order_their_last_rows_came() -> None:
    part: PartitionStreams[str] = PartitionStreams(Resume(0, 0), size=2, step=1)
    added = part.add_many(range(6), list("abbaba"), list("012345"))
    assert [(stream, window.offsets) for stream, window in added] == [
        ("b", (1, 2)),
        ("a", (0, 3)),
        ("b", (2, 4)),
        ("a", (3, 5)),
    ]


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    streams=st.lists(st.sampled_from("aab "), min_size=1, max_size=80),
    lives=st.lists(
        st.tuples(st.lists(st.integers(1, 12), min_size=0, max_size=4), st.booleans()),
        max_size=6,
    ),
    size=st.integers(1, 6),
)
def test_consumers_killed_one_after_another_deal_with_every_row_once(
    streams: list[str], lives: list[tuple[list[int], bool]], size: int
) -> None:
    """Each consumer resumes from the last commit, reads a few polls, commits after each
    but maybe not the last (killed in its transaction), and the next takes over; a last
    one reads to the end. Committed, every dead letter was sent once and every row of a
    complete window archived once, however short the lives (one that commits before it
    has read again all that the commit before it had dealt with included)."""
    rows: Rows = [(o, None if s == " " else s) for o, s in enumerate(streams)]
    committed = Resume(0, 0)
    letters: list[int] = []
    archived: list[int] = []
    for polls, dies_in_commit in [*lives, ([len(rows)] * len(rows), False)]:
        part: PartitionStreams[int] = PartitionStreams(
            Resume.decode(committed.offset, committed.encode()), size=size, step=size
        )
        at = committed.offset
        for n, poll in enumerate(polls):
            taken = rows[at : at + poll]
            if not taken:
                break
            at += len(taken)
            sent = [o for o, s in taken if s is None and part.admits(o, None)]
            windows = at_once(part, taken, [START] * len(rows))
            resume = part.commit()
            if dies_in_commit and n == len(polls) - 1:
                break  # aborted: nothing of this poll counts
            committed = resume
            letters += sent
            archived += [o for _, window in windows for o in window.offsets]
    assert sorted(letters) == [o for o, s in rows if s is None]
    whole = []
    for stream in {s for _, s in rows if s is not None}:
        offsets = [o for o, s in rows if s == stream]
        whole += offsets[: len(offsets) - len(offsets) % size]
    assert sorted(archived) == sorted(whole)
