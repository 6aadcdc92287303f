"""Which archived windows a retrain for a drift event reads."""

from __future__ import annotations

from bisect import bisect_left
from pathlib import Path

from consumer.archive import (
    ArchivedWindow,
    archived_partitions,
    archived_windows,
    first_event_time,
    select_windows,
)
from consumer.events import DriftEvent


def training_windows(root: Path, event: DriftEvent, lookback: int) -> list[ArchivedWindow]:
    """The archived windows a retrain for ``event`` uses: its stream's, from every partition.

    In the drifted window's partition: ``lookback`` windows before it and every window
    from it on (see :func:`consumer.archive.select_windows`). In the stream's other
    partitions, whose offsets do not compare: every window that began at or after the
    drifted window began (by event time), and ``lookback`` before. A window that began
    earlier is left out even if it ends after: its first rows came before the drift
    showed, and training on them would teach the challenger the old data.

    Parameters
    ----------
    root : pathlib.Path
        The artifact root the consumers archive under.
    event : DriftEvent
        The drift event; it names the stream, and its window the topic, partition,
        first offset and first event time.
    lookback : int
        Windows before the drifted one to include, per partition (``lookback_windows``).

    Returns
    -------
    list of consumer.archive.ArchivedWindow
        The windows (segment records, or per-window files of older archives), by
        partition, then first offset; empty when nothing is archived for the stream.

    Raises
    ------
    consumer.archive.ArchiveError
        If a window needed to place the onset in another partition cannot be read.
    """
    window = event.window
    chosen: list[ArchivedWindow] = []
    for partition in archived_partitions(root, window.topic, event.stream):
        files = archived_windows(root, window.topic, event.stream, partition)
        if partition == window.partition:
            chosen += select_windows(files, window.first_offset, lookback)
        else:
            # Event times grow along a partition, so the first window that begins at the
            # onset is found by bisection, reading a few windows only.
            start = bisect_left(files, window.first_event_time, key=first_event_time)
            chosen += files[max(0, start - lookback) :]
    return chosen
