"""The window archive: every judged window's rows and verdict, written and read back.

Layout under ``<root>/archive/<topic>/<stream>/<partition>/``:

- ``<seq>-<first>.seg``: a segment, append-only, several windows each (the
  consumer's layout). Each window is one record::

      head (36 bytes, little-endian): magic b"DLW1", payload length, payload crc32,
                                      first offset, last offset, rows, head crc32
      payload: a JSON line (feature names, label column, part sizes and, for a
               model with categorical features, ``categories``: each one's strings
               by code, as far as the window's codes go), then the
               offsets (int64), the values (float64, row-major; a categorical
               feature's codes, NaN where a value is missing), the event times
               (JSON array of ISO 8601 text), the labels (JSON array of text or
               null) and the verdict (the DriftEvent's JSON); then, where the JSON
               line has ``"seqs"`` (its byte size), each row's RowMessage seq (int64),
               by which late labels join the row. Records without it have no seqs.

  A record is valid only if both checksums match and it lies wholly inside the
  file; a reader stops at the first record that is not, so the torn tail a crash
  leaves (a poll appended but not yet fsynced) is never read. A writer never
  appends to a segment another process (or an earlier run) created, so nothing
  valid ever follows a torn tail. A window judged again after a crash is
  appended again, to a newer segment: the last record of a window wins, since
  the earlier one's Kafka transaction never committed (the offsets commit in
  the same transaction, so a committed window is never cut again) and the last
  is the one the drift topic carries.
- ``<first>-<last>.csv`` and ``.json``: one window's rows and verdict (the
  per-window layout of earlier versions), still read, never written.

Values are kept as float64 bits and labels as the text the csv module would read
back, so a reader gets exactly what the per-window files gave. Codes mean nothing
outside their record (another consumer, or another champion, numbers categories its
own way), so readers turn them back into strings with the record's ``categories``
(:meth:`WindowRecord.cells`, :func:`read_labeled_rows`); a record without them is all
numeric.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from itertools import repeat
from operator import attrgetter, is_
from pathlib import Path
from typing import IO, Any, NamedTuple, Protocol
from urllib.parse import quote

import msgspec
import numpy as np
from pydantic_core import to_json

from consumer.events import DriftEvent
from data.durable import fsync_dir
from data.encoding import decode_column

logger = logging.getLogger(__name__)

_OFFSET_DIGITS = 12
"""Width of the zero-padded offsets in window ids and names, so names sort by offset."""

_WINDOW_FILE = re.compile(rf"(\d{{{_OFFSET_DIGITS}}})-(\d{{{_OFFSET_DIGITS}}})\.csv")
"""A per-window rows file, ``<first>-<last>.csv`` (the layout of earlier versions)."""

_VERDICT_FILE = re.compile(rf"(\d{{{_OFFSET_DIGITS}}})-(\d{{{_OFFSET_DIGITS}}})\.json")

_SEGMENT_FILE = re.compile(rf"(\d{{8}})-(\d{{{_OFFSET_DIGITS}}})\.seg")
"""A segment, ``<seq>-<first offset of its first window>.seg``; ``seq`` orders them."""

_STREAM_DIR_MAX = 120
"""Longest directory name a stream gets; longer names are cut and hashed."""

_MAGIC = b"DLW1"
_HEAD = struct.Struct("<4sIIqqI")
"""magic, payload length, payload crc32, first offset, last offset, rows."""
_HEAD_CRC = struct.Struct("<I")
HEAD_SIZE = _HEAD.size + _HEAD_CRC.size
"""Bytes of a record's head."""

SEGMENT_BYTES = 64 * 2**20
"""Default size at which a segment is closed and the next one begun."""
SEGMENT_SECONDS = 3600.0
"""Default age at which a segment is closed and the next one begun."""


LateLabels = Mapping[str, Mapping[int, str]]
"""Labels that came after their rows: stream directory (:func:`stream_directory`) to
row ``seq`` to the label's text. ``consumer.labels.store.late_labels`` reads them."""


_DIRECTORIES_KEPT = 4096
"""Most (topic, stream, partition) directories `WindowArchive.directory_for` remembers."""


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


def window_id(first_offset: int, last_offset: int) -> str:
    """A window's id within its partition: its first and last offset, zero-padded.

    >>> window_id(300, 349)
    '000000000300-000000000349'
    """
    return f"{first_offset:0{_OFFSET_DIGITS}d}-{last_offset:0{_OFFSET_DIGITS}d}"


def window_file_name(first_offset: int, last_offset: int) -> str:
    """The name of a window's rows file in the per-window layout of earlier versions.

    >>> window_file_name(300, 349)
    '000000000300-000000000349.csv'
    """
    return f"{window_id(first_offset, last_offset)}.csv"


# --------------------------------------------------------------------------- locations


@dataclass(frozen=True)
class ArchivedWindow:
    """Where one archived window lies: a record of a segment, or a per-window file.

    ``str()`` of it is its lineage name: ``<segment>#<first>-<last>`` for a record,
    the ``.csv`` path for a per-window file; :func:`resolve_window` reads it back.

    Attributes
    ----------
    path : pathlib.Path
        The segment, or the per-window ``.csv``.
    partition, first_offset, last_offset : int
        The window's partition and offsets.
    position : int or None
        Where the record starts in the segment; None for a per-window file.
    length : int
        The record's bytes, head included (0 for a per-window file).
    """

    path: Path
    partition: int
    first_offset: int
    last_offset: int
    position: int | None = None
    length: int = 0

    @property
    def window_id(self) -> str:
        return window_id(self.first_offset, self.last_offset)

    @property
    def in_segment(self) -> bool:
        return self.position is not None

    @property
    def name(self) -> str:
        """The window's name without its directory: ``<segment name>#<id>`` or the file name."""
        return f"{self.path.name}#{self.window_id}" if self.in_segment else self.path.name

    def __str__(self) -> str:
        if self.in_segment:
            return f"{self.path.as_posix()}#{self.window_id}"
        return self.path.as_posix()


@dataclass(frozen=True, eq=False)
class WindowRecord:
    """One archived window read back whole: its rows and its verdict.

    Attributes
    ----------
    offsets : numpy.ndarray
        int64 offset of each row.
    event_times : list of str
        ISO 8601 event time of each row, as written.
    values : numpy.ndarray
        float64, shape ``(rows, len(feature_names))``.
    labels : list of str
        Each row's label as the csv module reads it back, stripped; ``""`` if unlabeled.
    feature_names : list of str
    label_column : str
    verdict : bytes or None
        The DriftEvent's JSON; None for a per-window file without its ``.json``.
    seqs : numpy.ndarray or None
        int64 RowMessage ``seq`` of each row (the row id late labels name); None for
        records written before seqs were archived, and per-window files.
    categories : dict of str to list of str
        Each categorical feature's strings by code (its ``values`` are codes); empty
        for an all-numeric window and for records written before categories.
    """

    offsets: np.ndarray
    event_times: list[str]
    values: np.ndarray
    labels: list[str]
    feature_names: list[str]
    label_column: str
    verdict: bytes | None
    seqs: np.ndarray | None = None
    categories: dict[str, list[str]] = field(default_factory=dict)

    def cells(self, name: str) -> list[float | str | None]:
        """One feature's values: numbers (NaN where missing), or strings (None) if categorical.

        Raises
        ------
        ArchiveError
            If the window lacks the feature or holds a code its categories lack.
        """
        if name not in self.feature_names:
            raise ArchiveError(f"archived window lacks column {name}")
        column = self.values[:, self.feature_names.index(name)]
        if name not in self.categories:
            return column.tolist()
        try:
            return list(decode_column(column, self.categories[name]))
        except ValueError as err:
            raise ArchiveError(f"archived window: feature {name!r}: {err}") from err


# --------------------------------------------------------------------------- writing


class WindowRows(Protocol):
    """One window to archive: :meth:`WindowArchive.append`'s arguments, as attributes.

    Any object with them will do (the consumer's own record of a judged window);
    :class:`PendingWindow` is a plain one.
    """

    @property
    def event(self) -> DriftEvent: ...
    @property
    def feature_names(self) -> Sequence[str]: ...
    @property
    def offsets(self) -> Sequence[int]: ...
    @property
    def event_times(self) -> Sequence[datetime]: ...
    @property
    def values(self) -> np.ndarray: ...
    @property
    def labels(self) -> Sequence[int | str | None]: ...
    @property
    def label_column(self) -> str: ...
    @property
    def seqs(self) -> Sequence[int] | None: ...
    @property
    def categories(self) -> Mapping[str, Sequence[str]] | None: ...


@dataclass(frozen=True, eq=False)
class PendingWindow:
    """A window to archive (:class:`WindowRows`): see :meth:`WindowArchive.append`."""

    event: DriftEvent
    feature_names: Sequence[str]
    offsets: Sequence[int]
    event_times: Sequence[datetime]
    values: np.ndarray
    labels: Sequence[int | str | None]
    label_column: str
    seqs: Sequence[int] | None = None
    categories: Mapping[str, Sequence[str]] | None = None


@dataclass(eq=False)
class _Segment:
    path: Path
    handle: IO[bytes]
    created: float
    size: int = 0
    unsynced: bool = False


def _head(payload: bytes, first: int, last: int, rows: int, magic: bytes = _MAGIC) -> bytes:
    head = _HEAD.pack(magic, len(payload), zlib.crc32(payload), first, last, rows)
    return head + _HEAD_CRC.pack(zlib.crc32(head))


def frame_record(magic: bytes, payload: bytes, first: int, last: int, rows: int) -> bytes:
    """``payload`` framed as a segment record of another kind (``magic``, 4 bytes).

    The label store keeps its records in this frame: the head, its checksums and the
    torn-tail rule are the window records', only the magic differs.
    """
    if len(magic) != 4 or magic == _MAGIC:
        raise ValueError(f"magic must be 4 bytes other than {_MAGIC!r}, got {magic!r}")
    return _head(payload, first, last, rows, magic) + payload


def framed_payloads(path: Path, magic: bytes) -> list[bytes]:
    """The payloads of a segment's valid records of kind ``magic``, up to a torn tail.

    Raises
    ------
    ArchiveError
        If the segment cannot be read.
    """
    data = _read_segment(path)
    return [data[h.position + HEAD_SIZE : h.position + h.length] for h in _scan(path, data, magic)]


def _read_segment(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise ArchiveError(f"cannot read archive segment {path}: {err}") from err


def encode_record(
    first_offset: int,
    last_offset: int,
    feature_names: Sequence[str],
    offsets: Sequence[int],
    event_times: Sequence[datetime],
    values: np.ndarray,
    labels: Sequence[int | str | None],
    label_column: str,
    verdict: bytes,
    seqs: Sequence[int] | None = None,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> bytes:
    """One window's record (head and payload), as a segment holds it.

    ``first_offset`` and ``last_offset`` identify the window (readers key it by them);
    the other arguments are those of :meth:`WindowArchive.append`.

    Raises
    ------
    ValueError
        If the columns disagree in length, a value is infinite, or a categorical
        feature's value is not a code of its categories.
    """
    rows = _RecordRows.of(
        feature_names, offsets, event_times, values, labels, label_column, seqs, categories
    )
    return rows.record(first_offset, last_offset, verdict)


class _RecordRows(NamedTuple):
    """A window's rows, checked and encoded: all of its record but the verdict.

    What `encode_record` frames; `WindowArchive.append_many` checks every window's
    rows before it begins a segment, and encodes them only once. A named tuple: the
    archive thread builds one per window, and a tuple is built for a third of what a
    frozen dataclass costs.
    """

    meta_start: bytes
    """The record's JSON line up to its ``parts``' sizes: ``{"features":...,"parts":[``."""
    meta_end: bytes
    """The JSON line after the sizes: ``]``, then ``seqs`` and ``categories`` if any, ``}``."""
    rows: int
    body: bytes
    """Offsets, values, event times and labels, encoded, one after the other."""
    sizes: bytes
    """The sizes of the event times and the labels, as the JSON line's ``parts`` begins."""
    seq_bytes: bytes

    @classmethod
    def of(
        cls,
        feature_names: Sequence[str],
        offsets: Sequence[int],
        event_times: Sequence[datetime],
        values: np.ndarray,
        labels: Sequence[int | str | None],
        label_column: str,
        seqs: Sequence[int] | None = None,
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> _RecordRows:
        """Check and encode the rows (see `encode_record` for what is refused)."""
        values = np.ascontiguousarray(values, dtype="<f8")
        count = len(offsets)
        if values.shape != (count, len(feature_names)):
            raise ValueError(
                f"values has shape {values.shape}; expected "
                f"({count}, {len(feature_names)}): a row per offset, a column per feature"
            )
        if not len(event_times) == len(labels) == count:
            raise ValueError(
                f"{count} offsets, {len(event_times)} event times and {len(labels)} "
                "labels: one of each per row"
            )
        if np.isinf(values).any():
            raise ValueError("values must not be infinite (NaN marks a missing one)")
        if seqs is not None and len(seqs) != count:
            raise ValueError(f"{count} offsets and {len(seqs)} seqs: one of each per row")
        seq_bytes = b"" if seqs is None else _int64_bytes(seqs)
        times = _event_times_json(event_times)
        texts = _labels_json(labels)
        # The JSON line's keys in the order records have always had: features,
        # label_column, parts, then seqs and categories where the record has them.
        meta_end = b"]"
        if seqs is not None:
            meta_end += b',"seqs":%d' % len(seq_bytes)
        if categories:
            used = _used_categories(feature_names, values, categories)
            meta_end += b',"categories":' + _compact_json(used)
        offset_bytes = _int64_bytes(offsets)
        return cls(
            _meta_start(tuple(feature_names), label_column),
            meta_end + b"}\n",
            count,
            b"".join((offset_bytes, values.tobytes(), times, texts)),
            b"%d,%d," % (len(times), len(texts)),
            seq_bytes,
        )

    def record(self, first_offset: int, last_offset: int, verdict: bytes) -> bytes:
        """The record of these rows with ``verdict``, framed for a segment.

        In one piece, its checksum taken once: a segment's records are joined per write.
        """
        payload = b"".join(
            (
                self.meta_start,
                self.sizes,
                b"%d" % len(verdict),
                self.meta_end,
                self.body,
                verdict,
                self.seq_bytes,
            )
        )
        head = _HEAD.pack(
            _MAGIC, len(payload), zlib.crc32(payload), first_offset, last_offset, self.rows
        )
        return b"".join((head, _HEAD_CRC.pack(zlib.crc32(head)), payload))


_JSON = msgspec.json.Encoder()
"""Encodes what msgspec writes as pydantic's ``to_json`` does (see its callers)."""


@lru_cache(maxsize=256)
def _int64_struct(count: int) -> struct.Struct:
    """Packs ``count`` little-endian int64s (a window's size; few distinct ones)."""
    return struct.Struct(f"<{count}q")


def _int64_bytes(numbers: Sequence[int]) -> bytes:
    """``numbers`` as little-endian int64: ``np.asarray(numbers, dtype="<i8").tobytes()``.

    struct packs a window's ints in a quarter of numpy's time (on the archive thread,
    which holds the interpreter); what it refuses (a float, which numpy truncates, a
    number out of range, an array) numpy converts, or refuses, as it always did.

    >>> _int64_bytes([1, -2]).hex()
    '0100000000000000feffffffffffffff'
    >>> _int64_bytes([1.0, -2.5]) == _int64_bytes([1, -2])  # numpy's way: truncated
    True
    """
    try:
        return _int64_struct(len(numbers)).pack(*numbers)
    except (struct.error, TypeError):
        return np.asarray(numbers, dtype="<i8").tobytes()


def _labels_json(labels: Sequence[int | str | None]) -> bytes:
    """The labels as a JSON array of text or null, as pydantic's ``to_json`` writes it.

    ``str()`` is what the csv module writes of a label; None is an empty cell. msgspec
    writes every character as ``to_json`` does (the tests compare every code point) in
    a third of its time; a lone surrogate, which neither can encode, is refused as
    ``to_json`` refuses it.
    """
    texts = [None if label is None else str(label) for label in labels]
    try:
        return _JSON.encode(texts)
    except UnicodeEncodeError:
        return to_json(texts)


_TZINFO = attrgetter("tzinfo")


def _event_times_json(event_times: Sequence[datetime]) -> bytes:
    """The event times as a JSON array of ISO 8601 text, as pydantic's ``to_json`` writes it.

    The consumer's times are UTC, and for those msgspec writes pydantic's text (``Z``,
    six digits of microseconds unless they are 0) some 15 times faster: every row's time
    is encoded on the archive thread, which holds the interpreter while it does. They
    differ on offsets with seconds (msgspec writes ``Z`` for ``+00:00:30``), and msgspec
    refuses subclasses of datetime; any of those, and other zones, take ``to_json``.

    >>> from datetime import UTC, timedelta, timezone
    >>> _event_times_json([datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC)])
    b'["2026-01-01T00:00:00.000005Z"]'
    >>> _event_times_json([datetime(2026, 1, 1, tzinfo=timezone(timedelta(seconds=30)))])
    b'["2026-01-01T00:00:00+00:00"]'
    """
    times = list(event_times)
    try:
        # UTC itself, by identity: a tzinfo class of one's own may call itself equal to it.
        if all(map(is_, map(_TZINFO, times), repeat(UTC))):
            return _JSON.encode(times)
    except (AttributeError, TypeError):
        pass  # not a datetime, or a subclass msgspec refuses: to_json writes what it always did
    return to_json(times)


def _compact_json(value: Any) -> bytes:
    """``value`` as the record's JSON line writes it: no spaces, non-ASCII escaped."""
    return json.dumps(value, separators=(",", ":")).encode()


@lru_cache(maxsize=64)
def _meta_start(feature_names: tuple[str, ...], label_column: str) -> bytes:
    """The start of a record's JSON line, the same for every window of a model."""
    return b'{"features":%b,"label_column":%b,"parts":[' % (
        _compact_json(list(feature_names)),
        _compact_json(label_column),
    )


def _used_categories(
    feature_names: Sequence[str], values: np.ndarray, categories: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Each categorical feature's strings for the codes up to the window's largest."""
    out: dict[str, list[str]] = {}
    for name, strings in categories.items():
        if name not in feature_names:
            raise ValueError(f"categories names {name!r}, which is not a feature of the window")
        codes = values[:, list(feature_names).index(name)]
        codes = codes[~np.isnan(codes)]
        if codes.size and not (
            (codes == np.floor(codes)).all() and codes.min() >= 0 and codes.max() < len(strings)
        ):
            raise ValueError(f"feature {name!r} holds values that are not codes of its categories")
        out[name] = list(strings[: int(codes.max()) + 1]) if codes.size else []
    return out


class WindowArchive:
    """Appends each window to a segment under ``<root>/archive/<topic>/<stream>/<partition>/``.

    The stream's directory name is :func:`stream_directory`'s. Each (topic, stream,
    partition) has one open segment at a time; it is closed, and the next begun,
    once it holds ``segment_bytes`` or is ``segment_seconds`` old. Every process
    begins its own segments, so a torn tail is never followed by valid records.

    Windows appended are durable once :meth:`sync` returns: it fsyncs each segment
    appended to since the last sync (one fsync per segment per poll), then each
    directory a segment was created in. With ``fsync=False`` nothing is flushed to
    disk (for tests and benchmarks that measure everything else).

    With ``retention_hours`` or ``retention_rows``, beginning a segment removes the
    partition's old ones (see :meth:`prune`).

    Parameters
    ----------
    root : pathlib.Path
        The artifact root.
    fsync : bool
        fsync in :meth:`sync`.
    segment_bytes, segment_seconds : int, float
        When a segment is closed.
    retention_hours : float, optional
        Remove segments last written longer ago than this.
    retention_rows : int, optional
        Remove a partition's oldest segments while the newer ones hold this many rows.
    """

    def __init__(
        self,
        root: Path,
        fsync: bool = True,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        segment_seconds: float = SEGMENT_SECONDS,
        retention_hours: float | None = None,
        retention_rows: int | None = None,
    ) -> None:
        if segment_bytes < 1:
            raise ValueError(f"segment_bytes must be positive, got {segment_bytes}")
        if segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be positive, got {segment_seconds}")
        if retention_hours is not None and retention_hours <= 0:
            raise ValueError(f"retention_hours must be positive, got {retention_hours}")
        if retention_rows is not None and retention_rows < 1:
            raise ValueError(f"retention_rows must be positive, got {retention_rows}")
        self.artifact_root = Path(root)
        self.root = self.artifact_root / "archive"
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        self.retention_hours = retention_hours
        self.retention_rows = retention_rows
        self._open: dict[Path, _Segment] = {}
        self._closing: list[_Segment] = []
        self._new_dirs: set[Path] = set()
        self._directories: dict[tuple[str, str, int | None], Path] = {}

    def directory_for(self, topic: str, stream: str, partition: int | None = None) -> Path:
        """The directory of a stream's windows (of one partition, with ``partition``)."""
        key = (topic, stream, partition)
        directory = self._directories.get(key)
        if directory is None:
            # Asked for every window (its name, then its append): built once per key.
            if len(self._directories) >= _DIRECTORIES_KEPT:
                self._directories.clear()
            directory = self.root / topic / stream_directory(stream)
            if partition is not None:
                directory = directory / str(partition)
            self._directories[key] = directory
        return directory

    def path_for(
        self, topic: str, stream: str, partition: int, first_offset: int, last_offset: int
    ) -> Path:
        """A window's name in the per-window layout (``<first>-<last>.csv``).

        No file of that name is written any more; :func:`resolve_window` still finds
        the window by it. :meth:`append` returns the event naming its segment.
        """
        return self.directory_for(topic, stream, partition) / window_file_name(
            first_offset, last_offset
        )

    def append(
        self,
        event: DriftEvent,
        feature_names: Sequence[str],
        offsets: Sequence[int],
        event_times: Sequence[datetime],
        values: np.ndarray,
        labels: Sequence[int | str | None],
        label_column: str,
        seqs: Sequence[int] | None = None,
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> DriftEvent:
        """Append a window's rows and verdict to its partition's open segment.

        The window's topic, partition and stream are the event's.

        Parameters
        ----------
        event : DriftEvent
            The window's verdict.
        feature_names : sequence of str
            Column names of ``values``.
        offsets, event_times, labels : sequence
            Per row: its offset, its event time (timezone-aware) and its label
            (``None`` for an unlabeled row).
        values : numpy.ndarray
            Feature values, shape ``(rows, len(feature_names))``: numbers, codes of
            the categorical features, NaN where a value is missing; no infinity.
        label_column : str
            Name of the label column.
        seqs : sequence of int, optional
            Each row's RowMessage ``seq``, by which late labels join it.
        categories : mapping of str to sequence of str, optional
            The categorical features' strings by code; the record keeps those of the
            codes it uses, so a reader gets the strings back.

        Returns
        -------
        DriftEvent
            The event as archived: its ``archive_path`` names the segment and window
            (``<segment>#<first>-<last>``).

        Raises
        ------
        ValueError
            If the columns disagree in length, a value is infinite, a code is not one of
            its categories' or there is no row.
        """
        window = PendingWindow(
            event, feature_names, offsets, event_times, values, labels, label_column, seqs,
            categories,
        )  # fmt: skip
        (archived,) = self.append_many([window])
        return archived

    def append_many(self, windows: Iterable[WindowRows]) -> list[DriftEvent]:
        """Append windows (a poll's) to their partitions' open segments, in order.

        Each window is appended as :meth:`append` would, to the same segments and
        with the same bytes; each segment's records are written at once, in one write.

        Parameters
        ----------
        windows : iterable of WindowRows
            The windows with what :meth:`append` takes of each.

        Returns
        -------
        list of DriftEvent
            Each window's event as archived (see :meth:`append`), in order.

        Raises
        ------
        ValueError
            As :meth:`append`, for any window: then nothing of the windows is written.
        OSError
            If a write fails: that segment is given up (the next window begins a new
            one), and the windows are not all written; none is durable until
            :meth:`sync`, so they are to be judged again, as after a crash.
        """
        # Every window checked before a segment is begun: refused rows leave nothing behind.
        checked = [
            (
                w.event,
                _RecordRows.of(
                    w.feature_names,
                    w.offsets,
                    w.event_times,
                    w.values,
                    w.labels,
                    w.label_column,
                    w.seqs,
                    w.categories,
                ),
            )
            for w in windows
        ]
        archived = []
        pending: dict[_Segment, list[bytes]] = {}
        try:
            for event, rows in checked:
                window = event.window
                directory = self.directory_for(window.topic, event.stream, window.partition)
                segment = self._segment(directory, window.first_offset)
                wid = window_id(window.first_offset, window.last_offset)
                event = event.model_copy(
                    update={"archive_path": f"{segment.path.as_posix()}#{wid}"}
                )
                record = rows.record(window.first_offset, window.last_offset, event.to_bytes())
                pending.setdefault(segment, []).append(record)
                # Counted now, so the next window rolls the segment as if this one were
                # written; taken back below for what is not.
                segment.size += len(record)
                archived.append(event)
            while pending:
                segment, records = next(iter(pending.items()))
                try:
                    # One write per segment: a write that reaches the disk lets the
                    # loop's thread take the interpreter, so fewer is better.
                    segment.handle.write(b"".join(records))
                except BaseException:
                    self._abandon(segment)
                    raise
                del pending[segment]
                segment.unsynced = True
        finally:
            for segment, records in pending.items():
                segment.size -= sum(map(len, records))
        return archived

    def sync(self) -> None:
        """Make every window appended so far durable: fsync the segments, then new directories."""
        for segment in [*self._open.values(), *self._closing]:
            if segment.unsynced:
                try:
                    segment.handle.flush()
                    if self.fsync:
                        os.fsync(segment.handle.fileno())
                except BaseException:
                    self._abandon(segment)
                    raise
                segment.unsynced = False
        while self._closing:
            self._closing.pop().handle.close()
        while self._new_dirs:
            directory = self._new_dirs.pop()
            if self.fsync:
                fsync_dir(directory)

    def close(self) -> None:
        """Sync, then close every open segment (the next append begins new ones)."""
        self._closing += self._open.values()
        self._open.clear()
        self.sync()

    def _abandon(self, segment: _Segment) -> None:
        """Stop appending to a segment a write failed in: its tail may be torn.

        Readers stop at a torn record, so nothing may follow it; the next window
        begins a new segment.
        """
        self._open = {d: s for d, s in self._open.items() if s is not segment}
        if segment in self._closing:
            self._closing.remove(segment)
        try:
            segment.handle.close()
        except OSError as err:
            logger.warning("archive segment=%s abandoned: %s", segment.path, err)

    def open_segments(self) -> list[Path]:
        """The segments this archive appends to."""
        return sorted(segment.path for segment in self._open.values())

    def _segment(self, directory: Path, first_offset: int) -> _Segment:
        segment = self._open.get(directory)
        now = time.monotonic()
        if segment is not None and (
            segment.size >= self.segment_bytes or now - segment.created >= self.segment_seconds
        ):
            self._closing.append(self._open.pop(directory))
            segment = None
        if segment is None:
            segment = self._open[directory] = self._create(directory, first_offset, now)
            if self.retention_hours is not None or self.retention_rows is not None:
                self.prune(directory)
        return segment

    def _create(self, directory: Path, first_offset: int, now: float) -> _Segment:
        missing = [d for d in (directory, *directory.parents) if not d.exists()]
        directory.mkdir(parents=True, exist_ok=True)
        # The new entries are on disk once their parents are fsynced.
        self._new_dirs.update(d.parent for d in missing)
        self._new_dirs.add(directory)
        while True:
            seq = 1 + max((s for s, _ in _segment_names(directory)), default=0)
            path = directory / f"{seq:08d}-{first_offset:0{_OFFSET_DIGITS}d}.seg"
            try:
                # Exclusive: two writers never share a segment, even racing for a name.
                handle = open(path, "xb")  # noqa: SIM115 - closed in sync() after its last poll
            except FileExistsError:
                continue
            logger.debug("archive segment=%s begun", path)
            return _Segment(path, handle, now)

    def prune(self, directory: Path, now: float | None = None) -> list[Path]:
        """Remove a partition directory's old segments by the retention settings.

        A segment goes when it was last written more than ``retention_hours`` ago, or
        when the newer segments hold ``retention_rows`` rows without it. Never removed:
        a segment this archive appends to (or closed but not yet synced), the newest
        segment, and any segment a registered model version's lineage names
        (``training_windows``).

        Returns
        -------
        list of pathlib.Path
            The segments removed, each logged.
        """
        when = time.time() if now is None else now
        names = sorted(_segment_names(directory))
        if len(names) < 2:
            return []
        try:
            protected = lineage_segments(self.artifact_root)
        except ArchiveError as err:
            # Without the lineage, no segment is known to be free to go.
            logger.warning("archive retention skipped directory=%s: %s", directory, err)
            return []
        # A segment closed in this poll is not yet synced: append_many may still be
        # holding its last windows, written only after the poll's segments are chosen.
        open_paths = {segment.path for segment in (*self._open.values(), *self._closing)}
        segments = [directory / name for _, name in names]
        rows_after = 0
        removed = []
        # Newest first: the rows kept so far decide whether an older segment is needed.
        for index, path in enumerate(reversed(segments)):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            age_hours = (when - stat.st_mtime) / 3600
            reason = None
            if self.retention_hours is not None and age_hours > self.retention_hours:
                reason = f"older than {self.retention_hours} h"
            elif self.retention_rows is not None and rows_after >= self.retention_rows:
                reason = f"{rows_after} newer rows kept (retention_rows={self.retention_rows})"
            if (
                reason is None
                or index == 0
                or path in open_paths
                or _archive_key(path) in protected
            ):
                if self.retention_rows is not None and rows_after < self.retention_rows:
                    # Read only while the rows kept are short of the setting.
                    rows_after += sum(head.rows for head in _scan(path))
                continue
            path.unlink()
            removed.append(path)
            logger.info(
                "archive retention removed segment=%s bytes=%d age_h=%.2f reason=%s",
                path,
                stat.st_size,
                age_hours,
                reason,
            )
        if removed and self.fsync:
            fsync_dir(directory)
        return removed


def _archive_key(path: Path) -> tuple[str, ...]:
    """A segment's place in any archive: topic, stream, partition and name."""
    return Path(path).parts[-4:]


def lineage_segments(root: Path) -> set[tuple[str, ...]]:
    """The segments the registered model versions' lineage names, as :func:`_archive_key`."""
    from models.registry import Registry, RegistryError

    registry_root = Path(root) / "registry"
    found: set[tuple[str, ...]] = set()
    try:
        names = sorted(p.name for p in registry_root.iterdir() if p.is_dir())
    except FileNotFoundError:
        return found
    for name in names:
        try:
            versions = Registry(Path(root), name).versions()
        except (RegistryError, ValueError) as err:
            # Keeping every segment is the safe side of a registry that cannot be read.
            raise ArchiveError(f"cannot read the lineage of model {name!r}: {err}") from err
        for meta in versions:
            for window in meta.training_windows:
                segment, sep, _ = window.partition("#")
                if sep:
                    found.add(_archive_key(Path(segment)))
    return found


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Head:
    position: int
    length: int
    first: int
    last: int
    rows: int


def _segment_names(directory: Path) -> list[tuple[int, str]]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [(int(m.group(1)), name) for name in names if (m := _SEGMENT_FILE.fullmatch(name))]


def _scan(path: Path, data: bytes | None = None, magic: bytes = _MAGIC) -> list[_Head]:
    """The valid records of a segment, in order; the scan stops at a torn or damaged one."""
    if data is None:
        data = _read_segment(path)
    heads = []
    position, size = 0, len(data)
    while position + HEAD_SIZE <= size:
        found, length, crc, first, last, rows = _HEAD.unpack_from(data, position)
        (head_crc,) = _HEAD_CRC.unpack_from(data, position + _HEAD.size)
        start, end = position + HEAD_SIZE, position + HEAD_SIZE + length
        if (
            found != magic
            or head_crc != zlib.crc32(data[position : position + _HEAD.size])
            or end > size
            or zlib.crc32(data[start:end]) != crc
        ):
            break
        heads.append(_Head(position, HEAD_SIZE + length, first, last, rows))
        position = end
    if position != size:
        # A poll killed before its fsync, or one being appended as this reads: either
        # way its windows are not committed yet, and will be whole or judged again.
        logger.info(
            "archive segment=%s ignoring %d byte(s) after its last whole record at byte %d "
            "(torn tail, or a poll still being written)",
            path,
            size - position,
            position,
        )
    return heads


def archived_windows(root: Path, topic: str, stream: str, partition: int) -> list[ArchivedWindow]:
    """The archived windows of a stream in a partition, each once, in order of first offset.

    Segments are read in the order they were begun, after any per-window files; a
    window archived more than once (judged again after a crash) is its last record.
    """
    directory = WindowArchive(root, fsync=False).directory_for(topic, stream, partition)
    return _windows_in(directory, partition)


def _windows_in(directory: Path, partition: int) -> list[ArchivedWindow]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found: dict[tuple[int, int], ArchivedWindow] = {}
    for name in sorted(names):
        if match := _WINDOW_FILE.fullmatch(name):
            first, last = int(match.group(1)), int(match.group(2))
            found[(first, last)] = ArchivedWindow(directory / name, partition, first, last)
    for _, name in sorted(_segment_names(directory)):
        path = directory / name
        for head in _scan(path):
            found[(head.first, head.last)] = ArchivedWindow(
                path, partition, head.first, head.last, head.position, head.length
            )
    return [found[key] for key in sorted(found)]


def archived_partitions(root: Path, topic: str, stream: str) -> list[int]:
    """The partitions a stream has archived windows from, in order."""
    directory = WindowArchive(root, fsync=False).directory_for(topic, stream)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(name) for name in names if name.isdigit())


def archived_streams(root: Path, topic: str) -> list[str]:
    """The stream directories (:func:`stream_directory`) of a topic's archive, in order."""
    directory = WindowArchive(root, fsync=False).root / topic
    try:
        return sorted(p.name for p in directory.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []


def all_windows(root: Path, topic: str) -> list[ArchivedWindow]:
    """Every archived window of a topic, each once: by stream directory, partition, offset."""
    windows = []
    for stream_dir in archived_streams(root, topic):
        for _, found in partition_windows(root, topic, stream_dir):
            windows += found
    return windows


def partition_windows(
    root: Path, topic: str, stream_dir: str
) -> list[tuple[int, list[ArchivedWindow]]]:
    """Each partition of a stream, by its directory (:func:`stream_directory`), with its
    archived windows as :func:`archived_windows` gives them."""
    base = WindowArchive(root, fsync=False).root / topic / stream_dir
    try:
        partitions = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit())
    except FileNotFoundError:
        return []
    return [(p, _windows_in(base / str(p), p)) for p in partitions]


@dataclass(frozen=True)
class ArchivedVerdict:
    """One window's verdict: its JSON and where it was read from (for messages)."""

    source: str
    data: bytes


def archived_verdicts(root: Path, topic: str | None = None) -> list[ArchivedVerdict]:
    """Every archived verdict, of one topic or of all, each window's once, in path order.

    A per-window ``.json`` whose window is also in a segment yields the segment's.
    A damaged per-window file is returned as it is (the caller decides what to skip);
    a torn segment record is never returned.
    """
    base = WindowArchive(root, fsync=False).root
    topics = (
        [topic]
        if topic is not None
        else sorted(p.name for p in base.iterdir() if p.is_dir())
        if base.is_dir()
        else []
    )
    found: list[ArchivedVerdict] = []
    for name in topics:
        for stream_dir in sorted(p for p in (base / name).glob("*/*") if p.is_dir()):
            found += _verdicts_in(stream_dir)
    return found


def _verdicts_in(directory: Path) -> list[ArchivedVerdict]:
    by_window: dict[tuple[int, int] | str, ArchivedVerdict] = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            path = directory / name
            match = _VERDICT_FILE.fullmatch(name)
            key: tuple[int, int] | str = (
                (int(match.group(1)), int(match.group(2))) if match else name
            )
            try:
                data = path.read_bytes()
            except OSError:
                data = b""
            by_window[key] = ArchivedVerdict(str(path), data)
    for _, name in sorted(_segment_names(directory)):
        path = directory / name
        try:
            data = path.read_bytes()
        except OSError as err:
            logger.warning("skipping unreadable archive segment=%s reason=%s", path, err)
            continue
        for head in _scan(path, data):
            record = data[head.position : head.position + head.length]
            parts = _parts(record, f"{path}#{window_id(head.first, head.last)}")
            by_window[(head.first, head.last)] = ArchivedVerdict(
                f"{path.as_posix()}#{window_id(head.first, head.last)}", parts.verdict
            )
    return list(by_window.values())


def resolve_window(reference: str | Path) -> ArchivedWindow:
    """The archived window a lineage name or an event's ``archive_path`` names.

    ``<segment>#<first>-<last>`` names a record; ``.../<partition>/<first>-<last>.csv``
    names a per-window file, or, where no such file is, the window's last record
    in that partition's segments.

    Raises
    ------
    ArchiveError
        If the window is not archived (any more).
    """
    text = Path(reference).as_posix() if isinstance(reference, Path) else reference
    segment, sep, wid = text.partition("#")
    path = Path(segment)
    if sep:
        directory, first_last = path.parent, wid
    else:
        match = _WINDOW_FILE.fullmatch(path.name)
        if match is None:
            raise ArchiveError(f"not an archived window's name: {text!r}")
        directory, first_last = path.parent, f"{match.group(1)}-{match.group(2)}"
    partition = _partition_of(directory / "x")
    first, _, last = first_last.partition("-")
    try:
        key = (int(first), int(last))
    except ValueError:
        raise ArchiveError(f"not an archived window's name: {text!r}") from None
    if not sep and path.is_file():
        return ArchivedWindow(path, partition, *key)
    candidates = [path] if sep else [directory / n for _, n in sorted(_segment_names(directory))]
    found = None
    for candidate in candidates:
        if candidate.is_file():
            for head in _scan(candidate):
                if (head.first, head.last) == key:
                    found = ArchivedWindow(
                        candidate, partition, head.first, head.last, head.position, head.length
                    )
    if found is None:
        raise ArchiveError(f"archived window {text} not found (removed, or never archived)")
    return found


@dataclass(frozen=True)
class _Parts:
    meta: dict[str, Any]
    offsets: np.ndarray
    values: np.ndarray
    times: bytes
    labels: bytes
    verdict: bytes
    seqs: np.ndarray | None = None


def _parts(record: bytes, where: str) -> _Parts:
    """A record's payload split into its parts (checksums already checked)."""
    try:
        _, _, _, _, _, rows = _HEAD.unpack_from(record, 0)
        newline = record.index(b"\n", HEAD_SIZE)
        meta = json.loads(record[HEAD_SIZE:newline])
        width = len(meta["features"])
        at = newline + 1
        offsets = np.frombuffer(record, dtype="<i8", count=rows, offset=at)
        at += 8 * rows
        values = np.frombuffer(record, dtype="<f8", count=rows * width, offset=at)
        at += 8 * rows * width
        sizes = meta["parts"]
        times = record[at : at + sizes[0]]
        labels = record[at + sizes[0] : at + sizes[0] + sizes[1]]
        verdict = record[at + sizes[0] + sizes[1] : at + sizes[0] + sizes[1] + sizes[2]]
        seqs = None
        if "seqs" in meta:
            at += sizes[0] + sizes[1] + sizes[2]
            seqs = np.frombuffer(record, dtype="<i8", count=rows, offset=at)
    except (ValueError, KeyError, TypeError, IndexError, struct.error) as err:
        raise ArchiveError(f"archived window {where} is malformed: {err}") from err
    return _Parts(meta, offsets, values.reshape(rows, width), times, labels, verdict, seqs)


class _Reader:
    """Reads records, keeping the segment last read in memory (windows come in file order)."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._data = b""

    def record(self, window: ArchivedWindow) -> bytes:
        if self._path != window.path:
            try:
                self._data = window.path.read_bytes()
            except OSError as err:
                raise ArchiveError(f"cannot read archived window {window}: {err}") from err
            self._path = window.path
        assert window.position is not None
        record = self._data[window.position : window.position + window.length]
        if len(record) != window.length or not _scan(window.path, record):
            raise ArchiveError(f"archived window {window} is missing or damaged")
        return record


def read_window(window: ArchivedWindow) -> WindowRecord:
    """One archived window's rows and verdict, whatever the layout.

    Raises
    ------
    ArchiveError
        If the window cannot be read or is malformed.
    """
    return _record(window, _Reader())


def _record(window: ArchivedWindow, reader: _Reader) -> WindowRecord:
    if window.in_segment:
        parts = _parts(reader.record(window), str(window))
        try:
            times = json.loads(parts.times)
            labels = json.loads(parts.labels)
        except ValueError as err:
            raise ArchiveError(f"archived window {window} is malformed: {err}") from err
        return WindowRecord(
            offsets=parts.offsets,
            event_times=times,
            values=parts.values,
            labels=["" if label is None else label.strip() for label in labels],
            feature_names=list(parts.meta["features"]),
            label_column=parts.meta["label_column"],
            verdict=parts.verdict,
            seqs=parts.seqs,
            categories={
                str(k): [str(v) for v in vs] for k, vs in parts.meta.get("categories", {}).items()
            },
        )
    return _read_window_file(window.path)


def raw_windows(windows: Iterable[ArchivedWindow]) -> Iterator[bytes]:
    """Each window's archived bytes: its record, or its ``.csv`` (for digests of lineage).

    Raises
    ------
    ArchiveError
        If a window cannot be read.
    """
    reader = _Reader()
    for window in windows:
        if window.in_segment:
            yield reader.record(window)
            continue
        try:
            yield window.path.read_bytes()
        except OSError as err:
            raise ArchiveError(f"cannot read archived window {window}: {err}") from err


def select_windows(
    windows: Sequence[ArchivedWindow], drift_first_offset: int, lookback: int
) -> list[ArchivedWindow]:
    """The windows to train on: ``lookback`` windows before the drift window, and all after.

    Parameters
    ----------
    windows : sequence of ArchivedWindow
        Archived windows of one partition, in any order.
    drift_first_offset : int
        First offset of the drifted window.
    lookback : int
        How many windows starting before it to include.

    Returns
    -------
    list of ArchivedWindow
        In order of first offset.

    Examples
    --------
    >>> windows = [ArchivedWindow(Path("1.seg"), 0, f, f + 49, f, 1) for f in range(0, 400, 50)]
    >>> [w.first_offset for w in select_windows(windows, 200, 2)]
    [100, 150, 200, 250, 300, 350]
    >>> [w.first_offset for w in select_windows(windows, 200, 0)]
    [200, 250, 300, 350]
    """
    ordered = sorted(windows, key=lambda w: (w.first_offset, w.last_offset))
    before = [w for w in ordered if w.first_offset < drift_first_offset]
    after = [w for w in ordered if w.first_offset >= drift_first_offset]
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
        Shape ``(rows, len(feature_names))``: float64 (NaN where missing) when every
        feature is numeric; with ``categorical`` features, an object array of floats
        for the numeric ones and strings (None where missing) for the categorical.
    labels : list of str
        Labels as written in the archive.
    feature_names : list of str
        Column order of ``features``.
    categorical : tuple of str
        The features whose values are strings: those the windows' records name as
        categorical.
    """

    partitions: np.ndarray
    offsets: np.ndarray
    features: np.ndarray
    labels: list[str]
    feature_names: list[str]
    categorical: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)


def read_labeled_rows(
    windows: Iterable[ArchivedWindow],
    feature_names: Sequence[str],
    label_column: str,
    late: LateLabels | None = None,
) -> LabeledRows:
    """Read the labeled rows of archived windows, each row once, ordered by event time.

    Sliding windows overlap, so a row may be archived more than once; it is kept once.
    A row's label is its archived one, else its late label in ``late`` (joined by its
    stream and seq); a row with neither is left out.

    Raises
    ------
    ArchiveError
        If a window lacks a feature or the label column, or holds a malformed cell.
    """
    # Rows are gathered as arrays and placed by index: a Python list per row would
    # cost several times the reading (the garbage collector walks every one).
    first_seen: dict[tuple[int, int], int] = {}
    chunks: list[tuple[np.ndarray, dict[str, list[str]]]] = []
    labels: list[str] = []
    times: list[str] = []
    for window, offsets, values, window_labels, window_times, categories in _labeled(
        windows, feature_names, label_column, late
    ):
        base = len(labels)
        chunks.append((values, categories))
        labels += window_labels
        times += window_times
        for i, offset in enumerate(offsets):
            first_seen.setdefault((window.partition, offset), base + i)
    order = sorted(first_seen.items(), key=lambda item: (_event_time(times[item[1]]), item[0]))
    rows = np.array([index for _, index in order], dtype=np.int64)
    width = len(feature_names)
    named = {name for _, categories in chunks for name in categories}
    categorical = tuple(name for name in feature_names if name in named)
    if categorical:
        # Codes are a record's own: each window's are turned into strings by its record.
        parts = [_as_cells(values, feature_names, categories) for values, categories in chunks]
        table = np.concatenate(parts) if parts else np.empty((0, width), dtype=object)
        features = table[rows].reshape(len(rows), width)
    else:
        numbers = np.concatenate([v for v, _ in chunks]) if chunks else np.empty((0, width))
        features = np.ascontiguousarray(numbers[rows].reshape(len(rows), width), dtype=np.float64)
    return LabeledRows(
        partitions=np.array([key[0] for key, _ in order], dtype=np.int64),
        offsets=np.array([key[1] for key, _ in order], dtype=np.int64),
        features=features,
        labels=[labels[i] for i in rows.tolist()],
        feature_names=list(feature_names),
        categorical=categorical,
    )


def _as_cells(
    values: np.ndarray, feature_names: Sequence[str], categories: dict[str, list[str]]
) -> np.ndarray:
    """A window's values as an object array, its categorical features' codes as strings."""
    out = np.empty(values.shape, dtype=object)
    for j, name in enumerate(feature_names):
        if name in categories:
            try:
                out[:, j] = decode_column(values[:, j], categories[name])
            except ValueError as err:
                raise ArchiveError(f"archived window: feature {name!r}: {err}") from err
        else:
            out[:, j] = values[:, j].tolist()
    return out


def count_labeled_rows(
    windows: Iterable[ArchivedWindow], label_column: str, late: LateLabels | None = None
) -> int:
    """Labeled rows (distinct partition and offset) in archived windows.

    A row counts with its archived label or its late label in ``late``.

    Raises
    ------
    ArchiveError
        If a window lacks the label column or holds a malformed offset.
    """
    rows: set[tuple[int, int]] = set()
    for window, offsets, _, _, _, _ in _labeled(windows, (), label_column, late):
        rows.update((window.partition, offset) for offset in offsets)
    return len(rows)


def first_event_time(window: ArchivedWindow) -> datetime:
    """The event time of an archived window's first row.

    Raises
    ------
    ArchiveError
        If the window is empty, unreadable or its event time malformed.
    """
    times = read_window(window).event_times
    if not times:
        raise ArchiveError(f"archived window {window} holds no rows")
    return _event_time(times[0], window)


def _labeled(
    windows: Iterable[ArchivedWindow],
    feature_names: Sequence[str],
    label_column: str,
    late: LateLabels | None = None,
) -> Iterator[
    tuple[ArchivedWindow, list[int], np.ndarray, list[str], list[str], dict[str, list[str]]]
]:
    """Per window: the offsets, chosen feature values, labels and times of its labeled rows,
    and the categories of the chosen features that are categorical."""
    reader = _Reader()
    for window in windows:
        record = _record(window, reader)
        missing = [c for c in feature_names if c not in record.feature_names]
        if label_column != record.label_column:
            missing.append(label_column)
        if missing:
            raise ArchiveError(f"archived window {window} lacks column(s) {', '.join(missing)}")
        columns = [record.feature_names.index(name) for name in feature_names]
        labels = joined_labels(record, window, late)
        keep = [i for i, label in enumerate(labels) if label]
        values = record.values[np.ix_(keep, columns)] if keep else np.empty((0, len(columns)))
        yield (
            window,
            record.offsets[keep].tolist(),
            values,
            [labels[i] for i in keep],
            [record.event_times[i] for i in keep],
            {name: record.categories[name] for name in feature_names if name in record.categories},
        )


def joined_labels(
    record: WindowRecord, window: ArchivedWindow, late: LateLabels | None
) -> list[str]:
    """Each row's label: its archived one, else its late label, else ``""`` (unlabeled).

    Only records with seqs can be joined; the stream is the window's directory.
    """
    known = (
        None if late is None or record.seqs is None else late.get(window.path.parent.parent.name)
    )
    if not known:
        return record.labels
    assert record.seqs is not None
    return [
        label or known.get(seq, "")
        for label, seq in zip(record.labels, record.seqs.tolist(), strict=True)
    ]


def _read_window_file(path: Path) -> WindowRecord:
    """A per-window ``.csv`` (and its ``.json`` verdict, if there is one), read whole."""
    try:
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None) or []
            if header[:2] != ["offset", "event_time"] or len(header) < 3:
                raise ArchiveError(f"archived window {path} lacks column(s) offset, event_time")
            names, label_column = header[2:-1], header[-1]
            offsets, times, values, labels = [], [], [], []
            for line, row in enumerate(reader, start=2):
                try:
                    if len(row) != len(header):
                        raise ValueError(f"{len(row)} cells, {len(header)} columns")
                    offsets.append(int(row[0]))
                    times.append(row[1])
                    values.append([float(cell) for cell in row[2:-1]])
                    labels.append(row[-1].strip())
                except ValueError as err:
                    raise ArchiveError(f"archived window {path} line {line}: {err}") from err
        verdict_path = path.with_suffix(".json")
        verdict = verdict_path.read_bytes() if verdict_path.is_file() else None
    except OSError as err:
        raise ArchiveError(f"cannot read archived window {path}: {err}") from err
    return WindowRecord(
        offsets=np.array(offsets, dtype=np.int64),
        event_times=times,
        values=np.array(values, dtype=np.float64).reshape(len(offsets), len(names)),
        labels=labels,
        feature_names=names,
        label_column=label_column,
        verdict=verdict,
    )


def _event_time(text: str, window: ArchivedWindow | None = None) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError as err:
        raise ArchiveError(f"archived window {window}: {err}") from err
    if when.tzinfo is None:
        raise ArchiveError(f"archived window {window}: event time {text!r} has no time zone")
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
