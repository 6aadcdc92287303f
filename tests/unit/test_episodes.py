"""Drift episodes: one onset, updates inside, resolution by clean windows or re-baseline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumer.episodes import EpisodeTracker

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def changes(tracker: EpisodeTracker, alarms: list[tuple[str, ...]]) -> list[tuple[int, str, str]]:
    out = []
    for i, features in enumerate(alarms):
        transition = tracker.window(f"rows-0-{i * 50}-{i * 50 + 49}", features, T0)
        if transition is not None:
            out.append((i, transition.change, transition.episode.episode_id))
    return out


def test_a_long_drift_is_one_onset_then_updates_then_one_resolution() -> None:
    alarms = [(), ("a",)] + [("a",), ()] * 5 + [(), (), ()]
    got = changes(EpisodeTracker(resolve_after=3), alarms)
    onsets = [c for c in got if c[1] == "onset"]
    resolutions = [c for c in got if c[1] == "resolved"]
    assert onsets == [(1, "onset", "rows-0-50-99")]
    # The last alarm is window 10; windows 11, 12 and 13 are the three clean ones.
    assert resolutions == [(13, "resolved", "rows-0-50-99")]
    assert [c[1] for c in got].count("update") == 5


def test_a_new_alarm_after_resolution_opens_a_new_episode() -> None:
    got = changes(EpisodeTracker(resolve_after=1), [("a",), (), ("b",)])
    assert got == [
        (0, "onset", "rows-0-0-49"),
        (1, "resolved", "rows-0-0-49"),
        (2, "onset", "rows-0-100-149"),
    ]


def test_features_accumulate_in_order_of_first_appearance() -> None:
    tracker = EpisodeTracker(resolve_after=5)
    tracker.window("w1", ("b",), T0)
    transition = tracker.window("w2", ("a", "b"), T0)
    assert transition is not None and transition.episode.drifted_features == ("b", "a")
    assert transition.episode.alarmed_windows == 2


def test_rebaseline_resolves_an_open_episode_only() -> None:
    tracker = EpisodeTracker(resolve_after=5)
    assert tracker.rebaseline("new champion v2") is None
    tracker.window("w1", ("a",), T0)
    transition = tracker.rebaseline("new champion v2")
    assert transition is not None
    assert (transition.change, transition.episode.episode_id, transition.reason) == (
        "resolved",
        "w1",
        "new champion v2",
    )
    assert tracker.open is None


def test_resolve_after_must_be_positive() -> None:
    with pytest.raises(ValueError, match="resolve_after"):
        EpisodeTracker(resolve_after=0)


def test_drift_evidence_keeps_an_episode_open_though_the_alarm_is_quiet() -> None:
    tracker = EpisodeTracker(resolve_after=2)
    tracker.window("w0", ("a",), T0)
    # The alarm re-baselined on drifted rows and stays quiet; KS still sees drift.
    for i in range(1, 10):
        assert tracker.window(f"w{i}", (), T0, evidence=True) is None
    assert tracker.open is not None
    assert tracker.window("w10", (), T0) is None
    done = tracker.window("w11", (), T0)
    assert done is not None and done.change == "resolved"
