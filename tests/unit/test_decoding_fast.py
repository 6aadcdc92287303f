"""The msgspec fast path of ``decode_all`` agrees with the pydantic path on every value.

Differential: whatever value the fast path takes, pydantic (``RowDecoder.decode``,
the one source of truth) takes too and reads as exactly the same row: the same
stream, seq, event time (instant, offset and tzinfo), label (value and type) and
feature values (type and bits: ``-0.0`` is not ``0.0``). Values the fast path does
not take go through pydantic in ``decode_all``, so their reasons and details are
pydantic's. The producer's own rows must take the fast path, or it would be no path.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from consumer.decoding import DecodedRow, MalformedRowError, RowDecoder
from producer.messages import RowMessage
from tests.unit.test_decoding_properties import (
    FEATURES,
    LIMITS,
    PROPERTY,
    encode,
    junk,
    valid_streams,
    valid_times,
    wire,
)

CATEGORIES = {"sepal_width": ["narrow", "wide"], "petal_width": ["Île", "流"]}
DECODERS = {
    "integers": RowDecoder(FEATURES, classes=[0, 1, 2]),
    "strings": RowDecoder(FEATURES, classes=["setosa", "versicolor", "virginica"]),
    "categorical": RowDecoder(FEATURES, classes=[0, 10**30], categories=CATEGORIES),
    "one-feature": RowDecoder(["x"], classes=["1", 1]),
}


def exact(row: DecodedRow) -> tuple[Any, ...]:
    """Everything a row holds, with the types and bits that ``==`` would let pass."""
    time = row.event_time
    return (
        row.stream,
        (type(row.seq), row.seq),
        (time.isoformat(), time.utcoffset(), type(time.tzinfo), time.tzinfo, time.tzname()),
        (type(row.label), row.label),
        tuple((type(v), repr(v)) for v in row.values),
    )


def pydantic_says(decoder: RowDecoder, value: bytes | None) -> tuple[Any, ...]:
    """The pydantic path's verdict on ``value``: the exact row, or the reason and detail."""
    try:
        return exact(decoder.row(decoder.decode(value)))
    except MalformedRowError as err:
        return (err.reason, err.detail)


def assert_agree(decoder: RowDecoder, values: list[bytes | None]) -> int:
    """The fast path's rows are pydantic's; ``decode_all`` is pydantic's verdict on each.

    Returns how many values the fast path took.
    """
    fast = decoder._fast(values)
    polled = decoder.decode_all(values)
    for value, quick, got in zip(values, fast, polled, strict=True):
        said = pydantic_says(decoder, value)
        if quick is not None:
            assert exact(quick) == said, value
        verdict = (got.reason, got.detail) if isinstance(got, MalformedRowError) else exact(got)
        assert verdict == said, value
    return sum(row is not None for row in fast)


# -- odd spellings --------------------------------------------------------------------

two = st.integers(min_value=0, max_value=99).map("{:02}".format)
years = st.sampled_from(["0000", "0001", "1900", "2000", "2023", "2024", "9999", "10000"])
fractions = st.one_of(
    st.just(""),
    st.integers(min_value=1, max_value=12).flatmap(
        lambda n: st.text("0123456789", min_size=n, max_size=n).map(lambda d: "." + d)
    ),
    st.sampled_from([",5", ".", ".999999", ".9999995", ".0000005"]),
)
zones = st.one_of(
    st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+0000", "+00", "+24:00", " Z", "UTC"]),
    st.builds(
        lambda sign, hh, mm, colon: f"{sign}{hh}{colon}{mm}",
        st.sampled_from("+-"),
        two,
        two,
        st.sampled_from([":", ""]),
    ),
)
odd_times = st.one_of(
    st.builds(
        lambda y, mo, d, sep, h, mi, s, f, z: f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}{f}{z}",
        years,
        st.sampled_from(["01", "02", "12", "13", "00"]),
        st.sampled_from(["01", "28", "29", "30", "31", "32", "00"]),
        st.sampled_from(["T", "t", " ", "_"]),
        st.sampled_from(["00", "12", "23", "24"]),
        st.sampled_from(["00", "59", "60"]),
        st.sampled_from(["00", "59", "60", "61"]),
        fractions,
        zones,
    ),
    st.sampled_from(
        ["2026-01-01", "2026-01-01T00:00Z", "20260101T000000Z", "2026-W01-1T00:00:00Z", ""]
    ),
    valid_times,
)
"""ISO 8601 and near misses: offsets, no offset, fractions of any length, leap days."""

odd_numbers = st.one_of(
    st.sampled_from(
        [
            "-0",
            "-0.0",
            "0e0",
            "1E+2",
            "1e-400",
            "-1e-400",
            "4.9e-324",
            "2.4703282292062328e-324",
            "2.4703282292062327e-324",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "1e309",
            "-1e309",
            "0.1000000000000000055511151231257827021181583404541015625",
            "9007199254740993",
            "18446744073709551616",
            "1" + "0" * 308,
            "1" + "0" * 309,
            "9" * 4300,
            "9" * 4301,
            "1.0",
            "2.0",
            "2.5",
            "true",
            "null",
            '"1"',
            "NaN",
            "Infinity",
        ]
    ),
    st.floats().map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str),
)
"""Numbers as JSON may spell them (and some it may not), at and past the float limits."""

escapes = st.sampled_from(
    [
        *[r'"\/"', r'"\u0000"', r'"\b\f\n\r\t"', r'"\""', r'"\u00e9"', r'"\uD83C\uDF38"'],
        *[r'"\ud83c"', r'"\udf38"', r'"\x41"', '"\t"', '"\x7f"', '"{"', '"["', "-", "01"],
    ]
)
"""String escapes, valid and not, raw control characters and brackets inside strings."""

ascii_scalars = st.one_of(
    st.text(st.characters(max_codepoint=127), max_size=12).map(json.dumps),
    st.integers().map(str),
    st.floats().map(json.dumps),  # NaN and Infinity too, which pydantic skips and msgspec not
    st.sampled_from(["true", "false", "null", '""']),
)
"""What a newer producer's field most likely holds: short ASCII scalars."""

texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["narrow", "wide", "Île", "流", "", " narrow", "setosa", "1", "0"]),
)


def raw_text(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def mostly(usual: st.SearchStrategy[str], odd: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``usual`` three times in four, else ``odd``: rows with one or two odd fields abound."""
    return st.integers(min_value=0, max_value=3).flatmap(lambda i: usual if i else odd)


@st.composite
def odd_rows(draw: st.DrawFn, decoder: RowDecoder) -> bytes:
    """A row whose fields may be spelled oddly, written from raw JSON text."""
    names = list(decoder.feature_names)
    features = {}
    for name in draw(st.permutations(names)):
        usual = (
            st.sampled_from(decoder.categories[name]).map(raw_text)
            if name in decoder.categories
            else st.floats(allow_nan=False, allow_infinity=False).map(repr)
        )
        features[name] = draw(
            mostly(usual, st.one_of(odd_numbers, texts.map(raw_text), st.just("null")))
        )
    if draw(st.integers(min_value=0, max_value=9)) == 0:  # now and then a wrong feature set
        features.pop(names[0])
        features[draw(st.sampled_from(["", "extra", names[0].upper()]))] = "1"
    classes = st.sampled_from([json.dumps(c) for c in decoder.classes])
    fields = {
        "schema_version": draw(mostly(st.just("1"), st.sampled_from(["1.0", "2", "true", '"1"']))),
        "stream": raw_text(
            draw(mostly(valid_streams, st.sampled_from(["", ".", "a/b", "a\x00", "x" * 201])))
        ),
        "seq": draw(mostly(st.integers(0, 10**6).map(str), odd_numbers)),
        "event_time": draw(
            mostly(valid_times.map(raw_text), odd_times.map(raw_text) | odd_numbers)
        ),
        "features": "{" + ",".join(f"{raw_text(k)}:{v}" for k, v in features.items()) + "}",
        "label": draw(mostly(classes | st.just("null"), odd_numbers | texts.map(raw_text))),
    }
    if draw(st.booleans()):
        del fields["label"]
    if draw(st.integers(min_value=0, max_value=19)) == 0:
        del fields["schema_version"]
    pairs = draw(st.permutations(list(fields.items())))
    for _ in range(draw(st.integers(min_value=-2, max_value=2))):  # extra or repeated fields
        key = draw(st.sampled_from(["extra", "x" * 4000, "é", *fields]))
        extra = draw(junk.map(json.dumps) | odd_numbers | texts.map(raw_text) | escapes)
        pairs.insert(draw(st.integers(0, len(pairs))), (key, extra))
    return ("{" + ",".join(f"{raw_text(k)}:{v}" for k, v in pairs) + "}").encode(
        "utf-8", "surrogatepass"
    )


@st.composite
def producers_rows(draw: st.DrawFn, decoder: RowDecoder) -> bytes:
    """A row as the producer writes it: RowMessage.to_bytes of valid fields."""
    features: dict[str, float | str | None] = {}
    for name in decoder.feature_names:
        if name in decoder.categories:
            features[name] = draw(st.none() | st.sampled_from(decoder.categories[name]) | texts)
        else:
            features[name] = draw(
                st.none()
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.sampled_from(LIMITS)
            )
    return RowMessage(
        stream=draw(valid_streams),
        seq=draw(st.integers(min_value=0, max_value=2**63)),
        event_time=datetime.fromisoformat(draw(valid_times)),
        features=features,
        label=draw(st.none() | st.sampled_from(decoder.classes)),
    ).to_bytes()


# -- the properties -------------------------------------------------------------------


@PROPERTY
@given(data=st.data(), kind=st.sampled_from(sorted(DECODERS)))
def test_oddly_spelled_rows_get_pydantics_verdict(data: st.DataObject, kind: str) -> None:
    decoder = DECODERS[kind]
    assert_agree(decoder, data.draw(st.lists(odd_rows(decoder), min_size=1, max_size=6)))


@PROPERTY
@given(data=st.data(), kind=st.sampled_from(["integers", "strings"]))
def test_any_wire_value_gets_pydantics_verdict(data: st.DataObject, kind: str) -> None:
    decoder = DECODERS[kind]
    assert_agree(decoder, data.draw(st.lists(wire(decoder.classes), max_size=8)))


@PROPERTY
@given(data=st.data(), kind=st.sampled_from(sorted(DECODERS)))
def test_the_producers_rows_take_the_fast_path(data: st.DataObject, kind: str) -> None:
    decoder = DECODERS[kind]
    values: list[bytes | None] = data.draw(st.lists(producers_rows(decoder), max_size=6))
    assert assert_agree(decoder, values) == len(values)


@PROPERTY
@given(data=st.data(), kind=st.sampled_from(sorted(DECODERS)))
def test_rows_with_fields_of_a_newer_producer_get_pydantics_verdict(
    data: st.DataObject, kind: str
) -> None:
    # The lax decoder's ground: valid rows plus fields RowMessage lacks, of any spelling.
    decoder = DECODERS[kind]
    values: list[bytes | None] = []
    for value in data.draw(st.lists(producers_rows(decoder), min_size=1, max_size=6)):
        extras = data.draw(
            st.lists(
                st.tuples(
                    st.text(max_size=6) | st.sampled_from(["stream", "features", "label"]),
                    mostly(
                        ascii_scalars,
                        odd_numbers | texts.map(raw_text) | escapes | junk.map(json.dumps),
                    ),
                ),
                min_size=1,
                max_size=3,
            )
        )
        fields = "".join(f",{raw_text(k)}:{v}" for k, v in extras)
        values.append(value[:-1] + fields.encode("utf-8", "surrogatepass") + b"}")
    assert_agree(decoder, values)


def test_odd_event_times_agree_with_pydantic_and_some_take_the_fast_path() -> None:
    decoder = DECODERS["integers"]
    times = [
        "2024-02-29T23:59:59.999999Z",
        "2023-02-29T00:00:00Z",
        "2026-01-01T00:00:00.1234567Z",
        "2026-01-01T00:00:00.9999995+00:00",
        "2026-01-01 00:00:00z",
        "2026-01-01T00:00:00",
        "2026-01-01T00:00:00-00:00",
        "2026-01-01T01:30:00+01:30",
        "2026-01-01T00:00:00+23:59",
        "2026-01-01T00:00:00+24:00",
        "0001-01-01T00:00:00+00:01",
        "0001-01-01T00:00:00-00:01",
        "9999-12-31T23:59:59-00:01",
        "9999-12-31T23:59:59+00:01",
        "2026-01-01T23:59:60Z",
    ]
    values: list[bytes | None] = [
        encode(
            [
                ("schema_version", 1),
                ("stream", "s"),
                ("seq", i),
                ("event_time", t),
                ("features", dict.fromkeys(FEATURES, 1.5)),
            ],
            ascii_only=True,
        )
        for i, t in enumerate(times)
    ]
    assert assert_agree(decoder, values) >= 8


def test_a_poll_decodes_the_unusual_rows_with_pydantic_and_the_rest_fast() -> None:
    decoder = RowDecoder(["a", "b"], classes=[0, 1, 2])

    def row(label: str = "1", extra: str = "") -> bytes:
        return (
            '{"schema_version":1,"stream":"s","seq":3,"event_time":"2026-01-01T00:00:00Z",'
            f'"features":{{"a":1,"b":2.5}},"label":{label}{extra}}}'
        ).encode()

    values: list[bytes | None] = [
        row(),
        row("2.0"),  # the integer 2 to pydantic; msgspec refuses a float
        row(extra=', "note": "ignored"'),  # an extra scalar field: both ignore it
        row("true"),  # no label: unknown-label
        None,  # a tombstone
        row(extra=', "note": ' + "[" * 300 + "]" * 300),  # past pydantic's depth: not-json
        row().replace(b',"label"', b',"note":"\xff","label"'),  # not UTF-8: not-json
        row(extra=', "note": ' + '{"a":' * 300 + "1" + "}" * 300),  # as deep, in objects
        row(extra=', "note": ' + "9" * 4301),  # past pydantic's 4,300 digits: not-json
        row(extra=', "note": ' + "9" * 4300),  # within them: ignored
        row(),
    ]
    fast = decoder._fast(values)
    taken = [True, False, True, False, False, False, False, False, False, False, True]
    assert [r is not None for r in fast] == taken
    assert assert_agree(decoder, values) == 3
    polled = decoder.decode_all(values)
    assert [getattr(r, "label", None) for r in polled[:3]] == [1, 2, 1]
    assert [getattr(r, "reason", None) for r in polled[3:10]] == [
        "unknown-label",
        "not-json",
        "not-json",
        "not-json",
        "not-json",
        "not-json",
        None,
    ]


def test_a_long_poll_of_unusual_rows_gets_pydantics_verdict_on_each() -> None:
    # Past the first 64 values, a poll msgspec mostly refuses goes to pydantic whole.
    decoder = DECODERS["integers"]

    def row(seq: int, label: float, note: bool = False) -> bytes:
        return encode(
            [
                ("schema_version", 1),
                ("stream", "s"),
                ("seq", seq),
                ("event_time", "2026-01-01T00:00:00Z"),
                ("features", dict.fromkeys(FEATURES, 0.5 + seq)),
                ("label", label),
                *([("note", "a newer producer's field")] if note else []),
            ],
            ascii_only=True,
        )

    # Labels written as floats (2.0), which msgspec refuses and pydantic takes.
    unusual: list[bytes | None] = [row(i, float(i % 3)) for i in range(100)] + [row(100, 1)]
    assert assert_agree(decoder, unusual) == 0
    usual: list[bytes | None] = [row(i, i % 4, note=i % 10 == 0) for i in range(200)]
    # Of 200, 50 have the label 3, no class; the 150 others go fast, notes or not.
    assert assert_agree(decoder, usual) == 150
