"""Feature-wise Kolmogorov-Smirnov drift detection of one window against reference data.

`KSDetector` holds what every backend shares: the checks, the multiple-testing
correction and the verdict, as ``KSDrift.predict`` computes them. Two backends
score the features: ``alibi`` with Alibi Detect's ``KSDrift.score``; ``fast``
sorts the reference once and reproduces ``KSDrift``'s p-values and distances bit
for bit at a fraction of the cost.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import kstwo

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
    """

    is_drift: bool
    p_values: npt.NDArray[np.float32]
    distances: npt.NDArray[np.float32]
    threshold: float
    drifted: tuple[int, ...]


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
    if not np.isfinite(ref).all():
        raise ValueError("reference must not contain NaN or infinite values")
    return ref


def _check_settings(p_val: float, correction: str) -> float:
    if isinstance(p_val, bool) or not isinstance(p_val, (int, float, np.floating)):
        raise ValueError(f"p_val must be a number in (0, 1), got {p_val!r}")
    if not 0.0 < float(p_val) < 1.0:
        raise ValueError(f"p_val must be in (0, 1), got {p_val!r}")
    if correction not in _CORRECTIONS:
        raise ValueError(f"correction must be one of {_CORRECTIONS}, got {correction!r}")
    return float(p_val)


def _check_x(x: npt.ArrayLike, n_features: int) -> npt.NDArray[np.float64]:
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
    if not np.isfinite(arr).all():
        raise ValueError("x must not contain NaN or infinite values")
    return arr


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
    keys = [(float(v), en) for v in d]
    missing = list(dict.fromkeys(k for k in keys if k not in memo))
    if missing:
        probs = np.clip(kstwo.sf(np.array([k[0] for k in missing]), en), 0, 1)
        if len(memo) + len(missing) > _SF_MEMO_MAX:
            memo.clear()
        memo.update(zip(missing, (float(p) for p in np.atleast_1d(probs)), strict=True))
    return np.array([memo[k] for k in keys], dtype=np.float64)


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

    Raises
    ------
    ValueError
        If ``reference``, ``p_val`` or ``correction`` is invalid.
    """

    backend: ClassVar[Backend]
    """Which implementation this is, as ``make_detector``'s ``backend`` names it."""

    def __init__(
        self,
        reference: npt.ArrayLike,
        p_val: float = 0.05,
        correction: Correction = "bonferroni",
    ) -> None:
        ref = _check_reference(reference)
        self.p_val = _check_settings(p_val, correction)
        self.correction: Correction = correction
        self.n_features = ref.shape[1]
        self._fit(ref)

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
            If ``x`` has the wrong shape or non-finite values.
        """
        p_values, distances = self.feature_score(_check_x(x, self.n_features))
        return self._verdict(p_values, distances)

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
        self, p_values: npt.NDArray[np.float32], distances: npt.NDArray[np.float32]
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
        self._n_ref = reference.shape[0]
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
            ref = self._ref_sorted[f]
            win = window_sorted[f]
            # As ks_2samp: empirical CDFs at every point of both samples, so ties
            # count the same way and the statistic is the same float.
            both = np.concatenate([ref, win])
            cdf1 = np.searchsorted(ref, both, side="right") / n1
            cdf2 = np.searchsorted(win, both, side="right") / n2
            d[f] = np.max(np.abs(cdf1 - cdf2))
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
                checked = _check_x(x, self.n_features)
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


def make_detector(
    reference: npt.ArrayLike,
    p_val: float = 0.05,
    correction: Correction = "bonferroni",
    backend: Backend = "fast",
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
        Detect's ``KSDrift``.

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
        return AlibiKS(reference, p_val=p_val, correction=correction)
    if backend == "fast":
        return FastKS(reference, p_val=p_val, correction=correction)
    raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
