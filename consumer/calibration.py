"""Thresholds of the rank alarm, calibrated by simulation to a false-alarm budget.

The rank alarm's statistic depends on the data only through ranks, and randomized
ranks of a clean stream among its baseline are distributed as those of uniform
numbers among uniform numbers, whatever the data. So one simulation on uniform
data, per baseline size, calibrates every stream: fresh baselines (their sampling
error included), the same scores, sums and evaluation points as
:class:`consumer.alarms.RankAlarm`.

The simulation gives, per feature, how often a threshold ``h`` is passed for the
first time in a while (exceedances more than the longest sum apart count once, as
the alarm restarts after each). Over the highest levels seen often enough (a span
of ``FIT_SPAN`` in ``|z|``), the log of that rate is fitted as a line in ``h``, an
exponential tail, and solved for the rate the budget allows divided by
``SAFETY``. A line is the tangent at the edge of what was counted: sums of
bounded scores have tails at most Gaussian far out (Hoeffding), so their log-rate
bends down and the line overstates the rarer rates it extrapolates to, as the
direct simulation confirms where it can count. A Gaussian-tail fit
(``a + b log h - h^2 / 2``) was tried first and understated the shape sums' rate
5-10 fold at ``|z|`` 6 (their scores, degrees 4 and 6, are heavy-tailed for sums
of 100 rows); the comparison with a direct simulation of 200 million rows is in
BENCHMARKS.md. Features are taken
as independent and their rates added (a union bound), which can only overstate
the rate of a maximum over correlated features. The fit per baseline size is
cached as JSON under the artifact root.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from consumer.alarms import (
    LOCATION_SHARE,
    LONGEST,
    SCAN,
    RankThresholds,
    _Blocks,
    score_skews,
    score_tables,
)
from data.durable import write_atomic

logger = logging.getLogger(__name__)

CALIBRATION_VERSION = 2
"""Bumped whenever the scan, the simulation or the fit changes: old caches are ignored."""

SIMULATED_ROWS = 20_000_000
"""Rows simulated per baseline size (after the baseline)."""
TRIAL_ROWS = 6_000
"""Rows per simulated stream; each stream has a fresh baseline."""
MIN_EXCEEDANCES = 10
"""Fewest exceedances a level needs to enter the fit."""
FIT_FROM = 3.0
"""Lowest level tried."""
FIT_SPAN = 1.0
"""Width in ``|z|`` of the levels fitted: the highest well-counted ones."""
SAFETY = 2.0
"""The thresholds are solved for the budget's rate divided by this (see the module)."""
SEED = 20261201


@dataclass(frozen=True)
class TailFit:
    """``log(rate per row per feature) = a + b h``: an exponential tail, fitted at the edge.

    >>> TailFit(a=0.0, b=-2.0, lowest_rate=1e-5).solve(math.exp(-10.0))
    5.0
    """

    a: float
    b: float
    lowest_rate: float
    """The rarest rate the fit saw (below it, the fit is an extrapolation)."""

    def rate(self, h: float) -> float:
        """Exceedances per row per feature at threshold ``h``."""
        return math.exp(self.a + self.b * h)

    def solve(self, rate: float) -> float:
        """The threshold whose rate is ``rate``."""
        return (math.log(rate) - self.a) / self.b


@dataclass(frozen=True)
class Calibration:
    """Tail fits of the location sums and of the other sums, for one baseline size."""

    baseline_rows: int
    every: int
    location: TailFit
    other: TailFit

    def thresholds(self, n_features: int, false_alarm_rows: float) -> RankThresholds:
        """Thresholds for ``n_features`` features at a budget of ``false_alarm_rows`` rows.

        >>> fit = TailFit(a=0.0, b=-3.0, lowest_rate=1e-5)
        >>> t = Calibration(1000, 5, fit, fit).thresholds(4, 100_000)
        >>> round(t.location, 3), round(t.other, 3)
        (4.605, 5.067)
        """
        per_feature = 1.0 / (false_alarm_rows * n_features * SAFETY)
        return RankThresholds(
            location=self.location.solve(LOCATION_SHARE * per_feature),
            other=self.other.solve((1 - LOCATION_SHARE) * per_feature),
        )


def simulate_maxima(
    baseline_rows: int, every: int, rows: int, trial_rows: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per evaluation point of simulated clean streams, the largest location and other ``|z|``.

    Returns
    -------
    location, other : numpy.ndarray
        Shape (trials, evaluation points per trial); 0 where no sum is long enough yet.
    """
    rng = np.random.default_rng(seed)
    trials = max(1, rows // trial_rows)
    n = baseline_rows
    tables = score_tables(n)
    skews = score_skews(tables)
    points = trial_rows // every
    location = np.zeros((trials, points))
    other = np.zeros((trials, points))
    counts = (np.arange(points) + 1) * every  # rows since the start at each evaluation
    # Every (block of SCAN, point) whose sum is long enough, judged at once as the alarm
    # judges them: exact, since the thresholds are what this simulation is for.
    blocks = _Blocks(n, skews, np.zeros(len(SCAN)))
    block, point = np.nonzero(counts >= blocks.lengths[:, None])
    is_location = np.array([SCAN[k][0] == "location" for k in blocks.kind])
    # A point whose sum is too short yet keeps 0, below any |z| (the maxima start at 0).
    z = np.zeros((blocks.lengths.size, points))
    for t in range(trials):
        baseline = np.sort(rng.random(n))
        ranks = np.searchsorted(baseline, rng.random(trial_rows))
        # (degrees, 1 feature, rows + 1), as the alarm keeps them.
        sums = np.concatenate(
            [np.zeros((len(tables), 1, 1)), np.cumsum(tables[:, ranks], axis=1)[:, None, :]], axis=2
        )
        z[block, point] = blocks.z(sums, counts[point], block, exact=True)[0]
        location[t] = z[is_location].max(axis=0)
        other[t] = z[~is_location].max(axis=0)
    return location, other


def first_exceedances(maxima: np.ndarray, h: float, every: int) -> int:
    """Exceedances of ``h`` with no exceedance in the ``LONGEST`` rows before them."""
    over = maxima > h
    gap = LONGEST // every
    idx = np.arange(maxima.shape[1])
    last = np.where(over, idx, -(10**9))
    # The last exceedance strictly before each point.
    previous = np.maximum.accumulate(
        np.concatenate([np.full((maxima.shape[0], 1), -(10**9)), last[:, :-1]], axis=1), axis=1
    )
    return int((over & (idx - previous > gap)).sum())


def fit_tail(maxima: np.ndarray, every: int) -> TailFit:
    """Fit the rate of first exceedances per row of the simulated maxima (see the module).

    The log-rate is fitted as a line over the ``FIT_SPAN`` highest levels that
    were passed at least ``MIN_EXCEEDANCES`` times (weights: the counts, their
    inverse Poisson variance on the log scale), and extrapolated along it.
    """
    rows = maxima.shape[0] * maxima.shape[1] * every
    levels = np.round(np.arange(FIT_FROM, 9.0, 0.05), 2)
    counts = np.array([first_exceedances(maxima, h, every) for h in levels])
    seen = np.flatnonzero(counts >= MIN_EXCEEDANCES)
    if seen.size == 0:
        raise RuntimeError("too few simulated exceedances to fit the tail")
    keep = seen[levels[seen] > levels[seen[-1]] - FIT_SPAN]
    if keep.size < 5:
        raise RuntimeError("too few simulated exceedances to fit the tail")
    h = levels[keep]
    y = np.log(counts[keep] / rows)
    weights = np.sqrt(counts[keep])
    design = np.stack([np.ones_like(h), h], axis=1)
    coef, *_ = np.linalg.lstsq(design * weights[:, None], y * weights, rcond=None)
    if not coef[1] < 0:
        raise RuntimeError("the simulated tail does not fall: simulate more rows")
    return TailFit(a=float(coef[0]), b=float(coef[1]), lowest_rate=float(counts[keep[-1]] / rows))


def calibrate(baseline_rows: int, every: int, rows: int | None = None) -> Calibration:
    """Simulate ``rows`` rows (default `SIMULATED_ROWS`) and fit (about 0.25 s per million)."""
    rows = SIMULATED_ROWS if rows is None else rows
    location, other = simulate_maxima(baseline_rows, every, rows, TRIAL_ROWS, SEED)
    return Calibration(
        baseline_rows=baseline_rows,
        every=every,
        location=fit_tail(location, every),
        other=fit_tail(other, every),
    )


SHIPPED = Path(__file__).with_name("calibrations")
"""Calibrations shipped with driftloop, made by :func:`calibrate` (see `write_shipped`)."""


class CalibrationCache:
    """Calibrations by baseline size: shipped with driftloop, else simulated once and kept
    as JSON under ``<root>/alarms/``.

    The default baseline size's calibration ships in ``consumer/calibrations/`` (a test
    checks it is what :func:`calibrate` computes), so a consumer starts without the
    simulation's seconds; another size is simulated on first use and cached.

    Parameters
    ----------
    root : pathlib.Path or None
        The artifact root; None keeps them in memory only.
    """

    def __init__(self, root: Path | None) -> None:
        self.directory = None if root is None else Path(root) / "alarms"
        self._memo: dict[tuple[int, int], Calibration] = {}

    def get(self, baseline_rows: int, every: int) -> Calibration:
        """The calibration for a baseline size, simulated once and then read back."""
        key = (baseline_rows, every)
        if key in self._memo:
            return self._memo[key]
        calibration = _read(SHIPPED / _name(baseline_rows, every)) or self._read(
            baseline_rows, every
        )
        if calibration is None:
            logger.info(
                "calibrating the rank alarm for a baseline of %d rows (once; cached)",
                baseline_rows,
            )
            calibration = calibrate(baseline_rows, every)
            self._write(calibration)
        self._memo[key] = calibration
        return calibration

    def _path(self, baseline_rows: int, every: int) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / _name(baseline_rows, every)

    def _read(self, baseline_rows: int, every: int) -> Calibration | None:
        path = self._path(baseline_rows, every)
        return None if path is None else _read(path)

    def _write(self, calibration: Calibration) -> None:
        path = self._path(calibration.baseline_rows, calibration.every)
        if path is not None:
            write_atomic(path, _json(calibration))


def write_shipped(baseline_rows: int, every: int) -> Path:
    """Simulate a calibration and write it among the shipped ones (for maintainers).

    ``python -c "from consumer.calibration import write_shipped; write_shipped(1000, 5)"``
    after any change to the scan, the scores or the fit (and a bump of
    `CALIBRATION_VERSION`).
    """
    path = SHIPPED / _name(baseline_rows, every)
    write_atomic(path, _json(calibrate(baseline_rows, every)))
    return path


def _name(baseline_rows: int, every: int) -> str:
    return f"rank-v{CALIBRATION_VERSION}-n{baseline_rows}-every{every}.json"


def _json(calibration: Calibration) -> bytes:
    return json.dumps(asdict(calibration), indent=2).encode()


def _read(path: Path) -> Calibration | None:
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        return Calibration(
            baseline_rows=int(raw["baseline_rows"]),
            every=int(raw["every"]),
            location=TailFit(**raw["location"]),
            other=TailFit(**raw["other"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.warning("ignoring unreadable alarm calibration %s: %s", path, err)
        return None
