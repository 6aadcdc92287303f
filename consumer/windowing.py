"""Count-based tumbling and sliding windows over one partition's rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Window(Generic[T]):
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
    """

    first_offset: int
    last_offset: int
    offsets: tuple[int, ...]
    items: tuple[T, ...]

    @property
    def size(self) -> int:
        """Number of rows in the window."""
        return len(self.items)


class CountWindower(Generic[T]):
    """Cut one partition's rows into windows of ``size`` rows every ``step`` rows.

    ``step == size`` gives tumbling windows; ``step < size`` sliding ones that
    share ``size - step`` rows with the window before. Use one windower per
    partition and feed it only valid rows, with increasing offsets.

    Parameters
    ----------
    size : int
        Rows per window, at least 1.
    step : int, optional
        Rows between the starts of consecutive windows, from 1 to ``size``.
        Defaults to ``size`` (tumbling).

    Raises
    ------
    ValueError
        If ``size`` or ``step`` is out of range.

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
    """

    __slots__ = ("_items", "_offsets", "_size", "_step")

    def __init__(self, size: int, step: int | None = None) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be an integer >= 1, got {size!r}")
        if step is None:
            step = size
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= size:
            raise ValueError(f"step must be an integer from 1 to size ({size}), got {step!r}")
        self._size = size
        self._step = step
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
    def pending_offset(self) -> int | None:
        """Offset of the first buffered row, or ``None`` when nothing is buffered.

        This is the first offset the next window still needs: the offset to
        commit once every emitted window is durable.
        """
        return self._offsets[0] if self._offsets else None

    def add(self, offset: int, item: T) -> Window[T] | None:
        """Buffer one row; return the window it completes, if any.

        Parameters
        ----------
        offset : int
            The row's offset, greater than any offset added before.
        item : object
            The row.

        Returns
        -------
        Window or None
            The completed window, after which the first ``step`` rows leave
            the buffer; ``None`` while the window is still filling.
        """
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
