"""The checkpoint: where each partition's streams stand, committed with their windows.

A partition carries rows of several streams, and each stream is cut into its own
windows. A partition's commit position is the first offset that some stream's
open window still needs (or, with no window open, past the last row read). The
rows between that position and the last row read that were already dealt with
(in an archived window, or dead-lettered) are named in the commit's metadata
(:class:`Resume`): a consumer that takes the partition over, or the same one
restarted, skips exactly those and cuts every stream's next window where the
committing consumer would have.

Offsets, a poll's drift events and its dead letters are committed in one Kafka
transaction, after the poll's windows are in the archive; :class:`InFlight` keeps
at most one poll's transaction in flight while the next poll is judged.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from kafka.structs import OffsetAndMetadata

logger = logging.getLogger(__name__)

METADATA_VERSION = 1
"""Version of the commit metadata's layout; a consumer refuses a version it does not know."""


class CheckpointError(RuntimeError):
    """The committed metadata of a partition cannot be followed by this consumer."""


@dataclass(frozen=True)
class Resume:
    """What a partition's committed offset says about the rows past it.

    Attributes
    ----------
    offset : int
        The committed position: the first row not known to be dealt with.
    read : int
        Every row below this offset was dealt with: windowed or dead-lettered.
    streams : dict of str to int
        Per stream, the first of its rows not yet in an archived window, where that
        lies past ``offset`` (a stream not named resumes at ``offset``).
    window : tuple of (int, int)
        Window size and step of the consumer that committed.
    time : tuple of (float, int), optional
        Its time windows' seconds and minimum rows; None when its windows close on
        rows only (and in commits from before time windows).

    Examples
    --------
    >>> resume = Resume(offset=100, read=180, streams={"b": 150}, window=(50, 50))
    >>> [resume.handled(o, "a") for o in (99, 100, 160)]
    [True, False, False]
    >>> [resume.handled(o, "b") for o in (120, 150, 180)]
    [True, False, False]
    >>> resume.handled(120, None)  # a row dead-lettered before the commit
    True
    >>> Resume.decode(100, resume.encode()) == resume
    True
    >>> timed = Resume(offset=100, read=180, window=(50, 50), time=(60.0, 10))
    >>> timed.encode()
    '{"v":1,"read":180,"window":[50,50],"time":[60.0,10]}'
    >>> Resume.decode(100, timed.encode()) == timed
    True
    """

    offset: int
    read: int
    streams: dict[str, int] = field(default_factory=dict)
    window: tuple[int, int] | None = None
    time: tuple[float, int] | None = None

    def handled(self, offset: int, stream: str | None) -> bool:
        """Whether the row at ``offset`` was dealt with before the commit.

        ``stream`` is the row's stream, or None for a row that does not decode (it
        was dead-lettered if it lies below :attr:`read`).
        """
        if offset < self.offset:
            return True
        if offset >= self.read:
            return False
        if stream is None:
            return True
        return offset < self.streams.get(stream, self.offset)

    def encode(self) -> str:
        """The metadata string committed with the offset."""
        document: dict[str, Any] = {"v": METADATA_VERSION, "read": self.read}
        if self.streams:
            document["streams"] = self.streams
        if self.window is not None:
            document["window"] = list(self.window)
        if self.time is not None:
            document["time"] = list(self.time)
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def decode(cls, offset: int, metadata: str | None) -> Resume:
        """The resume point a committed offset and its metadata describe.

        A commit without driftloop's metadata (from before it, or by another tool)
        resumes every stream at the offset.

        Raises
        ------
        CheckpointError
            If the metadata is driftloop's but of an unknown version or malformed.
        """
        if not metadata:
            return cls(offset=offset, read=offset)
        try:
            document = json.loads(metadata)
        except ValueError:
            return cls(offset=offset, read=offset)
        if not isinstance(document, dict) or "v" not in document:
            return cls(offset=offset, read=offset)
        if document["v"] != METADATA_VERSION:
            raise CheckpointError(
                f"the committed offset {offset} carries checkpoint metadata version "
                f"{document['v']!r}; this consumer reads version {METADATA_VERSION}: "
                "run the same driftloop version in every consumer of the group"
            )
        try:
            streams = {str(k): int(v) for k, v in document.get("streams", {}).items()}
            window = document.get("window")
            time = document.get("time")
            return cls(
                offset=offset,
                read=max(int(document["read"]), offset),
                streams=streams,
                window=None if window is None else (int(window[0]), int(window[1])),
                time=None if time is None else (float(time[0]), int(time[1])),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            raise CheckpointError(
                f"the committed offset {offset} carries malformed checkpoint metadata "
                f"{metadata[:200]!r}: {err}"
            ) from err

    def commit(self) -> OffsetAndMetadata:
        """As kafka-python commits it."""
        return OffsetAndMetadata(self.offset, self.encode(), -1)


def resume_point(
    read: int,
    open_windows: dict[str, int],
    finished: dict[str, int],
    window: tuple[int, int],
    time: tuple[float, int] | None = None,
) -> Resume:
    """The commit for a partition: its position, and what lies past it.

    Parameters
    ----------
    read : int
        One past the last offset read.
    open_windows : dict of str to int
        Per stream with an open window, the first offset it still needs.
    finished : dict of str to int
        Per stream, one past the last row in an archived window (or carried over
        from the previous commit for a stream not seen since).
    window : tuple of (int, int)
        This consumer's window size and step.
    time : tuple of (float, int), optional
        This consumer's time windows (seconds, minimum rows), if its windows close on time.

    Examples
    --------
    Stream ``a``'s window is open from 100; ``b``'s last window ended at 149; ``c``'s
    long before:

    >>> resume_point(180, {"a": 100}, {"a": 100, "b": 150, "c": 20}, (50, 50))
    Resume(offset=100, read=180, streams={'b': 150}, window=(50, 50), time=None)
    """
    position = min([read, *open_windows.values()])
    streams = {}
    for stream in sorted(set(open_windows) | set(finished)):
        needed = open_windows.get(stream, finished.get(stream, position))
        if needed > position:
            streams[stream] = needed
    return Resume(offset=position, read=read, streams=streams, window=window, time=time)


class InFlight:
    """Polls' durability work (archive, then transaction), up to ``depth`` in flight.

    The work runs on one thread in the order it was handed off, so a poll's windows,
    events and offsets are always committed after those of the polls before it;
    :meth:`hand_off` waits while ``depth`` polls are in flight, so the loop reads
    and judges ahead of a slow transaction by that many polls at most. Work handed
    off after work that failed must not commit (it would commit offsets past the
    failed poll's rows): the work itself refuses to, see
    ``consumer.service.DriftMonitor``. Safe to call :meth:`settle` from kafka-python's
    rebalance listener: it only waits on the archive thread, never on the consumer's
    client.

    Parameters
    ----------
    depth : int, default 1
        Most polls in flight.
    """

    def __init__(self, depth: int = 1) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.depth = depth
        self._polls: deque[Future[None]] = deque()
        # The loop's thread hands off polls while a rebalance listener (on kafka-python's
        # IO thread) may hand off the commit of a partition handed over.
        self._lock = threading.RLock()

    def hand_off(self, work: Callable[[], Future[None]]) -> None:
        """Wait until fewer than ``depth`` polls are in flight, then start ``work``.

        Raises
        ------
        Exception
            Whatever the earliest poll's work raised: nothing of it was committed,
            nor of the work after it; ``work`` is not started.
        """
        with self._lock:
            while len(self._polls) >= self.depth:
                self._collect(wait=True, first_only=True)
            self._polls.append(work())

    def settle(self, wait: bool) -> None:
        """Collect the polls whose work is done (with ``wait``: every poll, once done).

        Raises whatever the earliest of them raised, once all are collected.
        """
        with self._lock:
            self._collect(wait, first_only=False)

    def _collect(self, wait: bool, first_only: bool) -> None:
        error: BaseException | None = None
        while self._polls and (wait or self._polls[0].done()):
            try:
                self._polls.popleft().result()
            except BaseException as err:
                error = error or err
            if first_only:
                break
        if error is not None:
            raise error

    @property
    def busy(self) -> bool:
        """Whether a poll's work is still in flight."""
        return bool(self._polls)

    def abandon(self) -> None:
        """Forget the polls in flight (their work failed or was cut off)."""
        self._polls.clear()
