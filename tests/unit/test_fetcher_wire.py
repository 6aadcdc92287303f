"""What the fetching process sends comes out as it went in (`broker.fetcher`)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from broker.fetcher import join_bytes, split_bytes

ITEMS = st.lists(st.none() | st.binary(max_size=40), max_size=60)


@given(ITEMS)
def test_joined_bytes_split_back_into_the_same_items(items: list[bytes | None]) -> None:
    joined = join_bytes(items)
    assert split_bytes(joined, len(items)) == items
    if items and all(item is None for item in items):
        assert joined is None  # keys are mostly None: nothing is sent for them


@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=60))
def test_values_are_sent_as_one_piece_of_bytes(items: list[bytes]) -> None:
    joined = join_bytes(items)
    assert joined is not None
    assert joined[1] == b"".join(items)
