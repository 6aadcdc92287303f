"""Whatever arrives on the rows topic, decoding ends in a usable row or a named dead letter.

Generated wire values: arbitrary bytes, arbitrary JSON, and RowMessages with one
field mutated (labels of every type, numbers at and beyond the float limits,
stream names of every length and character, duplicate keys, extra junk). A
decoded row has the champion's features as finite floats and a label that is
None or one of its classes; anything else is a MalformedRowError with a reason.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.decoding import DETAIL_MAX_CHARS, DecodedRow, MalformedRowError, Reason, RowDecoder
from producer.messages import STREAM_MAX_BYTES, RowMessage, check_stream_name

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
DECODERS = {
    "integers": RowDecoder(FEATURES, classes=[0, 1, 2]),
    "strings": RowDecoder(FEATURES, classes=["setosa", "versicolor", "virginica"]),
}
REASONS = set(get_args(Reason)) - {"undecodable"}
"""Every reason but the decoder's own failure, which no input should provoke."""

# Derandomized and without an example database, so every run (and CI) tries the same cases.
PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- values -------------------------------------------------------------------------

LIMITS = [1e308, -1e308, 5e-324, -5e-324, 1.7976931348623157e308, -0.0, 3.5e38]
"""Finite floats at the edges: largest, smallest subnormal, beyond float32."""
numbers = st.one_of(
    st.floats(),  # NaN and infinities included
    st.sampled_from(LIMITS),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),  # written as digits
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
junk = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON value (and NaN/Infinity, which json.dumps writes and strict JSON lacks)."""

SEPARATORS_AND_CONTROLS = "/\\\x00\x01\n\r\t\x1b\x7f\x85\x9f\u2028"
stream_text = st.text(
    alphabet=st.characters() | st.sampled_from(list(SEPARATORS_AND_CONTROLS + ".é流🌸")),
    max_size=60,
)
"""Any text JSON can carry (no lone surrogates), rich in the characters a name may not hold."""
near_limit = st.builds(
    lambda base, n: base * n,
    st.sampled_from(["x", "é", "流", "🌸"]),
    st.integers(min_value=40, max_value=STREAM_MAX_BYTES + 2),
)
"""Names around the byte limit, in characters of one to four bytes."""
valid_streams = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/\\"),
    min_size=1,
    max_size=40,
).filter(lambda name: name not in (".", "..") and len(name.encode()) <= STREAM_MAX_BYTES)
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
valid_times = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=offsets
).map(datetime.isoformat)
calendar_edges = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(1, 1, 1, 23, 59), timezones=offsets
    ),
    st.datetimes(min_value=datetime(9999, 12, 31), timezones=offsets),
)
"""Times on the calendar's first and last day, some of which do not exist in UTC."""
any_times = st.one_of(
    st.datetimes(timezones=offsets).map(datetime.isoformat),  # years 1 to 9999
    calendar_edges.map(datetime.isoformat),
    st.datetimes().map(datetime.isoformat),  # naive
    st.integers(min_value=-(10**13), max_value=10**13),  # unix time, s or ms
    junk,
)


def labels_for(classes: tuple[int | str, ...]) -> st.SearchStrategy[Any]:
    """Labels of the classes, in each form JSON can write them (``1`` and ``1.0``)."""
    exact = st.sampled_from(classes)
    as_float = st.sampled_from([float(c) for c in classes if isinstance(c, int)] or [None])
    return st.one_of(st.none(), exact, as_float)


foreign_labels = st.one_of(
    junk,
    st.sampled_from([True, False, "1", "0", 1.5, 3, -1, 10**30, "Setosa", " setosa", [0], {}]),
)

# -- messages -----------------------------------------------------------------------


def encode(pairs: list[tuple[str, Any]], ascii_only: bool) -> bytes:
    """A JSON object from ``pairs`` in order, duplicate keys kept (the last one counts)."""
    body = ",".join(
        f"{json.dumps(key, ensure_ascii=ascii_only)}:"
        f"{json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)}"
        for key, value in pairs
    )
    return ("{" + body + "}").encode("utf-8", "surrogatepass")


@st.composite
def valid_fields(draw: st.DrawFn, classes: tuple[int | str, ...]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "schema_version": 1,
        "stream": draw(valid_streams),
        "seq": draw(st.integers(min_value=0, max_value=10**30)),
        "event_time": draw(valid_times),
        "features": {
            name: draw(st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(LIMITS))
            for name in draw(st.permutations(FEATURES))
        },
    }
    label = draw(labels_for(classes) | st.just("absent"))
    if label != "absent":
        fields["label"] = label
    return fields


def mutated_features(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["value", "missing", "extra", "renamed", "not-a-dict"]))
    features: dict[str, Any] = dict.fromkeys(FEATURES, 1.0)
    name = draw(st.sampled_from(FEATURES))
    if kind == "value":
        features[name] = draw(junk | numbers)
    elif kind == "missing":
        del features[name]
    elif kind == "extra":
        features[draw(st.text(max_size=30).filter(lambda k: k not in FEATURES))] = 1.0
    elif kind == "renamed":
        features[draw(st.text(max_size=30).filter(lambda k: k not in FEATURES))] = features.pop(
            name
        )
    else:
        return draw(junk.filter(lambda v: not isinstance(v, dict)))
    return features


EXPECTED: dict[str, set[str]] = {
    "schema_version": {"unknown-schema-version"},
    "stream": {"invalid-field"},
    "seq": {"invalid-field"},
    "event_time": {"invalid-field"},
    "features": {"invalid-field", "non-finite-value", "wrong-feature-set"},
    "label": {"unknown-label"},
    "extra": set(),
}
"""What a message may be rejected for when only this field is changed."""


@st.composite
def one_field_mutated(draw: st.DrawFn, classes: tuple[int | str, ...]) -> tuple[bytes, str]:
    """A valid message with one field replaced, removed or repeated; the field's name."""
    fields = draw(valid_fields(classes))
    field = draw(st.sampled_from(sorted(EXPECTED)))
    if field == "schema_version":
        fields[field] = draw(junk | st.sampled_from([0, 2, "1", 1.0]) | st.just("absent"))
    elif field == "stream":
        fields[field] = draw(stream_text | near_limit | junk | st.just("x" * 1_000_000))
    elif field == "seq":
        fields[field] = draw(junk)
    elif field == "event_time":
        fields[field] = draw(any_times)
    elif field == "features":
        fields[field] = mutated_features(draw)
    elif field == "label":
        fields[field] = draw(foreign_labels)
    else:
        fields[draw(st.text(max_size=10).filter(lambda k: k not in fields))] = draw(junk)
    if fields.get(field) == "absent":
        del fields[field]
    pairs = list(fields.items())
    pairs = draw(st.permutations(pairs))
    # Repeated keys: a decoy of any value before the real pair, which wins.
    for key in draw(st.lists(st.sampled_from([k for k, _ in pairs] or ["x"]), max_size=2)):
        pairs.insert(0, (key, draw(junk)))
    return encode(pairs, draw(st.booleans())), field


def wire(classes: tuple[int | str, ...]) -> st.SearchStrategy[bytes | None]:
    """Anything a topic may hold: bytes, JSON, near-valid and valid messages, tombstones."""
    return st.one_of(
        st.none(),
        st.binary(max_size=64),
        junk.map(lambda v: json.dumps(v, allow_nan=True).encode()),
        valid_fields(classes).map(lambda f: encode(list(f.items()), ascii_only=True)),
        one_field_mutated(classes).map(lambda pair: pair[0]),
    )


# -- the contract -------------------------------------------------------------------


def outcome(decoder: RowDecoder, value: bytes | None) -> RowMessage | tuple[str, str]:
    """What decoding ``value`` gives, after checking it keeps the contract."""
    try:
        message = decoder.decode(value)
    except MalformedRowError as err:
        assert err.reason in REASONS, (err.reason, err.detail)
        assert len(err.detail) <= DETAIL_MAX_CHARS
        err.detail.encode()  # goes into a Kafka header as it is
        return (err.reason, err.detail)
    assert_usable(decoder, message)
    return message


def in_a_poll(decoder: RowDecoder, value: bytes | None) -> DecodedRow | tuple[str, str]:
    """What :meth:`RowDecoder.decode_all` must give for ``value``: :func:`outcome`, as a row."""
    said = outcome(decoder, value)
    return said if isinstance(said, tuple) else decoder.row(said)


def assert_usable(decoder: RowDecoder, message: RowMessage) -> None:
    """A row downstream steps can take: finite float features (or None: missing) in order,
    a known label."""
    assert isinstance(message, RowMessage)
    values = decoder.values(decoder.row(message))
    assert len(values) == len(FEATURES)
    assert all(v is None or (type(v) is float and math.isfinite(v)) for v in values)
    assert values == tuple(message.features[name] for name in FEATURES)
    label = message.label
    assert label is None or any(type(label) is type(c) and label == c for c in decoder.classes)
    assert check_stream_name(message.stream) == message.stream
    assert message.event_time.astimezone(UTC).utcoffset() == timedelta(0)
    # What a producer writes of the row is read back as the same row.
    assert decoder.decode(message.to_bytes()) == message


@PROPERTY
@given(value=st.binary(max_size=512) | st.none())
def test_any_bytes_decode_or_are_dead_lettered(value: bytes | None) -> None:
    for decoder in DECODERS.values():
        outcome(decoder, value)


@PROPERTY
@given(value=junk)
def test_any_json_decodes_or_is_dead_lettered(value: Any) -> None:
    for decoder in DECODERS.values():
        outcome(decoder, json.dumps(value, allow_nan=True).encode())


@PROPERTY
@given(data=st.data(), kind=st.sampled_from(sorted(DECODERS)))
def test_a_valid_message_decodes_to_itself(data: st.DataObject, kind: str) -> None:
    decoder = DECODERS[kind]
    fields = data.draw(valid_fields(decoder.classes))
    message = outcome(decoder, encode(list(fields.items()), data.draw(st.booleans())))
    assert isinstance(message, RowMessage)
    assert message.stream == fields["stream"]
    assert message.label == fields.get("label")
    assert message.features == fields["features"]


@PROPERTY
@given(data=st.data(), kind=st.sampled_from(sorted(DECODERS)))
def test_a_message_with_one_bad_field_is_dead_lettered_for_that_field(
    data: st.DataObject, kind: str
) -> None:
    decoder = DECODERS[kind]
    value, field = data.draw(one_field_mutated(decoder.classes))
    decoded = outcome(decoder, value)
    if isinstance(decoded, tuple):
        assert decoded[0] in EXPECTED[field], (field, decoded)


@PROPERTY
@given(name=stream_text | near_limit)
def test_the_producer_and_the_consumer_agree_on_stream_names(name: str) -> None:
    fields = {
        "stream": name,
        "seq": 0,
        "event_time": datetime(2026, 1, 1, tzinfo=UTC),
        "features": dict.fromkeys(FEATURES, 1.0),
    }
    try:
        check_stream_name(name)
    except ValueError:
        allowed = False
    else:
        allowed = True
    try:
        RowMessage(**fields)  # type: ignore[arg-type]
    except ValueError:
        written = False
    else:
        written = True
    decoded = outcome(DECODERS["integers"], RowMessage.model_construct(**fields).to_bytes())
    assert allowed == written == isinstance(decoded, RowMessage)
    if allowed:
        assert 1 <= len(name.encode()) <= STREAM_MAX_BYTES
        assert not any(char in name for char in SEPARATORS_AND_CONTROLS[:-1])


@PROPERTY
@given(data=st.data(), kind=st.sampled_from(sorted(DECODERS)))
def test_decoding_a_poll_gives_what_decoding_each_message_gives(
    data: st.DataObject, kind: str
) -> None:
    decoder = DECODERS[kind]
    values = data.draw(st.lists(wire(decoder.classes), max_size=8))
    polled = decoder.decode_all(values)
    assert len(polled) == len(values)
    for value, got in zip(values, polled, strict=True):
        assert isinstance(got, DecodedRow | MalformedRowError)
        said = (got.reason, got.detail) if isinstance(got, MalformedRowError) else got
        assert said == in_a_poll(decoder, value)


@PROPERTY
@given(data=st.data(), kind=st.sampled_from(sorted(DECODERS)))
def test_a_poll_of_valid_messages_decodes_in_one_call_like_one_by_one(
    data: st.DataObject, kind: str
) -> None:
    # The batch path: every value parses, so only the checks after parsing can reject.
    decoder = DECODERS[kind]
    fields = data.draw(st.lists(valid_fields(decoder.classes), min_size=1, max_size=6))
    values: list[bytes | None] = [encode(list(f.items()), ascii_only=False) for f in fields]
    foreign = data.draw(foreign_labels.filter(lambda v: isinstance(v, int | str)))
    at = data.draw(st.integers(min_value=0, max_value=len(values) - 1))
    values[at] = encode([*fields[at].items(), ("label", foreign)], ascii_only=False)
    polled = decoder.decode_all(values)
    for value, got in zip(values, polled, strict=True):
        said = (got.reason, got.detail) if isinstance(got, MalformedRowError) else got
        assert said == in_a_poll(decoder, value)
    if not any(type(foreign) is type(c) and foreign == c for c in decoder.classes):
        got = polled[at]
        assert isinstance(got, MalformedRowError) and got.reason == "unknown-label"
