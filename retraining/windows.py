"""Which archived windows a retrain for a drift event reads."""

from __future__ import annotations

from pathlib import Path

from consumer.archive import archived_windows, select_windows
from consumer.events import DriftEvent


def training_windows(root: Path, event: DriftEvent, lookback: int) -> list[Path]:
    """The archived windows a retrain for ``event`` uses, in order of first offset.

    ``lookback`` windows before the drifted one and every window archived from it on,
    in the drifted window's topic partition (see :func:`consumer.archive.select_windows`).

    Parameters
    ----------
    root : pathlib.Path
        The artifact root the consumer archives under.
    event : DriftEvent
        The drift event; its window names the topic, partition and first offset.
    lookback : int
        Windows before the drifted one to include (``lookback_windows``).

    Returns
    -------
    list of pathlib.Path
        The windows' ``.csv`` files; empty when nothing is archived for the partition.
    """
    window = event.window
    return select_windows(
        archived_windows(root, window.topic, window.partition), window.first_offset, lookback
    )
