"""Count windows, and windows that also close on time: feed a list, assert the exact windows out."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.windowing import ClosedBy, CountWindower, Merge, Window

# Offsets 3, 6 and 11 were dead-lettered: the windower never sees them.
OFFSETS = [0, 1, 2, 4, 5, 7, 8, 9, 10, 12, 13]
ROWS = [(offset, f"r{offset}") for offset in OFFSETS]


def run(windower: CountWindower[str]) -> list[tuple[Window[str], int | None]]:
    """Feed every row; collect each window with the pending offset right after it."""
    out = []
    for offset, item in ROWS:
        window = windower.add(offset, item)
        if window is not None:
            out.append((window, windower.pending_offset))
    return out


def win(*offsets: int) -> Window[str]:
    return Window(offsets[0], offsets[-1], offsets, tuple(f"r{o}" for o in offsets))


def test_tumbling_windows_with_gaps() -> None:
    windower: CountWindower[str] = CountWindower(size=3)
    assert run(windower) == [
        (win(0, 1, 2), None),
        (win(4, 5, 7), None),
        (win(8, 9, 10), None),
    ]
    assert windower.pending_offset == 12


def test_sliding_windows_with_gaps() -> None:
    windower: CountWindower[str] = CountWindower(size=4, step=2)
    assert run(windower) == [
        (win(0, 1, 2, 4), 2),
        (win(2, 4, 5, 7), 5),
        (win(5, 7, 8, 9), 8),
        (win(8, 9, 10, 12), 10),
    ]
    assert windower.pending_offset == 10


def test_sliding_by_one_row() -> None:
    windower: CountWindower[str] = CountWindower(size=3, step=1)
    got = [(w.first_offset, w.last_offset, p) for w, p in run(windower)]
    assert got == [
        (0, 2, 1),
        (1, 4, 2),
        (2, 5, 4),
        (4, 7, 5),
        (5, 8, 7),
        (7, 9, 8),
        (8, 10, 9),
        (9, 12, 10),
        (10, 13, 12),
    ]


def test_sliding_step_not_dividing_size() -> None:
    windower: CountWindower[str] = CountWindower(size=5, step=3)
    assert run(windower) == [
        (win(0, 1, 2, 4, 5), 4),
        (win(4, 5, 7, 8, 9), 8),
        (win(8, 9, 10, 12, 13), 12),
    ]


def test_size_one_windows_every_row() -> None:
    windower: CountWindower[str] = CountWindower(size=1)
    assert run(windower) == [(win(o), None) for o in OFFSETS]


def test_pending_offset_while_filling() -> None:
    windower: CountWindower[str] = CountWindower(size=3)
    assert windower.pending_offset is None
    assert windower.add(40, "a") is None
    assert windower.pending_offset == 40
    assert windower.add(42, "b") is None
    assert windower.pending_offset == 40
    assert windower.add(43, "c") == Window(40, 43, (40, 42, 43), ("a", "b", "c"))
    assert windower.pending_offset is None


def test_step_defaults_to_size() -> None:
    windower: CountWindower[int] = CountWindower(size=7)
    assert (windower.size, windower.step) == (7, 7)


def test_window_is_a_frozen_snapshot() -> None:
    windower: CountWindower[str] = CountWindower(size=2, step=1)
    assert windower.add(0, "a") is None
    first = windower.add(1, "b")
    assert first is not None
    assert first == Window(0, 1, (0, 1), ("a", "b"))
    windower.add(2, "c")
    assert first.items == ("a", "b")
    assert first.size == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.first_offset = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("size", "step", "name"),
    [
        (0, None, "size"),
        (-3, None, "size"),
        (2.0, None, "size"),
        (True, None, "size"),
        (3, 0, "step"),
        (3, 4, "step"),
        (3, -1, "step"),
        (3, 1.5, "step"),
    ],
)
def test_rejects_bad_parameters(size: object, step: object, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name} "):
        CountWindower(size=size, step=step)  # type: ignore[arg-type]


START = datetime(2026, 3, 1, tzinfo=UTC)


def timed(
    windower: CountWindower[int], seconds: list[float]
) -> list[tuple[tuple[int, ...], ClosedBy | None]]:
    """Feed rows at offsets 0, 1, ... with these event times (seconds after START); the
    windows out as (offsets, closed_by)."""
    out = []
    for offset, second in enumerate(seconds):
        window = windower.add(offset, offset, START + timedelta(seconds=second))
        if window is not None:
            assert window.items == window.offsets
            out.append((window.offsets, window.closed_by))
    return out


def test_a_window_closes_at_the_first_row_at_or_past_its_time_span() -> None:
    # A window spans [first, first + 60 s): the row at exactly 60 s after its first
    # closes it and begins the next one.
    windower: CountWindower[int] = CountWindower(size=50, seconds=60)
    assert timed(windower, [0, 30, 59.999, 60, 61, 119.5, 120.5, 300]) == [
        ((0, 1, 2), "time"),
        ((3, 4, 5), "time"),
        ((6,), "time"),
    ]
    assert windower.pending_offset == 7  # the row at 300 s waits for the next row


def test_the_row_count_still_closes_a_window_first() -> None:
    windower: CountWindower[int] = CountWindower(size=3, seconds=60)
    assert timed(windower, [0, 1, 2, 3, 4, 70, 71]) == [
        ((0, 1, 2), "rows"),
        ((3, 4), "time"),  # began at 3 s: closed by the row at 70 s
    ]
    assert windower.pending_offset == 5


def test_a_window_below_the_minimum_is_merged_into_the_next() -> None:
    merges: list[Merge] = []
    windower: CountWindower[int] = CountWindower(
        size=10, seconds=60, min_rows=3, on_merge=merges.append
    )
    # Windows by time alone: [0, 10] | [100] | [200, 201] | [300, 301, 302] | [400]
    got = timed(windower, [0, 10, 100, 200, 201, 300, 301, 302, 400])
    assert got == [
        ((0, 1, 2), "time"),  # [0, 10] had 2 rows < 3: merged with [100]
        ((3, 4, 5, 6, 7), "time"),  # [200, 201] had 2: merged with [300, 301, 302]
    ]
    assert merges == [Merge(0, 2, 3, 60.0), Merge(3, 2, 3, 60.0)]
    # The merged window keeps its first offset: its id does not change.
    assert windower.pending_offset == 8


def test_a_merged_window_still_closes_when_full() -> None:
    merges: list[Merge] = []
    windower: CountWindower[int] = CountWindower(
        size=4, seconds=60, min_rows=3, on_merge=merges.append
    )
    assert timed(windower, [0, 100, 101, 102, 103]) == [((0, 1, 2, 3), "rows")]
    assert merges == [Merge(0, 1, 3, 60.0)]
    assert windower.pending_offset == 4


def test_event_times_that_go_back_are_taken_in_arrival_order() -> None:
    # The window began at 100 s: rows from before it join it, in offset order, and
    # only a row at or past 160 s closes it.
    windower: CountWindower[int] = CountWindower(size=50, seconds=60)
    assert timed(windower, [100, 20, 159, -500, 160, 150, 10, 220]) == [
        ((0, 1, 2, 3), "time"),
        ((4, 5, 6), "time"),
    ]


def test_a_slow_stream_is_judged_by_time_and_a_fast_one_by_rows() -> None:
    # One row a minute against windows of 50 rows or 10 minutes: a window per 10 rows.
    slow: CountWindower[int] = CountWindower(size=50, seconds=600)
    got = timed(slow, [60.0 * i for i in range(101)])
    assert got == [(tuple(range(i, i + 10)), "time") for i in range(0, 100, 10)]
    # Ten rows a second: every window is full long before 10 minutes.
    fast: CountWindower[int] = CountWindower(size=50, seconds=600)
    got = timed(fast, [0.1 * i for i in range(150)])
    assert got == [(tuple(range(i, i + 50)), "rows") for i in (0, 50, 100)]


def test_windows_closing_on_rows_only_say_nothing_of_why() -> None:
    windower: CountWindower[int] = CountWindower(size=2)
    assert timed(windower, [0, 1000, 2000, 3000]) == [((0, 1), None), ((2, 3), None)]


def test_replaying_from_the_open_window_cuts_the_same_windows() -> None:
    seconds = [0, 5, 70, 71, 200, 201, 202, 260, 400, 401, 402, 403, 404, 405, 500]
    whole: CountWindower[int] = CountWindower(size=5, seconds=60, min_rows=2)
    expected = timed(whole, seconds)
    for cut in range(len(seconds) + 1):
        first: CountWindower[int] = CountWindower(size=5, seconds=60, min_rows=2)
        before = timed(first, seconds[:cut])
        start = cut if first.pending_offset is None else first.pending_offset
        again: CountWindower[int] = CountWindower(size=5, seconds=60, min_rows=2)
        after = []
        for offset in range(start, len(seconds)):
            window = again.add(offset, offset, START + timedelta(seconds=seconds[offset]))
            if window is not None:
                after.append((window.offsets, window.closed_by))
        assert before + after == expected, cut


def test_time_windows_need_event_times() -> None:
    windower: CountWindower[int] = CountWindower(size=5, seconds=60)
    with pytest.raises(ValueError, match="event_time is needed for the row at offset 7"):
        windower.add(7, 7)
    assert windower.pending_offset is None  # nothing was lost or half-added


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 4, "step": 2, "seconds": 60}, "^seconds needs tumbling windows"),
        ({"size": 4, "seconds": 0}, "^seconds "),
        ({"size": 4, "seconds": -1.0}, "^seconds "),
        ({"size": 4, "seconds": float("inf")}, "^seconds "),
        ({"size": 4, "seconds": float("nan")}, "^seconds "),
        ({"size": 4, "seconds": "60"}, "^seconds "),
        ({"size": 1, "seconds": 60}, "^size must be at least 2 with seconds"),
        ({"size": 4, "seconds": 60, "min_rows": 0}, "^min_rows "),
        ({"size": 4, "seconds": 60, "min_rows": 5}, "^min_rows "),
        ({"size": 4, "seconds": 60, "min_rows": 2.0}, "^min_rows "),
    ],
)
def test_rejects_bad_time_parameters(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CountWindower(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 3), min_size=0, max_size=150),
    seconds_apart=st.lists(st.integers(-40, 100), min_size=150, max_size=150),
    cuts=st.lists(st.integers(0, 150), max_size=8),
    size=st.integers(1, 9),
    step_less=st.integers(0, 8),
    seconds=st.sampled_from([None, 30.0, 60.0, 150.0]),
    min_share=st.floats(0, 1),
)
def test_adding_a_poll_at_once_cuts_the_windows_of_adding_its_rows_one_by_one(
    gaps: list[int],
    seconds_apart: list[int],
    cuts: list[int],
    size: int,
    step_less: int,
    seconds: float | None,
    min_share: float,
) -> None:
    """add_many over polls cut anywhere == add row by row: windows, merges, what stays buffered.

    Offsets have gaps (dead letters), windows slide or tumble, or close on time (with
    event times that go back) and merge below a minimum.
    """
    if seconds is not None:
        size, step = max(size, 2), max(size, 2)
    else:
        step = max(1, size - step_less)
    min_rows = max(1, round(min_share * size))
    offsets = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    times = [START + timedelta(seconds=sum(seconds_apart[: i + 1])) for i in range(len(offsets))]
    items = [f"r{offset}" for offset in offsets]

    def windower(merges: list[Merge]) -> CountWindower[str]:
        if seconds is None:
            return CountWindower(size, step)
        return CountWindower(size, step, seconds=seconds, min_rows=min_rows, on_merge=merges.append)

    one_merges: list[Merge] = []
    one = windower(one_merges)
    many_merges: list[Merge] = []
    many = windower(many_merges)
    bounds = [0, *sorted(c for c in cuts if c <= len(offsets)), len(offsets)]
    for start, end in pairwise(bounds):
        by_row = [
            one.add(o, i, t)
            for o, i, t in zip(offsets[start:end], items[start:end], times[start:end], strict=True)
        ]
        at_once = many.add_many(offsets[start:end], items[start:end], times[start:end])
        assert at_once == [window for window in by_row if window is not None]
        assert many.pending_offset == one.pending_offset
        assert many_merges == one_merges
    # Both buffer the same rows: the windows that the next rows complete are the same.
    rest = range(offsets[-1] + 1 if offsets else 0, (offsets[-1] + 1 if offsets else 0) + size)
    later = [START + timedelta(days=1)] * len(rest)
    assert many.add_many(rest, [str(o) for o in rest], later) == [
        window for o, t in zip(rest, later, strict=True) if (window := one.add(o, str(o), t))
    ]


def test_a_poll_of_rows_without_event_times_is_refused_whole_when_windows_close_on_time() -> None:
    windower: CountWindower[int] = CountWindower(size=5, seconds=60)
    with pytest.raises(ValueError, match="event_time is needed for the row at offset 7"):
        windower.add_many([7, 8], [7, 8])
    assert windower.pending_offset is None
    with pytest.raises(ValueError, match="one item and event time per offset"):
        windower.add_many([7, 8], [7])
    assert windower.pending_offset is None
