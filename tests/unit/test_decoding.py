"""Every kind of malformed row is recognised and named; good rows pass unchanged."""

from __future__ import annotations

import json

import pytest

from consumer.decoding import MalformedRowError, RowDecoder
from producer.messages import RowMessage

FEATURES = ["a", "b"]


def raw(**overrides: object) -> bytes:
    message: dict[str, object] = {
        "schema_version": 1,
        "stream": "iris",
        "seq": 3,
        "event_time": "2026-11-27T01:02:03+00:00",
        "features": {"a": 1.5, "b": 2},
        "label": 1,
    }
    message.update(overrides)
    return json.dumps(message, allow_nan=True).encode()


def test_a_good_row_decodes_with_values_in_feature_order() -> None:
    decoder = RowDecoder(["b", "a"])
    message = decoder.decode(raw())
    assert message.label == 1
    assert decoder.values(message) == (2.0, 1.5)
    assert RowDecoder(["a"]).values(message) == (1.5,)


def test_the_producers_bytes_round_trip() -> None:
    message = RowMessage.from_bytes(raw())
    assert RowMessage.from_bytes(message.to_bytes()) == message


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        (b"not json at all", "not-json", "Invalid JSON"),
        (b"[1, 2]", "not-json", "not an object"),
        (None, "not-json", "tombstone"),
        (raw(schema_version=2), "unknown-schema-version", "2"),
        (raw().replace(b'"schema_version": 1, ', b""), "unknown-schema-version", "missing"),
        (raw(features={"a": "1.5", "b": 2}), "invalid-field", "features.a"),
        (raw(features={"a": None, "b": 2}), "invalid-field", "features.a"),
        (raw(features={"a": True, "b": 2}), "invalid-field", "features.a"),
        (raw(features={"a": float("nan"), "b": 2}), "non-finite-value", "features.a"),
        (raw(features={"a": float("inf"), "b": 2}), "non-finite-value", "features.a"),
        (raw(features={"a": 1.0}), "wrong-feature-set", "missing b"),
        (raw(features={"a": 1.0, "b": 2.0, "c": 3.0}), "wrong-feature-set", "unexpected c"),
        (raw(event_time="2026-11-27T01:02:03"), "invalid-field", "event_time"),
        (raw(seq=-1), "invalid-field", "seq"),
    ],
)
def test_malformed_rows_are_rejected_with_their_reason(
    value: bytes | None, reason: str, detail: str
) -> None:
    with pytest.raises(MalformedRowError) as caught:
        RowDecoder(FEATURES).decode(value)
    assert caught.value.reason == reason
    assert detail in caught.value.detail


def test_a_decoder_needs_features() -> None:
    with pytest.raises(ValueError, match="feature_names"):
        RowDecoder([])


GOOD = [
    raw(),
    raw(features={"a": 1, "b": -2}),
    raw(event_time="2026-11-27T02:02:03.5+01:00", label="setosa"),
    raw(event_time=1_700_000_000, seq="4", label=None),
    raw(extra_field={"ignored": True}),
    raw(label=2.0),
]
BAD = [
    b"not json",
    b"[1, 2]",
    None,
    raw(schema_version=2),
    raw().replace(b'"schema_version": 1, ', b""),
    raw(features={"a": "1.5", "b": 2}),
    raw(features={"a": float("nan"), "b": 2}),
    raw(features={"a": 1.0}),
    raw(event_time="2026-11-27T01:02:03"),
    b'{"schema_version": 1}, {"schema_version": 1}',
]


def outcome(decoded: RowMessage | MalformedRowError) -> object:
    if isinstance(decoded, MalformedRowError):
        return (decoded.reason, decoded.detail)
    return decoded


@pytest.mark.parametrize(
    "values",
    [GOOD, GOOD + GOOD, BAD, GOOD[:2] + BAD[:1] + GOOD[2:], GOOD[:3] + BAD[-3:], [], [None]],
    ids=["good", "good-twice", "bad", "one-bad", "wrong-feature-sets", "none", "tombstone"],
)
def test_decoding_a_poll_gives_what_decoding_each_row_gives(values: list[bytes | None]) -> None:
    decoder = RowDecoder(FEATURES)

    def one(value: bytes | None) -> object:
        try:
            return decoder.decode(value)
        except MalformedRowError as err:
            return (err.reason, err.detail)

    assert [outcome(d) for d in decoder.decode_all(values)] == [one(v) for v in values]
