"""A window's DriftEvent, built by the event's own module."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np

from consumer.detection import DriftResult
from consumer.events import DriftEvent
from consumer.windowing import Window
from producer.messages import RowMessage

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_event_for_a_window_says_where_it_lies_and_what_was_found() -> None:
    rows = tuple(
        RowMessage(stream="iris", seq=i, event_time=START + timedelta(seconds=i), features={})
        for i in range(3)
    )
    window = Window(first_offset=100, last_offset=103, offsets=(100, 102, 103), items=rows)
    result = DriftResult(
        is_drift=True,
        p_values=np.array([0.5, 0.001], dtype=np.float32),
        distances=np.array([0.1, 0.9], dtype=np.float32),
        threshold=0.025,
        drifted=(1,),
    )
    model = SimpleNamespace(
        model_name="classifier",
        version=3,
        feature_names=["a", "b"],
        reference_sha256="ab" * 32,
        categories={},
    )
    event = DriftEvent.for_window(
        "rows",
        2,
        window,
        result,
        model=model,  # type: ignore[arg-type]
        backend="fast",
        p_val=0.05,
        correction="bonferroni",
        archive_path="var/archive/rows/2/x.csv",
        labeled_rows=0,
        detected_at=START,
    )
    assert event.model_dump(mode="json") == {
        "schema_version": 1,
        "schema_minor": 2,
        "alarm": None,
        "episode": None,
        "event_id": "rows-2-100-103",
        "stream": "iris",
        "detected_at": "2026-01-01T00:00:00Z",
        "window": {
            "topic": "rows",
            "partition": 2,
            "first_offset": 100,
            "last_offset": 103,
            "size": 3,
            "first_event_time": "2026-01-01T00:00:00Z",
            "last_event_time": "2026-01-01T00:00:02Z",
        },
        "detector": {
            "name": "KSDrift",
            "backend": "fast",
            "p_val": 0.05,
            "correction": "bonferroni",
            "threshold": 0.025,
        },
        "is_drift": True,
        "p_values": {"a": 0.5, "b": float(np.float32(0.001))},
        "distances": {"a": float(np.float32(0.1)), "b": float(np.float32(0.9))},
        "drifted_features": ["b"],
        "categorical_features": [],
        "missing_shares": {"a": 0.0, "b": 0.0},
        "model_name": "classifier",
        "model_version": 3,
        "reference_sha256": "ab" * 32,
        "archive_path": "var/archive/rows/2/x.csv",
        "labeled_rows": 0,
        "accuracy": None,
    }


def test_an_event_is_judged_now_unless_told() -> None:
    rows = (RowMessage(stream="s", seq=0, event_time=START, features={}),)
    result = DriftResult(
        is_drift=False,
        p_values=np.array([0.5], dtype=np.float32),
        distances=np.array([0.1], dtype=np.float32),
        threshold=0.05,
        drifted=(),
    )
    model = SimpleNamespace(
        model_name="m", version=1, feature_names=["a"], reference_sha256="0", categories={}
    )
    before = datetime.now(UTC)
    event = DriftEvent.for_window(
        "rows",
        0,
        Window(0, 0, (0,), rows),
        result,
        model=model,  # type: ignore[arg-type]
        backend="alibi",
        p_val=0.05,
        correction="fdr",
        archive_path="x.csv",
    )
    assert before <= event.detected_at <= datetime.now(UTC)
    assert (event.is_drift, event.drifted_features, event.accuracy) == (False, [], None)


def _event(**update: object) -> DriftEvent:
    base = {
        "event_id": "rows-0-300-349",
        "stream": "iris",
        "detected_at": START,
        "window": {
            "topic": "rows",
            "partition": 0,
            "first_offset": 300,
            "last_offset": 349,
            "size": 50,
            "first_event_time": START,
            "last_event_time": START,
        },
        "detector": {
            "backend": "fast",
            "p_val": 0.05,
            "correction": "bonferroni",
            "threshold": 0.0125,
        },
        "is_drift": False,
        "p_values": {"a": 0.5},
        "distances": {"a": 0.1},
        "drifted_features": [],
        "model_name": "classifier",
        "model_version": 1,
        "reference_sha256": "ab" * 32,
        "archive_path": "x.csv",
        "schema_minor": 1,
        "alarm": {"name": "rank", "false_alarm_rows": 1e6, "fired": True, "features": ["a"]},
        "episode": {
            "episode_id": "rows-0-300-349",
            "state": "onset",
            "opened_at": START,
            "drifted_features": ["a"],
            "alarmed_windows": 1,
        },
    }
    base.update(update)
    return DriftEvent.model_validate(base)


def test_a_reader_of_schema_1_0_parses_an_event_with_an_episode() -> None:
    from tests.unit.contracts.drift_event_1_0 import DriftEvent as OldDriftEvent

    new = _event()
    old = OldDriftEvent.from_bytes(new.to_bytes())
    assert (old.event_id, old.window.first_offset, old.model_version) == ("rows-0-300-349", 300, 1)


def test_only_onsets_and_resolutions_are_announced() -> None:
    onset = _event()
    assert (onset.announces, onset.is_onset) == (True, True)
    episode = onset.episode
    assert episode is not None
    ongoing = _event(episode={**episode.model_dump(), "state": "ongoing"})
    assert (ongoing.announces, ongoing.is_onset) == (False, False)
    resolved = onset.resolution("new champion classifier:v2", "resolved-v2", START)
    assert resolved.event_id == "rows-0-300-349-resolved-v2"
    assert resolved.episode is not None and resolved.episode.state == "resolved"
    assert (resolved.announces, resolved.is_onset) == (True, False)
    quiet = _event(episode=None, alarm={"name": "rank", "false_alarm_rows": 1e6, "fired": False})
    assert (quiet.announces, quiet.is_onset) == (False, False)


def test_an_event_from_before_episodes_announces_when_drifted() -> None:
    legacy = _event(episode=None, alarm=None, schema_minor=0, is_drift=True)
    assert (legacy.announces, legacy.is_onset) == (True, True)
