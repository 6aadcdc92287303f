"""The window archive: every judged window's rows and verdict, written and read back."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from pydantic_core import to_json

from consumer.events import DriftEvent
from data.durable import fsync_dir, write_atomic

_OFFSET_DIGITS = 12
"""Width of the zero-padded offsets in a window's file name, so names sort by offset."""

_WINDOW_FILE = re.compile(rf"(\d{{{_OFFSET_DIGITS}}})-(\d{{{_OFFSET_DIGITS}}})\.csv")
"""A window's rows file, ``<first>-<last>.csv``, as :func:`window_file_name` writes it."""


class ArchiveError(RuntimeError):
    """An archived window cannot be read: missing, lacking a column, or a malformed cell."""


def window_file_name(first_offset: int, last_offset: int) -> str:
    """The name of a window's rows file; the reader's :data:`_WINDOW_FILE` matches it.

    >>> window_file_name(300, 349)
    '000000000300-000000000349.csv'
    """
    return f"{first_offset:0{_OFFSET_DIGITS}d}-{last_offset:0{_OFFSET_DIGITS}d}.csv"


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

    def directory_for(self, topic: str, partition: int) -> Path:
        """The directory holding a topic partition's windows."""
        return self.root / topic / str(partition)

    def path_for(self, topic: str, partition: int, first_offset: int, last_offset: int) -> Path:
        """Where the rows of a window are archived (the ``.csv``)."""
        return self.directory_for(topic, partition) / window_file_name(first_offset, last_offset)

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


# --------------------------------------------------------------------------- reading


def archived_windows(root: Path, topic: str, partition: int) -> list[Path]:
    """The archived windows (``.csv``) of a topic partition, in order of first offset."""
    directory = WindowArchive(root, fsync=False).directory_for(topic, partition)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(directory / name for name in names if _WINDOW_FILE.fullmatch(name))


def select_windows(windows: Sequence[Path], drift_first_offset: int, lookback: int) -> list[Path]:
    """The windows to train on: ``lookback`` windows before the drift window, and all after.

    Parameters
    ----------
    windows : sequence of pathlib.Path
        Archived window files, named by :func:`window_file_name`, in any order.
    drift_first_offset : int
        First offset of the drifted window.
    lookback : int
        How many windows starting before it to include.

    Returns
    -------
    list of pathlib.Path
        In order of first offset.

    Examples
    --------
    >>> windows = [Path(window_file_name(f, f + 49)) for f in range(0, 400, 50)]
    >>> [p.name[9:12] for p in select_windows(windows, 200, 2)]
    ['100', '150', '200', '250', '300', '350']
    >>> [p.name[9:12] for p in select_windows(windows, 200, 0)]
    ['200', '250', '300', '350']
    """
    ordered = sorted(windows, key=_first_offset)
    before = [w for w in ordered if _first_offset(w) < drift_first_offset]
    after = [w for w in ordered if _first_offset(w) >= drift_first_offset]
    return (before[-lookback:] if lookback else []) + after


@dataclass(frozen=True, eq=False)
class LabeledRows:
    """Labeled rows of archived windows, one per offset, in offset order.

    Attributes
    ----------
    offsets : numpy.ndarray
        int64 offsets, ascending and unique.
    features : numpy.ndarray
        float64, shape ``(rows, len(feature_names))``.
    labels : list of str
        Labels as written in the archive.
    feature_names : list of str
        Column order of ``features``.
    """

    offsets: np.ndarray
    features: np.ndarray
    labels: list[str]
    feature_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def read_labeled_rows(
    windows: Iterable[Path], feature_names: Sequence[str], label_column: str
) -> LabeledRows:
    """Read the labeled rows of archived windows, deduplicated by offset and ordered.

    Sliding windows overlap, so a row may be archived more than once; it is kept once.

    Raises
    ------
    ArchiveError
        If a window lacks a feature or the label column, or holds a malformed cell.
    """
    by_offset: dict[int, tuple[list[float], str]] = {}
    for path in windows:
        for offset, values, label in _read_window(path, feature_names, label_column):
            if label:
                by_offset.setdefault(offset, (values, label))
    offsets = sorted(by_offset)
    features = np.array([by_offset[o][0] for o in offsets], dtype=np.float64)
    return LabeledRows(
        offsets=np.array(offsets, dtype=np.int64),
        features=features.reshape(len(offsets), len(feature_names)),
        labels=[by_offset[o][1] for o in offsets],
        feature_names=list(feature_names),
    )


def count_labeled_rows(windows: Iterable[Path], label_column: str) -> int:
    """Labeled rows (distinct offsets) in archived windows.

    Raises
    ------
    ArchiveError
        If a window lacks the label column or holds a malformed offset.
    """
    offsets: set[int] = set()
    for path in windows:
        for offset, _, label in _read_window(path, (), label_column):
            if label:
                offsets.add(offset)
    return len(offsets)


def _read_window(
    path: Path, feature_names: Sequence[str], label_column: str
) -> Iterable[tuple[int, list[float], str]]:
    """(offset, feature values, label) of each row; the label is ``""`` when unlabeled."""
    try:
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None) or []
            missing = [c for c in ("offset", *feature_names, label_column) if c not in header]
            if missing:
                raise ArchiveError(f"archived window {path} lacks column(s) {', '.join(missing)}")
            offset_at = header.index("offset")
            feature_at = [header.index(name) for name in feature_names]
            label_at = header.index(label_column)
            rows = []
            for line, row in enumerate(reader, start=2):
                try:
                    rows.append(
                        (
                            int(row[offset_at]),
                            [float(row[i]) for i in feature_at],
                            row[label_at].strip(),
                        )
                    )
                except (ValueError, IndexError) as err:
                    raise ArchiveError(f"archived window {path} line {line}: {err}") from err
    except OSError as err:
        raise ArchiveError(f"cannot read archived window {path}: {err}") from err
    return rows


def _first_offset(path: Path) -> int:
    """The first offset a window file's name holds; a name the writer never makes is refused."""
    match = _WINDOW_FILE.fullmatch(path.name)
    if match is None:
        raise ValueError(f"not an archived window file name: {path.name!r}")
    return int(match.group(1))
