"""The rank alarm's scan as it was before it judged every sum at once (commit df79b56).

A copy, kept for `test_alarms.py` to prove the faster scan gives the same firings to the
last bit: every (kind, length) judged on its own with `window_z`, two searches per value
for its rank, no chain of firings at first points. Only the scan is copied; the baseline,
the scores and the thresholds are the alarm's own.
"""

from __future__ import annotations

import numpy as np

import consumer.alarms as alarms
from consumer.alarms import CHUNK, LONGEST, SCAN, Firing, RankAlarm, tie_break, window_z


class RankAlarmBefore(RankAlarm):
    """`RankAlarm` with the scan of commit df79b56."""

    def _ranks(self, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        assert self._baseline is not None
        ranks = np.empty(x.shape, dtype=np.int64)
        spread = tie_break(pos, self.n_features, self.seed)
        for f in range(self.n_features):
            column = self._baseline[f]
            lo = np.searchsorted(column, x[:, f], side="left")
            hi = np.searchsorted(column, x[:, f], side="right")
            ranks[:, f] = lo + (spread[:, f] * (hi - lo + 1)).astype(np.int64)
        return ranks

    def _scan(self, x: np.ndarray, pos: np.ndarray) -> list[Firing]:
        assert self._tables is not None and self._thresholds is not None
        n = self.baseline_rows
        ranks = self._ranks(x, pos)
        scores = np.stack([table[ranks].T for table in self._tables])
        firings: list[Firing] = []
        start = 0
        while start < x.shape[0]:
            end = min(x.shape[0], start + CHUNK)
            firing, used = self._advance_before(scores[:, :, start:end], pos[start:end], n)
            start += used
            if firing is not None:
                firings.append(firing)
                self.restart()
                self._quiet = self.holdoff
        return firings

    def _first_firing_before(
        self,
        sums: np.ndarray,
        counts: np.ndarray,
        at: np.ndarray,
        kept: int,
        pos: np.ndarray,
        n: int,
    ) -> tuple[int, Firing] | None:
        assert self._thresholds is not None
        first: tuple[int, Firing] | None = None
        if at.size == 0:
            return None
        for k, (kind, degrees, lengths) in enumerate(SCAN):
            for w in lengths:
                ok = at[counts[at] >= w]
                if ok.size == 0:
                    continue
                z = window_z(sums, kept + ok + 1, w, n, degrees, self._skews)
                over = z > self._thresholds[k]
                hit = np.flatnonzero(over.any(axis=0))
                if hit.size == 0:
                    continue
                j = int(ok[hit[0]])
                if first is None or j < first[0]:
                    first = (
                        j,
                        Firing(
                            offset=int(pos[j]),
                            features=tuple(int(f) for f in np.flatnonzero(over[:, hit[0]])),
                            kind=kind,
                            window=w,
                            statistic=float(z[:, hit[0]].max()),
                            threshold=float(self._thresholds[k]),
                        ),
                    )
        return first

    def _advance_before(
        self, scores: np.ndarray, pos: np.ndarray, n: int
    ) -> tuple[Firing | None, int]:
        kept = self._history.shape[2]
        m = scores.shape[2]
        counts = self._since_restart + np.arange(1, m + 1)
        at = np.flatnonzero((counts % self.every == 0) & (counts > self._quiet))
        head = int(np.searchsorted(counts[at], alarms.HEAD_ROWS))
        first: tuple[int, Firing] | None = None
        if head:
            full = np.concatenate([self._history, scores[:, :, : int(at[head - 1]) + 1]], axis=2)
            first = self._first_firing_before(_summed(full), counts, at[:head], kept, pos, n)
        if first is None:
            full = np.concatenate([self._history, scores], axis=2)
            first = self._first_firing_before(_summed(full), counts, at[head:], kept, pos, n)
        used = m if first is None else first[0] + 1
        self._since_restart += used
        self._history = full[:, :, kept + used - min(LONGEST, self._since_restart) : kept + used]
        return (None if first is None else first[1]), used


def _summed(scores: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((*scores.shape[:2], 1)), np.cumsum(scores, axis=2)], axis=2)
