"""Reading the archived verdicts back: order, counts, switches, and what is skipped."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from report.timeline import EmptyTimelineError, load_timeline
from tests.unit.report.verdicts import FEATURES, START, STORY, ZERO_P_WINDOW, archive, verdict


def test_the_timeline_counts_windows_drift_and_the_switch(root: Path) -> None:
    timeline = load_timeline(root)

    assert len(timeline) == 12
    assert timeline.drifted == 4
    assert timeline.features == FEATURES
    assert [(s.index, s.from_version, s.to_version) for s in timeline.switches] == [(8, 1, 2)]
    assert timeline.switches[0].event.window.first_offset == 400
    assert [(v.version, v.windows, v.drifted) for v in timeline.versions] == [(1, 8, 4), (2, 4, 0)]
    assert timeline.source == root / "archive"


def test_windows_are_ordered_by_detection_time_then_partition(tmp_path: Path) -> None:
    same = START + timedelta(seconds=30)
    events = [
        verdict(1, 1, False, None, partition=0, detected_at=START + timedelta(seconds=3)),
        verdict(0, 1, False, None, partition=1, detected_at=START + timedelta(seconds=2)),
        verdict(0, 1, False, None, partition=0, detected_at=START + timedelta(seconds=4)),
        verdict(2, 1, False, None, partition=1, detected_at=same),
        verdict(3, 1, False, None, partition=0, detected_at=same),
    ]
    archive(tmp_path, events)

    timeline = load_timeline(tmp_path)

    assert [(e.window.partition, e.window.first_offset) for e in timeline.events] == [
        (1, 0),
        (0, 50),
        (0, 0),
        (0, 150),
        (1, 100),
    ]
    assert timeline.window_label(0) == "p1:0"


def test_one_topic_or_every_topic(root: Path) -> None:
    archive(root, [verdict(0, 1, True, None, topic="orders")])

    assert len(load_timeline(root)) == 13
    only = load_timeline(root, topic="orders")
    assert [e.window.topic for e in only.events] == ["orders"]
    assert only.source == root / "archive" / "orders"
    with pytest.raises(ValueError, match="topic"):
        load_timeline(root, topic="../orders")


def test_a_p_value_of_zero_is_drawn_below_every_positive_one(root: Path) -> None:
    timeline = load_timeline(root)
    positive = [p for e in timeline.events for p in e.p_values.values() if p > 0]

    assert timeline.events[ZERO_P_WINDOW].p_values["sepal_width"] == 0.0
    assert 0 < timeline.p_floor < min(positive)


def test_malformed_verdicts_are_skipped_with_a_warning(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    partition = root / "archive" / "rows" / "iris" / "0"
    garbage = partition / "000000009000-000000009049.json"
    garbage.write_text("{not json")
    wrong = partition / "000000009050-000000009099.json"
    wrong.write_text('{"event_id": "x"}')

    with caplog.at_level(logging.WARNING, logger="report.timeline"):
        timeline = load_timeline(root)

    assert len(timeline) == 12
    assert timeline.skipped == (garbage, wrong)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2
    assert str(garbage) in warned[0] and str(wrong) in warned[1]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "does not exist"),
        (
            lambda root: (root / "archive" / "rows" / "iris" / "0").mkdir(parents=True),
            "no window verdicts",
        ),
        (
            lambda root: (
                (root / "archive" / "rows" / "iris" / "0").mkdir(parents=True),
                (root / "archive" / "rows" / "iris" / "0" / "0-1.json").write_text("[]"),
            ),
            "all 1 verdict files .* are malformed",
        ),
    ],
    ids=["no-archive", "empty-archive", "only-malformed"],
)
def test_nothing_to_plot_is_a_clear_error(tmp_path: Path, setup: object, message: str) -> None:
    root = tmp_path / "var"
    assert callable(setup)
    setup(root)

    with pytest.raises(EmptyTimelineError, match=message) as raised:
        load_timeline(root)
    assert str(root / "archive") in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_the_timeline_needs_no_matplotlib() -> None:
    # The data half of the report stays importable where matplotlib is not wanted.
    code = "import sys, report.timeline; sys.exit('matplotlib' in sys.modules)"
    repo = Path(__file__).resolve().parents[3]
    assert subprocess.run([sys.executable, "-c", code], cwd=repo).returncode == 0


def test_drift_episodes_span_their_windows_from_onset_to_end(tmp_path: Path) -> None:
    from consumer.events import EpisodeInfo
    from report.timeline import Timeline

    events = []
    for index, (version, drifted, accuracy) in enumerate(STORY):
        event = verdict(index, version, drifted, accuracy)
        if 4 <= index <= 8:
            state = "onset" if index == 4 else "resolved" if index == 8 else "ongoing"
            episode = EpisodeInfo(
                episode_id="rows-0-200-249",
                state=state,
                opened_at=START,
                drifted_features=["petal_length"],
                alarmed_windows=1,
            )
            event = event.model_copy(update={"episode": episode})
        events.append(event)
    assert Timeline(source=tmp_path, events=tuple(events)).episodes == [("rows-0-200-249", 4, 8)]
    assert Timeline(source=tmp_path, events=tuple(events[:4])).episodes == []
