"""One partition's streams: a windower each, and where each stands for the next commit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Generic, TypeVar

from consumer.checkpoint import CheckpointError, Resume, resume_point
from consumer.windowing import CountWindower, Merge, Window

T = TypeVar("T")


class PartitionStreams(Generic[T]):
    """Cuts one partition's rows into windows per stream, resuming where the commit says.

    Rows of two streams never share a window. Rows the committed metadata names as
    dealt with (:meth:`Resume.handled`) are skipped by :meth:`admits`, so a stream's
    windows after a restart or a move to another consumer are exactly those it would
    have had.

    Parameters
    ----------
    resume : Resume
        The partition's committed position and metadata.
    size, step : int
        Window size and step.
    seconds : float, optional
        Also close a (tumbling) window after this many seconds of event time; see
        `CountWindower`.
    min_rows : int, default 1
        With ``seconds``: a window closing on time with fewer rows merges into the next.
    on_merge : callable, optional
        Called with the stream and the :class:`~consumer.windowing.Merge` when a window
        is merged.

    Raises
    ------
    CheckpointError
        If the commit was made by a consumer cutting other windows (another size,
        step, time span or minimum): the group's consumers must agree, or windows
        would overlap.

    Examples
    --------
    Two streams interleaved in one partition. The commit after offset 4 resumes at
    the open window of ``a`` (offset 3), and says that ``b``'s row 4 is archived:

    >>> part = PartitionStreams(Resume(0, 0), size=2, step=2)
    >>> for offset, stream in enumerate("aabab"):
    ...     window = part.add(offset, stream, offset)
    ...     if window is not None:
    ...         print(stream, window.offsets)
    a (0, 1)
    b (2, 4)
    >>> part.read_through(4)
    >>> resume = part.commit()
    >>> resume.offset, resume.streams
    (3, {'b': 5})
    >>> again = PartitionStreams(resume, size=2, step=2)
    >>> [again.admits(offset, stream) for offset, stream in [(3, "a"), (4, "b")]]
    [True, False]
    """

    def __init__(
        self,
        resume: Resume,
        size: int,
        step: int,
        *,
        seconds: float | None = None,
        min_rows: int = 1,
        on_merge: Callable[[str, Merge], None] | None = None,
    ) -> None:
        time = None if seconds is None else (float(seconds), min_rows)
        if resume.window is not None and (resume.window, resume.time) != ((size, step), time):
            raise CheckpointError(
                f"the partition was committed by a consumer with window size/step "
                f"{_windows(resume.window, resume.time)}, this one uses "
                f"{_windows((size, step), time)}: every consumer of a group must cut the "
                "same windows"
            )
        self.resume = resume
        self.size = size
        self.step = step
        self.time = time
        self._on_merge = on_merge
        self._windowers: dict[str, CountWindower[T]] = {}
        self._finished: dict[str, int] = dict(resume.streams)
        self._read = resume.offset
        self.fresh = True
        """True until the consumer has taken a poll's records for this partition."""

    @property
    def streams(self) -> list[str]:
        """Streams seen in this partition since it was taken."""
        return list(self._windowers)

    def admits(self, offset: int, stream: str | None) -> bool:
        """Whether the row at ``offset`` is new (not dealt with before the commit)."""
        return not self.resume.handled(offset, stream)

    def add(
        self, offset: int, stream: str, row: T, event_time: datetime | None = None
    ) -> Window[T] | None:
        """Add a valid row to its stream's windower; the window it completes, if any.

        ``event_time`` is the row's, needed when windows close on time.
        """
        windower = self._windowers.get(stream)
        if windower is None:
            windower = self._windowers[stream] = self._windower(stream)
        window = windower.add(offset, row, event_time)
        if window is not None:
            self._finished[stream] = window.last_offset + 1
        return window

    def add_many(
        self,
        offsets: Sequence[int],
        streams: Sequence[str],
        rows: Sequence[T],
        event_times: Sequence[datetime] | None = None,
    ) -> list[tuple[str, Window[T]]]:
        """Add a poll's valid rows; the windows they complete with their streams, as :meth:`add`.

        The windows, their order and the state left (open windows, what :meth:`commit`
        says) are those of :meth:`add` row by row. ``event_times`` are the rows',
        needed when windows close on time.

        Examples
        --------
        >>> part = PartitionStreams(Resume(0, 0), size=2, step=2)
        >>> [(s, w.offsets) for s, w in part.add_many(range(5), "aabab", list(range(5)))]
        [('a', (0, 1)), ('b', (2, 4))]
        """
        if not offsets:
            return []
        first = streams[0]
        if streams.count(first) == len(streams):
            # The common case, one stream per partition: the poll's rows in one go.
            return [(first, window) for window in self._add_run(first, offsets, rows, event_times)]
        if self.time is not None:
            # Row by row: a merge is logged as it happens, so its line keeps its place
            # among the other streams' lines.
            times: Sequence[datetime | None] = event_times or [None] * len(offsets)
            added = map(self.add, offsets, streams, rows, times)
            return [
                (stream, window)
                for stream, window in zip(streams, added, strict=True)
                if window is not None
            ]
        # Each stream's rows in one go; row by row, a window comes when its last row
        # is added, so sorting on the last offsets restores the order across streams.
        runs: dict[str, tuple[list[int], list[T]]] = {}
        for offset, stream, row in zip(offsets, streams, rows, strict=True):
            run = runs.get(stream)
            if run is None:
                run = runs[stream] = ([], [])
            run[0].append(offset)
            run[1].append(row)
        windows = [
            (stream, window)
            for stream, (run_offsets, run_rows) in runs.items()
            for window in self._add_run(stream, run_offsets, run_rows, None)
        ]
        windows.sort(key=lambda added: added[1].last_offset)
        return windows

    def _add_run(
        self,
        stream: str,
        offsets: Sequence[int],
        rows: Sequence[T],
        event_times: Sequence[datetime] | None,
    ) -> list[Window[T]]:
        """Add rows of one stream to its windower; the windows they complete."""
        windower = self._windowers.get(stream)
        if windower is None:
            windower = self._windowers[stream] = self._windower(stream)
        windows = windower.add_many(offsets, rows, event_times)
        if windows:
            self._finished[stream] = windows[-1].last_offset + 1
        return windows

    def read_through(self, last_offset: int) -> None:
        """Every row up to ``last_offset`` has been read (windowed, dead-lettered, skipped)."""
        self._read = max(self._read, last_offset + 1)

    def commit(self) -> Resume:
        """The position and metadata to commit once the completed windows are durable."""
        open_windows = {
            stream: offset
            for stream, windower in self._windowers.items()
            if (offset := windower.pending_offset) is not None
        }
        resume = resume_point(
            self._read, open_windows, self._finished, (self.size, self.step), self.time
        )
        if resume.read < self.resume.read:
            # Read again only up to here: the rows past it up to the last commit's read
            # were dealt with then (its dead letters sent), and stay so for the next reader.
            resume = replace(resume, read=self.resume.read)
        # Streams at or below the position need no entry any more.
        self._finished = {s: o for s, o in self._finished.items() if o > resume.offset}
        return resume

    def _windower(self, stream: str) -> CountWindower[T]:
        if self.time is None:
            return CountWindower(self.size, self.step)
        on_merge = self._on_merge
        return CountWindower(
            self.size,
            self.step,
            seconds=self.time[0],
            min_rows=self.time[1],
            on_merge=None if on_merge is None else lambda merge: on_merge(stream, merge),
        )


def _windows(window: tuple[int, int], time: tuple[float, int] | None) -> str:
    """How a consumer cuts windows, for an error message.

    >>> _windows((50, 50), None), _windows((50, 50), (60.0, 10))
    ('50/50', '50/50 closing after 60 s of event time (at least 10 rows)')
    """
    cut = f"{window[0]}/{window[1]}"
    if time is None:
        return cut
    return f"{cut} closing after {time[0]:g} s of event time (at least {time[1]} rows)"
