"""Drift episodes: an alarm opens one, clean windows or a new champion close it.

One :class:`EpisodeTracker` per lane (the consumer keeps one per partition). It is told,
window by window, whether the alarm fired on the window's rows, and says what
changed: an episode opened (the onset, announced once, what wakes the retraining
DAG), an open episode saw more drift (logged and counted, not announced), or an
episode resolved (announced) after ``resolve_after`` clean windows in a row or a
re-baseline on a new champion. A clean window is one the alarm did not fire on and
whose own KS verdict against the champion's reference is not drift: an alarm that
re-baselined on drifted rows stays quiet, but the evidence against the champion
keeps the episode open until a new champion re-baselines it. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Change = Literal["onset", "update", "resolved"]


@dataclass(frozen=True)
class Episode:
    """An open or closed drift episode of one lane.

    Attributes
    ----------
    episode_id : str
        The event id of the window whose alarm opened it: deterministic.
    opened_at : datetime
        When the onset window was judged.
    drifted_features : tuple of str
        Features the alarms pointed at, in order of first appearance.
    alarmed_windows : int
        Windows on which the alarm fired, the onset included.
    clean_windows : int
        Clean windows since the last alarmed one.
    """

    episode_id: str
    opened_at: datetime
    drifted_features: tuple[str, ...]
    alarmed_windows: int = 1
    clean_windows: int = 0


@dataclass(frozen=True)
class Transition:
    """What a window (or a re-baseline) changed: the change and the episode after it."""

    change: Change
    episode: Episode
    reason: str


class EpisodeTracker:
    """Opens, updates and resolves the drift episodes of one lane.

    Parameters
    ----------
    resolve_after : int
        Clean windows in a row that resolve an open episode, at least 1.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> t0 = datetime(2026, 12, 1, tzinfo=UTC)
    >>> tracker = EpisodeTracker(resolve_after=2)
    >>> tracker.window("rows-0-0-49", (), t0) is None
    True
    >>> tracker.window("rows-0-50-99", ("a",), t0).change
    'onset'
    >>> tracker.window("rows-0-100-149", ("b",), t0).episode.drifted_features
    ('a', 'b')
    >>> tracker.window("rows-0-150-199", (), t0) is None
    True
    >>> done = tracker.window("rows-0-200-249", (), t0)
    >>> done.change, done.episode.episode_id, done.reason
    ('resolved', 'rows-0-50-99', 'clean for 2 windows')
    """

    def __init__(self, resolve_after: int) -> None:
        if resolve_after < 1:
            raise ValueError(f"resolve_after must be at least 1, got {resolve_after}")
        self.resolve_after = resolve_after
        self.open: Episode | None = None

    def window(
        self,
        event_id: str,
        alarmed_features: tuple[str, ...] | None,
        judged_at: datetime,
        evidence: bool = False,
    ) -> Transition | None:
        """Account for one judged window.

        Parameters
        ----------
        event_id : str
            The window's event id (the episode's id if it opens one).
        alarmed_features : tuple of str or None
            The features the alarm fired on in this window; empty or None when it
            did not fire.
        judged_at : datetime
            When the window was judged.
        evidence : bool, default False
            Whether the window's KS verdict was drift: such a window is not clean.

        Returns
        -------
        Transition or None
            ``onset``, ``update`` or ``resolved``; None for a clean window outside
            an episode or one that does not yet resolve it.
        """
        episode = self.open
        if alarmed_features:
            if episode is None:
                self.open = Episode(event_id, judged_at, tuple(dict.fromkeys(alarmed_features)))
                return Transition("onset", self.open, "alarm")
            features = tuple(dict.fromkeys((*episode.drifted_features, *alarmed_features)))
            # Episode(...) rather than dataclasses.replace: a third of its cost, per window.
            self.open = Episode(
                episode.episode_id, episode.opened_at, features, episode.alarmed_windows + 1, 0
            )
            return Transition("update", self.open, "alarm")
        if episode is None:
            return None
        if evidence:
            if episode.clean_windows:
                self.open = Episode(
                    episode.episode_id,
                    episode.opened_at,
                    episode.drifted_features,
                    episode.alarmed_windows,
                    0,
                )
            return None
        episode = Episode(
            episode.episode_id,
            episode.opened_at,
            episode.drifted_features,
            episode.alarmed_windows,
            episode.clean_windows + 1,
        )
        if episode.clean_windows >= self.resolve_after:
            self.open = None
            return Transition("resolved", episode, f"clean for {episode.clean_windows} windows")
        self.open = episode
        return None

    def rebaseline(self, reason: str) -> Transition | None:
        """Close the open episode, if any: the consumer now judges against a new champion."""
        episode, self.open = self.open, None
        if episode is None:
            return None
        return Transition("resolved", episode, reason)
