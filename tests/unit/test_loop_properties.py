"""No poison message: whatever arrives, the loop goes on, and every row ends somewhere.

Generated messages (valid rows of a few streams with extreme values and foreign
labels, near-valid rows, arbitrary JSON and bytes) go through the whole loop, decode
-> window -> judge -> archive -> transaction, over the stand-in clients of
`tests.unit.test_monitor`. Each message ends in exactly one archived window, or on
the dead-letter topic, or in its stream's window still open at the end.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.archive import all_windows, read_window
from producer.messages import RowMessage
from tests.unit.test_monitor import FEATURES, WINDOW, Producer, Replay, monitor, record

finite = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1.7976931348623157e308, -1.7976931348623157e308, 5e-324, 0.0, -0.0]),
)
labels = st.sampled_from([0, None, 1, "setosa", 0.0, 2.5, True, [0], {"a": 0}])


@st.composite
def valid_ish(draw: st.DrawFn) -> bytes:
    """A row that mostly follows the contract, with one thing off now and then."""
    document: dict[str, Any] = {
        "schema_version": draw(st.sampled_from([1, 1, 1, 2, "1"])),
        "stream": draw(st.sampled_from(["s", "t", "s", "", "a/b", "..", "x" * 300])),
        "seq": draw(st.integers(-1, 10**30)),
        "event_time": draw(
            st.sampled_from(["2026-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00", "yesterday"])
        ),
        "features": {name: draw(finite) for name in FEATURES},
        "label": draw(labels),
    }
    if draw(st.booleans()):
        document["extra"] = draw(st.text(max_size=50))
    if draw(st.integers(0, 9)) == 0:
        document["features"].pop(FEATURES[0])
    if draw(st.integers(0, 9)) == 0:
        document["features"]["c"] = 1.0
    return json.dumps(document).encode()


def clean_row(stream: str, seq: int, values: tuple[float, float]) -> bytes:
    return RowMessage(
        stream=stream,
        seq=seq,
        event_time=datetime(2026, 1, 1, tzinfo=UTC),
        features=dict(zip(FEATURES, values, strict=True)),
        label=0,
    ).to_bytes()


clean = st.builds(
    clean_row, st.sampled_from(["s", "t"]), st.integers(0, 1000), st.tuples(finite, finite)
)
messages = st.one_of(
    clean,
    clean,
    clean,
    valid_ish(),
    st.binary(max_size=200),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=10,
    ).map(lambda value: json.dumps(value).encode()),
)


@settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(values=st.lists(messages, min_size=1, max_size=120), poll_size=st.integers(1, 50))
def test_the_loop_survives_any_messages_and_every_row_ends_somewhere(
    values: list[bytes], poll_size: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        records = [record(offset, value) for offset, value in enumerate(values)]
        producer = Producer()
        stats = monitor(root, Replay(records, producer, size=poll_size), producer).run(
            lambda: False, idle_timeout=0
        )

        archived: list[int] = []
        last_archived: dict[str, int] = {}
        for window in all_windows(root, "rows"):
            rows = read_window(window).offsets.tolist()
            archived += rows
            stream = window.path.parent.parent.name
            last_archived[stream] = max(last_archived.get(stream, -1), *rows)
        dead = [
            int(dict(kw["headers"])["driftloop.source.offset"])
            for topic, kw in producer.sent
            if topic == "rows-dlq"
        ]
    # Each message in at most one place.
    assert len(set(archived)) == len(archived)
    assert len(set(dead)) == len(dead)
    assert not set(archived) & set(dead)
    # The rest are valid rows still in their stream's open window: fewer than a window
    # of each stream, all after that stream's last archived row.
    left: dict[str, list[int]] = defaultdict(list)
    for offset in sorted(set(range(len(values))) - set(archived) - set(dead)):
        left[RowMessage.from_bytes(values[offset]).stream].append(offset)
    for stream, offsets in left.items():
        assert len(offsets) < WINDOW
        assert min(offsets) > last_archived.get(stream, -1)
    assert stats.rows == len(values)
    assert stats.windows * WINDOW == len(archived)
