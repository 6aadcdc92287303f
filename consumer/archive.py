"""The window archive: every judged window's rows and verdict, written and read back."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
from pydantic_core import to_json

from consumer.events import DriftEvent
from data.durable import fsync_dir, write_atomic

_OFFSET_DIGITS = 12
"""Width of the zero-padded offsets in a window's file name, so names sort by offset."""

_WINDOW_FILE = re.compile(rf"(\d{{{_OFFSET_DIGITS}}})-(\d{{{_OFFSET_DIGITS}}})\.csv")
"""A window's rows file, ``<first>-<last>.csv``, as :func:`window_file_name` writes it."""


_STREAM_DIR_MAX = 120
"""Longest directory name a stream gets; longer names are cut and hashed."""


class ArchiveError(RuntimeError):
    """An archived window cannot be read: missing, lacking a column, or a malformed cell."""


def stream_directory(stream: str) -> str:
    """The directory name of a stream's windows: the name, percent-encoded where needed.

    Letters, digits, ``-`` and ``_`` stay; anything else (``/``, ``.``, spaces,
    non-ASCII) is percent-encoded, so no stream name can climb out of the archive or
    collide with another. A name whose encoding is too long for a file system is cut
    and given a hash of the whole name.

    >>> stream_directory("iris")
    'iris'
    >>> stream_directory("../etc")
    '%2E%2E%2Fetc'
    >>> len(stream_directory("x" * 500))
    120
    """
    encoded = quote(stream, safe="-_").replace(".", "%2E")
    if len(encoded) <= _STREAM_DIR_MAX:
        return encoded
    digest = hashlib.sha256(stream.encode()).hexdigest()[:16]
    return f"{encoded[: _STREAM_DIR_MAX - 17]}~{digest}"


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
    """Writes each window, atomically, under ``<root>/archive/<topic>/<stream>/<partition>/``.

    The stream's directory name is :func:`stream_directory`'s: a stream's windows
    from every partition lie under one directory.

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

    def directory_for(self, topic: str, stream: str, partition: int | None = None) -> Path:
        """The directory of a stream's windows (of one partition, with ``partition``)."""
        directory = self.root / topic / stream_directory(stream)
        return directory if partition is None else directory / str(partition)

    def path_for(
        self, topic: str, stream: str, partition: int, first_offset: int, last_offset: int
    ) -> Path:
        """Where the rows of a window are archived (the ``.csv``)."""
        return self.directory_for(topic, stream, partition) / window_file_name(
            first_offset, last_offset
        )

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


def archived_windows(root: Path, topic: str, stream: str, partition: int) -> list[Path]:
    """The archived windows (``.csv``) of a stream in a partition, in order of first offset."""
    directory = WindowArchive(root, fsync=False).directory_for(topic, stream, partition)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(directory / name for name in names if _WINDOW_FILE.fullmatch(name))


def archived_partitions(root: Path, topic: str, stream: str) -> list[int]:
    """The partitions a stream has archived windows from, in order."""
    directory = WindowArchive(root, fsync=False).directory_for(topic, stream)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(name) for name in names if name.isdigit())


def verdict_files(root: Path, topic: str | None = None) -> list[Path]:
    """Every archived verdict (``.json``), of one topic or of all, in path order."""
    source = WindowArchive(root, fsync=False).root
    if topic is not None:
        source = source / topic
    pattern = "*/*/*.json" if topic is not None else "*/*/*/*.json"
    return sorted(source.glob(pattern)) if source.is_dir() else []


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
    """Labeled rows of archived windows, each row once, in order of event time.

    Rows of several partitions interleave by event time (ties by partition, then
    offset), so the last rows are the newest across the whole stream.

    Attributes
    ----------
    partitions, offsets : numpy.ndarray
        int64 partition and offset of each row; the pairs are unique.
    features : numpy.ndarray
        float64, shape ``(rows, len(feature_names))``.
    labels : list of str
        Labels as written in the archive.
    feature_names : list of str
        Column order of ``features``.
    """

    partitions: np.ndarray
    offsets: np.ndarray
    features: np.ndarray
    labels: list[str]
    feature_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def read_labeled_rows(
    windows: Iterable[Path], feature_names: Sequence[str], label_column: str
) -> LabeledRows:
    """Read the labeled rows of archived windows, each row once, ordered by event time.

    Sliding windows overlap, so a row may be archived more than once; it is kept once.
    A window's partition is its directory's name (``.../<partition>/<first>-<last>.csv``).

    Raises
    ------
    ArchiveError
        If a window lacks a feature or the label column, or holds a malformed cell.
    """
    by_row: dict[tuple[int, int], tuple[datetime, list[float], str]] = {}
    for path in windows:
        partition = _partition_of(path)
        for row in _read_window(path, feature_names, label_column, times=True):
            offset, values, label, when = row
            if label:
                by_row.setdefault((partition, offset), (when, values, label))
    keys = sorted(by_row, key=lambda key: (by_row[key][0], key))
    features = np.array([by_row[k][1] for k in keys], dtype=np.float64)
    return LabeledRows(
        partitions=np.array([k[0] for k in keys], dtype=np.int64),
        offsets=np.array([k[1] for k in keys], dtype=np.int64),
        features=features.reshape(len(keys), len(feature_names)),
        labels=[by_row[k][2] for k in keys],
        feature_names=list(feature_names),
    )


def count_labeled_rows(windows: Iterable[Path], label_column: str) -> int:
    """Labeled rows (distinct partition and offset) in archived windows.

    Raises
    ------
    ArchiveError
        If a window lacks the label column or holds a malformed offset.
    """
    rows: set[tuple[int, int]] = set()
    for path in windows:
        partition = _partition_of(path)
        for offset, _, label, _ in _read_window(path, (), label_column):
            if label:
                rows.add((partition, offset))
    return len(rows)


def first_event_time(path: Path) -> datetime:
    """The event time of an archived window's first row.

    Raises
    ------
    ArchiveError
        If the window is empty, unreadable or its event time malformed.
    """
    rows = _read_window(path, (), None, times=True)
    if not rows:
        raise ArchiveError(f"archived window {path} holds no rows")
    return rows[0][3]


_NO_TIME = datetime.min


def _read_window(
    path: Path, feature_names: Sequence[str], label_column: str | None, times: bool = False
) -> list[tuple[int, list[float], str, datetime]]:
    """(offset, feature values, label, event time) of each row.

    The label is ``""`` when unlabeled or when ``label_column`` is None; the event
    time is parsed only with ``times`` (a placeholder otherwise).
    """
    wanted = ["offset", *feature_names]
    if label_column is not None:
        wanted.append(label_column)
    if times:
        wanted.append("event_time")
    try:
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None) or []
            missing = [c for c in wanted if c not in header]
            if missing:
                raise ArchiveError(f"archived window {path} lacks column(s) {', '.join(missing)}")
            offset_at = header.index("offset")
            feature_at = [header.index(name) for name in feature_names]
            label_at = None if label_column is None else header.index(label_column)
            time_at = header.index("event_time") if times else None
            rows = []
            for line, row in enumerate(reader, start=2):
                try:
                    rows.append(
                        (
                            int(row[offset_at]),
                            [float(row[i]) for i in feature_at],
                            "" if label_at is None else row[label_at].strip(),
                            _NO_TIME if time_at is None else _event_time(row[time_at]),
                        )
                    )
                except (ValueError, IndexError) as err:
                    raise ArchiveError(f"archived window {path} line {line}: {err}") from err
    except OSError as err:
        raise ArchiveError(f"cannot read archived window {path}: {err}") from err
    return rows


def _event_time(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"event time {text!r} has no time zone")
    return when


def _partition_of(path: Path) -> int:
    """The partition of a window file, from its directory's name."""
    try:
        return int(path.parent.name)
    except ValueError:
        raise ArchiveError(
            f"archived window {path} is not in a partition's directory "
            "(<archive>/<topic>/<stream>/<partition>/)"
        ) from None


def _first_offset(path: Path) -> int:
    """The first offset a window file's name holds; a name the writer never makes is refused."""
    match = _WINDOW_FILE.fullmatch(path.name)
    if match is None:
        raise ValueError(f"not an archived window file name: {path.name!r}")
    return int(match.group(1))
