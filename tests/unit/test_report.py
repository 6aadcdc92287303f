"""The drift timeline: verdicts archived as the consumer writes them, drawn to PNG and HTML."""

from __future__ import annotations

import base64
import doctest
import logging
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumer import report
from consumer.archive import WindowArchive
from consumer.events import DetectorInfo, DriftEvent, WindowRef, event_id_for
from consumer.report import EmptyTimelineError, load_timeline, main, render
from models.registry import VersionMetadata

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
START = datetime(2026, 11, 27, 2, 8, 0, tzinfo=UTC)
SIZE = 50

# The story: 4 clean windows judged by v1, 4 drifted windows judged by v1, then
# 4 clean windows judged by v2. Accuracy is None where a window had no labels.
STORY: list[tuple[int, bool, float | None]] = [
    (1, False, 1.0),
    (1, False, 0.96),
    (1, False, None),
    (1, False, 0.98),
    (1, True, 0.3),
    (1, True, None),
    (1, True, 0.36),
    (1, True, 0.28),
    (2, False, 0.94),
    (2, False, 0.96),
    (2, False, None),
    (2, False, 1.0),
]
ZERO_P_WINDOW = 5
"""The window whose sepal_width p-value is exactly 0."""


def verdict(
    index: int,
    version: int,
    drifted: bool,
    accuracy: float | None,
    *,
    topic: str = "rows",
    partition: int = 0,
    features: list[str] = FEATURES,
    correction: str = "bonferroni",
    threshold: float = 0.0125,
    detected_at: datetime | None = None,
) -> DriftEvent:
    """The verdict of the ``index``-th window of a partition, as the consumer builds it."""
    first = index * SIZE
    last = first + SIZE - 1
    when = detected_at or START + timedelta(seconds=index)
    if drifted:
        p_values = {name: 10.0 ** -(8 + 4 * i + index) for i, name in enumerate(features)}
    else:
        p_values = {name: 0.2 + 0.15 * ((i + index) % 5) for i, name in enumerate(features)}
    if index == ZERO_P_WINDOW and drifted:
        p_values[features[1]] = 0.0
    return DriftEvent(
        event_id=event_id_for(topic, partition, first, last),
        stream="iris",
        detected_at=when,
        window=WindowRef(
            topic=topic,
            partition=partition,
            first_offset=first,
            last_offset=last,
            size=SIZE,
            first_event_time=when - timedelta(milliseconds=500),
            last_event_time=when - timedelta(milliseconds=10),
        ),
        detector=DetectorInfo(
            backend="fast", p_val=0.05, correction=correction, threshold=threshold
        ),
        is_drift=drifted,
        p_values=p_values,
        distances={name: 0.5 if drifted else 0.1 for name in features},
        drifted_features=[name for name, p in p_values.items() if p < threshold],
        model_name="classifier",
        model_version=version,
        reference_sha256="0" * 64,
        archive_path=f"var/archive/{topic}/{partition}/{first:012d}-{last:012d}.csv",
        labeled_rows=0 if accuracy is None else SIZE,
        accuracy=accuracy,
    )


def archive(root: Path, events: list[DriftEvent]) -> None:
    """Write each verdict where the consumer would, beside its (absent) rows."""
    windows = WindowArchive(root, fsync=False)
    for event in events:
        w = event.window
        windows.write_verdict(
            windows.path_for(w.topic, w.partition, w.first_offset, w.last_offset), event
        )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An artifact root holding the story's twelve verdicts."""
    root = tmp_path / "var"
    archive(root, [verdict(i, *step) for i, step in enumerate(STORY)])
    return root


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


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


def test_render_writes_a_png_of_the_expected_size(root: Path, tmp_path: Path) -> None:
    png, page = render(load_timeline(root), tmp_path / "out")

    assert (png.name, page.name) == ("drift-timeline.png", "drift-timeline.html")
    assert png_size(png) == (1400, 800)


def test_the_page_embeds_the_picture_and_the_summary(root: Path, tmp_path: Path) -> None:
    png, page = render(load_timeline(root), tmp_path / "out")
    text = page.read_text()

    assert f'src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}"' in text
    assert "<tr><th>windows</th><td>12</td></tr>" in text
    assert "<tr><th>drifted windows (drift events)</th><td>4</td></tr>" in text
    assert '<tr><td>v1</td><td class="num">8</td><td class="num">4</td>' in text
    assert '<tr><td>v2</td><td class="num">4</td><td class="num">0</td>' in text
    assert "<tr><td>v1 → v2</td>" in text
    assert "rows partition 0, offsets 400-449" in text
    # Self-contained: nothing fetched from elsewhere.
    assert "<script" not in text and "<link" not in text and "http" not in text


def test_the_page_escapes_text(tmp_path: Path) -> None:
    archive(tmp_path, [verdict(0, 1, False, 0.9, features=["<b>x</b>", "y&z"])])

    _, page = render(load_timeline(tmp_path), tmp_path / "out", title="<script>x</script>")
    text = page.read_text()

    assert "<script>x</script>" not in text and "&lt;script&gt;x&lt;/script&gt;" in text
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;, y&amp;z" in text


def test_the_page_adds_what_the_registry_says(root: Path, tmp_path: Path) -> None:
    metadata = VersionMetadata(
        model_name="classifier",
        version=2,
        created_at=START + timedelta(seconds=7),
        training_data_sha256="1" * 64,
        feature_names=FEATURES,
        label_column="target",
        metrics={"accuracy": 0.95},
        parent_version=1,
        cause="retrained on 4 drifted windows",
        drift_event_id="rows-0-200-249",
        decision="promoted",
        model_sha256="2" * 64,
        reference_sha256="3" * 64,
        reference_rows=200,
        training_rows=200,
    )
    version_dir = root / "registry" / "classifier" / "versions" / "0002"
    version_dir.mkdir(parents=True)
    (version_dir / "metadata.json").write_text(metadata.model_dump_json())

    timeline = load_timeline(root)
    _, page = render(timeline, tmp_path / "out")

    assert [v.metadata is not None for v in timeline.versions] == [False, True]
    assert "retrained on 4 drifted windows (drift event rows-0-200-249)" in page.read_text()


def test_malformed_verdicts_are_skipped_with_a_warning(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    partition = root / "archive" / "rows" / "0"
    garbage = partition / "000000009000-000000009049.json"
    garbage.write_text("{not json")
    wrong = partition / "000000009050-000000009099.json"
    wrong.write_text('{"event_id": "x"}')

    with caplog.at_level(logging.WARNING, logger="consumer.report"):
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
        (lambda root: (root / "archive" / "rows" / "0").mkdir(parents=True), "no window verdicts"),
        (
            lambda root: (
                (root / "archive" / "rows" / "0").mkdir(parents=True),
                (root / "archive" / "rows" / "0" / "0-1.json").write_text("[]"),
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


def test_many_features_partitions_and_a_varying_threshold_render(tmp_path: Path) -> None:
    features = [f"f{i:02d}" for i in range(14)]
    events = [
        verdict(
            i,
            1 if i < 6 else 3,
            3 <= i < 6,
            None,
            partition=i % 2,
            features=features,
            correction="fdr",
            threshold=0.05 * (1 + i % 3) / len(features),
        )
        for i in range(10)
    ]
    archive(tmp_path, events)

    png, _ = render(load_timeline(tmp_path), tmp_path / "out")

    assert png_size(png) == (1400, 800)


def test_main_prints_both_paths(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "report"

    assert main(["--artifact-root", str(root), "--out", str(out)]) == 0

    assert capsys.readouterr().out.splitlines() == [
        str(out / "drift-timeline.png"),
        str(out / "drift-timeline.html"),
    ]


def test_main_takes_the_root_from_the_environment_and_the_flag_beats_it(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("DRIFTLOOP_ARTIFACT_ROOT", str(root))
    assert main([]) == 0
    assert capsys.readouterr().out.splitlines()[0] == str(root / "reports" / "drift-timeline.png")

    monkeypatch.setenv("DRIFTLOOP_ARTIFACT_ROOT", str(tmp_path / "empty"))
    assert main(["--artifact-root", str(root), "--topic", "rows"]) == 0


def test_main_says_when_there_is_nothing_to_report(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["--artifact-root", str(tmp_path / "nowhere")]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: nothing to plot: ")
    assert str(tmp_path / "nowhere" / "archive") in lines[0]


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(report).failed == 0
