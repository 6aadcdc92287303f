"""Feature-wise drift detection of one window against reference data: KS and chi-squared.

`KSDetector` holds what every backend shares: the checks, the multiple-testing
correction and the verdict, as ``KSDrift.predict`` computes them. Two backends
score the features: ``alibi`` with Alibi Detect's ``KSDrift.score``; ``fast``
sorts the reference once and reproduces ``KSDrift``'s p-values and distances bit
for bit at a fraction of the cost.

Categorical features and missing values (NaN) take the *tabular* path, the same for
both backends (as Alibi Detect's ``TabularDrift``): a numeric feature's KS test on its
values that are not missing (``ks_2samp``'s asymptotic p-value, as KSDrift), a
categorical feature's chi-squared test on its category counts (as Alibi Detect's
``ChiSquareDrift``: ``chi2_contingency`` of the reference's and the window's counts
over the categories either holds, so a category the reference never saw is a cell of
its own and counts as a change). Where the reference or the window has missing
values, the feature's missing share is tested too, by Fisher's exact test of the two
2x2 counts (exact at any count, two-sided), and the feature's p-value is the smaller
of the two, doubled (Bonferroni within the feature) when the reference has missing
values; when it has none, a clean window has none either, so the missing test cannot
fire on clean data and the feature's p-value is the smaller one undoubled. Each
feature keeps one p-value, so the correction over features and the alarm keep their
meaning. An all-numeric window without a missing value, against a reference without
one, takes the backend's path: p-values bit for bit Alibi Detect's ``KSDrift``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from scipy.special import chdtrc
from scipy.stats import fisher_exact, kstwo

Correction = Literal["bonferroni", "fdr"]
Backend = Literal["alibi", "fast"]

_CORRECTIONS: tuple[Correction, ...] = ("bonferroni", "fdr")
_BACKENDS: tuple[Backend, ...] = ("alibi", "fast")


@dataclass(frozen=True, eq=False)
class DriftResult:
    """The verdict on one window.

    Attributes
    ----------
    is_drift : bool
        Whether the window drifted after the multiple-testing correction.
    p_values : numpy.ndarray
        Per-feature p-values, float32 as Alibi Detect returns them. Read-only.
    distances : numpy.ndarray
        Per-feature KS statistics, float32 as Alibi Detect returns them. Read-only.
    threshold : float
        The p-value threshold after correction. With ``fdr`` and no drift,
        Alibi Detect returns every candidate threshold; this is the smallest,
        ``p_val / n_features``, which no p-value is below.
    drifted : tuple of int
        Indices of the features whose p-value is below ``threshold``; empty
        exactly when ``is_drift`` is false.
    missing_shares : numpy.ndarray or None
        Per feature, the share of the window's rows missing it (float64); None when
        no value is missing.
    guard_p_values : numpy.ndarray or None
        Per feature, the p-value with the reference counted twice that the ``ks``
        alarm judges (see `robust_ks_p_values`), from the tabular path; None on the
        backend's path, where the alarm takes it from ``distances``.
    """

    is_drift: bool
    p_values: npt.NDArray[np.float32]
    distances: npt.NDArray[np.float32]
    threshold: float
    drifted: tuple[int, ...]
    missing_shares: npt.NDArray[np.float64] | None = None
    guard_p_values: npt.NDArray[np.float64] | None = None


def fdr(p_values: npt.NDArray[np.floating[Any]], q_val: float) -> tuple[bool, float]:
    """Benjamini-Hochberg false discovery rate correction, as Alibi Detect computes it.

    A reimplementation of ``alibi_detect.utils.statstest.fdr`` that does not pay
    for importing Alibi Detect.

    Parameters
    ----------
    p_values : numpy.ndarray
        One p-value per feature.
    q_val : float
        Acceptable false discovery rate.

    Returns
    -------
    is_drift : bool
        Whether any p-value is significant after the correction.
    threshold : float
        The largest Benjamini-Hochberg threshold a sorted p-value is below, or
        the smallest threshold (``q_val / n``) when none is.

    Examples
    --------
    >>> fdr(np.array([0.001, 0.02, 0.5], dtype=np.float32), q_val=0.05)
    (True, 0.03333333333333333)
    >>> fdr(np.array([0.04, 0.06], dtype=np.float32), q_val=0.05)
    (False, 0.025)
    """
    n = p_values.shape[0]
    i = np.arange(n) + 1
    p_sorted = np.sort(p_values)
    # Same expression and order of operations as Alibi, so the thresholds are bit-identical.
    q_threshold = q_val * i / n
    below = np.flatnonzero(p_sorted < q_threshold)
    if below.size == 0:
        return False, float(q_threshold[0])
    return True, float(q_threshold[below[-1]])


def _drifted(
    p_values: npt.NDArray[np.float32], threshold: float, correction: Correction
) -> tuple[int, ...]:
    if correction == "bonferroni":
        # Alibi compares the float32 p-values with a Python float, i.e. in float32.
        below = p_values < threshold
    else:
        # Alibi's fdr compares float32 p-values with float64 thresholds, i.e. in float64.
        below = p_values.astype(np.float64) < threshold
    return tuple(int(i) for i in np.flatnonzero(below))


def _frozen(a: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    a.flags.writeable = False
    return a


def _check_reference(reference: npt.ArrayLike) -> npt.NDArray[np.float64]:
    ref = np.asarray(reference)
    if ref.ndim != 2:
        raise ValueError(f"reference must be 2-D (rows, features), got shape {ref.shape}")
    if not (np.issubdtype(ref.dtype, np.floating) or np.issubdtype(ref.dtype, np.integer)):
        raise ValueError(f"reference must hold real numbers, got dtype {ref.dtype}")
    if ref.shape[0] < 2 or ref.shape[1] < 1:
        raise ValueError(f"reference needs at least 2 rows and 1 feature, got shape {ref.shape}")
    ref = ref.astype(np.float64, copy=False)
    if np.isinf(ref).any():
        raise ValueError("reference must not contain infinite values (NaN marks a missing one)")
    return ref


def _check_settings(p_val: float, correction: str) -> float:
    if isinstance(p_val, bool) or not isinstance(p_val, (int, float, np.floating)):
        raise ValueError(f"p_val must be a number in (0, 1), got {p_val!r}")
    if not 0.0 < float(p_val) < 1.0:
        raise ValueError(f"p_val must be in (0, 1), got {p_val!r}")
    if correction not in _CORRECTIONS:
        raise ValueError(f"correction must be one of {_CORRECTIONS}, got {correction!r}")
    return float(p_val)


def _check_x(x: npt.ArrayLike, n_features: int) -> tuple[npt.NDArray[np.float64], bool]:
    """The window as float64, and whether it is all finite (no value missing)."""
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[1] != n_features:
        raise ValueError(
            f"x must be 2-D with {n_features} feature columns like the reference, "
            f"got shape {arr.shape}"
        )
    if arr.shape[0] < 1:
        raise ValueError("x must have at least 1 row")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"x must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if np.isfinite(arr).all():
        return arr, True
    if np.isinf(arr).any():
        raise ValueError("x must not contain infinite values (NaN marks a missing one)")
    return arr, False


# p-values by (KS statistic, effective sample size). They do not depend on the
# reference, so the memo is shared by every FastKS and survives reference reloads.
_SF_MEMO: dict[tuple[float, float], float] = {}
_SF_MEMO_MAX = 1 << 15


def ks_sf(d: npt.NDArray[np.float64], en: float) -> npt.NDArray[np.float64]:
    """Two-sided asymptotic KS p-values, memoised: ``clip(kstwo.sf(d, en), 0, 1)``.

    Bit-identical to what ``scipy.stats.ks_2samp(..., method='asymp')`` returns
    for statistics ``d`` and the rounded effective sample size ``en``. Only
    statistics not seen before reach ``kstwo.sf``, in one vectorised call; the
    memo holds at most 32768 values and is emptied when full.

    Parameters
    ----------
    d : numpy.ndarray
        KS statistics, 1-D.
    en : float
        ``round(m * n / (m + n))`` for sample sizes ``m`` and ``n``.

    Returns
    -------
    numpy.ndarray
        One p-value (float64) per statistic.

    Examples
    --------
    >>> ks_sf(np.array([0.0, 0.2, 1.0]), 35.0).round(4)
    array([1.    , 0.1055, 0.    ])
    """
    memo = _SF_MEMO
    # A window's statistics take few distinct values (multiples of 1 / lcm(m, n)):
    # each is looked up once.
    distinct, where = np.unique(np.asarray(d, dtype=np.float64), return_inverse=True)
    keys = [(v, en) for v in distinct.tolist()]
    missing = [k for k in keys if k not in memo]
    if missing and len(memo) + len(missing) > _SF_MEMO_MAX:
        # Emptied before, not after, the lookup: every key asked for is then computed.
        memo.clear()
        missing = keys
    if missing:
        probs = np.clip(kstwo.sf(np.array([k[0] for k in missing]), en), 0, 1)
        memo.update(zip(missing, (float(p) for p in np.atleast_1d(probs)), strict=True))
    return np.array([memo[k] for k in keys], dtype=np.float64)[where.reshape(-1)]


def robust_ks_p_values(
    distances: npt.NDArray[np.floating], n_reference: int, n_window: int
) -> npt.NDArray[np.float64]:
    """Two-sided KS p-values with the reference counted twice.

    The reference is a finite sample; the production population may differ from
    it by a sample's worth of error without any drift (the model was trained on
    that sample). The statistic then spreads as if the window were compared with
    a sample of half the reference's size, ``1 / en = 2 / n_ref + 1 / n_win``.

    >>> robust_ks_p_values(np.array([0.1, 0.5]), 150, 50).round(4).tolist()
    [0.8961, 0.0]
    """
    en = 1.0 / (2.0 / n_reference + 1.0 / n_window)
    return ks_sf(np.asarray(distances, dtype=np.float64), float(np.round(en)))


def robust_chi2_p_value(statistic: float, dof: int, n_reference: int, n_window: int) -> float:
    """A chi-squared statistic's p-value with the reference counted twice.

    The counterpart of `robust_ks_p_values` for a categorical feature: the statistic
    of a 2-row contingency table grows with its effective size ``n_ref n_win / (n_ref
    + n_win)``; it is scaled to the effective size with the reference counted twice,
    ``1 / en = 2 / n_ref + 1 / n_win``, before its tail probability is taken.

    >>> round(robust_chi2_p_value(6.0, 2, 150, 50), 4), round(float(chdtrc(2, 6.0)), 4)
    (0.0907, 0.0498)
    """
    if dof < 1 or n_reference < 1 or n_window < 1:
        return 1.0
    plain = n_reference * n_window / (n_reference + n_window)
    robust = 1.0 / (2.0 / n_reference + 1.0 / n_window)
    return float(chdtrc(dof, statistic * robust / plain))


_FISHER_MEMO: dict[tuple[int, int, int, int], float] = {}


def missing_share_p_value(
    missing_reference: int, n_reference: int, missing_window: int, n_window: int
) -> float:
    """Two-sided p-value of Fisher's exact test: the same missing share in both samples?

    Exact for small counts (a window of 50 rows), where a normal approximation of two
    proportions is far off in the tails the alarm works in. Memoised by the counts.

    >>> missing_share_p_value(15, 150, 5, 50)
    1.0
    >>> missing_share_p_value(0, 150, 10, 50) < 1e-6
    True
    """
    key = (missing_reference, n_reference, missing_window, n_window)
    p = _FISHER_MEMO.get(key)
    if p is None:
        if missing_reference + missing_window in (0, n_reference + n_window):
            p = 1.0
        else:
            table = [
                [missing_reference, n_reference - missing_reference],
                [missing_window, n_window - missing_window],
            ]
            p = float(min(1.0, fisher_exact(table).pvalue))
        if len(_FISHER_MEMO) >= _SF_MEMO_MAX:
            _FISHER_MEMO.clear()
        _FISHER_MEMO[key] = p
    return p


def chi2_counts(
    reference_counts: npt.NDArray[np.int64], window_counts: npt.NDArray[np.int64]
) -> tuple[float, float, int]:
    """``chi2_contingency`` of two count vectors over the cells either holds, as Alibi's
    ``ChiSquareDrift`` tests a feature: (statistic, p-value, degrees of freedom).

    Computed as ``scipy.stats.chi2_contingency`` computes it, Yates' correction at one
    degree of freedom included (``tests/unit/test_tabular_detection.py`` checks the
    floats against it).

    A cell only the window holds (a category the reference never saw) is a column of
    the table like any other. With one cell left, nothing can differ: (0, 1, 0).

    >>> chi2_counts(np.array([50, 50, 0]), np.array([10, 30, 0]))[2]
    1
    >>> chi2_counts(np.array([50, 50]), np.array([20, 20, 5]))[1] < 0.01
    True
    """
    width = max(len(reference_counts), len(window_counts))
    table = np.zeros((2, width), dtype=np.int64)
    table[0, : len(reference_counts)] = reference_counts
    table[1, : len(window_counts)] = window_counts
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0
    # chi2_contingency's arithmetic, step by step (the same floats), without the
    # argument handling that costs it ten times the sums on a window's table.
    observed = table.astype(np.float64)
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True)
    expected = expected / observed.sum()
    dof = table.shape[1] - 1
    if dof == 1:
        # Yates' correction, no larger than the difference.
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    statistic = float(((observed - expected) ** 2 / expected).sum())
    return statistic, float(chdtrc(dof, statistic)), dof


@dataclass(frozen=True)
class _Column:
    """What the tabular path keeps of one reference column."""

    categorical: bool
    observed: npt.NDArray[np.float64]
    """The values that are not missing: sorted (numeric), or counts per code (categorical)."""
    n_observed: int
    n_missing: int


class KSDetector(ABC):
    """Feature-wise KS drift detection: the checks, the correction and the verdict.

    As Alibi Detect's ``BaseUnivariateDrift``: this class checks the reference,
    the settings and each window, applies the Bonferroni or FDR correction the
    way ``KSDrift.predict`` does, and builds the `DriftResult`. A backend
    implements only :meth:`feature_score`, the per-feature p-values and
    statistics (and :meth:`_fit`, what it keeps of the reference).

    Parameters
    ----------
    reference : array_like
        Reference data, shape (rows, features): at least 2 rows, finite real numbers.
    p_val : float, default 0.05
        Significance level before correction, in (0, 1).
    correction : {"bonferroni", "fdr"}, default "bonferroni"
        Multiple-testing correction over the features.
    categorical : sequence of int, default ()
        Indices of the categorical features: their values are codes (0, 1, ...),
        tested by chi-squared instead of KS.

    Raises
    ------
    ValueError
        If ``reference``, ``p_val``, ``correction`` or ``categorical`` is invalid.
    """

    backend: ClassVar[Backend]
    """Which implementation this is, as ``make_detector``'s ``backend`` names it."""

    def __init__(
        self,
        reference: npt.ArrayLike,
        p_val: float = 0.05,
        correction: Correction = "bonferroni",
        categorical: Sequence[int] = (),
    ) -> None:
        ref = _check_reference(reference)
        self.p_val = _check_settings(p_val, correction)
        self.correction: Correction = correction
        self.n_features = ref.shape[1]
        self.categorical = tuple(sorted({int(i) for i in categorical}))
        if self.categorical and not 0 <= self.categorical[0] <= self.categorical[-1] < ref.shape[1]:
            raise ValueError(f"categorical must index the reference's features, got {categorical}")
        self._n_ref = ref.shape[0]
        self._columns = [
            self._column(ref[:, f], f in self.categorical) for f in range(ref.shape[1])
        ]
        self.tabular = bool(self.categorical) or any(c.n_missing for c in self._columns)
        """Whether every window takes the tabular path (categorical features, or a
        reference with missing values); else only windows with a missing value do."""
        if not self.tabular:
            self._fit(ref)

    @staticmethod
    def _column(values: npt.NDArray[np.float64], categorical: bool) -> _Column:
        present = values[~np.isnan(values)]
        if categorical:
            if present.size and not ((present == np.floor(present)).all() and present.min() >= 0):
                raise ValueError("a categorical feature's reference values must be codes 0, 1, ...")
            observed = np.bincount(present.astype(np.int64)).astype(np.float64)
        else:
            observed = np.sort(present)
        return _Column(categorical, observed, int(present.size), int(values.size - present.size))

    @abstractmethod
    def _fit(self, reference: npt.NDArray[np.float64]) -> None:
        """Prepare for scoring windows against the checked ``reference``."""

    @abstractmethod
    def feature_score(
        self, x: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Per-feature p-values and KS statistics of the checked window ``x``, both float32."""

    def predict(self, x: npt.ArrayLike) -> DriftResult:
        """Judge one window.

        Parameters
        ----------
        x : array_like
            The window, shape (rows, features) with the reference's features.

        Returns
        -------
        DriftResult

        Raises
        ------
        ValueError
            If ``x`` has the wrong shape or infinite values.
        """
        checked, finite = _check_x(x, self.n_features)
        if self.tabular or not finite:
            return self._tabular(checked)
        p_values, distances = self.feature_score(checked)
        return self._verdict(p_values, distances)

    def _tabular(self, x: npt.NDArray[np.float64]) -> DriftResult:
        """The tabular path (see the module docstring): each feature's test, then the verdict."""
        n_win = x.shape[0]
        missing = np.isnan(x)
        n_missing = missing.sum(axis=0)
        p = np.empty(self.n_features, dtype=np.float64)
        d = np.empty(self.n_features, dtype=np.float64)
        guard = np.empty(self.n_features, dtype=np.float64)
        for f, column in enumerate(self._columns):
            values = x[~missing[:, f], f]
            n_obs, n_ref = values.size, column.n_observed
            if n_obs == 0 or n_ref == 0:
                d[f], p[f], guard[f] = 0.0, 1.0, 1.0
            elif column.categorical:
                if not ((values == np.floor(values)).all() and values.min() >= 0):
                    raise ValueError(f"feature {f} is categorical: its values must be codes")
                counts = np.bincount(values.astype(np.int64))
                statistic, p[f], dof = chi2_counts(column.observed.astype(np.int64), counts)
                d[f] = statistic
                guard[f] = robust_chi2_p_value(statistic, dof, n_ref, n_obs)
            else:
                d[f] = _ks_statistic(column.observed, np.sort(values))
                m, n = sorted([float(n_ref), float(n_obs)], reverse=True)
                p[f] = ks_sf(d[f : f + 1], float(np.round(m * n / (m + n))))[0]
                guard[f] = robust_ks_p_values(d[f : f + 1], n_ref, n_obs)[0]
            if column.n_missing or n_missing[f]:
                # Both tests live under no drift only if the reference has missing values.
                factor = 2.0 if column.n_missing else 1.0
                share = missing_share_p_value(
                    column.n_missing, self._n_ref, int(n_missing[f]), n_win
                )
                # The guard's: the reference's counts halved, as if it were half its size.
                half = missing_share_p_value(
                    round(column.n_missing / 2), round(self._n_ref / 2), int(n_missing[f]), n_win
                )
                p[f] = min(1.0, factor * min(p[f], share))
                guard[f] = min(1.0, factor * min(guard[f], half))
        shares = n_missing / n_win if n_missing.any() else None
        return self._verdict(
            p.astype(np.float32), d.astype(np.float32), missing_shares=shares, guard=guard
        )

    def predict_many(self, windows: Sequence[npt.ArrayLike]) -> list[DriftResult | ValueError]:
        """Judge several windows: for each, what :meth:`predict` returns or raises.

        A window that :meth:`predict` would reject gets its ``ValueError`` in place
        of its result; the others are judged as if it had not been there. Backends
        may score the windows together (`FastKS` does); the results are the same.
        """
        out: list[DriftResult | ValueError] = []
        for x in windows:
            try:
                out.append(self.predict(x))
            except ValueError as err:
                out.append(err)
        return out

    def _verdict(
        self,
        p_values: npt.NDArray[np.float32],
        distances: npt.NDArray[np.float32],
        missing_shares: npt.NDArray[np.float64] | None = None,
        guard: npt.NDArray[np.float64] | None = None,
    ) -> DriftResult:
        # KSDrift.predict's batch-level decision, expression for expression.
        if self.correction == "bonferroni":
            threshold = self.p_val / self.n_features
            is_drift = bool((p_values < threshold).any())
        else:
            is_drift, threshold = fdr(p_values, q_val=self.p_val)
        return DriftResult(
            is_drift=is_drift,
            p_values=_frozen(p_values),
            distances=_frozen(distances),
            threshold=threshold,
            drifted=_drifted(p_values, threshold, self.correction),
            missing_shares=missing_shares,
            guard_p_values=guard,
        )


class AlibiKS(KSDetector):
    """Alibi Detect's ``KSDrift`` scores, judged as ``KSDrift.predict`` judges them.

    Alibi Detect is imported on construction (it takes seconds), not on import
    of this module. Parameters and errors are those of `KSDetector`.
    """

    backend: ClassVar[Literal["alibi"]] = "alibi"

    def _fit(self, reference: npt.NDArray[np.float64]) -> None:
        from alibi_detect.cd import KSDrift  # slow import, paid only here

        self._detector = KSDrift(reference, p_val=self.p_val, correction=self.correction)

    def feature_score(
        self, x: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """``KSDrift.score``: the p-values and statistics ``KSDrift.predict`` decides on."""
        p_values, distances = self._detector.score(x)
        return np.asarray(p_values), np.asarray(distances)


class FastKS(KSDetector):
    """``KSDrift``'s answer from a pre-sorted reference and memoised p-values.

    Per window it sorts the window's columns, computes each feature's two-sample
    KS statistic the way ``scipy.stats.ks_2samp`` does, and takes p-values from
    the same distribution call (``kstwo.sf`` with ``mode='asymp'``), cast to
    float32 as Alibi Detect stores them. The statistic takes discrete values,
    so p-values are memoised by (statistic, effective sample size); see `ks_sf`.
    Parameters and errors are those of `KSDetector`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> detector = FastKS(rng.normal(size=(200, 2)))
    >>> detector.predict(rng.normal(size=(100, 2))).is_drift
    False
    >>> shifted = rng.normal(size=(100, 2)) + [0.0, 3.0]
    >>> detector.predict(shifted).drifted
    (1,)
    """

    backend: ClassVar[Literal["fast"]] = "fast"

    def _fit(self, reference: npt.NDArray[np.float64]) -> None:
        # One contiguous sorted row per feature.
        self._ref_sorted = np.sort(reference.T, axis=1)

    def feature_score(
        self, x: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Each feature's ``ks_2samp`` statistic and asymptotic p-value, as float32."""
        distances = self._statistics(x)
        return self._p_values(distances, x.shape[0]), distances.astype(np.float32)

    def _statistics(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        n1 = self._n_ref
        n2 = x.shape[0]
        window_sorted = np.sort(x.T, axis=1)
        d = np.empty(self.n_features)
        for f in range(self.n_features):
            d[f] = _ks_statistic(self._ref_sorted[f], window_sorted[f], n1, n2)
        return d

    def predict_many(self, windows: Sequence[npt.ArrayLike]) -> list[DriftResult | ValueError]:
        """Judge several windows at once: :meth:`predict`'s results, bit for bit.

        Windows with the same number of rows are scored together, each feature in a
        few array operations over all of them (see :meth:`_statistics_many`).
        """
        out: list[DriftResult | ValueError | None] = [None] * len(windows)
        by_size: dict[int, list[tuple[int, npt.NDArray[np.float64]]]] = {}
        for i, x in enumerate(windows):
            try:
                checked, finite = _check_x(x, self.n_features)
                if self.tabular or not finite:
                    out[i] = self._tabular(checked)
                    continue
            except ValueError as err:
                out[i] = err
                continue
            by_size.setdefault(checked.shape[0], []).append((i, checked))
        for n2, group in by_size.items():
            d = self._statistics_many(np.stack([x for _, x in group]))
            p = self._p_values(d.ravel(), n2).reshape(d.shape)
            distances = d.astype(np.float32)
            for row, (i, _) in enumerate(group):
                out[i] = self._verdict(p[row].copy(), distances[row].copy())
        return [r for r in out if r is not None]

    def _statistics_many(self, xs: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """:meth:`_statistics` of windows ``xs`` (windows, rows, features), the same floats.

        ``ks_2samp`` takes the empirical CDFs at every point of both samples. Counted
        in integers: the reference's count at a point is one ``searchsorted`` over all
        windows' points; the window's is the count over both samples (the position of
        the point's last tie in their merged, sorted values) minus the reference's.
        The same counts divided by the same sizes give the same floats.
        """
        k, n2, n_features = xs.shape
        n1 = self._n_ref
        last = np.arange(1, n1 + n2 + 1)
        d = np.empty((k, n_features))
        for f in range(n_features):
            ref = self._ref_sorted[f]
            both = np.sort(np.concatenate([np.broadcast_to(ref, (k, n1)), xs[:, :, f]], axis=1))
            in_ref = np.searchsorted(ref, both.ravel(), side="right").reshape(k, -1)
            # Count of merged values <= each point: the index after its last tie.
            ends = np.where(
                np.concatenate([both[:, 1:] != both[:, :-1], np.ones((k, 1), bool)], axis=1),
                last,
                n1 + n2,
            )
            in_both = np.minimum.accumulate(ends[:, ::-1], axis=1)[:, ::-1]
            cdf1 = in_ref / n1
            cdf2 = (in_both - in_ref) / n2
            d[:, f] = np.max(np.abs(cdf1 - cdf2), axis=1)
        return d

    def _p_values(self, d: npt.NDArray[np.float64], n2: int) -> npt.NDArray[np.float32]:
        # ks_2samp's mode='asymp' two-sided path, step by step.
        m, n = sorted([float(self._n_ref), float(n2)], reverse=True)
        en = float(np.round(m * n / (m + n)))
        return ks_sf(d, en).astype(np.float32)


def _ks_statistic(
    ref: npt.NDArray[np.float64],
    win: npt.NDArray[np.float64],
    n1: int | None = None,
    n2: int | None = None,
) -> float:
    """``ks_2samp``'s statistic of two sorted samples, the same float.

    As ks_2samp: empirical CDFs at every point of both samples, so ties count the same
    way and the statistic is the same float.
    """
    both = np.concatenate([ref, win])
    cdf1 = np.searchsorted(ref, both, side="right") / (ref.size if n1 is None else n1)
    cdf2 = np.searchsorted(win, both, side="right") / (win.size if n2 is None else n2)
    return float(np.max(np.abs(cdf1 - cdf2)))


def make_detector(
    reference: npt.ArrayLike,
    p_val: float = 0.05,
    correction: Correction = "bonferroni",
    backend: Backend = "fast",
    categorical: Sequence[int] = (),
) -> KSDetector:
    """Build a KS drift detector for ``reference``.

    Parameters
    ----------
    reference : array_like
        Reference data, shape (rows, features): at least 2 rows, finite real numbers.
    p_val : float, default 0.05
        Significance level before correction, in (0, 1).
    correction : {"bonferroni", "fdr"}, default "bonferroni"
        Multiple-testing correction over the features.
    backend : {"alibi", "fast"}, default "fast"
        ``fast`` gives ``KSDrift``'s result bit for bit without Alibi Detect
        (`tests/unit/test_detection.py` checks it); ``alibi`` runs Alibi
        Detect's ``KSDrift``. Windows with a categorical feature or a missing value
        take the tabular path with either (see the module docstring).
    categorical : sequence of int, default ()
        Indices of the categorical features (their values codes).

    Returns
    -------
    KSDetector
        An `AlibiKS` or a `FastKS`.

    Raises
    ------
    ValueError
        If any argument is invalid.
    """
    if backend == "alibi":
        return AlibiKS(reference, p_val=p_val, correction=correction, categorical=categorical)
    if backend == "fast":
        return FastKS(reference, p_val=p_val, correction=correction, categorical=categorical)
    raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
