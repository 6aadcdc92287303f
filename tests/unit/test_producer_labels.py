"""Late labels from the producer: the Label contract and ``--label-delay`` in rows or seconds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from producer.__main__ import parse_args
from producer.labels import DelayedLabels, LabelDelay
from producer.messages import LabelMessage

WIRE = (
    b'{"schema_version":1,"stream":"iris","seq":3,"label":%s,"event_time":"2026-12-01T00:00:00Z"}'
)


@pytest.mark.parametrize(("label", "expected"), [(b"2", 2), (b'"setosa"', "setosa")])
def test_a_label_message_round_trips_with_the_row_labels_types(
    label: bytes, expected: int | str
) -> None:
    message = LabelMessage.from_bytes(WIRE % label)
    assert (message.stream, message.seq, message.label) == ("iris", 3, expected)
    assert LabelMessage.from_bytes(message.to_bytes()) == message


@pytest.mark.parametrize("label", [b"true", b"null", b"2.5", b"[1]"])
def test_a_label_message_refuses_what_is_no_label(label: bytes) -> None:
    with pytest.raises(ValidationError):
        LabelMessage.from_bytes(WIRE % label)


def test_a_label_message_refuses_a_bad_stream_or_a_negative_seq() -> None:
    with pytest.raises(ValidationError, match="path separator"):
        LabelMessage.from_bytes(WIRE.replace(b'"iris"', b'"a/b"') % b"1")
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        LabelMessage.from_bytes(WIRE.replace(b'"seq":3', b'"seq":-1') % b"1")


def test_labels_delayed_by_rows_go_n_rows_later_and_the_rest_at_the_end() -> None:
    held = DelayedLabels(LabelDelay(rows=3))
    sent_after: dict[int, int] = {}
    for seq in range(10):
        held.hold(seq, f"c{seq}", now=float(seq))
        for label in held.due(now=float(seq)):
            sent_after[label.seq] = seq
    assert sent_after == {i: i + 3 for i in range(7)}
    assert [(h.seq, h.label) for h in held.drain()] == [(7, "c7"), (8, "c8"), (9, "c9")]
    assert len(held) == 0


def test_a_delay_of_zero_rows_sends_each_label_right_after_its_row() -> None:
    held = DelayedLabels(LabelDelay(rows=0))
    held.hold(0, 1, now=0.0)
    assert [h.seq for h in held.due(now=0.0)] == [0]


def test_labels_delayed_by_seconds_go_with_the_first_row_that_late() -> None:
    held = DelayedLabels(LabelDelay(seconds=2.0))
    due = []
    for seq, now in enumerate([0.0, 0.5, 1.9, 2.0, 2.4, 5.0]):
        held.hold(seq, seq, now=now)
        due.append([h.seq for h in held.due(now=now)])
    assert due == [[], [], [], [0], [], [1, 2, 3, 4]]
    assert [h.seq for h in held.drain()] == [5]


@pytest.mark.parametrize(
    ("text", "delay"),
    [("0", LabelDelay(rows=0)), ("120", LabelDelay(rows=120)), ("30s", LabelDelay(seconds=30.0))],
)
def test_the_flag_takes_rows_or_seconds(text: str, delay: LabelDelay) -> None:
    settings, _, _ = parse_args(["--label-delay", text])
    assert settings.delay == delay


@pytest.mark.parametrize("text", ["-1", "1.5", "30m", "s", ""])
def test_a_bad_delay_names_the_flag(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--label-delay", text])
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith(
        "error: --label-delay (env DRIFTLOOP_LABEL_DELAY): a label delay is a number of rows"
    )


def test_without_the_flag_labels_go_with_their_rows() -> None:
    settings, _, _ = parse_args([])
    assert settings.delay is None
