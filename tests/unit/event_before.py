"""`DriftEvent.for_window` as it was before it kept a champion's shared parts (commit f27e37d).

A copy, kept for `test_events.py` to prove the faster build gives the same event, field
for field and byte for byte. Only the build is copied; the models are the contract's own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from consumer.detection import Backend, Correction, DriftResult
from consumer.events import (
    SCHEMA_MINOR,
    AlarmInfo,
    DetectorInfo,
    DriftEvent,
    EpisodeInfo,
    TimedRow,
    WindowRef,
    event_id_for,
)
from consumer.windowing import Window


def event_before(
    topic: str,
    partition: int,
    window: Window[TimedRow],
    result: DriftResult,
    *,
    model: Any,
    backend: Backend,
    p_val: float,
    correction: Correction,
    archive_path: Path | str,
    labeled_rows: int = 0,
    accuracy: float | None = None,
    detected_at: datetime | None = None,
    alarm: AlarmInfo | None = None,
    episode: EpisodeInfo | None = None,
) -> DriftEvent:
    """`DriftEvent.for_window` of commit f27e37d."""
    names = model.feature_names
    first, last = window.items[0], window.items[-1]
    return DriftEvent(
        schema_minor=SCHEMA_MINOR,
        event_id=event_id_for(topic, partition, window.first_offset, window.last_offset),
        stream=first.stream,
        detected_at=datetime.now(UTC) if detected_at is None else detected_at,
        window=WindowRef(
            topic=topic,
            partition=partition,
            first_offset=window.first_offset,
            last_offset=window.last_offset,
            size=len(window.items),
            first_event_time=first.event_time,
            last_event_time=last.event_time,
            closed_by=window.closed_by,
        ),
        detector=DetectorInfo(
            backend=backend, p_val=p_val, correction=correction, threshold=result.threshold
        ),
        is_drift=result.is_drift,
        p_values=dict(zip(names, result.p_values.tolist(), strict=True)),
        distances=dict(zip(names, result.distances.tolist(), strict=True)),
        drifted_features=[names[i] for i in result.drifted],
        categorical_features=[name for name in names if name in model.categories],
        missing_shares=dict.fromkeys(names, 0.0)
        if result.missing_shares is None
        else dict(zip(names, result.missing_shares.tolist(), strict=True)),
        model_name=model.model_name,
        model_version=model.version,
        reference_sha256=model.reference_sha256,
        archive_path=str(archive_path),
        labeled_rows=labeled_rows,
        accuracy=accuracy,
        alarm=alarm,
        episode=episode,
    )
