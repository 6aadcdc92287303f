"""Archives in the per-window layout of earlier versions, for the tests that read them.

A window's rows in ``<first>-<last>.csv`` and its verdict in ``<first>-<last>.json``,
written exactly as the consumer wrote them before segments.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from pydantic_core import to_json

from consumer.archive import WindowArchive
from consumer.events import DriftEvent
from data.durable import write_atomic

_CSV_SPECIALS = (",", '"', "\r", "\n")


def _csv_cell(label: int | str | None) -> str:
    if label is None:
        return ""
    text = str(label)
    if any(char in text for char in _CSV_SPECIALS):
        return '"' + text.replace('"', '""') + '"'
    return text


def window_csv(
    feature_names: Sequence[str],
    offsets: Sequence[int],
    event_times: Sequence[datetime],
    values: np.ndarray,
    labels: Sequence[int | str | None],
    label_column: str,
) -> bytes:
    """A window's ``.csv`` as the per-window layout held it."""
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(
        ["offset", "event_time", *feature_names, label_column]
    )
    numbers = to_json(np.asarray(values, dtype=np.float64).tolist()).decode()
    number_lines = numbers[2:-2].split("],[") if len(offsets) else []
    times = to_json(list(event_times)).decode()
    time_lines = times[2:-2].split('","') if len(offsets) else []
    lines = map(
        ",".join,
        zip(map(str, offsets), time_lines, number_lines, map(_csv_cell, labels), strict=True),
    )
    body = "\n".join(lines)
    return (header.getvalue() + body + ("\n" if body else "")).encode()


def write_window_files(
    root: Path,
    event: DriftEvent,
    feature_names: Sequence[str],
    offsets: Sequence[int],
    event_times: Sequence[datetime],
    values: np.ndarray,
    labels: Sequence[int | str | None],
    label_column: str,
    fsync: bool = False,
) -> Path:
    """Write one window's ``.csv`` and ``.json`` where the old consumer did; the ``.csv``.

    With ``fsync``, each file atomically and fsynced, as the old consumer did (the
    caller fsyncs the directory once per poll).
    """
    w = event.window
    path = WindowArchive(root, fsync=False).path_for(
        w.topic, event.stream, w.partition, w.first_offset, w.last_offset
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = window_csv(feature_names, offsets, event_times, values, labels, label_column)
    if fsync:
        write_atomic(path, rows, fsync=True, sync_dir=False)
        write_atomic(path.with_suffix(".json"), event.to_bytes(), fsync=True, sync_dir=False)
    else:
        path.write_bytes(rows)
        path.with_suffix(".json").write_bytes(event.to_bytes())
    return path
