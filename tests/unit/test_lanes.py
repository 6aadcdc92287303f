"""A lane's verdicts and the rows it is given: the same as before the fast paths, bit for bit.

The streams go clean, drifted, clean again (a resolution) and drifted again, some
drifted from their first row (the KS guard fires in the warm-up, beside the rank
alarm at its end); windows tumble or slide, polls take a random number of them.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from kafka.structs import TopicPartition

from consumer.alarms import RankThresholds
from consumer.lanes import Lane, LaneVerdict
from consumer.service import DriftMonitor, _Judged, _Poll
from consumer.windowing import CountWindower, Window
from tests.unit.lane_before import LaneBefore, new_rows_before

T0 = datetime(2026, 12, 1, tzinfo=UTC)
FEATURES = ["a", "b", "c"]
REFERENCE = np.sort(np.random.default_rng(99).normal(size=(300, 3)), axis=0)


def stream(seed: int, drifted_from_start: bool) -> np.ndarray:
    """Clean, a shift of b, clean, a widening of a, clean; or drifted from the start.

    Drifted from the start: c is shifted in the first 100 rows (the KS guard fires in the
    warm-up), b from just before the baseline's end (the guard and the rank alarm fire
    on the window across it).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(6000, 3))
    if drifted_from_start:
        x[:100, 2] += 3.0
        x[985:1300, 1] += 2.5
    else:
        x[1500:2300, 1] += 1.5
    x[3500:4000, 0] *= 2.5
    # Ties: a rank alarm breaks them at random, seeded by the offset.
    return np.round(x, 1)


def distances(values: np.ndarray) -> np.ndarray:
    """The window's KS distance to `REFERENCE`, per feature."""
    out = []
    for f in range(values.shape[1]):
        ref, win = REFERENCE[:, f], np.sort(values[:, f])
        points = np.concatenate([ref, win])
        cdf_ref = np.searchsorted(ref, points, side="right") / ref.size
        cdf_win = np.searchsorted(win, points, side="right") / win.size
        out.append(np.abs(cdf_ref - cdf_win).max())
    return np.array(out)


def windows_of(x: np.ndarray, size: int, step: int, seed: int) -> list[Window[int]]:
    """The stream's windows, some offsets missing (dead-lettered rows)."""
    rng = np.random.default_rng(seed)
    windower: CountWindower[int] = CountWindower(size=size, step=step)
    out = []
    for offset in range(x.shape[0]):
        if rng.random() < 0.01:
            continue
        window = windower.add(offset + 7, offset)
        if window is not None:
            out.append(window)
    return out


def verdicts(
    lane: Lane, x: np.ndarray, windows: list[Window[int]], seed: int
) -> tuple[list[LaneVerdict], int]:
    """Judge the windows poll by poll, the alarm given each poll's new rows first.

    Also counts the windows on which the KS guard and the rank alarm both fired.
    """
    rng = np.random.default_rng(seed)
    out, shared = [], 0
    start = 0
    while start < len(windows):
        poll = windows[start : start + int(rng.integers(1, 30))]
        start += len(poll)
        matrices = [(w, x[np.array(w.items)]) for w in poll]
        lane.observe(*new_rows_before(matrices, lane.observed_through))
        for window, values in matrices:
            first, last, n = window.first_offset, window.last_offset, len(window.items)
            d = distances(values)
            # The guard's verdict (a pure function of the window) and the rank firings taken.
            guard = lane.alarm.judge_window(d, n, first, last) is not None
            shared += guard and any(f.offset <= last for f in lane._pending)
            out.append(
                lane.judge(
                    f"rows-0-{first}-{last}",
                    first,
                    last,
                    d,
                    n,
                    T0 + timedelta(seconds=last),
                    evidence=bool(d.max() > 0.3),
                )
            )
    return out, shared


def lane_of(kind: type[Lane], alarm: str, step: int, seed: int) -> Lane:
    return kind(
        alarm,  # type: ignore[arg-type]
        FEATURES,
        n_reference=REFERENCE.shape[0],
        window_step=step,
        false_alarm_rows=20_000,
        thresholds=lambda n, d: RankThresholds(4.5, 5.0),
        warmup_rows=1000,
        resolve_after=3,
        seed=seed,
    )


@pytest.mark.parametrize("alarm", ["rank", "ks"])
@pytest.mark.parametrize(("size", "step"), [(50, 50), (40, 15)])
@pytest.mark.parametrize(("seed", "drifted_from_start"), [(1, False), (2, True), (3, True)])
def test_the_verdicts_are_those_of_the_judge_before_bit_for_bit(
    alarm: str, size: int, step: int, seed: int, drifted_from_start: bool
) -> None:
    x = stream(seed, drifted_from_start)
    windows = windows_of(x, size, step, seed)
    before, shared = verdicts(lane_of(LaneBefore, alarm, step, seed), x, windows, seed)
    now, _ = verdicts(lane_of(Lane, alarm, step, seed), x, windows, seed)
    assert len(now) == len(before) == len(windows)
    for old, new in zip(before, now, strict=True):
        assert new == old
        assert new.alarm.model_dump_json() == old.alarm.model_dump_json()
        assert (new.episode and new.episode.model_dump_json()) == (
            old.episode and old.episode.model_dump_json()
        )
    # The streams reach every path: onsets, updates, resolutions, quiet windows inside an
    # episode, and (drifted from the start) windows the KS guard and the rank alarm share.
    changes = [v.transition.change for v in before if v.transition is not None]
    assert {"onset", "update", "resolved"} <= set(changes)
    assert changes.count("resolved") >= 2
    assert any(v.transition is None and v.episode is not None for v in before)
    if alarm == "rank" and drifted_from_start and step < size:
        assert shared


def test_a_quiet_window_in_an_episode_shows_the_view_of_the_window_before() -> None:
    """Reused while the episode's fields are unchanged; a new one when they change."""
    x = stream(1, False)
    now, _ = verdicts(lane_of(Lane, "rank", 50, 1), x, windows_of(x, 50, 50, 1), 1)
    for previous, verdict in itertools.pairwise(now):
        if verdict.transition is None and verdict.episode is not None:
            if previous.transition is None and previous.episode is not None:
                assert verdict.episode is previous.episode
            else:
                assert verdict.episode is not previous.episode


class Recording:
    """Stands in for a lane: keeps the rows it is given."""

    def __init__(self, seen: int) -> None:
        self.observed_through = seen
        self.rows: list[tuple[np.ndarray, np.ndarray]] = []

    def observe(self, values: np.ndarray, offsets: np.ndarray) -> None:
        self.rows.append((values, offsets))
        if len(offsets):
            self.observed_through = int(offsets[-1])


@pytest.mark.parametrize(("size", "step"), [(10, 10), (10, 4), (10, 1), (7, 3)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_lane_is_given_the_rows_the_mask_before_took(size: int, step: int, seed: int) -> None:
    """Tumbling, sliding, and replayed windows (the lane saw some rows already)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, 2))
    windows = windows_of(x, size, step, seed)
    tp = TopicPartition("rows", 0)
    start = 0
    while start < len(windows):
        poll = windows[start : start + int(rng.integers(1, 8))]
        start += len(poll)
        # Now and then, a lane that saw rows up to somewhere in (or past) the poll's.
        seen = int(rng.integers(poll[0].first_offset - 3, poll[-1].last_offset + 3))
        lane = Recording(seen if rng.random() < 0.5 else -1)
        expected = new_rows_before([(w, x[np.array(w.items)]) for w in poll], lane.observed_through)
        monitor = SimpleNamespace(_lane=lambda tp, stream, lane=lane: lane, _lanes={}, _reject=None)
        judged = [_Judged(tp, "s", w, x[np.array(w.items)], None, 0.0) for w in poll]  # type: ignore[arg-type]
        assert DriftMonitor._observe(monitor, _Poll(), judged) == judged  # type: ignore[arg-type]
        ((values, offsets),) = lane.rows
        assert offsets.dtype == np.int64 and values.dtype == np.float64
        assert offsets.tolist() == expected[1].tolist()
        assert values.shape == expected[0].shape and (values == expected[0]).all()
