"""The fetcher's record decoding (`broker.records`) gives what kafka-python's records hold."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from broker.records import decode_records, lean_fetching

CODECS = {"none": 0, "gzip": DefaultRecordBatch.CODEC_GZIP}

# Lengths of one, two and three varint bytes: up to 63, 8191 and more.
PAYLOADS = st.none() | st.binary(max_size=90) | st.integers(60, 9000).map(lambda n: b"x" * n)
HEADERS = st.lists(st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=20)), max_size=3)
RECORDS = st.lists(
    st.tuples(PAYLOADS, PAYLOADS, HEADERS, st.integers(-(2**40), 2**40)), min_size=1, max_size=40
)


def build(
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]],
    codec: str = "none",
    base_offset: int = 0,
    gaps: int = 1,
) -> bytes:
    """A v2 batch of ``records`` (key, value, headers, timestamp), offsets ``gaps`` apart."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=CODECS[codec],
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 24,
    )
    for i, (key, value, headers, timestamp) in enumerate(records):
        builder.append(i * gaps, timestamp=timestamp, key=key, value=value, headers=headers)
    raw = bytearray(builder.build())
    if base_offset:
        raw[:8] = base_offset.to_bytes(8, "big")  # as the broker assigns it
    return bytes(raw)


def kafka_python(raw: bytes) -> list[tuple[int, bytes | None, bytes | None]]:
    return [(r.offset, r.key, r.value) for r in DefaultRecordBatch(raw)]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(RECORDS, st.sampled_from(sorted(CODECS)), st.integers(0, 2**40), st.integers(1, 70))
def test_every_record_decodes_to_kafka_pythons_offset_key_and_value(
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]],
    codec: str,
    base_offset: int,
    gaps: int,
) -> None:
    raw = build(records, codec, base_offset, gaps)
    decoded = decode_records(DefaultRecordBatch(raw))
    assert decoded == kafka_python(raw)
    assert [(k, v) for _, k, v in decoded] == [(k, v) for k, v, _, _ in records]
    assert {type(item) for _, k, v in decoded for item in (k, v)} <= {bytes, type(None)}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(RECORDS, st.data())
def test_a_damaged_batch_decodes_as_kafka_python_or_raises_corrupt_record(
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], int]],
    data: st.DataObject,
) -> None:
    raw = bytearray(build(records))
    header = DefaultRecordBatch.HEADER_STRUCT.size
    cuts = data.draw(st.booleans())
    if cuts:  # the batch ends early, or late
        end = data.draw(st.integers(header, len(raw) + 5))
        raw = raw[:end] + b"\x00" * max(0, end - len(raw))
    else:
        at = data.draw(st.integers(header, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    try:
        expected: list | Exception = kafka_python(bytes(raw))
    except (CorruptRecordError, ValueError, IndexError) as err:
        expected = err
    try:
        decoded = decode_records(DefaultRecordBatch(bytes(raw)))
    except CorruptRecordError:
        return  # refused, with kafka-python's error class
    if not isinstance(expected, Exception):
        assert decoded == expected


def test_a_record_whose_fields_overrun_its_size_is_refused() -> None:
    raw = bytearray(build([(b"k", b"value", [], 0)]))
    header = DefaultRecordBatch.HEADER_STRUCT.size
    raw[header] += 2  # the record's length, one byte: one more than its fields
    with pytest.raises(CorruptRecordError, match="record size"):
        decode_records(DefaultRecordBatch(bytes(raw)))


def test_lean_fetching_refuses_a_consumer_with_deserializers() -> None:
    consumer = SimpleNamespace(config={"key_deserializer": None, "value_deserializer": bytes})
    with pytest.raises(ValueError, match="without deserializers"):
        lean_fetching(consumer)  # type: ignore[arg-type]
