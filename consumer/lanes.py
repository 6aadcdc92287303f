"""A stream lane's alarm state: its alarm, its drift episodes, the firings no window took yet.

The consumer keeps one :class:`Lane` per partition it reads. Rows go to the lane's
alarm as they arrive (:meth:`Lane.observe`); when a window closes,
:meth:`Lane.judge` gives it the alarm's firings on its rows and the KS rule's
verdict, and tells the episode tracker. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

from consumer.alarms import AlarmName, Firing, RankThresholdsFor, StreamAlarm
from consumer.episodes import Episode, EpisodeTracker, Transition
from consumer.events import AlarmInfo, DriftEvent, EpisodeInfo


@dataclass(frozen=True)
class LaneVerdict:
    """What a closed window meant for its lane: the alarm, and the episode after it."""

    alarm: AlarmInfo
    transition: Transition | None
    episode: EpisodeInfo | None


class Lane:
    """One partition's alarm and episodes.

    Parameters
    ----------
    alarm : {"rank", "ks"}
        Which alarm decides.
    feature_names : sequence of str
        The champion's features, in column order.
    n_reference : int
        Rows of the champion's reference data.
    window_step : int
        Rows between window starts.
    false_alarm_rows : float
        The budget.
    thresholds : callable
        The rank alarm's thresholds for (baseline rows, features).
    warmup_rows : int
        Rows in the rank alarm's baseline.
    resolve_after : int
        Clean windows in a row that resolve an episode.
    seed : int
        Seed of the rank alarm's tie-breaking (the partition number does).
    """

    def __init__(
        self,
        alarm: AlarmName,
        feature_names: Sequence[str],
        n_reference: int,
        window_step: int,
        false_alarm_rows: float,
        thresholds: RankThresholdsFor,
        warmup_rows: int,
        resolve_after: int,
        seed: int = 0,
    ) -> None:
        self.names = list(feature_names)
        self.false_alarm_rows = false_alarm_rows
        self.alarm = StreamAlarm(
            alarm,
            n_reference=n_reference,
            n_features=len(self.names),
            window_step=window_step,
            false_alarm_rows=false_alarm_rows,
            thresholds=thresholds,
            warmup_rows=warmup_rows,
            seed=seed,
            # A window alarms once, however often the alarm fires in it.
            holdoff=window_step,
        )
        self.episodes = EpisodeTracker(resolve_after)
        self.last_event: DriftEvent | None = None
        """The newest window's event: what a resolution by re-baseline refers to."""
        self._pending: list[Firing] = []
        # What the alarm says on a window it did not fire on, warming up or not: the same
        # for every such window (the contract's models are frozen), so built once.
        self._quiet_info = {
            warming: AlarmInfo(
                name=alarm,
                false_alarm_rows=false_alarm_rows,
                fired=False,
                warming_up=warming,
                kind=None,
                rows=None,
                statistic=None,
                threshold=None,
                features=[],
            )
            for warming in (False, True)
        }
        self.observed_through = -1
        """Offset of the last row given to the alarm (-1: none yet)."""
        self._ongoing: tuple[tuple[object, ...], EpisodeInfo] | None = None
        """The open episode's view on a window that changed nothing, with what it shows."""

    def observe(self, values: npt.ArrayLike, offsets: npt.ArrayLike) -> None:
        """Give the alarm this partition's next valid rows, in offset order, each once."""
        at = np.asarray(offsets, dtype=np.int64)
        if len(at):
            self._pending.extend(self.alarm.observe(values, at))
            self.observed_through = int(at[-1])

    def judge(
        self,
        event_id: str,
        first_offset: int,
        last_offset: int,
        distances: npt.NDArray[np.floating],
        size: int,
        judged_at: datetime,
        evidence: bool = False,
        guard_p_values: npt.NDArray[np.floating] | None = None,
    ) -> LaneVerdict:
        """The alarm's verdict on a closed window, and what it changed in the episodes.

        ``evidence`` is the window's own KS verdict: a drifted window does not count
        towards resolving an open episode. ``guard_p_values`` are the detector's for
        the KS rule, when it has them (categorical features, missing values).
        """
        taken = self._taken(last_offset)
        ks = self.alarm.judge_window(distances, size, first_offset, last_offset, guard_p_values)
        if ks is not None:
            taken.append(ks)
        # The rank alarm leaves to the KS rule the windows that began in its warm-up.
        warming = self.alarm.rank is not None and self.alarm.judges_window(first_offset)
        if not taken:
            features: tuple[str, ...] = ()
            info = self._quiet_info[warming]
        else:
            names = self.names
            if len(taken) == 1:
                # The common case: the holdoff leaves a window one rank firing at most (the
                # KS guard's joins it only in the warm-up), whose features are distinct, as the
                # champion's names are.
                strongest = taken[0]
                features = tuple([names[i] for i in strongest.features])
            else:
                features = tuple(dict.fromkeys(names[i] for f in taken for i in f.features))
                strongest = max(taken, key=lambda f: f.statistic / f.threshold)
            info = AlarmInfo(
                name=self.alarm.name,
                false_alarm_rows=self.false_alarm_rows,
                fired=True,
                warming_up=warming,
                kind=strongest.kind,
                rows=strongest.window,
                statistic=strongest.statistic,
                threshold=strongest.threshold,
                features=list(features),
            )
        transition = self.episodes.window(event_id, features, judged_at, evidence)
        return LaneVerdict(info, transition, self._episode_info(transition))

    def _taken(self, last_offset: int) -> list[Firing]:
        """The pending firings up to ``last_offset``, no longer pending: a prefix (offset order)."""
        pending = self._pending
        count = 0
        for firing in pending:
            if firing.offset > last_offset:
                break
            count += 1
        if not count:
            return []
        taken = pending[:count]
        del pending[:count]
        return taken

    def _episode_info(self, transition: Transition | None) -> EpisodeInfo | None:
        """The contract's view of the episode a judged window belongs to, if any.

        On a window that changed nothing the view is that of the window before, unless
        the episode changed since (the models are frozen): the same object, not a new one
        per window (a pydantic model costs more than the rest of a window's verdict).
        """
        if transition is not None:
            state = "ongoing" if transition.change == "update" else transition.change
            return _info(transition.episode, state, transition.reason)
        episode = self.episodes.open
        if episode is None:
            return None
        # What the view shows of the episode: its clean windows are not in it.
        shown = (
            episode.episode_id,
            episode.opened_at,
            episode.drifted_features,
            episode.alarmed_windows,
        )
        if self._ongoing is None or self._ongoing[0] != shown:
            self._ongoing = (shown, _info(episode, "ongoing"))
        return self._ongoing[1]


def _info(
    episode: Episode, state: Literal["onset", "ongoing", "resolved"], reason: str | None = None
) -> EpisodeInfo:
    """The contract's view of an episode."""
    return EpisodeInfo(
        episode_id=episode.episode_id,
        state=state,
        opened_at=episode.opened_at,
        drifted_features=list(episode.drifted_features),
        alarmed_windows=episode.alarmed_windows,
        reason=reason,
    )
