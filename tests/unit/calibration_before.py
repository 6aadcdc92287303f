"""The calibration's simulation as it was before it judged its sums at once (commit f27e37d).

A copy, kept for `test_alarms.py` to prove the batched simulation gives the same maxima
to the last bit: every (kind, length) of `SCAN` judged on its own with `window_z`.
"""

from __future__ import annotations

import numpy as np

from consumer.alarms import SCAN, score_skews, score_tables, window_z


def simulate_maxima_before(
    baseline_rows: int, every: int, rows: int, trial_rows: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """`consumer.calibration.simulate_maxima` of commit f27e37d."""
    rng = np.random.default_rng(seed)
    trials = max(1, rows // trial_rows)
    n = baseline_rows
    tables = score_tables(n)
    skews = score_skews(tables)
    points = trial_rows // every
    location = np.zeros((trials, points))
    other = np.zeros((trials, points))
    counts = (np.arange(points) + 1) * every
    for t in range(trials):
        baseline = np.sort(rng.random(n))
        ranks = np.searchsorted(baseline, rng.random(trial_rows))
        sums = np.concatenate(
            [np.zeros((len(tables), 1, 1)), np.cumsum(tables[:, ranks], axis=1)[:, None, :]], axis=2
        )
        for kind, degrees, lengths in SCAN:
            best = location if kind == "location" else other
            for w in lengths:
                ok = counts >= w
                z = window_z(sums, counts[ok], w, n, degrees, skews)[0]
                best[t, ok] = np.maximum(best[t, ok], z)
    return location, other
