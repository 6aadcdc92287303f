"""A lane's judging and the rows it was given, as they were before the verdicts were reused
(commit f27e37d).

A copy, kept for `test_lanes.py` to prove the faster paths give the same verdicts and
rows: :class:`LaneBefore` builds every verdict object afresh per window, and
:func:`new_rows_before` picks a poll's new rows with a mask per window, as
``DriftMonitor._observe`` did.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import numpy.typing as npt

from consumer.events import AlarmInfo
from consumer.lanes import Lane, LaneVerdict, _info
from consumer.windowing import Window


class LaneBefore(Lane):
    """`Lane` with the judge of commit f27e37d."""

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
        count = 0
        for firing in self._pending:
            if firing.offset > last_offset:
                break
            count += 1
        taken = self._pending[:count]
        if count:
            del self._pending[:count]
        ks = self.alarm.judge_window(distances, size, first_offset, last_offset, guard_p_values)
        if ks is not None:
            taken.append(ks)
        warming = self.alarm.rank is not None and self.alarm.judges_window(first_offset)
        if not taken:
            features: tuple[str, ...] = ()
            info = self._quiet_info[warming]
        else:
            names = self.names
            features = tuple(dict.fromkeys(names[i] for f in taken for i in f.features))
            strongest = (
                taken[0] if len(taken) == 1 else max(taken, key=lambda f: f.statistic / f.threshold)
            )
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
        if transition is not None:
            state = "ongoing" if transition.change == "update" else transition.change
            episode = _info(transition.episode, state, transition.reason)
        elif self.episodes.open is not None:
            episode = _info(self.episodes.open, "ongoing")
        else:
            episode = None
        return LaneVerdict(info, transition, episode)


def new_rows_before(
    windows: list[tuple[Window[object], np.ndarray]], seen: int
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a lane's windows past offset ``seen``, as ``DriftMonitor._observe`` took them."""
    values, offsets = [], []
    for window, matrix in windows:
        at = np.asarray(window.offsets, dtype=np.int64)
        new = at > seen
        values.append(matrix[new])
        offsets.append(at[new])
        seen = int(at[-1])
    return np.concatenate(values), np.concatenate(offsets)
