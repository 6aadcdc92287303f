"""Late labels: a row's label held back and sent on the labels topic after a delay."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

_DELAY = re.compile(r"\s*(\d+(?:\.\d*)?)\s*(s?)\s*")


@dataclass(frozen=True)
class LabelDelay:
    """How long a row's label is held back: a number of rows, or seconds.

    Parameters
    ----------
    rows
        The label of row ``i`` is sent right after row ``i + rows``.
    seconds
        The label of a row is sent with the first row sent at least this many
        seconds after it (wall time, which is the rows' event time).

    Examples
    --------
    >>> LabelDelay.parse("50")
    LabelDelay(rows=50, seconds=None)
    >>> LabelDelay.parse("2.5s")
    LabelDelay(rows=None, seconds=2.5)
    >>> LabelDelay.parse("soon")
    Traceback (most recent call last):
    ...
    ValueError: a label delay is a number of rows (50) or of seconds (30s), got 'soon'
    """

    rows: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if (self.rows is None) == (self.seconds is None):
            raise ValueError("a label delay is either rows or seconds, not both or neither")
        if self.rows is not None and self.rows < 0:
            raise ValueError(f"a label delay in rows is >= 0, got {self.rows}")
        if self.seconds is not None and not self.seconds >= 0:
            raise ValueError(f"a label delay in seconds is >= 0, got {self.seconds}")

    @classmethod
    def parse(cls, text: str) -> LabelDelay:
        """``"N"``: N rows; ``"Ts"``: T seconds (a decimal number)."""
        match = _DELAY.fullmatch(text)
        if match is None or (not match.group(2) and "." in match.group(1)):
            raise ValueError(
                f"a label delay is a number of rows (50) or of seconds (30s), got {text!r}"
            )
        if match.group(2):
            return cls(seconds=float(match.group(1)))
        return cls(rows=int(match.group(1)))


@dataclass(frozen=True)
class HeldLabel:
    """A row's label waiting to be sent."""

    seq: int
    label: int | str
    row: int
    """How many rows had been sent before this label's row."""
    sent_at: float
    """When its row was sent (seconds, monotonic)."""


class DelayedLabels:
    """Holds each row's label until its delay has passed; pure, the caller sends.

    Examples
    --------
    >>> held = DelayedLabels(LabelDelay(rows=2))
    >>> for seq in range(4):
    ...     held.hold(seq, seq * 10, now=0.0)
    ...     print(seq, [(h.seq, h.label) for h in held.due(now=0.0)])
    0 []
    1 []
    2 [(0, 0)]
    3 [(1, 10)]
    >>> [(h.seq, h.label) for h in held.drain()]
    [(2, 20), (3, 30)]
    """

    def __init__(self, delay: LabelDelay) -> None:
        self.delay = delay
        self._held: deque[HeldLabel] = deque()
        self._rows = 0

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, seq: int, label: int | str, now: float) -> None:
        """Hold the label of the row just sent (``now``: when it was sent)."""
        self._held.append(HeldLabel(seq, label, self._rows, now))
        self._rows += 1

    def due(self, now: float) -> list[HeldLabel]:
        """The labels whose delay has passed, oldest first; they are no longer held."""
        out = []
        while self._held and self._is_due(self._held[0], now):
            out.append(self._held.popleft())
        return out

    def drain(self) -> list[HeldLabel]:
        """Every label still held, oldest first (the end of a bounded run)."""
        out = list(self._held)
        self._held.clear()
        return out

    def _is_due(self, held: HeldLabel, now: float) -> bool:
        if self.delay.rows is not None:
            # Rows sent after this one's row: row i's label goes after row i + rows.
            return self._rows - 1 - held.row >= self.delay.rows
        assert self.delay.seconds is not None
        return now - held.sent_at >= self.delay.seconds
