"""Fetched record batches as (offset, key, value) tuples: kafka-python's fetching, leaner.

kafka-python turns every fetched record into a ``ConsumerRecord`` of 13 fields,
decoding each of the record's varints in a call of its own: about 6 µs of CPU per
record, most of what a plain kafka-python reader costs. The fetching process
(`broker.fetcher`) needs a record's offset, key and value only. With
:func:`lean_fetching`, a ``KafkaConsumer``'s ``poll`` returns those as tuples,
decoded by :func:`decode_records` (message format v2, the only one Kafka 4 writes)
in one pass over the batch: about 2 µs per record.

Everything else is kafka-python's: fetch requests and sessions, positions, the
batches' CRC check, decompression, and ``read_committed`` (aborted transactions'
batches skipped, control batches left out). :class:`LeanPartitionRecords` is
kafka-python 3.0.12's ``Fetcher.PartitionRecords`` with the record loop replaced;
its batch loop is kafka-python's, as written there (Apache License 2.0). It leans
on kafka-python internals (``Fetcher.PartitionRecords``, a batch's ``_buffer`` and
``_pos``): the lock pins the version, and ``tests/unit/test_records.py`` compares
every decoded field with kafka-python's own records.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer
from kafka import errors as kafka_errors
from kafka.consumer.fetcher import Fetcher
from kafka.protocol.consumer import IsolationLevel
from kafka.record.default_records import DefaultRecordBatch

logger = logging.getLogger(__name__)

LeanRecord = tuple[int, bytes | None, bytes | None]
"""A record as :func:`lean_fetching`'s ``poll`` returns it: offset, key, value."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """The zigzag varint at ``pos`` (two bytes or more), and the position after it."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), pos
        shift += 7
        if shift > 63:
            raise kafka_errors.CorruptRecordError("a varint of more than 10 bytes")


def decode_records(batch: DefaultRecordBatch) -> list[LeanRecord]:
    """Every record of a v2 batch (decompressed if it is compressed) as (offset, key, value).

    The same offsets, keys and values as iterating the batch in kafka-python; headers
    and timestamps are skipped, not returned.

    Raises
    ------
    kafka.errors.CorruptRecordError
        As kafka-python raises it: a record's size does not match its fields, bytes
        are left after the last record, or the batch ends inside a record.

    Examples
    --------
    >>> from kafka.record.default_records import DefaultRecordBatchBuilder
    >>> builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 20)
    >>> for offset, value in enumerate([b"a", None, b""]):
    ...     _ = builder.append(offset, timestamp=0, key=b"k", value=value, headers=[])
    >>> decode_records(DefaultRecordBatch(bytes(builder.build())))
    [(0, b'k', b'a'), (1, b'k', None), (2, b'k', b'')]
    """
    batch._maybe_uncompress()
    data = bytes(batch._buffer)
    pos = batch._pos
    base = batch.base_offset
    records: list[LeanRecord] = []
    append = records.append
    try:
        for _ in range(batch.records_count):
            # Record: length, attributes (int8), timestamp delta, offset delta, key,
            # value, headers; every integer but the attributes a zigzag varint. The
            # one-byte case of each varint is decoded here, the longer ones by _varint.
            n = data[pos]
            if n < 0x80:
                n, pos = (n >> 1) ^ -(n & 1), pos + 1
            else:
                n, pos = _varint(data, pos)
            end = pos + n
            pos += 1  # attributes
            while data[pos] & 0x80:  # the timestamp delta, not returned
                pos += 1
            pos += 1
            n = data[pos]
            if n < 0x80:
                delta, pos = (n >> 1) ^ -(n & 1), pos + 1
            else:
                delta, pos = _varint(data, pos)
            n = data[pos]
            if n < 0x80:
                n, pos = (n >> 1) ^ -(n & 1), pos + 1
            else:
                n, pos = _varint(data, pos)
            if n >= 0:
                key: bytes | None = data[pos : pos + n]
                pos += n
            else:
                key = None
            n = data[pos]
            if n < 0x80:
                n, pos = (n >> 1) ^ -(n & 1), pos + 1
            else:
                n, pos = _varint(data, pos)
            if n >= 0:
                value: bytes | None = data[pos : pos + n]
                pos += n
            else:
                value = None
            if data[pos] == 0:  # no headers
                pos += 1
            else:
                pos = _skip_headers(data, pos)
            if pos != end:
                raise kafka_errors.CorruptRecordError(
                    f"Invalid record size: the fields of the record at offset "
                    f"{base + delta} end {pos - end:+d} bytes from its declared size"
                )
            append((base + delta, key, value))
    except (IndexError, UnicodeDecodeError) as err:
        raise kafka_errors.CorruptRecordError(
            f"Found invalid record structure: record {len(records)} of "
            f"{batch.records_count} in the batch at offset {base}: {err!r}"
        ) from err
    if pos != len(data):
        raise kafka_errors.CorruptRecordError(
            f"{len(data) - pos} unconsumed bytes after all records consumed"
        )
    return records


def _skip_headers(data: bytes, pos: int) -> int:
    """The position after a record's headers (count, then key and value of each)."""
    count, pos = _varint(data, pos)
    if count < 0:
        raise kafka_errors.CorruptRecordError(f"Found invalid number of record headers {count}")
    for _ in range(count):
        length, pos = _varint(data, pos)
        if length < 0:
            raise kafka_errors.CorruptRecordError(f"Invalid negative header key size {length}")
        data[pos : pos + length].decode("utf-8")  # as kafka-python: a key is UTF-8
        length, pos = _varint(data, pos + length)
        pos += max(length, 0)
    return pos


class LeanPartitionRecords(Fetcher.PartitionRecords):
    """kafka-python's records of one fetched partition, each an (offset, key, value) tuple."""

    def _maybe_skip_record(self, record: LeanRecord) -> bool:
        # A fetch from the middle of a batch returns the whole batch: skip to the offset.
        return record[0] < self.fetch_offset

    def _unpack_records(
        self, tp: Any, records: Any, key_deserializer: Any, value_deserializer: Any
    ) -> Iterator[LeanRecord]:
        # kafka-python 3.0.12's Fetcher.PartitionRecords._unpack_records, its batch loop
        # as written there; the records of a v2 batch come from decode_records.
        try:
            batch = records.next_batch()
            last_batch = None
            while batch is not None:
                last_batch = batch

                if self.check_crcs and not batch.validate_crc():
                    raise kafka_errors.CorruptRecordError(
                        f"Record batch for partition {self.topic_partition} at offset "
                        f"{batch.base_offset} failed crc check"
                    )

                if batch.magic == 2:
                    self.leader_epoch = batch.leader_epoch
                    if (
                        self.isolation_level == IsolationLevel.READ_COMMITTED
                        and batch.has_producer_id()
                    ):
                        self._consume_aborted_transactions_up_to(batch.last_offset)
                        producer_id = batch.producer_id
                        if self._contains_abort_marker(batch):
                            self.aborted_producer_ids.discard(producer_id)
                        elif self._is_batch_aborted(batch):
                            self.next_fetch_offset = batch.next_offset
                            batch = records.next_batch()
                            continue

                    # Control batches (a transaction's commit or abort) are not returned.
                    if batch.is_control_batch:
                        self.next_fetch_offset = batch.next_offset
                        batch = records.next_batch()
                        continue

                    found = decode_records(batch)
                else:  # message format v0 or v1: kafka-python's records, and their CRCs
                    found = []
                    for record in batch:
                        if self.check_crcs and not record.validate_crc():
                            raise kafka_errors.CorruptRecordError(
                                f"Record for partition {self.topic_partition} at offset "
                                f"{record.offset} failed crc check"
                            )
                        found.append((record.offset, record.key, record.value))
                self.records_read += len(found)
                self.bytes_read += batch.size_in_bytes
                for record in found:
                    # Where the next fetch starts if the poll stops after this record.
                    self.next_fetch_offset = record[0] + 1
                    yield record

                batch = records.next_batch()
            else:
                # Message format v2 keeps a batch's last offset even when compaction
                # removed its last record: the next fetch starts past the batch.
                if last_batch and last_batch.magic == 2:
                    self.next_fetch_offset = last_batch.next_offset
                self.drain()

        # A StopIteration inside a generator would end it silently (kafka-python issue 545).
        except StopIteration as err:
            logger.exception("StopIteration raised unpacking messageset")
            raise RuntimeError("StopIteration raised unpacking messageset") from err


def lean_fetching(consumer: KafkaConsumer) -> KafkaConsumer:
    """Make ``consumer.poll`` return (offset, key, value) tuples instead of ConsumerRecords.

    Keys and values are the bytes fetched. Set before the consumer's first poll.

    Raises
    ------
    ValueError
        If the consumer has a key or value deserializer (the tuples carry bytes).
    """
    if consumer.config["key_deserializer"] or consumer.config["value_deserializer"]:
        raise ValueError("lean fetching returns bytes: build the consumer without deserializers")
    consumer._fetcher.PartitionRecords = LeanPartitionRecords
    return consumer
