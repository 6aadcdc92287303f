"""Building what the consumer leaves behind, without running it: archived windows and events.

The archive is written with the consumer's own :class:`consumer.archive.WindowArchive`,
so its layout and format are the real ones; the rows are Iris rows, with the
tutorial's noise (mean 3, std 1 on every feature) from ``drift_after`` on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from consumer.archive import WindowArchive
from consumer.events import DetectorInfo, DriftEvent, WindowRef, event_id_for
from data.dataset import Dataset

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def drift_event(
    topic: str,
    first: int,
    last: int,
    model_version: int = 1,
    *,
    archive_path: Path | None = None,
    is_drift: bool = True,
    model_name: str = "classifier",
    features: tuple[str, ...] = ("sepal_length", "sepal_width", "petal_length", "petal_width"),
    partition: int = 0,
    shift_seconds: float = 0.0,
) -> DriftEvent:
    """A DriftEvent for window ``first..last`` of a partition, judged for ``model_version``.

    Row ``o`` has event time ``T0 + o + shift_seconds`` seconds.
    """
    start = T0 + timedelta(seconds=shift_seconds)
    return DriftEvent(
        event_id=event_id_for(topic, partition, first, last),
        stream="iris",
        detected_at=datetime.now(UTC),
        window=WindowRef(
            topic=topic,
            partition=partition,
            first_offset=first,
            last_offset=last,
            size=last - first + 1,
            first_event_time=start + timedelta(seconds=first),
            last_event_time=start + timedelta(seconds=last),
        ),
        detector=DetectorInfo(
            backend="fast", p_val=0.05, correction="bonferroni", threshold=0.0125
        ),
        is_drift=is_drift,
        p_values={f: (1e-9 if is_drift else 0.5) for f in features},
        distances={f: (0.8 if is_drift else 0.1) for f in features},
        drifted_features=list(features) if is_drift else [],
        model_name=model_name,
        model_version=model_version,
        reference_sha256="0" * 64,
        archive_path=str(archive_path or f"{topic}/0/{first:012d}-{last:012d}.csv"),
        labeled_rows=last - first + 1,
    )


def write_archive(
    root: Path,
    topic: str,
    iris: Dataset,
    *,
    rows: int = 600,
    window: int = 50,
    drift_after: int = 300,
    labeled_every: int = 1,
    model_version: int = 1,
    seed: int = 7,
    partition: int = 0,
    shift_seconds: float = 0.0,
) -> list[DriftEvent]:
    """Archive ``rows`` Iris rows of a topic's partition in tumbling windows; their events.

    Rows are drawn at random (seeded) from Iris; from offset ``drift_after`` on every
    feature gets Gaussian noise (mean 3, std 1). Only every ``labeled_every``-th row
    keeps its label. Every window's verdict is written too; the events of windows at
    or after ``drift_after`` are drifted.
    """
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(iris), size=rows)
    values = iris.features.to_numpy(dtype=np.float64)[picks]
    noisy = np.arange(rows) >= drift_after
    values[noisy] += rng.normal(3.0, 1.0, size=(int(noisy.sum()), values.shape[1]))
    labels = iris.labels.to_numpy()[picks]
    archive = WindowArchive(root, fsync=False)
    events = []
    for first in range(0, rows, window):
        last = first + window - 1
        offsets = list(range(first, last + 1))
        event = drift_event(
            topic,
            first,
            last,
            model_version,
            is_drift=first >= drift_after,
            features=tuple(iris.feature_names),
            partition=partition,
            shift_seconds=shift_seconds,
        )
        events.append(
            archive.append(
                event,
                iris.feature_names,
                offsets,
                [T0 + timedelta(seconds=o + shift_seconds) for o in offsets],
                values[first : last + 1],
                [labels[o] if o % labeled_every == 0 else None for o in offsets],
                iris.label_column,
                seqs=offsets,  # row o is the producer's seq o
            )
        )
    archive.close()
    return events
