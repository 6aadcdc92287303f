"""Drift alarms: when a stream's evidence is drift, within a false-alarm budget of clean rows.

KSDrift judges every window (the evidence); an alarm decides when the loop acts.
Both alarms here honour a budget: on a clean stream, at least ``false_alarm_rows``
rows pass on average per false alarm.

``ks``
    A window raises the alarm when a feature's KS p-value is below the level the
    budget implies: ``step / false_alarm_rows`` over the features (Bonferroni) and
    over `KS_SAFETY`, one test per ``step`` rows (a window closed early on time
    advanced fewer rows, and gets their share). The p-value is taken with the
    reference counted twice (see :func:`consumer.detection.robust_ks_p_values`), so
    that a finite reference whose sampling error differs from the production
    population's does not eat the budget. A categorical feature's chi-squared test
    and a missing-share test are taken the same way (the detector's
    ``guard_p_values``, see `consumer.detection`).
``rank`` (the default)
    A sequential test on every row. The first ``warmup_rows`` rows of a stream (after
    a start or a new champion) form its baseline; meanwhile the ``ks`` rule guards
    against a stream that is drifted from the start. Every later value is ranked
    among its feature's baseline, ties broken at random, which makes its rank
    exactly uniform on a clean stream whatever the data: ties, discrete values,
    any distribution. A categorical feature's codes are ranked like numbers (ties
    broken at random, its ranks are uniform too; an unseen category ranks above every
    baseline value), and a missing value (NaN) ranks below every value, so a change
    of a feature's missing share moves its ranks. Polynomial scores of the rank
    (`SCORES`) sum up, over several window lengths (`SCAN`), changes of location
    (degree 1), scale (degrees 2 and 4 as one score) and shape (degrees 3 to 6
    together). Every ``every`` rows
    each sum is standardized by its exact null standard deviation
    (:func:`null_sd`), a skewed score's sum is put on the normal scale
    (:func:`normal_scale`), and the alarm fires when the largest ``|z|`` passes the
    threshold calibrated for the baseline size, the feature count and the budget
    (:mod:`consumer.calibration`; 80% of the budget to location). After an alarm
    the sums start over.

    Cost: a poll's rows are ranked, scored and summed with numpy, no Python call
    per row; all the sums of a poll are judged in a few numpy calls per kind
    (`_Blocks`), and on a drifted stream, which fires again at the first point after
    each restart, those firings are judged together (`RankAlarm._chain`), each as it
    would be alone, to the last bit. About 0.6 µs of CPU per row for four features on
    a clean stream and 0.35 on a drifted one, at polls of 2,000 rows (BENCHMARKS.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.special import gammaincc, gammainccinv, ndtr, ndtri_exp

from consumer.detection import robust_ks_p_values

AlarmName = Literal["rank", "ks"]

SCORES: tuple[tuple[tuple[int, float], ...], ...] = (
    ((1, 1.0),),
    ((2, 1.0), (4, 0.6)),
    ((3, 1.0),),
    ((4, 1.0),),
    ((5, 1.0),),
    ((6, 1.0),),
)
"""The rank scores, each a weighted sum of shifted Legendre polynomials ``(degree, weight)``.

0: location (degree 1, Wilcoxon's score). 1: scale, the even degrees 2 and 4 in
one score: a widening of a bell-shaped feature moves mass into both tails, which
degree 4 sees more sharply than degree 2 alone (the score's drift per row is
15-70% larger than degree 2's on the Iris-like stream's features; the
normal-scores score would gain more but is unbounded, and its short sums would
need far higher thresholds). 2-5: degrees 3 to 6, the shape terms of Neyman's
smooth test (skew, bimodality and finer shape: a same-mean-same-SD mixture of a
feature that is already bimodal, like Iris's petal length, shows mostly in
degree 5, which degrees 3 and 4 alone missed in half the trials).
"""

SCAN: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (
    ("location", (0,), (10, 25, 50, 100)),
    ("scale", (1,), (10, 25, 50, 100, 400)),
    ("shape", (2, 3, 4, 5), (100, 400)),
)
"""(kind, indices into `SCORES`, window lengths in rows) the rank alarm scans.

A kind of one score is judged by ``|z|``; ``shape`` joins degrees 3 to 6 as
``sum z_i^2`` (chi-squared with 4 degrees of freedom on a clean stream: the
polynomials are orthogonal), put on the ``|z|`` scale: the ``|z|`` with the same
tail probability.
"""

DEGREES = len(SCORES)
"""Number of scores per row (kept for the calibration's array shapes)."""

EVERY = 5
"""Rows between the rank alarm's evaluations."""

LOCATION_SHARE = 0.8
"""Share of the budget the location sums get; scale and shape share the rest."""

KS_SAFETY = 2.0
"""The ``ks`` rule's level is divided by this. The robust p-value is asymptotic: on
the benchmark's "halves" streams (a reference of 89 or 284 rows, the stream drawn
from the other half) the undivided level gave 0.7-0.9 of the budget, too close
(BENCHMARKS.md)."""

CHUNK = 512
"""Most rows the rank alarm sums in one step (see `RankAlarm._scan`)."""

SWEEP = 8 * CHUNK
"""Most rows the rank alarm judges in one call away from a restart (`RankAlarm._sweep`)
or in one chain (`RankAlarm._chain`): their sums are held at once, a few arrays of
(scores, features, rows)."""

HEAD_ROWS = 100
"""Rows since a restart below which `RankAlarm._advance` judges its points first (the
sums of 10, 25 and 50 rows): where a drifted stream fires again."""

LONGEST = max(w for _, _, lengths in SCAN for w in lengths)
"""Rows of the longest sum: the history each lane keeps."""


def null_sd(window: int, baseline: int) -> float:
    """Null standard deviation of a sum of ``window`` standardized rank scores.

    Each score has mean 0 and variance 1 on a clean stream. Two rows ranked among
    the same baseline are not independent (both see its sampling error): for any
    centred, standardized score of the rank among ``n`` baseline values, the
    covariance of two rows is exactly ``1 / (n + 2)`` (the n + 2 values are
    exchangeable; summing over the pairs of positions gives it). Hence
    ``Var = w + w (w - 1) / (n + 2)``.

    >>> round(null_sd(100, 1000), 3)
    10.482
    >>> null_sd(1, 10)
    1.0
    """
    return float(np.sqrt(window + window * (window - 1) / (baseline + 2)))


def normal_scale(z: npt.NDArray[np.float64], skew: float) -> npt.NDArray[np.float64]:
    """A standardized sum with skewness ``skew`` put on the normal scale (Wilson-Hilferty).

    The sum is read as a shifted gamma variable with that skewness, whose cube root
    is nearly normal: ``(6 / g) (cbrt(1 + g z / 2) - 1) + g / 6``. Short sums of a
    skewed score (scale: a widening moves mass to both tails) would otherwise pass
    a threshold far more often than a long sum at the same ``|z|``. Monotone in
    ``z``; the identity at ``skew`` 0.

    >>> normal_scale(np.array([-2.0, 0.0, 5.0]), 0.0).tolist()
    [-2.0, 0.0, 5.0]
    >>> normal_scale(np.array([5.0]), 0.5).round(3).tolist()
    [3.808]
    """
    if abs(skew) < 1e-9:
        return z
    g = abs(skew)
    s = z if skew > 0 else -z
    out = (6 / g) * (np.cbrt(1 + g * s / 2) - 1) + g / 6
    return out if skew > 0 else -out


def window_z(
    sums: npt.NDArray[np.float64],
    ends: npt.NDArray[np.int64],
    window: int,
    baseline: int,
    degrees: tuple[int, ...],
    skews: Sequence[float] | None = None,
) -> npt.NDArray[np.float64]:
    """``|z|`` of the sums of ``window`` scores ending before each of ``ends``.

    Parameters
    ----------
    sums : numpy.ndarray
        Cumulative sums of the scores, shape (scores, features, rows + 1), with a
        leading 0: the sum of rows ``i..j-1`` of score ``k`` is
        ``sums[k, :, j] - sums[k, :, i]``.
    ends : numpy.ndarray
        Indices ``j`` into the last axis, each at least ``window``.
    window, baseline : int
        Rows summed, rows in the baseline.
    degrees : tuple of int
        Indices of the scores. One: ``|z|``. Several (k): ``sum z_i^2``, chi-squared
        with k degrees of freedom on a clean stream, put on the ``|z|`` scale as the
        ``|z|`` of equal tail probability.
    skews : sequence of float, optional
        Skewness of one row's score, per score (all of them, see
        :func:`score_skews`); each sum is put on the normal scale with the skewness
        of a sum of ``window`` rows (:func:`normal_scale`). None: no correction.

    Returns
    -------
    numpy.ndarray
        Shape (features, len(ends)).

    >>> sums = np.zeros((DEGREES, 1, 5)); sums[2:4, 0, 4] = 2.0
    >>> window_z(sums, np.array([4]), 4, 1000, (2, 3)).round(3).tolist()
    [[0.898]]
    """
    # The ends first, then the scores: a copy of the points summed, not of every sum.
    picked = list(degrees)
    z = (sums[:, :, ends][picked] - sums[:, :, ends - window][picked]) / null_sd(window, baseline)
    if len(degrees) == 1:
        one = z[0] if skews is None else normal_scale(z[0], skews[degrees[0]] / math.sqrt(window))
        return np.asarray(np.abs(one))
    if skews is not None:
        # A sum of w independent scores has skewness g / sqrt(w); the baseline's shared
        # error makes it a little smaller, which the calibration's simulation absorbs.
        root = math.sqrt(window)
        z = np.stack([normal_scale(z[i], skews[d] / root) for i, d in enumerate(degrees)])
    return _joined(z)


def _joined(z: npt.NDArray[np.float64], floor: float = 0.0) -> npt.NDArray[np.float64]:
    """``sum z_i^2`` over the first axis (k scores), as the ``|z|`` of equal tail probability.

    A sum of squares at or below ``floor`` is given as 0, not computed: the caller has
    made sure it cannot pass its threshold (see `_Blocks`).
    """
    s = (z**2).sum(axis=0)
    if floor <= 0:
        return _tail_z(s, z.shape[0])
    out = np.zeros_like(s)
    high = s > floor
    if high.any():
        out[high] = _tail_z(s[high], z.shape[0])
    return out


def _tail_z(s: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.float64]:
    """The ``|z|`` with the tail probability of chi-squared ``s`` with ``k`` degrees of freedom."""
    if k == 2:
        # P(chi2_2 > s) = exp(-s / 2); the |z| with P(|Z| > z) equal to it, in log space.
        log_tail = -s / 2 - np.log(2.0)
    else:
        with np.errstate(divide="ignore"):
            log_tail = np.log(gammaincc(k / 2, s / 2)) - np.log(2.0)
    return np.asarray(-ndtri_exp(log_tail))


def _floor(threshold: float, k: int) -> float:
    """A sum of squares of k scores below which `_tail_z` is surely below ``threshold``.

    The sum whose tail probability is that of ``|z| = threshold``, less a margin
    (1e-6 of it) far wider than the functions' rounding; 0 (no floor) where it is not
    finite.

    >>> s = _floor(5.0, 4)
    >>> bool(_tail_z(np.array([s]), 4)[0] < 5.0 < _tail_z(np.array([s * 1.001]), 4)[0])
    True
    """
    if not threshold > 0:
        return 0.0
    s = 2 * float(gammainccinv(k / 2, 2 * ndtr(-threshold)))
    return s * (1 - 1e-6) if math.isfinite(s) else 0.0


class _Blocks:
    """`window_z` for many (kind, window length, end) at once: the scan's arrays per block.

    A block is one (kind, length) of `SCAN`, in its order. :meth:`z` takes columns (an
    end and the block it belongs to, blocks ascending) and gives each column's ``|z|``
    with the very operations `window_z` applies to one block's ends, so the same floats
    to the last bit (``tests/unit/test_alarms.py`` checks it); a handful of numpy calls
    per kind instead of several per block.
    """

    def __init__(self, baseline: int, skews: Sequence[float], thresholds: npt.NDArray[np.float64]):
        specs = [(k, w) for k, (_, _, lengths) in enumerate(SCAN) for w in lengths]
        self.kind = np.array([k for k, _ in specs])
        self.lengths = np.array([w for _, w in specs], dtype=np.int64)
        self.sd = np.array([null_sd(w, baseline) for _, w in specs])
        self.threshold = thresholds[self.kind]
        # First block of each kind, and one past the last: the kinds' column ranges.
        self.kind_starts = np.searchsorted(self.kind, np.arange(len(SCAN) + 1))
        # Per score: the skewness of each block's sum (as window_z takes it), and whether
        # normal_scale leaves every block's sums as they are (a symmetric score) or skews
        # them all one way, which needs no selection per column.
        self.skew = [np.array([skews[d] / math.sqrt(w) for _, w in specs]) for d in range(DEGREES)]
        self.symmetric = [bool((np.abs(g) < 1e-9).all()) for g in self.skew]
        self.right = [bool((g >= 1e-9).all()) for g in self.skew]
        # Per kind of several scores: the sum of squares its threshold needs (see _floor).
        self.floor = [_floor(float(thresholds[k]), len(d)) for k, (_, d, _) in enumerate(SCAN)]
        # The scores of each kind as a slice where they are adjacent: a view, not a copy.
        self.scores = [
            slice(d[0], d[-1] + 1) if list(d) == list(range(d[0], d[-1] + 1)) else list(d)
            for _, d, _ in SCAN
        ]

    def z(
        self,
        sums: npt.NDArray[np.float64],
        ends: npt.NDArray[np.int64],
        block: npt.NDArray[np.int64],
        exact: bool = False,
    ) -> npt.NDArray[np.float64]:
        """``|z|`` per column, shape (features, columns): the sum of ``lengths[block]`` rows
        ending before ``ends`` (indices into the last axis of ``sums``, as in `window_z`).

        Unless ``exact``, a joined kind's ``|z|`` that surely stays below its threshold is
        given as 0 and not computed (its chi-squared tail is the dearest part): what
        passes, and the statistics of what passes, are the same.
        """
        bounds = np.searchsorted(block, self.kind_starts)
        parts = []
        for k, (_, degrees, _) in enumerate(SCAN):
            a, b = int(bounds[k]), int(bounds[k + 1])
            if a == b:
                continue
            at, blocks = ends[a:b], block[a:b]
            starts = at - self.lengths[blocks]
            sd = self.sd[blocks]
            if len(degrees) == 1:
                d = degrees[0]
                one = (sums[d][:, at] - sums[d][:, starts]) / sd
                parts.append(np.abs(self._normal_scale(one, d, blocks)))
                continue
            picked = sums[self.scores[k]]
            z = (picked[:, :, at] - picked[:, :, starts]) / sd
            z = np.stack([self._normal_scale(z[i], d, blocks) for i, d in enumerate(degrees)])
            parts.append(_joined(z, 0.0 if exact else self.floor[k]))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def _normal_scale(
        self, z: npt.NDArray[np.float64], degree: int, blocks: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """`normal_scale` of score ``degree``'s sums, a skewness per column: the same floats."""
        if self.symmetric[degree]:
            return z
        skew = self.skew[degree][blocks]
        if self.right[degree]:
            return (6 / skew) * (np.cbrt(1 + skew * z / 2) - 1) + skew / 6
        return _normal_scale_columns(z, skew)


def _normal_scale_columns(
    z: npt.NDArray[np.float64], skew: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """`normal_scale` with a skewness per column (the last axis): the same floats.

    >>> z = np.array([[-2.0, 5.0, 5.0]])
    >>> _normal_scale_columns(z, np.array([0.0, 0.5, -0.5])).round(3).tolist()
    [[-2.0, 3.808, 19.476]]
    """
    tiny = np.abs(skew) < 1e-9
    positive = skew > 0
    g = np.where(tiny, 1.0, np.abs(skew))
    s = np.where(positive, z, -z)
    out = (6 / g) * (np.cbrt(1 + g * s / 2) - 1) + g / 6
    return np.where(tiny, z, np.where(positive, out, -out))


def score_table(baseline: int, degree: int) -> npt.NDArray[np.float64]:
    """Scores of the ranks ``0..n`` (values below) of a value among ``n`` baseline values.

    The shifted Legendre polynomial of ``degree`` at the rank's mid-point
    ``(r + 0.5) / (n + 1)``, centred and scaled so that over the n + 1 equally likely
    ranks it has mean 0 and variance 1 exactly.

    >>> table = score_table(4, 1)
    >>> table.round(3).tolist()
    [-1.414, -0.707, 0.0, 0.707, 1.414]
    """
    u = (np.arange(baseline + 1) + 0.5) / (baseline + 1)
    values = np.polynomial.legendre.legval(2 * u - 1, [0] * degree + [1])
    values = values - values.mean()
    return np.asarray(values / values.std(), dtype=np.float64)


def score_tables(baseline: int) -> npt.NDArray[np.float64]:
    """The tables of every score of `SCORES`, shape (scores, baseline + 1), each standardized."""
    out = []
    for spec in SCORES:
        values = sum(weight * score_table(baseline, degree) for degree, weight in spec)
        values = np.asarray(values) - np.mean(values)
        out.append(values / values.std())
    return np.stack(out)


def score_skews(tables: npt.NDArray[np.float64]) -> list[float]:
    """Skewness of each standardized score over the equally likely ranks.

    >>> [round(s, 3) for s in score_skews(score_tables(1000))][:2]
    [0.0, 1.837]
    """
    return [float(np.mean(t**3)) for t in tables]


def _splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def tie_break(offsets: npt.NDArray[np.int64], n_features: int, seed: int) -> np.ndarray:
    """Uniform numbers in [0, 1) per (row, feature), a function of the row's offset alone.

    The tie-breaking is deterministic: a window judged again after a restart
    breaks its ties the same way.

    >>> a = tie_break(np.array([5, 6]), 2, seed=1)
    >>> bool(((a >= 0) & (a < 1)).all()), a.shape
    (True, (2, 2))
    >>> bool((tie_break(np.array([5]), 2, seed=1) == a[:1]).all())
    True
    """
    keys = offsets.astype(np.uint64)[:, None] * np.uint64(1 << 8) + np.arange(
        n_features, dtype=np.uint64
    )
    mixed = _splitmix64(keys ^ _splitmix64(np.full(1, seed, dtype=np.uint64)))
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True)
class Firing:
    """One alarm: where, on what, and how strong.

    Attributes
    ----------
    offset : int
        Offset of the row at which the alarm fired.
    features : tuple of int
        Features whose statistic passed the threshold.
    kind : str
        ``location``, ``scale``, ``shape`` (rank) or ``ks``.
    window : int
        Rows of the sum (or window) that passed.
    statistic : float
        The largest ``|z|`` (rank) or ``-log10`` of the smallest p-value (ks).
    threshold : float
        What it passed, on the same scale.
    """

    offset: int
    features: tuple[int, ...]
    kind: str
    window: int
    statistic: float
    threshold: float


class KSAlarm:
    """The ``ks`` rule: a window alarms when a feature's robust KS p-value is below
    ``rows / false_alarm_rows / n_features / KS_SAFETY``, where ``rows`` is the rows
    the window advanced the stream by: ``step``, or fewer for a window closed on time.

    One test per ``rows`` new rows at that level spends, per row, the same share of
    the budget whatever the windows' sizes: a window closed early on time (tumbling,
    so it advanced all its rows) gets a level that much lower.

    Parameters
    ----------
    n_reference : int
        Rows of the champion's reference data.
    n_features : int
        Features per row.
    step : int
        Rows between window starts: one test per ``step`` rows.
    false_alarm_rows : float
        Clean rows per false alarm, on average, at least.

    Examples
    --------
    >>> alarm = KSAlarm(n_reference=150, n_features=4, step=50, false_alarm_rows=100_000)
    >>> alarm.level
    6.25e-05
    >>> alarm.judge(np.array([0.1, 0.2, 0.9, 0.1]), 50, last_offset=99).features
    (2,)
    >>> alarm.judge(np.array([0.1, 0.2, 0.2, 0.1]), 50, last_offset=99) is None
    True

    A window of 20 rows (closed on time) is judged at 20/50 of the level:

    >>> alarm.level_for(20)
    2.5e-05
    """

    def __init__(
        self, n_reference: int, n_features: int, step: int, false_alarm_rows: float
    ) -> None:
        if n_reference < 2:
            raise ValueError(f"n_reference must be at least 2, got {n_reference}")
        if n_features < 1:
            raise ValueError(f"n_features must be at least 1, got {n_features}")
        if step < 1:
            raise ValueError(f"step must be at least 1, got {step}")
        if not false_alarm_rows > step:
            raise ValueError(
                f"false_alarm_rows must exceed the window step ({step}), got {false_alarm_rows}"
            )
        self.n_reference = n_reference
        self.n_features = n_features
        self.step = step
        self.false_alarm_rows = false_alarm_rows
        self.level = self.level_for(step)
        """The level of a window that advanced ``step`` rows (every full window)."""

    def level_for(self, n_window: int) -> float:
        """The level of a window of ``n_window`` rows.

        It advanced the stream by ``min(step, n_window)`` rows: ``step`` for a full
        window (sliding ones share the rest with the window before), all its rows for
        a window closed early on time (time windows are tumbling).
        """
        advanced = min(self.step, n_window)
        return advanced / self.false_alarm_rows / self.n_features / KS_SAFETY

    def judge(
        self,
        distances: npt.NDArray[np.floating],
        n_window: int,
        last_offset: int,
        p_values: npt.NDArray[np.floating] | None = None,
    ) -> Firing | None:
        """The alarm for a window of ``n_window`` rows with these KS distances, or None.

        ``p_values``, when given, are the window's per-feature p-values with the
        reference counted twice (the detector's ``guard_p_values``: categorical
        features, missing values), judged in place of the distances'.
        """
        if p_values is None:
            p = robust_ks_p_values(distances, self.n_reference, n_window)
        else:
            p = np.asarray(p_values, dtype=np.float64)
        level = self.level if n_window >= self.step else self.level_for(n_window)
        below = np.flatnonzero(p < level)
        if below.size == 0:
            return None
        return Firing(
            offset=last_offset,
            features=tuple(int(i) for i in below),
            kind="ks",
            window=n_window,
            statistic=float(-np.log10(max(float(p.min()), 1e-300))),
            threshold=float(-np.log10(level)),
        )


@dataclass(frozen=True)
class RankThresholds:
    """The rank alarm's thresholds on ``|z|`` for one (baseline size, features, budget).

    Attributes
    ----------
    location : float
        Threshold of the location sums.
    other : float
        Threshold of the scale and shape sums.
    """

    location: float
    other: float


RankThresholdsFor = Callable[[int, int], RankThresholds]
"""``(baseline_rows, n_features) -> RankThresholds``: how a :class:`RankAlarm` gets them."""


class RankAlarm:
    """The sequential rank alarm of one stream (see the module docstring).

    Feed it every valid row of the stream in order with :meth:`observe`; it returns
    the alarms raised. Until ``warmup_rows`` rows have been seen it only collects
    its baseline (:attr:`warming_up`): the caller guards that span with a
    :class:`KSAlarm`.

    Parameters
    ----------
    n_features : int
        Features per row.
    thresholds : callable
        ``thresholds(baseline_rows, n_features)`` gives the :class:`RankThresholds`
        (e.g. :func:`consumer.calibration.rank_thresholds` bound to a budget).
    warmup_rows : int
        Rows in the baseline, at least ``LONGEST`` (400).
    every : int
        Rows between evaluations of the sums.
    seed : int
        Seed of the tie-breaking (see :func:`tie_break`).
    holdoff : int
        Rows after a firing that are summed but not evaluated: at most one firing per
        ``holdoff`` rows. The consumer passes its window step, since a window alarms
        once whatever the number of firings in it; on a drifted stream this keeps the
        cost per row near that of a clean one. Fewer restarts only lower the false
        alarm rate.

    Examples
    --------
    A clean stream, then a shift of feature 1 by 3 standard deviations at row 1,500:

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(3000, 2))
    >>> x[1500:, 1] += 3
    >>> alarm = RankAlarm(2, lambda n, d: RankThresholds(5.0, 5.0), warmup_rows=1000)
    >>> firings = alarm.observe(x, np.arange(3000))
    >>> [(f.offset, f.features, f.kind) for f in firings[:1]]
    [(1509, (1,), 'location')]
    """

    def __init__(
        self,
        n_features: int,
        thresholds: RankThresholdsFor,
        warmup_rows: int = 1000,
        every: int = 5,
        seed: int = 0,
        holdoff: int = 0,
    ) -> None:
        if n_features < 1:
            raise ValueError(f"n_features must be at least 1, got {n_features}")
        if holdoff < 0:
            raise ValueError(f"holdoff must be >= 0 rows, got {holdoff}")
        if warmup_rows < LONGEST:
            raise ValueError(
                f"warmup_rows must be at least {LONGEST} (the longest sum), got {warmup_rows}"
            )
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.n_features = n_features
        self.warmup_rows = warmup_rows
        self.every = every
        self.seed = seed
        self.holdoff = holdoff
        self._quiet = 0
        """Rows after a restart that are summed but not evaluated (``holdoff`` after a firing)."""
        self._thresholds_for = thresholds
        self._collected: list[np.ndarray] = []
        self._n_collected = 0
        self._baseline: np.ndarray | None = None
        self._tables: np.ndarray | None = None
        self._thresholds: np.ndarray | None = None
        # Scores of the rows since the last restart, the last LONGEST of them.
        self._history = np.zeros((DEGREES, n_features, 0))
        self._since_restart = 0
        self._chaining = False
        """Whether the last firing came at the first point after its restart (see `_chain`)."""
        self.baseline_last_offset: int | None = None
        """Offset of the baseline's last row, once it is complete."""

    @property
    def warming_up(self) -> bool:
        """True until the baseline is complete."""
        return self._baseline is None

    @property
    def baseline_rows(self) -> int:
        """Rows in the baseline (0 while warming up)."""
        return 0 if self._baseline is None else self._baseline.shape[1]

    def restart(self) -> None:
        """Forget the sums (the baseline stays): the next alarm needs fresh rows."""
        self._history = np.zeros((DEGREES, self.n_features, 0))
        self._since_restart = 0

    def observe(self, values: npt.ArrayLike, offsets: npt.ArrayLike) -> list[Firing]:
        """Take the next rows of the stream; return the alarms they raise, in order.

        Parameters
        ----------
        values : array_like
            Shape (rows, n_features); NaN for a missing value.
        offsets : array_like
            The rows' offsets, increasing (they seed the tie-breaking).
        """
        x = np.asarray(values, dtype=np.float64)
        pos = np.asarray(offsets, dtype=np.int64)
        if x.ndim != 2 or x.shape[1] != self.n_features or pos.shape != (x.shape[0],):
            raise ValueError(
                f"values must have shape (rows, {self.n_features}) with one offset per row, "
                f"got {x.shape} and {pos.shape}"
            )
        missing = np.isnan(x)
        if missing.any():
            # Below every value: a missing value's rank is 0 plus its ties' random share.
            x = np.where(missing, -np.inf, x)
        if self._baseline is None:
            take = min(self.warmup_rows - self._n_collected, x.shape[0])
            if take:
                self._collected.append(x[:take])
                self._n_collected += take
            if self._n_collected == self.warmup_rows:
                self._start(np.concatenate(self._collected))
                self.baseline_last_offset = int(pos[take - 1])
            x, pos = x[take:], pos[take:]
            if self._baseline is None or x.shape[0] == 0:
                return []
        return self._scan(x, pos)

    def _start(self, baseline: np.ndarray) -> None:
        self._collected = []
        self._baseline = np.ascontiguousarray(np.sort(baseline.T, axis=1))
        self._distinct = [_distinct(column) for column in self._baseline]
        n = baseline.shape[0]
        self._tables = score_tables(n)
        self._skews = score_skews(self._tables)
        t = self._thresholds_for(n, self.n_features)
        self._thresholds = np.array(
            [t.location if kind == "location" else t.other for kind, _, _ in SCAN]
        )
        self._blocks = _Blocks(n, self._skews, self._thresholds)
        self.restart()

    def _ranks(self, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Randomized rank (values below, ties split at random) of each value, (rows, features).

        One search per value among the baseline's distinct values (fewer than its
        rows when it has ties), instead of two among all of them: the values below and
        the ties are the counts kept per distinct value.
        """
        assert self._baseline is not None
        ranks = np.empty(x.shape, dtype=np.int64)
        spread = tie_break(pos, self.n_features, self.seed)
        for f, (distinct, below, ties) in enumerate(self._distinct):
            i = np.searchsorted(distinct, x[:, f], side="left")
            # The sentinel past the last distinct value equals nothing (NaN).
            tied = np.where(distinct[i] == x[:, f], ties[i], 0)
            ranks[:, f] = below[i] + (spread[:, f] * (tied + 1)).astype(np.int64)
        return ranks

    def _scan(self, x: np.ndarray, pos: np.ndarray) -> list[Firing]:
        assert self._tables is not None and self._thresholds is not None
        ranks = self._ranks(x, pos)
        # (kinds, features, rows): the score of each new row for each polynomial.
        scores = np.stack([table[ranks].T for table in self._tables])
        firings: list[Firing] = []
        start = 0
        while start < x.shape[0]:
            if self._chaining:
                # The last firing came at the first point after its restart: so may the next.
                chained = self._chain(scores[:, :, start:], pos[start:])
                firings.extend(chained)
                start += len(chained) * self._first_point()
                # The stretch after the chain did not fire at its first point (or the rows
                # ran out): the scan one chunk at a time takes it, and chains again after a
                # firing at a first point.
                self._chaining = False
                continue
            # In chunks: after a firing the sums restart, and re-summing the whole rest
            # of a long poll after each of many firings (a drifted stream) would cost
            # its length squared. Soon after a restart, where a drifted stream fires
            # again, one chunk (its head first); else every chunk at once.
            if self._since_restart < HEAD_ROWS:
                end = min(x.shape[0], start + CHUNK)
                firing, used = self._advance(scores[:, :, start:end], pos[start:end])
            else:
                end = min(x.shape[0], start + SWEEP)
                firing, used = self._sweep(scores[:, :, start:end], pos[start:end])
            start += used
            if firing is not None:
                firings.append(firing)
                self._chaining = self._since_restart == self._first_point(self.holdoff)
                self.restart()
                self._quiet = self.holdoff
        return firings

    def _first_point(self, quiet: int | None = None) -> int:
        """Rows since a restart at its first evaluation point (the first past ``quiet``)."""
        quiet = self._quiet if quiet is None else quiet
        return (quiet // self.every + 1) * self.every

    def _chain(self, scores: np.ndarray, pos: np.ndarray) -> list[Firing]:
        """Firings at the first point after each restart, in a row, from a restart on.

        A drifted stream fires at the first point a restart allows (``c`` rows on), then
        again ``c`` rows later, and so on: the stretches of ``c`` rows are judged at their
        last row all at once, and the firings up to the first stretch that does not fire
        are those of :meth:`_advance` one by one (its sums start at the restart too, and
        a stretch's sums are the prefix of its head's). The caller goes on from there.
        """
        assert self._since_restart == 0 and self._history.shape[2] == 0
        c = self._first_point()
        stretches = min(scores.shape[2], SWEEP) // c
        blocks = np.flatnonzero(self._blocks.lengths <= c)
        if c > CHUNK or stretches == 0 or blocks.size == 0:
            return []
        rows = scores[:, :, : stretches * c].reshape(*scores.shape[:2], stretches, c)
        sums = np.zeros((*scores.shape[:2], stretches, c + 1))
        np.cumsum(rows, axis=3, out=sums[..., 1:])
        # Columns block by block, stretch by stretch within a block: the last row of each.
        block = np.repeat(blocks, stretches)
        ends = np.tile(np.arange(stretches) * (c + 1) + c, blocks.size)
        z = self._blocks.z(sums.reshape(*scores.shape[:2], -1), ends, block)
        over = z > self._blocks.threshold[block]
        hits = over.any(axis=0).reshape(blocks.size, stretches)
        fired = hits.any(axis=0)
        count = stretches if fired.all() else int(np.argmin(fired))
        first_block = hits.argmax(axis=0)[:count]
        columns = first_block * stretches + np.arange(count)
        offsets = pos[np.arange(count) * c + c - 1]
        return self._firings(z, over, columns, blocks[first_block], offsets)

    def _firings(
        self,
        z: np.ndarray,
        over: np.ndarray,
        columns: np.ndarray,
        blocks: np.ndarray,
        offsets: np.ndarray,
    ) -> list[Firing]:
        """The firings of ``columns`` (of ``blocks``) of :meth:`_Blocks.z`'s output, at ``offsets``.

        Each field of every firing comes out of numpy in one call, not one per firing.
        """
        assert self._thresholds is not None
        kinds = self._blocks.kind[blocks]
        return [
            Firing(
                offset=offset,
                features=tuple(f for f, passed in enumerate(row) if passed),
                kind=SCAN[k][0],
                window=window,
                statistic=statistic,
                threshold=threshold,
            )
            for offset, row, k, window, statistic, threshold in zip(
                offsets.tolist(),
                over.T[columns].tolist(),
                kinds.tolist(),
                self._blocks.lengths[blocks].tolist(),
                z[:, columns].max(axis=0).tolist(),
                self._thresholds[kinds].tolist(),
                strict=True,
            )
        ]

    def _first_firing(
        self, sums: np.ndarray, counts: np.ndarray, ends: np.ndarray, pos: np.ndarray
    ) -> tuple[int, Firing] | None:
        """The earliest firing among some evaluation points, and its index among them, or None.

        ``counts`` are the points' rows since the restart, ``ends`` where their sums end
        (indices into the last axis of ``sums``), ``pos`` their offsets. Every (block,
        point) whose sum is long enough is judged at once; the earliest point that passes
        a threshold wins, and there the first block of `SCAN` that passes.
        """
        block, point = np.nonzero(counts >= self._blocks.lengths[:, None])
        if block.size == 0:
            return None
        z = self._blocks.z(sums, ends[point], block)
        over = z > self._blocks.threshold[block]
        hit = np.flatnonzero(over.any(axis=0))
        if hit.size == 0:
            return None
        column = hit[np.argmin(point[hit])]
        i = int(point[column])
        return i, self._firings(z, over, column[None], block[column][None], pos[i][None])[0]

    def _sweep(self, scores: np.ndarray, pos: np.ndarray) -> tuple[Firing | None, int]:
        """:meth:`_advance` over every chunk of ``scores`` at once, up to the first alarm.

        Each chunk's sums are taken as :meth:`_advance` takes them, from the start of
        the history it would keep (the ``LONGEST`` rows before the chunk, or the rows
        since the restart): the same floats. All chunks' sums in one array and all their
        points judged in one call; the first firing is that of the first chunk that
        fires, since the chunks before it change nothing but the history.
        """
        kept_now = self._history.shape[2]
        m = scores.shape[2]
        both = np.concatenate([self._history, scores], axis=2)
        starts = np.arange(0, m, CHUNK)
        kept = np.minimum(LONGEST, self._since_restart + starts)
        width = int((kept + np.minimum(CHUNK, m - starts)).max())
        rows = np.minimum(
            (kept_now + starts - kept)[:, None] + np.arange(width), both.shape[2] - 1
        )  # past a chunk's end: any row, never read as one of its sums
        sums = np.zeros((*scores.shape[:2], starts.size, width + 1))
        np.cumsum(both[:, :, rows], axis=3, out=sums[..., 1:])
        counts = self._since_restart + np.arange(1, m + 1)
        at = np.flatnonzero((counts % self.every == 0) & (counts > self._quiet))
        chunk = at // CHUNK
        ends = chunk * (width + 1) + kept[chunk] + at - starts[chunk] + 1
        first = self._first_firing(sums.reshape(*scores.shape[:2], -1), counts[at], ends, pos[at])
        used = m if first is None else int(at[first[0]]) + 1
        self._since_restart += used
        self._history = both[
            :, :, kept_now + used - min(LONGEST, self._since_restart) : kept_now + used
        ]
        return (None if first is None else first[1]), used

    def _advance(self, scores: np.ndarray, pos: np.ndarray) -> tuple[Firing | None, int]:
        """Add rows until the first alarm; return it (or None) and the rows consumed."""
        assert self._thresholds is not None
        kept = self._history.shape[2]
        m = scores.shape[2]
        # Row counts since the restart at each new row, and the evaluation points among them.
        counts = self._since_restart + np.arange(1, m + 1)
        at = np.flatnonzero((counts % self.every == 0) & (counts > self._quiet))
        # Soon after a restart only the short sums can be judged: those points first, and
        # the rows up to them only. On a drifted stream the alarm fires there again, and
        # the rest of the chunk is neither summed nor scanned. Each point is judged as in
        # one pass (the sums of a prefix are the prefix of the sums: added in order), and
        # the head's points come first.
        head = int(np.searchsorted(counts[at], HEAD_ROWS))
        first: tuple[int, Firing] | None = None
        if head:
            full = np.concatenate([self._history, scores[:, :, : int(at[head - 1]) + 1]], axis=2)
            point = at[:head]
            first = self._first_firing(_summed(full), counts[point], kept + 1 + point, pos[point])
        if first is None:
            full = np.concatenate([self._history, scores], axis=2)
            point = at[head:]
            first = self._first_firing(_summed(full), counts[point], kept + 1 + point, pos[point])
            if first is not None:
                first = (first[0] + head, first[1])
        used = m if first is None else int(at[first[0]]) + 1
        self._since_restart += used
        self._history = full[:, :, kept + used - min(LONGEST, self._since_restart) : kept + used]
        return (None if first is None else first[1]), used


def _distinct(column: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sorted column's distinct values (then NaN), the values below each, the ties of each.

    >>> [a.tolist() for a in _distinct(np.array([1.0, 2.0, 2.0, 5.0]))]
    [[1.0, 2.0, 5.0, nan], [0, 1, 3, 4], [1, 2, 1, 0]]
    """
    distinct, first, ties = np.unique(column, return_index=True, return_counts=True)
    return (
        np.append(distinct, np.nan),
        np.append(first, column.size),
        np.append(ties, 0),
    )


def _summed(scores: np.ndarray) -> np.ndarray:
    """Cumulative sums of scores (scores, features, rows) along the rows, with a leading 0."""
    return np.concatenate([np.zeros((*scores.shape[:2], 1)), np.cumsum(scores, axis=2)], axis=2)


def feature_names_of(firing: Firing, names: Sequence[str]) -> list[str]:
    """The names of the features a firing points at.

    >>> feature_names_of(Firing(0, (1,), "ks", 50, 9.0, 4.0), ["a", "b"])
    ['b']
    """
    return [names[i] for i in firing.features]


class StreamAlarm:
    """One stream's alarm as the consumer runs it: rows in as they arrive, windows as they close.

    ``rank``: every row goes to a :class:`RankAlarm`; windows that began before its
    baseline was complete are judged by the :class:`KSAlarm` guard. ``ks``: only
    windows are judged, by the :class:`KSAlarm`.

    Parameters
    ----------
    name : {"rank", "ks"}
        Which alarm.
    n_reference : int
        Rows of the champion's reference data (for the KS rule).
    n_features : int
        Features per row.
    window_step : int
        Rows between window starts (for the KS rule's level).
    false_alarm_rows : float
        The budget: clean rows per false alarm, on average, at least.
    thresholds : callable
        The rank alarm's thresholds for (baseline rows, features) at this budget.
    warmup_rows : int
        Rows in the rank alarm's baseline.
    every : int
        Rows between the rank alarm's evaluations.
    seed : int
        Seed of the rank alarm's tie-breaking.
    holdoff : int
        Rows after a rank firing that are not evaluated (see :class:`RankAlarm`).
    """

    def __init__(
        self,
        name: AlarmName,
        n_reference: int,
        n_features: int,
        window_step: int,
        false_alarm_rows: float,
        thresholds: RankThresholdsFor,
        warmup_rows: int = 1000,
        every: int = 5,
        seed: int = 0,
        holdoff: int = 0,
    ) -> None:
        if name not in ("rank", "ks"):
            raise ValueError(f"alarm must be 'rank' or 'ks', got {name!r}")
        self.name: AlarmName = name
        self.ks = KSAlarm(n_reference, n_features, window_step, false_alarm_rows)
        self.rank = (
            RankAlarm(
                n_features,
                thresholds,
                warmup_rows=warmup_rows,
                every=every,
                seed=seed,
                holdoff=holdoff,
            )
            if name == "rank"
            else None
        )
        self._guarded_below: int | None = None
        """Windows starting before this offset are judged by the KS guard (None: all so far)."""

    def observe(self, values: npt.ArrayLike, offsets: npt.ArrayLike) -> list[Firing]:
        """Take a stream's next rows; return the rank alarm's firings (none for ``ks``)."""
        if self.rank is None:
            return []
        firings = self.rank.observe(values, offsets)
        if self._guarded_below is None and self.rank.baseline_last_offset is not None:
            self._guarded_below = self.rank.baseline_last_offset + 1
        return firings

    def judges_window(self, first_offset: int) -> bool:
        """Whether :meth:`judge_window` would judge a window starting at ``first_offset``.

        A caller may skip the KS test of the windows it would not judge.
        """
        if self.rank is None:
            return True
        return self._guarded_below is None or first_offset < self._guarded_below

    def judge_window(
        self,
        distances: npt.NDArray[np.floating],
        n_window: int,
        first_offset: int,
        last_offset: int,
        p_values: npt.NDArray[np.floating] | None = None,
    ) -> Firing | None:
        """The KS rule on a closed window, where it applies; else None (see `KSAlarm.judge`)."""
        if not self.judges_window(first_offset):
            return None
        return self.ks.judge(distances, n_window, last_offset, p_values)
