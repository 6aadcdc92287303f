"""Count windows: feed a list of rows, assert the exact windows out."""

from __future__ import annotations

import dataclasses

import pytest

from consumer.windowing import CountWindower, Window

# Offsets 3, 6 and 11 were dead-lettered: the windower never sees them.
OFFSETS = [0, 1, 2, 4, 5, 7, 8, 9, 10, 12, 13]
ROWS = [(offset, f"r{offset}") for offset in OFFSETS]


def run(windower: CountWindower[str]) -> list[tuple[Window[str], int | None]]:
    """Feed every row; collect each window with the pending offset right after it."""
    out = []
    for offset, item in ROWS:
        window = windower.add(offset, item)
        if window is not None:
            out.append((window, windower.pending_offset))
    return out


def win(*offsets: int) -> Window[str]:
    return Window(offsets[0], offsets[-1], offsets, tuple(f"r{o}" for o in offsets))


def test_tumbling_windows_with_gaps() -> None:
    windower: CountWindower[str] = CountWindower(size=3)
    assert run(windower) == [
        (win(0, 1, 2), None),
        (win(4, 5, 7), None),
        (win(8, 9, 10), None),
    ]
    assert windower.pending_offset == 12


def test_sliding_windows_with_gaps() -> None:
    windower: CountWindower[str] = CountWindower(size=4, step=2)
    assert run(windower) == [
        (win(0, 1, 2, 4), 2),
        (win(2, 4, 5, 7), 5),
        (win(5, 7, 8, 9), 8),
        (win(8, 9, 10, 12), 10),
    ]
    assert windower.pending_offset == 10


def test_sliding_by_one_row() -> None:
    windower: CountWindower[str] = CountWindower(size=3, step=1)
    got = [(w.first_offset, w.last_offset, p) for w, p in run(windower)]
    assert got == [
        (0, 2, 1),
        (1, 4, 2),
        (2, 5, 4),
        (4, 7, 5),
        (5, 8, 7),
        (7, 9, 8),
        (8, 10, 9),
        (9, 12, 10),
        (10, 13, 12),
    ]


def test_sliding_step_not_dividing_size() -> None:
    windower: CountWindower[str] = CountWindower(size=5, step=3)
    assert run(windower) == [
        (win(0, 1, 2, 4, 5), 4),
        (win(4, 5, 7, 8, 9), 8),
        (win(8, 9, 10, 12, 13), 12),
    ]


def test_size_one_windows_every_row() -> None:
    windower: CountWindower[str] = CountWindower(size=1)
    assert run(windower) == [(win(o), None) for o in OFFSETS]


def test_pending_offset_while_filling() -> None:
    windower: CountWindower[str] = CountWindower(size=3)
    assert windower.pending_offset is None
    assert windower.add(40, "a") is None
    assert windower.pending_offset == 40
    assert windower.add(42, "b") is None
    assert windower.pending_offset == 40
    assert windower.add(43, "c") == Window(40, 43, (40, 42, 43), ("a", "b", "c"))
    assert windower.pending_offset is None


def test_step_defaults_to_size() -> None:
    windower: CountWindower[int] = CountWindower(size=7)
    assert (windower.size, windower.step) == (7, 7)


def test_window_is_a_frozen_snapshot() -> None:
    windower: CountWindower[str] = CountWindower(size=2, step=1)
    assert windower.add(0, "a") is None
    first = windower.add(1, "b")
    assert first is not None
    assert first == Window(0, 1, (0, 1), ("a", "b"))
    windower.add(2, "c")
    assert first.items == ("a", "b")
    assert first.size == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.first_offset = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("size", "step", "name"),
    [
        (0, None, "size"),
        (-3, None, "size"),
        (2.0, None, "size"),
        (True, None, "size"),
        (3, 0, "step"),
        (3, 4, "step"),
        (3, -1, "step"),
        (3, 1.5, "step"),
    ],
)
def test_rejects_bad_parameters(size: object, step: object, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name} "):
        CountWindower(size=size, step=step)  # type: ignore[arg-type]
