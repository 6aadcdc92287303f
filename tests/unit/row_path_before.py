"""The loop's per-row path as it was before it windowed a poll at once (commit f27e37d).

A copy, kept for `test_row_path.py` to prove the faster path gives the same windows,
dead letters, commits, matrices and accuracies: `DriftMonitor._window` feeding
`PartitionStreams.add` row by row, `_matrices` and `_score` with their per-row lists,
`RowDecoder.matrix` reading tuples with ``np.array``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from kafka.structs import TopicPartition

from consumer.decoding import DecodedRow, MalformedRowError
from consumer.service import DriftMonitor, _Judged, _Poll, _row
from consumer.windowing import Window


class DriftMonitorBefore(DriftMonitor):
    """`DriftMonitor` with the per-row path of commit f27e37d."""

    def _window(self, batch: dict[TopicPartition, list[Any]]) -> _Poll:
        poll = _Poll()
        decoder = self.champion.decoder
        started = time.perf_counter()
        decoding = 0.0
        assigned = self.consumer.assignment()
        for tp, records in batch.items():
            if not records or tp not in assigned:
                continue  # Revoked while the poll returned: its next owner reads them.
            part = self._partition(tp)
            if part.fresh and records[0].offset > part.resume.offset:
                part.fresh = False
                self.consumer.seek(tp, part.resume.offset)
                continue
            part.fresh = False
            poll.partitions.append(tp)
            decode_started = time.perf_counter()
            decoded = decoder.decode_all([record.value for record in records])
            decoding += time.perf_counter() - decode_started
            fresh = 0
            replaying = records[0].offset < part.resume.read
            for record, message in zip(records, decoded, strict=True):
                if isinstance(message, MalformedRowError):
                    if replaying and not part.admits(record.offset, None):
                        continue  # Dead-lettered before the last commit.
                    fresh += 1
                    poll.dead.append(
                        self.dead_letters.note(
                            tp.topic, tp.partition, record.offset, record.key, record.value, message
                        )
                    )
                    continue
                if replaying and not part.admits(record.offset, message.stream):
                    continue  # Archived before the last commit.
                fresh += 1
                window = part.add(
                    record.offset,
                    message.stream,
                    _row((message, record.key, record.value)),
                    message.event_time,
                )
                if window is not None:
                    poll.completed.append((tp, message.stream, window))
            last_offset = records[-1].offset
            part.read_through(last_offset)
            self.stats.rows += fresh
            self.metrics.rows.inc(fresh)
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                self.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    highwater - last_offset - 1
                )
        stages = self.stats.stage_seconds
        stages["decode"] += decoding
        stages["window"] += time.perf_counter() - started - decoding
        return poll

    def _matrices(self, windows: list[Window[Any]]) -> list[np.ndarray]:
        every = matrix_before(
            self.champion.decoder, [row.message for window in windows for row in window.items]
        )
        ends = np.cumsum([len(window.items) for window in windows])
        return np.split(every, ends[:-1])

    def _score(self, judged: list[_Judged]) -> list[tuple[int, float | None]]:
        rows: list[np.ndarray] = []
        labels: list[Any] = []
        counts: list[int] = []
        for item in judged:
            mask = np.array([row.message.label is not None for row in item.window.items])
            counts.append(int(mask.sum()))
            rows.append(item.values[mask])
            labels.extend(r.message.label for r in item.window.items if r.message.label is not None)
        if not labels:
            return [(0, None)] * len(judged)
        predicted = self.champion.predict_labels(np.concatenate(rows))
        correct = np.asarray(predicted) == np.asarray(labels, dtype=np.asarray(predicted).dtype)
        out: list[tuple[int, float | None]] = []
        start = 0
        for count in counts:
            hits = correct[start : start + count]
            out.append((count, float(hits.mean()) if count else None))
            start += count
        return out


def matrix_before(decoder: Any, rows: list[DecodedRow]) -> np.ndarray:
    """`RowDecoder.matrix` of commit f27e37d."""
    if decoder._slots:
        return np.array([decoder.values(row) for row in rows], dtype=np.float64)
    return np.array([row.values for row in rows], dtype=np.float64)
