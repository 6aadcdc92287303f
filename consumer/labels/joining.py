"""Joining labels to archived rows: late accuracy per window, and labels for no row.

A label names its row by stream and seq. Rows are archived with their seqs
(:class:`consumer.archive.WindowRecord`), so a stored label joins every archived row
of its stream with its seq, whichever came first. A stream's seqs grow within a
partition, so once every partition of the rows topic has archived a row of the stream
with a larger seq, a label whose seq was never archived names a row that cannot come
any more: it is dead-lettered as ``unknown-row``. Until then it waits in the store.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from consumer.archive import (
    ArchivedWindow,
    ArchiveError,
    archived_streams,
    joined_labels,
    partition_windows,
    read_window,
)
from consumer.labels.metrics import LabelMetrics
from consumer.labels.store import LabelStore, LateAccuracy, StoredLabel
from models.registry import LoadedModel, Registry, RegistryError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Pending:
    """An archived window some of whose rows came without a label."""

    window: ArchivedWindow
    stream: str
    stream_dir: str
    topic: str
    model_name: str
    model_version: int
    size: int
    labeled: int
    """Rows archived with their label."""
    waiting: frozenset[int]
    """Seqs of the rows archived without one."""


class LabelJoiner:
    """Finds archived windows, joins stored labels to them, and reports late accuracy.

    Parameters
    ----------
    root : pathlib.Path
        The artifact root (the window archive and the label store under it).
    rows_topic : str
        The rows topic whose archive is joined.
    store : LabelStore
        The labels.
    metrics : LabelMetrics
        Where the counts and the last late accuracy go.
    min_labeled_share : float
        Share of a window's rows that must be labeled before its accuracy is reported.
    """

    def __init__(
        self,
        root: Path,
        rows_topic: str,
        store: LabelStore,
        metrics: LabelMetrics,
        min_labeled_share: float = 1.0,
    ) -> None:
        if not 0 < min_labeled_share <= 1:
            raise ValueError(f"min_labeled_share must be in (0, 1], got {min_labeled_share}")
        self.root = Path(root)
        self.rows_topic = rows_topic
        self.store = store
        self.metrics = metrics
        self.min_labeled_share = min_labeled_share
        self._seen: set[tuple[str, int, int, int, str]] = set()
        self._archived: dict[str, set[int]] = {}
        self._top: dict[str, dict[int, int]] = {}
        self._pending: dict[tuple[str, int, int, int], _Pending] = {}
        self._models: dict[tuple[str, int], LoadedModel] = {}

    def scan(self) -> int:
        """Read the windows archived since the last scan; how many were new."""
        new = 0
        for stream_dir in archived_streams(self.root, self.rows_topic):
            for partition, windows in partition_windows(self.root, self.rows_topic, stream_dir):
                for window in windows:
                    key = (stream_dir, partition, window.first_offset, window.last_offset)
                    if (*key, str(window)) in self._seen:
                        continue
                    self._seen.add((*key, str(window)))
                    new += 1
                    self._take(stream_dir, partition, window)
        return new

    def _take(self, stream_dir: str, partition: int, window: ArchivedWindow) -> None:
        try:
            record = read_window(window)
        except ArchiveError as err:
            logger.warning("cannot join labels to window=%s: %s", window, err)
            return
        if record.seqs is None or record.verdict is None:
            return  # archived before seqs were: no label can join it
        seqs = record.seqs.tolist()
        self._archived.setdefault(stream_dir, set()).update(seqs)
        top = self._top.setdefault(stream_dir, {})
        top[partition] = max(top.get(partition, -1), max(seqs, default=-1))
        key = (stream_dir, partition, window.first_offset, window.last_offset)
        verdict = json.loads(record.verdict)
        waiting = frozenset(s for s, label in zip(seqs, record.labels, strict=True) if not label)
        if not waiting or str(window) in self.store.of(stream_dir).accuracy:
            self._pending.pop(key, None)
            return
        self._pending[key] = _Pending(
            window,
            verdict["stream"],
            stream_dir,
            self.rows_topic,
            verdict["model_name"],
            int(verdict["model_version"]),
            len(seqs),
            len(seqs) - len(waiting),
            waiting,
        )

    def report(self) -> list[LateAccuracy]:
        """Report each waiting window whose labels have come (see ``min_labeled_share``)."""
        points = []
        for key, pending in list(self._pending.items()):
            labels = self.store.of(pending.stream_dir).labels
            arrived = sum(1 for seq in pending.waiting if seq in labels)
            if (pending.labeled + arrived) < self.min_labeled_share * pending.size:
                continue
            try:
                point = self._accuracy(pending, labels)
            except (ArchiveError, RegistryError, ValueError) as err:
                logger.warning("no late accuracy for window=%s: %s", pending.window, err)
                del self._pending[key]
                continue
            del self._pending[key]
            self.store.record_accuracy(pending.stream_dir, point)
            self.metrics.late_windows.inc()
            self.metrics.late_accuracy.labels(stream=pending.stream).set(point.accuracy)
            logger.info(
                "window=%s stream=%s late accuracy=%.3f labeled=%d/%d model=%s:v%d",
                f"{pending.topic}/{pending.window.partition}/{pending.window.first_offset}",
                pending.stream,
                point.accuracy,
                point.labeled,
                point.size,
                point.model_name,
                point.model_version,
            )
            points.append(point)
        self.metrics.waiting.set(sum(len(w) for w in self.waiting().values()))
        return points

    def waiting(self) -> dict[str, list[StoredLabel]]:
        """Per stream directory, the stored labels no archived row has joined yet."""
        out = {}
        for stream_dir in self.store.streams():
            held = self.store.of(stream_dir)
            archived = self._archived.get(stream_dir, set())
            done = archived | held.unknown
            left = [s for seq, s in held.labels.items() if seq not in done]
            if left:
                out[stream_dir] = left
        return out

    def unknown(self, partitions: int) -> dict[str, list[StoredLabel]]:
        """The waiting labels whose row cannot come any more, per stream directory.

        Parameters
        ----------
        partitions : int
            Partitions of the rows topic: each must have archived a larger seq.
        """
        out = {}
        for stream_dir, labels in self.waiting().items():
            top = self._top.get(stream_dir, {})
            if len(top) < partitions:
                continue  # a partition without rows of the stream may still bring it
            lowest = min(top.values())
            gone = [s for s in labels if s.seq < lowest]
            if gone:
                out[stream_dir] = gone
        return out

    def _accuracy(self, pending: _Pending, labels: dict[int, StoredLabel]) -> LateAccuracy:
        record = read_window(pending.window)
        late = {seq: str(labels[seq].label) for seq in pending.waiting if seq in labels}
        texts = joined_labels(record, pending.window, {pending.stream_dir: late})
        keep = [i for i, text in enumerate(texts) if text]
        model = self._model(pending.model_name, pending.model_version)
        names = model.metadata.feature_names
        columns = [record.feature_names.index(name) for name in names]
        predicted = model.estimator.predict(record.values[np.ix_(keep, columns)])
        hits = [str(p) == texts[i] for p, i in zip(_plain(predicted), keep, strict=True)]
        return LateAccuracy(
            window=str(pending.window),
            stream=pending.stream,
            topic=pending.topic,
            partition=pending.window.partition,
            first_offset=pending.window.first_offset,
            last_offset=pending.window.last_offset,
            model_name=pending.model_name,
            model_version=pending.model_version,
            accuracy=float(np.mean(hits)) if hits else 0.0,
            labeled=len(keep),
            size=pending.size,
            reported_at=datetime.now(UTC),
        )

    def _model(self, name: str, version: int) -> LoadedModel:
        loaded = self._models.get((name, version))
        if loaded is None:
            loaded = self._models[(name, version)] = Registry(self.root, name).load(version)
        return loaded


def _plain(values: Any) -> list[Any]:
    """Predictions as Python values, so ``str()`` reads as an archived label does."""
    return np.asarray(values).tolist()
