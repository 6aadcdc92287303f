"""The window archive: every judged window's rows and verdict, for retraining and reports."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from pydantic_core import to_json

from consumer.events import DriftEvent
from data.durable import fsync_dir, write_atomic

_CSV_SPECIALS = (",", '"', "\r", "\n")
"""Characters that make the csv module quote a field (the delimiter, the quote, line breaks)."""


def _csv_cell(label: int | str | None) -> str:
    """A label as the csv module writes it: quoted only when it holds a special character."""
    if label is None:
        return ""
    text = str(label)
    if any(char in text for char in _CSV_SPECIALS):
        return '"' + text.replace('"', '""') + '"'
    return text


def _number_lines(values: np.ndarray) -> list[str]:
    """Each row of ``values`` as comma-separated shortest round-trip decimals.

    Serialized by pydantic-core (Rust) rather than by ``repr`` per float, which
    costs several times as much as everything else in a row. The text differs
    from ``repr`` only in exponent style (``1e-05`` is written ``0.00001``);
    ``float()`` reads back exactly the same value.
    """
    text = to_json(values.tolist()).decode()
    return text[2:-2].split("],[") if len(values) else []


def _iso_times(times: Sequence[datetime]) -> list[str]:
    """ISO 8601 text of each time, as on the wire (UTC as ``Z``), serialized in one call."""
    text = to_json(list(times)).decode()
    # ISO 8601 text holds no quote or comma, so the JSON array splits cleanly.
    return text[2:-2].split('","') if times else []


class WindowArchive:
    """Writes each window once, atomically, under ``<root>/archive/<topic>/<partition>/``.

    A window's rows go to ``<first>-<last>.csv`` (offset, event time, features,
    label) and its verdict to ``<first>-<last>.json`` (the DriftEvent, drifted or
    not). A window judged again after a restart has the same name and the same
    content, so rewriting it changes nothing.

    A file is whole or absent after a crash; the windows written are durable once
    :meth:`sync` returns. With ``fsync=False`` nothing is flushed to disk (for
    tests and benchmarks that measure everything else).

    Values are written as shortest round-trip decimals and event times as ISO 8601
    (UTC as ``Z``), so reading a file back gives exactly the values judged.
    """

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = Path(root) / "archive"
        self.fsync = fsync
        self._unsynced: set[Path] = set()

    def path_for(self, topic: str, partition: int, first_offset: int, last_offset: int) -> Path:
        """Where the rows of a window are archived (the ``.csv``)."""
        return self.root / topic / str(partition) / f"{first_offset:012d}-{last_offset:012d}.csv"

    def write_rows(
        self,
        path: Path,
        feature_names: Sequence[str],
        offsets: Sequence[int],
        event_times: Sequence[datetime],
        values: np.ndarray,
        labels: Sequence[int | str | None],
        label_column: str,
    ) -> None:
        """Write a window's rows to ``path`` (from :meth:`path_for`).

        Parameters
        ----------
        path : pathlib.Path
            Where the rows go.
        feature_names : sequence of str
            Column names of ``values``.
        offsets, event_times, labels : sequence
            Per row: its offset, its event time (timezone-aware) and its label
            (``None`` for an unlabeled row, written as an empty cell).
        values : numpy.ndarray
            Finite feature values, shape ``(rows, len(feature_names))``.
        label_column : str
            Name of the label column.

        Raises
        ------
        ValueError
            If the columns disagree in length or a value is not finite.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(offsets), len(feature_names)):
            raise ValueError(
                f"values has shape {values.shape}; expected "
                f"({len(offsets)}, {len(feature_names)}): a row per offset, a column per feature"
            )
        if not len(event_times) == len(labels) == len(offsets):
            raise ValueError(
                f"{len(offsets)} offsets, {len(event_times)} event times and {len(labels)} "
                "labels: one of each per row"
            )
        if not np.isfinite(values).all():
            raise ValueError("values must be finite")
        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow(
            ["offset", "event_time", *feature_names, label_column]
        )
        lines = map(
            ",".join,
            zip(
                map(str, offsets),
                _iso_times(event_times),
                _number_lines(values),
                map(_csv_cell, labels),
                strict=True,
            ),
        )
        body = "\n".join(lines)
        self._write_atomic(path, (header.getvalue() + body + ("\n" if body else "")).encode())

    def write_verdict(self, path: Path, event: DriftEvent) -> None:
        """Write the window's DriftEvent next to its rows."""
        self._write_atomic(path.with_suffix(".json"), event.to_bytes())

    def sync(self) -> None:
        """Make every window written so far durable: fsync the directories they were renamed in.

        Each file's contents are fsynced before it replaces its name, so a crash never
        leaves a partial file; the rename itself is on disk only after this.
        """
        while self._unsynced:
            fsync_dir(self._unsynced.pop())

    def _write_atomic(self, path: Path, data: bytes) -> None:
        write_atomic(path, data, fsync=self.fsync, sync_dir=False)
        if self.fsync:
            self._unsynced.add(path.parent)
