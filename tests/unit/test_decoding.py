"""Every kind of malformed row is recognised and named; good rows pass unchanged."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest
from pydantic import ValidationError

from consumer.decoding import DETAIL_MAX_CHARS, DecodedRow, MalformedRowError, RowDecoder
from producer import messages
from producer.messages import RowMessage, check_stream_name

FEATURES = ["a", "b"]
CLASSES = [0, 1, 2]


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
    decoder = RowDecoder(["b", "a"], classes=CLASSES)
    message = decoder.decode(raw())
    assert message.label == 1
    assert decoder.values(decoder.row(message)) == (2.0, 1.5)
    narrow = RowDecoder(["a"], classes=CLASSES)
    assert narrow.values(narrow.row(message)) == (1.5,)


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
        RowDecoder(FEATURES, classes=CLASSES).decode(value)
    assert caught.value.reason == reason
    assert detail in caught.value.detail


@pytest.mark.parametrize(
    ("features", "classes", "named"),
    [
        ([], CLASSES, "feature_names"),
        (FEATURES, [], "classes"),
        (FEATURES, [True], "classes"),
        (FEATURES, [1.0], "classes"),
        (FEATURES, [None], "classes"),
    ],
)
def test_a_decoder_needs_features_and_integer_or_string_classes(
    features: list[str], classes: list[object], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        RowDecoder(features, classes=classes)  # type: ignore[arg-type]


GOOD = [
    raw(),
    raw(features={"a": 1, "b": -2}),
    raw(event_time="2026-11-27T02:02:03.5+01:00", label=0),
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
    raw(label="setosa"),
    raw(label=True),
    raw(stream="a/b"),
    raw(features={"a": 1.0}),
    raw(event_time="2026-11-27T01:02:03"),
    b'{"schema_version": 1}, {"schema_version": 1}',
]


def outcome(decoded: DecodedRow | MalformedRowError) -> object:
    if isinstance(decoded, MalformedRowError):
        return (decoded.reason, decoded.detail)
    return decoded


@pytest.mark.parametrize(
    "values",
    [
        GOOD,
        GOOD + GOOD,
        BAD,
        GOOD[:2] + BAD[:1] + GOOD[2:],
        GOOD[:3] + BAD[-3:],
        [*GOOD[:2], raw(label="setosa"), raw(label=7)],
        [],
        [None],
    ],
    ids=[
        "good",
        "good-twice",
        "bad",
        "one-bad",
        "wrong-feature-sets",
        "unknown-labels",
        "none",
        "tombstone",
    ],
)
def test_decoding_a_poll_gives_what_decoding_each_row_gives(values: list[bytes | None]) -> None:
    decoder = RowDecoder(FEATURES, classes=CLASSES)

    def one(value: bytes | None) -> object:
        try:
            return decoder.row(decoder.decode(value))
        except MalformedRowError as err:
            return (err.reason, err.detail)

    assert [outcome(d) for d in decoder.decode_all(values)] == [one(v) for v in values]


@pytest.mark.parametrize(
    ("label", "decoded"),
    [(1, 1), (1.0, 1), (2e0, 2), (None, None), ("absent", None)],
)
def test_an_integer_class_takes_a_json_integer_and_unlabeled_rows_stay(
    label: object, decoded: int | None
) -> None:
    value = raw(label=label) if label != "absent" else raw().replace(b', "label": 1', b"")
    assert RowDecoder(FEATURES, classes=CLASSES).decode(value).label == decoded


@pytest.mark.parametrize(
    ("classes", "label", "shown"),
    [
        (CLASSES, "setosa", "label 'setosa' (str)"),
        (CLASSES, "1", "label '1' (str)"),
        (CLASSES, True, "label True (bool)"),
        (CLASSES, False, "label False (bool)"),
        (CLASSES, 3, "label 3 (int)"),
        (CLASSES, -1, "label -1 (int)"),
        (CLASSES, 1.5, "label 1.5 (float)"),
        (CLASSES, 10**30, "label 1000000000000000000000000000000 (int)"),
        (CLASSES, [1], "label [1] (list)"),
        (CLASSES, {"class": 1}, "label {'class': 1} (dict)"),
        (["setosa", "versicolor"], 0, "label 0 (int)"),
        (["setosa", "versicolor"], "Setosa", "label 'Setosa' (str)"),
        (["setosa", "versicolor"], " setosa", "label ' setosa' (str)"),
        (["1", "2"], 1, "label 1 (int)"),
        (["1", "2"], True, "label True (bool)"),
    ],
)
def test_a_label_of_no_class_is_dead_lettered_naming_the_label_and_the_classes(
    classes: list[int | str], label: object, shown: str
) -> None:
    decoder = RowDecoder(FEATURES, classes=classes)
    with pytest.raises(MalformedRowError) as caught:
        decoder.decode(raw(label=label))
    assert caught.value.reason == "unknown-label"
    assert caught.value.detail.startswith(shown + " is not one of the model's")
    assert caught.value.detail.endswith(", ".join(map(repr, classes)))
    # decode_all, batch path or not, says the same.
    [again] = decoder.decode_all([raw(label=label)])
    assert isinstance(again, MalformedRowError)
    assert (again.reason, again.detail) == ("unknown-label", caught.value.detail)


def test_string_classes_take_their_own_strings() -> None:
    decoder = RowDecoder(FEATURES, classes=["setosa", "1"])
    assert decoder.decode(raw(label="setosa")).label == "setosa"
    assert decoder.decode(raw(label="1")).label == "1"


def test_the_detail_of_an_unknown_label_stays_short() -> None:
    decoder = RowDecoder(FEATURES, classes=[f"class-{i}" for i in range(1000)])
    with pytest.raises(MalformedRowError) as caught:
        decoder.decode(raw(label="x" * 100_000))
    detail = caught.value.detail
    assert len(detail) <= DETAIL_MAX_CHARS
    assert "(str) is not one of the model's 1000 classes (str): 'class-0', 'class-1'" in detail


@pytest.mark.parametrize(
    "stream",
    ["iris", "x" * 200, "é" * 100, "流" * 66, "a.b", ".hidden", "...", "my stream", "🌸"],
)
def test_a_stream_name_of_up_to_200_bytes_without_separators_is_taken(stream: str) -> None:
    decoder = RowDecoder(FEATURES, classes=CLASSES)
    assert decoder.decode(raw(stream=stream)).stream == stream
    assert check_stream_name(stream) == stream


@pytest.mark.parametrize(
    ("stream", "why"),
    [
        ("", "not empty"),
        (".", "not empty, '.' or '..'"),
        ("..", "not empty, '.' or '..'"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("a\nb", "control character"),
        ("\x00", "control character"),
        ("\x7f", "control character"),
        ("\x85", "control character"),
        ("x" * 201, "at most 200 bytes of UTF-8, got 201"),
        ("é" * 101, "at most 200 bytes of UTF-8, got 202"),
        ("x" * 2_000_000, "at most 200 bytes of UTF-8, got 2000000"),
    ],
)
def test_a_stream_name_that_cannot_name_a_file_is_rejected(stream: str, why: str) -> None:
    with pytest.raises(MalformedRowError) as caught:
        RowDecoder(FEATURES, classes=CLASSES).decode(raw(stream=stream))
    assert caught.value.reason == "invalid-field"
    assert caught.value.detail.startswith("stream: ")
    assert why in caught.value.detail
    assert len(caught.value.detail) <= DETAIL_MAX_CHARS
    with pytest.raises(ValueError, match="stream name"):
        check_stream_name(stream)


def test_the_producer_cannot_write_a_stream_name_the_consumer_rejects() -> None:
    with pytest.raises(ValidationError, match="path separator"):
        RowMessage(
            stream="../x", seq=0, event_time=datetime.now(UTC), features={"a": 1.0, "b": 2.0}
        )


@pytest.mark.parametrize(
    "number",
    [
        b"1e308",
        b"-1e308",
        b"5e-324",
        b"-5e-324",
        b"1.7976931348623157e308",
        b"-0.0",
        b"1" + b"0" * 308,
    ],
)
def test_finite_numbers_at_the_float_limits_are_features(number: bytes) -> None:
    value = raw(features={"a": 0, "b": 2}).replace(b'"a": 0', b'"a": ' + number)
    decoder = RowDecoder(FEATURES, classes=CLASSES)
    values = decoder.values(decoder.row(decoder.decode(value)))
    assert values == (float(number), 2.0)
    assert all(math.isfinite(v) for v in values)


@pytest.mark.parametrize(
    "number", [b"1e309", b"-1e400", b"1" + b"0" * 309, b"-" + b"9" * 400, b"1.8e308"]
)
def test_numbers_beyond_the_float_range_are_non_finite(number: bytes) -> None:
    value = raw(features={"a": 0, "b": 2}).replace(b'"a": 0', b'"a": ' + number)
    with pytest.raises(MalformedRowError) as caught:
        RowDecoder(FEATURES, classes=CLASSES).decode(value)
    assert caught.value.reason == "non-finite-value"
    assert caught.value.detail.startswith("features.a is ")


@pytest.mark.parametrize("event_time", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+00:01"])
def test_an_event_time_that_does_not_exist_in_utc_is_rejected(event_time: str) -> None:
    with pytest.raises(MalformedRowError) as caught:
        RowDecoder(FEATURES, classes=CLASSES).decode(raw(event_time=event_time))
    assert caught.value.reason == "invalid-field"
    assert caught.value.detail.startswith("event_time: ")


def test_an_event_time_at_the_calendars_edge_in_utc_is_taken() -> None:
    message = RowDecoder(FEATURES, classes=CLASSES).decode(raw(event_time="9999-12-31T23:59:59Z"))
    assert message.event_time == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_the_detail_of_a_huge_unexpected_feature_stays_short_and_lists_a_few() -> None:
    decoder = RowDecoder(FEATURES, classes=CLASSES)
    features = {"a": 1, "b": 2, "x" * 1_000_000: 3} | {f"f{i:02}": 0 for i in range(20)}
    with pytest.raises(MalformedRowError) as caught:
        decoder.decode(raw(features=features))
    assert caught.value.reason == "wrong-feature-set"
    assert caught.value.detail.startswith("unexpected f00,f01,f02,")
    assert caught.value.detail.endswith(" and 11 more")
    assert len(caught.value.detail) <= DETAIL_MAX_CHARS


def test_with_duplicate_keys_the_last_one_counts_in_decode_and_decode_all() -> None:
    value = raw(features={"a": 1, "b": 2}, label=0).replace(b'"a": 1', b'"a": 1, "a": 5')
    value = value.replace(b'"label": 0', b'"label": "setosa", "label": 0')
    decoder = RowDecoder(FEATURES, classes=CLASSES)
    message = decoder.decode(value)
    assert (decoder.values(decoder.row(message)), message.label) == ((5.0, 2.0), 0)
    assert decoder.decode_all([value]) == [decoder.row(message)]


def test_a_schema_version_elsewhere_in_the_message_is_not_the_messages() -> None:
    value = raw(extra={"schema_version": 1}).replace(b'"schema_version": 1, "stream"', b'"stream"')
    decoder = RowDecoder(FEATURES, classes=CLASSES)
    [batch] = decoder.decode_all([value])
    with pytest.raises(MalformedRowError) as caught:
        decoder.decode(value)
    assert caught.value.reason == "unknown-schema-version"
    assert isinstance(batch, MalformedRowError) and batch.reason == "unknown-schema-version"


def test_a_failure_inside_the_decoder_is_a_dead_letter_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stands in for a bug in a validator: an error that is not a validation error.
    def broken(name: str) -> str:
        raise RuntimeError(f"bug on {name}")

    monkeypatch.setattr(messages, "check_stream_name", broken)
    decoder = RowDecoder(FEATURES, classes=CLASSES)
    value = raw(stream="never-seen-before")
    with pytest.raises(MalformedRowError) as caught:
        decoder.decode(value)
    assert (caught.value.reason, caught.value.detail) == (
        "undecodable",
        "RuntimeError: bug on never-seen-before",
    )
    decoded = decoder.decode_all([raw(), value])
    assert [outcome(d) for d in decoded] == [
        decoder.row(decoder.decode(raw())),
        ("undecodable", "RuntimeError: bug on never-seen-before"),
    ]


MIXED = RowDecoder(
    ["island", "mass"], classes=["Adelie", "Gentoo"], categories={"island": ["Biscoe", "Dream"]}
)


def mixed_row(features: dict, seq: int = 0) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "stream": "penguins",
            "seq": seq,
            "event_time": "2026-01-01T00:00:00Z",
            "features": features,
            "label": "Adelie",
        }
    ).encode()


def test_categories_become_codes_unseen_ones_the_next_and_null_is_missing() -> None:
    decoder = RowDecoder(
        ["island", "mass"], classes=["Adelie"], categories={"island": ["Biscoe", "Dream"]}
    )
    rows = decoder.decode_all(
        [
            mixed_row({"island": "Dream", "mass": 3.5}),
            mixed_row({"island": "Torgersen", "mass": None}),
            mixed_row({"island": None, "mass": 4}),
            mixed_row({"island": "Torgersen", "mass": 1.0}),
            mixed_row({"island": "Zed", "mass": 1.0}),
        ]
    )
    assert [decoder.values(row) for row in rows] == [  # type: ignore[arg-type]
        (1.0, 3.5),
        (2.0, None),
        (None, 4.0),
        (2.0, 1.0),
        (3.0, 1.0),
    ]
    assert decoder.categories == {"island": ["Biscoe", "Dream", "Torgersen", "Zed"]}
    matrix = np.array([decoder.values(row) for row in rows], dtype=np.float64)  # type: ignore[arg-type]
    assert np.isnan(matrix[1, 1]) and np.isnan(matrix[2, 0])


@pytest.mark.parametrize(
    ("features", "reason", "detail"),
    [
        (
            {"island": 2, "mass": 1.0},
            "invalid-field",
            "features.island: categorical, takes a string or null, got 2.0",
        ),
        (
            {"island": "Dream", "mass": "heavy"},
            "invalid-field",
            "features.mass: numeric, takes a number or null, got 'heavy'",
        ),
        (
            {"island": True, "mass": 1.0},
            "invalid-field",
            "features.island: categorical, takes a string or null, got True",
        ),
        ({"island": "Dream"}, "wrong-feature-set", "missing mass"),
    ],
)
def test_a_value_of_the_wrong_kind_is_an_invalid_field(
    features: dict, reason: str, detail: str
) -> None:
    for outcome in (
        MIXED.decode_all([mixed_row(features)])[0],
        MIXED.decode_all([mixed_row(features), None])[0],
    ):
        assert isinstance(outcome, MalformedRowError)
        assert (outcome.reason, outcome.detail) == (reason, detail)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_literals_stay_malformed_for_either_kind(literal: bytes) -> None:
    numeric = RowDecoder(["island", "mass"], classes=["Adelie"])
    for decoder, island in ((MIXED, "Dream"), (numeric, None)):
        value = mixed_row({"island": island, "mass": 0.0}).replace(b"0.0", literal)
        with pytest.raises(MalformedRowError) as caught:
            decoder.decode(value)
        assert caught.value.reason == "non-finite-value"
        assert caught.value.detail.startswith("features.mass is ")


def test_an_all_numeric_decoder_takes_null_and_refuses_a_string() -> None:
    decoder = RowDecoder(["island", "mass"], classes=["Adelie"])
    row = decoder.row(decoder.decode(mixed_row({"island": None, "mass": 2.0})))
    assert decoder.values(row) == (None, 2.0)
    with pytest.raises(
        MalformedRowError, match=r"features\.island: numeric, takes a number or null, got 'Dream'"
    ):
        decoder.decode(mixed_row({"island": "Dream", "mass": 2.0}))


def test_unseen_categories_past_the_cap_share_one_code(monkeypatch: pytest.MonkeyPatch) -> None:
    import consumer.decoding as decoding

    monkeypatch.setattr(decoding, "UNSEEN_CATEGORIES_MAX", 2)
    decoder = RowDecoder(["island", "mass"], classes=["Adelie"], categories={"island": ["A"]})
    codes = [
        decoder.values(decoder.row(decoder.decode(mixed_row({"island": name, "mass": 1.0}))))[0]
        for name in ["B", "C", "D", "E", "B"]
    ]
    assert codes == [1.0, 2.0, 3.0, 3.0, 1.0]
    assert decoder.categories["island"] == ["A", "B", "C", decoding.OTHER_CATEGORY]
