"""A window's DriftEvent, built by the event's own module."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from pydantic import BaseModel

from consumer.decoding import RowDecoder
from consumer.detection import DriftResult
from consumer.events import AlarmInfo, DriftEvent, EpisodeInfo
from consumer.service import Row
from consumer.windowing import Window
from producer.messages import RowMessage
from tests.unit.event_before import event_before

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


def _kinds(value: object) -> object:
    """``value``'s form with every leaf's type: what equal events may still differ in."""
    if isinstance(value, BaseModel):
        fields = {name: _kinds(getattr(value, name)) for name in type(value).model_fields}
        return (type(value), sorted(value.model_fields_set), fields)
    if isinstance(value, dict):
        return {key: (type(key), _kinds(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [_kinds(item) for item in value]
    return type(value), value


def _varied_windows(seed: int, count: int) -> list[dict[str, Any]]:
    """``for_window``'s arguments for ``count`` seeded windows: two champions (one with a
    categorical feature) taking turns, the consumer's rows and RowMessages, drift and
    none, missing values, both closings, alarms and every episode state."""
    rng = np.random.default_rng(seed)
    decoder = RowDecoder(["a", "b", "c"], classes=[0, 1], categories={"c": ["x", "y"]})
    numeric = SimpleNamespace(
        model_name="classifier",
        version=3,
        feature_names=["a", "b", "c"],
        reference_sha256="ab" * 32,
        categories={},
    )
    categorical = SimpleNamespace(
        model_name="classifier",
        version=4,
        feature_names=["a", "b", "c"],
        reference_sha256="cd" * 32,
        categories={"c": ["x", "y"]},
    )
    calls = []
    for i in range(count):
        size = int(rng.integers(1, 6))
        first = int(rng.integers(0, 10_000))
        offsets = tuple(first + 2 * k for k in range(size))
        messages = [
            RowMessage(
                stream=f"s{i % 3}",
                seq=offset,
                event_time=START + timedelta(milliseconds=int(rng.integers(0, 10**9))),
                features={"a": float(rng.normal()), "b": None, "c": "x"},
                label=int(rng.integers(0, 2)),
            )
            for offset in offsets
        ]
        rows: tuple[Any, ...] = tuple(messages)
        if i % 2:
            decoded = decoder.decode_all([message.to_bytes() for message in messages])
            rows = tuple(Row(message, b"k", b"v") for message in decoded)  # type: ignore[arg-type]
        p_values = rng.random(3).astype(np.float32)
        threshold = [0.05 / 3, 0.01 / 3, 0.05 * (1 + i % 3) / 3][int(rng.integers(0, 3))]
        drifted = tuple(int(f) for f in np.flatnonzero(p_values < threshold))
        missing = None if rng.random() < 0.5 else rng.random(3)
        result = DriftResult(
            is_drift=bool(drifted),
            p_values=p_values,
            distances=rng.random(3).astype(np.float32),
            threshold=threshold,
            drifted=drifted,
            missing_shares=missing,
        )
        fired = rng.random() < 0.3
        alarm = (
            None
            if i % 7 == 0
            else AlarmInfo(
                name="rank" if i % 5 else "ks",
                false_alarm_rows=1e6,
                fired=fired,
                warming_up=not fired and rng.random() < 0.5,
                kind="scale" if fired else None,
                rows=50 if fired else None,
                statistic=4.5 if fired else None,
                threshold=4.0 if fired else None,
                features=["a", "c"] if fired else [],
            )
        )
        state = ["onset", "ongoing", "resolved", None][i % 4]
        episode = (
            None
            if state is None
            else EpisodeInfo(
                episode_id=f"rows-0-{first}-{first + 49}",
                state=state,
                opened_at=START,
                drifted_features=["a"],
                alarmed_windows=1 + i % 3,
                reason="3 clean windows" if state == "resolved" else None,
            )
        )
        calls.append(
            {
                "topic": "rows",
                "partition": i % 4,
                "window": Window(
                    offsets[0],
                    offsets[-1],
                    offsets,
                    rows,
                    closed_by=[None, "rows", "time"][i % 3],
                ),
                "result": result,
                "model": categorical if (i // 4) % 2 else numeric,
                "backend": "fast" if i % 6 else "alibi",
                "p_val": 0.05 if i % 9 else 0.01,
                "correction": "bonferroni" if i % 8 else "fdr",
                "archive_path": Path(f"var/archive/rows/{i}.csv") if i % 2 else f"x/{i}.csv",
                "labeled_rows": size - i % 2,
                "accuracy": None if i % 2 else float(rng.random()),
                "detected_at": START + timedelta(seconds=i),
                "alarm": alarm,
                "episode": episode,
            }
        )
    return calls


def test_the_event_for_a_window_is_what_it_was_before_its_shared_parts_were_kept() -> None:
    # The faster build against the one of commit f27e37d (tests/unit/event_before.py), on
    # seeded windows: equal, field for field and type for type, with the same bytes.
    events = []
    for call in _varied_windows(seed=11, count=400):
        new = DriftEvent.for_window(**call)
        old = event_before(**call)
        assert new == old
        assert new.to_bytes() == old.to_bytes() == old.model_dump_json().encode()
        assert _kinds(new) == _kinds(old)
        assert DriftEvent.from_bytes(new.to_bytes()) == new
        events.append(new)
    # The lists and dicts kept per champion are not shared by its events.
    for before, after in itertools.pairwise(events):
        for name in ("categorical_features", "missing_shares", "drifted_features"):
            assert getattr(before, name) is not getattr(after, name)
