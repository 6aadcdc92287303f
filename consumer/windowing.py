"""Count-based tumbling and sliding windows over one partition's rows, optionally closed on time."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Literal, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

ClosedBy = Literal["rows", "time"]
"""Why a window closed: it was full (``rows``), or its time span was over (``time``)."""


@dataclass(frozen=True, slots=True)
class Window(Generic[T_co]):
    """A full window of rows from one partition.

    A window is identified by its topic, partition and ``first_offset``; the
    windower knows none of the first two, the caller does.

    Attributes
    ----------
    first_offset : int
        Offset of the window's first row.
    last_offset : int
        Offset of the window's last row.
    offsets : tuple of int
        Offsets of the rows, in order. Dead-lettered rows are never fed in, so
        the offsets may have gaps.
    items : tuple
        The rows, in order, one per offset.
    closed_by : {"rows", "time"} or None
        Why it closed, from a windower that closes on time; None from one that
        closes on rows only (every window is full).
    """

    first_offset: int
    last_offset: int
    offsets: tuple[int, ...]
    items: tuple[T_co, ...]
    closed_by: ClosedBy | None = None

    @property
    def size(self) -> int:
        """Number of rows in the window."""
        return len(self.items)


@dataclass(frozen=True, slots=True)
class Merge:
    """A window that closed on time with fewer rows than the minimum, kept open.

    Its rows stay buffered and the next window's rows join them: the merged window
    keeps this one's first offset (and so its id), and closes when it is full or when
    the next window's time span is over.

    Attributes
    ----------
    first_offset : int
        Offset of the open window's first row (unchanged by the merge).
    rows : int
        Rows the window held when its time span ended.
    min_rows : int
        The minimum it fell short of.
    seconds : float
        The windower's time span.
    """

    first_offset: int
    rows: int
    min_rows: int
    seconds: float


class CountWindower(Generic[T]):
    """Cut one partition's rows into windows of ``size`` rows every ``step`` rows.

    ``step == size`` gives tumbling windows; ``step < size`` sliding ones that
    share ``size - step`` rows with the window before. Use one windower per
    partition and feed it only valid rows, with increasing offsets.

    With ``seconds``, a (tumbling) window also closes on event time, whichever comes
    first: a window spans ``[t0, t0 + seconds)`` where ``t0`` is its first row's
    event time, and the first row whose event time is at or past ``t0 + seconds``
    closes it and begins the next window. A window therefore closes when a row
    arrives: a stream that stops entirely has its last window judged when its next
    row comes. Rows are taken in arrival (offset) order: a row whose event time lies
    before ``t0`` (clocks that go backwards) joins the open window. A window that
    closes on time with fewer than ``min_rows`` rows is not emitted but merged into
    the next one (see :class:`Merge`): it stays open under its first offset, and the
    rows of the next time span join it; ``on_merge`` hears of each merge.

    The windows depend only on the rows fed since the open window's first row, so a
    windower fed again from :attr:`pending_offset` (a restarted consumer) cuts the
    same windows.

    Parameters
    ----------
    size : int
        Rows per window, at least 1 (at least 2 with ``seconds``).
    step : int, optional
        Rows between the starts of consecutive windows, from 1 to ``size``.
        Defaults to ``size`` (tumbling).
    seconds : float, optional
        Also close a window after this many seconds of event time; windows close
        on rows only when unset. Needs tumbling windows (``step == size``).
    min_rows : int, default 1
        With ``seconds``: a window closing on time with fewer rows is merged into
        the next one. From 1 to ``size``.
    on_merge : callable, optional
        Called with the :class:`Merge` whenever a window is merged.

    Raises
    ------
    ValueError
        If ``size``, ``step``, ``seconds`` or ``min_rows`` is out of range.

    Examples
    --------
    Tumbling windows of 3 rows; offset 4 was dead-lettered, so it is missing:

    >>> tumbling = CountWindower(size=3)
    >>> for offset in [0, 1, 2, 3, 5, 6, 7]:
    ...     window = tumbling.add(offset, f"row{offset}")
    ...     if window is not None:
    ...         print(window.first_offset, window.last_offset, window.items)
    0 2 ('row0', 'row1', 'row2')
    3 6 ('row3', 'row5', 'row6')
    >>> tumbling.pending_offset
    7

    Sliding windows of 4 rows every 2 rows:

    >>> sliding = CountWindower(size=4, step=2)
    >>> for offset in range(10):
    ...     window = sliding.add(offset, offset)
    ...     if window is not None:
    ...         print(window.offsets, "next window starts at", sliding.pending_offset)
    (0, 1, 2, 3) next window starts at 2
    (2, 3, 4, 5) next window starts at 4
    (4, 5, 6, 7) next window starts at 6
    (6, 7, 8, 9) next window starts at 8

    Windows of 4 rows or 60 seconds of event time, at least 2 rows. The row at 60 s
    closes the first window on time and begins the next; the row at 130 s finds that
    window holding one row, below the minimum, so the window stays open and takes the
    next 60 s too; the row at 200 s closes it; the next window closes full:

    >>> from datetime import UTC, datetime, timedelta
    >>> timed = CountWindower(size=4, seconds=60, min_rows=2, on_merge=print)
    >>> start = datetime(2026, 1, 1, tzinfo=UTC)
    >>> for offset, second in enumerate([0, 10, 59, 60, 130, 200, 201, 202, 203, 204]):
    ...     window = timed.add(offset, second, start + timedelta(seconds=second))
    ...     if window is not None:
    ...         print(window.offsets, window.items, window.closed_by)
    (0, 1, 2) (0, 10, 59) time
    Merge(first_offset=3, rows=1, min_rows=2, seconds=60.0)
    (3, 4) (60, 130) time
    (5, 6, 7, 8) (200, 201, 202, 203) rows
    >>> timed.pending_offset
    9
    """

    __slots__ = (
        "_deadline",
        "_items",
        "_min_rows",
        "_offsets",
        "_on_merge",
        "_seconds",
        "_size",
        "_span",
        "_step",
    )

    def __init__(
        self,
        size: int,
        step: int | None = None,
        *,
        seconds: float | None = None,
        min_rows: int = 1,
        on_merge: Callable[[Merge], None] | None = None,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be an integer >= 1, got {size!r}")
        if step is None:
            step = size
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= size:
            raise ValueError(f"step must be an integer from 1 to size ({size}), got {step!r}")
        if seconds is not None:
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not math.isfinite(seconds)
                or seconds <= 0
            ):
                raise ValueError(f"seconds must be a finite number > 0, got {seconds!r}")
            if step != size:
                raise ValueError(
                    f"seconds needs tumbling windows: step ({step}) must equal size ({size}); "
                    "a window closed on time would leave the next sliding window's rows unjudged"
                )
            if size < 2:
                raise ValueError(f"size must be at least 2 with seconds, got {size}")
        if isinstance(min_rows, bool) or not isinstance(min_rows, int) or not 1 <= min_rows <= size:
            raise ValueError(
                f"min_rows must be an integer from 1 to size ({size}), got {min_rows!r}"
            )
        self._size = size
        self._step = step
        self._seconds = None if seconds is None else float(seconds)
        self._span = None if seconds is None else timedelta(seconds=seconds)
        self._min_rows = min_rows
        self._on_merge = on_merge
        self._deadline: datetime | None = None
        self._offsets: list[int] = []
        self._items: list[T] = []

    @property
    def size(self) -> int:
        """Rows per window."""
        return self._size

    @property
    def step(self) -> int:
        """Rows between the starts of consecutive windows."""
        return self._step

    @property
    def seconds(self) -> float | None:
        """Seconds of event time after which a window closes; None: on rows only."""
        return self._seconds

    @property
    def min_rows(self) -> int:
        """Fewest rows of a window closed on time; a smaller one is merged into the next."""
        return self._min_rows

    @property
    def pending_offset(self) -> int | None:
        """Offset of the first buffered row, or ``None`` when nothing is buffered.

        This is the first offset the next window still needs: the offset to
        commit once every emitted window is durable.
        """
        return self._offsets[0] if self._offsets else None

    def add(self, offset: int, item: T, event_time: datetime | None = None) -> Window[T] | None:
        """Buffer one row; return the window it completes, if any.

        Parameters
        ----------
        offset : int
            The row's offset, greater than any offset added before.
        item : object
            The row.
        event_time : datetime, optional
            The row's event time (timezone-aware); needed with ``seconds``, ignored
            without.

        Returns
        -------
        Window or None
            The completed window, after which the first ``step`` rows leave
            the buffer; ``None`` while the window is still filling. A window
            closed on time holds the rows before this one, which begins the next.

        Raises
        ------
        ValueError
            With ``seconds``, if ``event_time`` is None.
        """
        if self._span is not None:
            return self._add_timed(offset, item, event_time)
        offsets = self._offsets
        items = self._items
        offsets.append(offset)
        items.append(item)
        if len(items) < self._size:
            return None
        window = Window(offsets[0], offset, tuple(offsets), tuple(items))
        if self._step == self._size:
            # Tumbling: nothing carries over, fresh lists beat deleting in place.
            self._offsets = []
            self._items = []
        else:
            del offsets[: self._step]
            del items[: self._step]
        return window

    def add_many(
        self,
        offsets: Sequence[int],
        items: Sequence[T],
        event_times: Sequence[datetime] | None = None,
    ) -> list[Window[T]]:
        """Buffer rows in order; return the windows they complete, as :meth:`add` row by row.

        A poll brings thousands of rows: cut into windows by slicing, they cost no
        Python call per row. The windows, their rows and what stays buffered are those
        that adding the rows one by one with :meth:`add` gives.

        Parameters
        ----------
        offsets : sequence of int
            The rows' offsets, increasing, each greater than any offset added before.
        items : sequence
            The rows, one per offset.
        event_times : sequence of datetime, optional
            The rows' event times, one per offset; needed with ``seconds``, ignored
            without.

        Returns
        -------
        list of Window
            The completed windows, in the order :meth:`add` would return them.

        Raises
        ------
        ValueError
            If ``items`` or ``event_times`` do not have one entry per offset, or with
            ``seconds`` if ``event_times`` is None (nothing is added then).

        Examples
        --------
        Sliding windows of 4 rows every 2 rows, fed a poll of 7 rows, then 3 more:

        >>> sliding = CountWindower(size=4, step=2)
        >>> [w.offsets for w in sliding.add_many(range(7), "abcdefg")]
        [(0, 1, 2, 3), (2, 3, 4, 5)]
        >>> [w.items for w in sliding.add_many([7, 8, 9], "hij")]
        [('e', 'f', 'g', 'h'), ('g', 'h', 'i', 'j')]
        >>> sliding.pending_offset
        8
        """
        if len(items) != len(offsets) or (
            event_times is not None and len(event_times) != len(offsets)
        ):
            raise ValueError(
                f"one item and event time per offset: got {len(offsets)} offsets, "
                f"{len(items)} items and "
                f"{'no' if event_times is None else len(event_times)} event times"
            )
        if self._span is not None:
            if event_times is None:
                if not offsets:
                    return []
                raise ValueError(
                    f"event_time is needed for the row at offset {offsets[0]}: "
                    "windows close on time"
                )
            # A row's event time decides where its window ends, so these go one by one.
            timed = map(self._add_timed, offsets, items, event_times)
            return [window for window in timed if window is not None]
        size, step = self._size, self._step
        if len(self._items) + len(items) < size:
            self._offsets.extend(offsets)
            self._items.extend(items)
            return []
        # The buffer holds fewer than size rows; row by row, add() emits the window of
        # the buffer's first size rows, then drops its first step rows: the windows
        # start every step rows, as many as fit, and the rest stays buffered.
        all_offsets = (*self._offsets, *offsets)
        all_items = (*self._items, *items)
        starts = range(0, len(all_items) - size + 1, step)
        windows = [
            Window(
                all_offsets[start],
                all_offsets[start + size - 1],
                all_offsets[start : start + size],
                all_items[start : start + size],
            )
            for start in starts
        ]
        rest = starts[-1] + step
        self._offsets = list(all_offsets[rest:])
        self._items = list(all_items[rest:])
        return windows

    def _add_timed(self, offset: int, item: T, event_time: datetime | None) -> Window[T] | None:
        """:meth:`add` for a windower that also closes on time (tumbling)."""
        if event_time is None:
            raise ValueError(
                f"event_time is needed for the row at offset {offset}: windows close on time"
            )
        assert self._span is not None and self._seconds is not None
        offsets = self._offsets
        if self._deadline is None or not offsets:
            self._deadline = event_time + self._span
        elif event_time >= self._deadline:
            self._deadline = event_time + self._span
            if len(offsets) >= self._min_rows:
                window = Window(offsets[0], offsets[-1], tuple(offsets), tuple(self._items), "time")
                self._offsets = [offset]
                self._items = [item]
                return window
            if self._on_merge is not None:
                self._on_merge(Merge(offsets[0], len(offsets), self._min_rows, self._seconds))
        offsets.append(offset)
        self._items.append(item)
        if len(offsets) < self._size:
            return None
        window = Window(offsets[0], offset, tuple(offsets), tuple(self._items), "rows")
        self._offsets = []
        self._items = []
        self._deadline = None
        return window
