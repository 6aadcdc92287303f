"""Window verdicts as the consumer builds and archives them, for the report's tests."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from consumer.archive import WindowArchive
from consumer.events import DetectorInfo, DriftEvent, WindowRef, event_id_for

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
    model_name: str = "classifier",
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
        model_name=model_name,
        model_version=version,
        reference_sha256="0" * 64,
        archive_path=f"var/archive/{topic}/{partition}/{first:012d}-{last:012d}.csv",
        labeled_rows=0 if accuracy is None else SIZE,
        accuracy=accuracy,
    )


def archive(root: Path, events: list[DriftEvent]) -> None:
    """Archive each verdict as the consumer would, with one row of its window."""
    windows = WindowArchive(root, fsync=False)
    for event in events:
        w = event.window
        windows.append(
            event, ["x"], [w.first_offset], [w.first_event_time], np.zeros((1, 1)), [None], "y"
        )
    windows.close()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file, from its header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height
