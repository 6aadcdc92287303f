"""A window's record as the archive encoded it before it encoded event times with msgspec
and framed each record in one piece (commit f27e37d).

A copy, kept for `test_archive.py` to prove the faster encoding writes the same bytes:
event times and labels through pydantic's ``to_json``, offsets and seqs through numpy,
the checksum over the record's nine parts. The checks and the categories are the
archive's own (`_used_categories`, `_meta_start`, `_compact_json`), not copied.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydantic_core import to_json

from consumer.archive import _HEAD, _HEAD_CRC, _MAGIC, _compact_json, _meta_start, _used_categories


def encode_record_before(
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
    """`consumer.archive.encode_record` as it was in commit f27e37d."""
    rows = _RecordRowsBefore.of(
        feature_names, offsets, event_times, values, labels, label_column, seqs, categories
    )
    return rows.record(first_offset, last_offset, verdict)


@dataclass(frozen=True)
class _RecordRowsBefore:
    """A window's rows, checked and encoded: all of its record but the verdict.

    What `encode_record` frames; `WindowArchive.append_many` checks every window's
    rows before it begins a segment, and encodes them only once.
    """

    meta_start: bytes
    """The record's JSON line up to its ``parts``' sizes: ``{"features":...,"parts":[``."""
    meta_end: bytes
    """The JSON line after the sizes: ``]``, then ``seqs`` and ``categories`` if any, ``}``."""
    count: int
    columns: tuple[bytes, bytes, bytes, bytes]
    """Offsets, values, event times and labels, encoded."""
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
    ) -> _RecordRowsBefore:
        """Check and encode the rows (see `encode_record` for what is refused)."""
        values = np.ascontiguousarray(values, dtype="<f8")
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
        if np.isinf(values).any():
            raise ValueError("values must not be infinite (NaN marks a missing one)")
        if seqs is not None and len(seqs) != len(offsets):
            raise ValueError(f"{len(offsets)} offsets and {len(seqs)} seqs: one of each per row")
        seq_bytes = b"" if seqs is None else np.asarray(seqs, dtype="<i8").tobytes()
        times = to_json(list(event_times))
        # str() is what the csv module writes of a label; None is an empty cell.
        texts = to_json([None if label is None else str(label) for label in labels])
        # The JSON line's keys in the order records have always had: features,
        # label_column, parts, then seqs and categories where the record has them.
        meta_end = b"]"
        if seqs is not None:
            meta_end += b',"seqs":%d' % len(seq_bytes)
        if categories:
            used = _used_categories(feature_names, values, categories)
            meta_end += b',"categories":' + _compact_json(used)
        offset_bytes = np.asarray(offsets, dtype="<i8").tobytes()
        return cls(
            _meta_start(tuple(feature_names), label_column),
            meta_end + b"}\n",
            len(offsets),
            (offset_bytes, values.tobytes(), times, texts),
            seq_bytes,
        )

    def record_parts(self, first_offset: int, last_offset: int, verdict: bytes) -> list[bytes]:
        """The record of these rows with ``verdict``, framed for a segment, in pieces.

        Joined, they are the record: a segment's records are joined once, per write.
        """
        offset_bytes, value_bytes, times, texts = self.columns
        sizes = b"%d,%d,%d" % (len(times), len(texts), len(verdict))
        parts = [
            self.meta_start,
            sizes,
            self.meta_end,
            offset_bytes,
            value_bytes,
            times,
            texts,
            verdict,
            self.seq_bytes,
        ]
        length, crc = 0, 0
        for part in parts:
            length += len(part)
            crc = zlib.crc32(part, crc)
        head = _HEAD.pack(_MAGIC, length, crc, first_offset, last_offset, self.count)
        return [head, _HEAD_CRC.pack(zlib.crc32(head)), *parts]

    def record(self, first_offset: int, last_offset: int, verdict: bytes) -> bytes:
        """The record of these rows with ``verdict``, framed for a segment."""
        return b"".join(self.record_parts(first_offset, last_offset, verdict))
