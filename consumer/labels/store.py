"""The label store: every label that came on the labels topic, durable and append-only.

Layout under ``<root>/labels/<labels topic>/<stream>/`` (the stream's directory is
:func:`consumer.archive.stream_directory`'s): segments ``<seq>.seg``, each process
beginning its own, of records framed as the window archive's (its head, both CRC-32
checksums and its torn-tail rule, :func:`consumer.archive.frame_record`) with the
magic ``b"DLL1"`` and a JSON payload of one kind:

- ``{"labels": [{"seq", "label", "event_time", "partition", "offset", "value"}, ...]}``:
  labels taken, with where they were read and their wire bytes (``value``, for a
  dead letter later); a later label for a seq replaces an earlier one (a correction);
- ``{"unknown": [seq, ...]}``: labels dead-lettered as ``unknown-row``;
- ``{"accuracy": {...}}``: a window's late accuracy, reported (:class:`LateAccuracy`).

Readers read segments in the order they were begun and records in order: the last
word on a seq wins.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from consumer.archive import (
    ArchiveError,
    LateLabels,
    frame_record,
    framed_payloads,
    stream_directory,
)
from data.durable import fsync_dir
from producer.messages import LabelMessage

logger = logging.getLogger(__name__)

MAGIC = b"DLL1"
"""The label store's record kind (window records are ``DLW1``)."""

Outcome = Literal["new", "duplicate", "correction"]
"""What a label taken was: first for its row, the same again, or a different label."""


@dataclass(frozen=True)
class StoredLabel:
    """A label as the store keeps it."""

    seq: int
    label: int | str
    event_time: str
    partition: int
    offset: int
    value: str
    """The message's wire bytes, as UTF-8 text."""


class LateAccuracy(BaseModel):
    """The champion's accuracy on an archived window, once enough of its labels came."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    window: str
    """The window's archive name (``<segment>#<first>-<last>``)."""
    stream: str
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    model_name: str
    model_version: int
    """The version named in the window's verdict: the one that judged it."""
    accuracy: float
    labeled: int
    """Rows with a label (archived or late) the accuracy is over."""
    size: int
    """Rows of the window."""
    reported_at: AwareDatetime


@dataclass
class StreamLabels:
    """What the store holds for one stream."""

    labels: dict[int, StoredLabel] = field(default_factory=dict)
    unknown: set[int] = field(default_factory=set)
    accuracy: dict[str, LateAccuracy] = field(default_factory=dict)


@dataclass(eq=False)
class _Open:
    path: Path
    handle: IO[bytes]
    unsynced: bool = False


class LabelStore:
    """Appends labels, unknown-row marks and late accuracies; reads them back.

    Windows of the store are held in memory per stream (loaded on first use), so
    :meth:`add` knows a duplicate from a correction. Nothing is durable until
    :meth:`sync` returns (one fsync per segment appended to).

    Parameters
    ----------
    root : pathlib.Path
        The artifact root.
    topic : str
        The labels topic.
    fsync : bool
        fsync in :meth:`sync` (off for tests that measure everything else).
    """

    def __init__(self, root: Path, topic: str, fsync: bool = True) -> None:
        if not topic or "/" in topic or topic in (".", ".."):
            raise ValueError(f"topic must be a topic name, got {topic!r}")
        self.root = Path(root) / "labels" / topic
        self.fsync = fsync
        self._streams: dict[str, StreamLabels] = {}
        self._open: dict[str, _Open] = {}
        self._new_dirs: set[Path] = set()

    def streams(self) -> list[str]:
        """The stream directories the store holds anything for, in order."""
        try:
            return sorted(p.name for p in self.root.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def of(self, stream_dir: str) -> StreamLabels:
        """What the store holds for a stream (by its directory name), read once."""
        held = self._streams.get(stream_dir)
        if held is None:
            held = self._streams[stream_dir] = read_stream(self.root / stream_dir)
        return held

    def add(
        self, labels: Iterable[tuple[LabelMessage, int, int, bytes]]
    ) -> list[tuple[LabelMessage, Outcome, StoredLabel | None]]:
        """Take labels (each with its partition, offset and wire bytes).

        The same label again for a seq is a duplicate, kept once (not appended); a
        different one is a correction, appended, and the later wins.

        Returns
        -------
        list of (LabelMessage, outcome, the label it replaced or repeated)
        """
        out: list[tuple[LabelMessage, Outcome, StoredLabel | None]] = []
        fresh: dict[str, list[StoredLabel]] = {}
        for message, partition, offset, value in labels:
            stream_dir = stream_directory(message.stream)
            held = self.of(stream_dir)
            before = held.labels.get(message.seq)
            if before is not None and _same(before.label, message.label):
                out.append((message, "duplicate", before))
                continue
            stored = StoredLabel(
                message.seq,
                message.label,
                message.event_time.isoformat(),
                partition,
                offset,
                value.decode("utf-8", "backslashreplace"),
            )
            held.labels[message.seq] = stored
            held.unknown.discard(message.seq)
            fresh.setdefault(stream_dir, []).append(stored)
            out.append((message, "new" if before is None else "correction", before))
        for stream_dir, stored_labels in fresh.items():
            seqs = [s.seq for s in stored_labels]
            self._append(
                stream_dir,
                {"labels": [_label_json(s) for s in stored_labels]},
                min(seqs),
                max(seqs),
                len(seqs),
            )
        return out

    def mark_unknown(self, stream_dir: str, seqs: list[int]) -> None:
        """Note labels dead-lettered as ``unknown-row``: they are no longer waited on."""
        if seqs:
            self.of(stream_dir).unknown.update(seqs)
            self._append(stream_dir, {"unknown": seqs}, min(seqs), max(seqs), len(seqs))

    def record_accuracy(self, stream_dir: str, point: LateAccuracy) -> None:
        """Note a window's late accuracy as reported."""
        self.of(stream_dir).accuracy[point.window] = point
        self._append(
            stream_dir,
            {"accuracy": point.model_dump(mode="json")},
            point.first_offset,
            point.last_offset,
            point.size,
        )

    def sync(self) -> None:
        """Make everything appended durable: fsync the segments, then new directories."""
        for segment in self._open.values():
            if segment.unsynced:
                segment.handle.flush()
                if self.fsync:
                    os.fsync(segment.handle.fileno())
                segment.unsynced = False
        while self._new_dirs:
            directory = self._new_dirs.pop()
            if self.fsync:
                fsync_dir(directory)

    def close(self) -> None:
        """Sync, then close the segments."""
        self.sync()
        while self._open:
            self._open.popitem()[1].handle.close()

    def _append(
        self, stream_dir: str, payload: dict[str, Any], first: int, last: int, rows: int
    ) -> None:
        segment = self._open.get(stream_dir)
        if segment is None:
            segment = self._open[stream_dir] = self._begin(self.root / stream_dir)
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        segment.handle.write(frame_record(MAGIC, data, first, last, rows))
        segment.unsynced = True

    def _begin(self, directory: Path) -> _Open:
        missing = [d for d in (directory, *directory.parents) if not d.exists()]
        directory.mkdir(parents=True, exist_ok=True)
        self._new_dirs.update(d.parent for d in missing)
        self._new_dirs.add(directory)
        while True:
            seq = 1 + max((n for n, _ in _segments(directory)), default=0)
            path = directory / f"{seq:08d}.seg"
            try:
                # Exclusive: a torn tail another process left is never followed by records.
                handle = open(path, "xb")  # noqa: SIM115 - closed in close()
            except FileExistsError:
                continue
            logger.debug("label store segment=%s begun", path)
            return _Open(path, handle)


def read_stream(directory: Path) -> StreamLabels:
    """Everything the store holds for a stream's directory; the last word on a seq wins.

    Raises
    ------
    consumer.archive.ArchiveError
        If a segment cannot be read or holds a record that is not the store's JSON.
    """
    held = StreamLabels()
    for _, name in sorted(_segments(directory)):
        path = directory / name
        for payload in framed_payloads(path, MAGIC):
            try:
                record = json.loads(payload)
                for entry in record.get("labels", ()):
                    stored = StoredLabel(**entry)
                    held.labels[stored.seq] = stored
                    held.unknown.discard(stored.seq)
                held.unknown.update(record.get("unknown", ()))
                if "accuracy" in record:
                    point = LateAccuracy.model_validate(record["accuracy"])
                    held.accuracy[point.window] = point
            except (ValueError, TypeError, AttributeError) as err:
                raise ArchiveError(
                    f"label store segment {path} holds a malformed record: {err}"
                ) from err
    return held


def late_labels(root: Path, topic: str) -> LateLabels:
    """Every stored label of a labels topic, as the archive's readers join them.

    Returns
    -------
    consumer.archive.LateLabels
        Stream directory to seq to the label's text (as a row's archived label reads).
    """
    store = LabelStore(root, topic, fsync=False)
    return {
        stream_dir: {seq: str(s.label) for seq, s in store.of(stream_dir).labels.items()}
        for stream_dir in store.streams()
    }


def late_accuracies(root: Path) -> list[LateAccuracy]:
    """Every late accuracy reported, of every labels topic under ``root``."""
    base = Path(root) / "labels"
    try:
        topics = sorted(p.name for p in base.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []
    points: list[LateAccuracy] = []
    for topic in topics:
        store = LabelStore(root, topic, fsync=False)
        for stream_dir in store.streams():
            points += store.of(stream_dir).accuracy.values()
    return points


def _same(a: int | str, b: int | str) -> bool:
    # 1 and "1" are different labels; 1 == 1.0 cannot arise (labels are int or str).
    return type(a) is type(b) and a == b


def _label_json(stored: StoredLabel) -> dict[str, Any]:
    return {
        "seq": stored.seq,
        "label": stored.label,
        "event_time": stored.event_time,
        "partition": stored.partition,
        "offset": stored.offset,
        "value": stored.value,
    }


def _segments(directory: Path) -> list[tuple[int, str]]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [(int(n[:-4]), n) for n in names if n.endswith(".seg") and n[:-4].isdigit()]
