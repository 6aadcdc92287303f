"""The tabular path: chi-squared for categorical features, missing shares, and the KS guard.

Categorical values are codes (0, 1, ...) into the reference's categories and NaN marks
a missing value, as in every matrix of the loop (`data.encoding`).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2_contingency, fisher_exact, ks_2samp, poisson

from consumer.alarms import KSAlarm
from consumer.detection import chi2_counts, make_detector

BACKENDS = ("fast", "alibi")


def mixed(rng: np.random.Generator, n: int, missing: float = 0.1) -> np.ndarray:
    """Four features: numeric with missing values, two categorical (one with missing
    values), and a tied numeric one without."""
    x = np.column_stack(
        [
            rng.normal(size=n),
            rng.choice(4, size=n, p=[0.5, 0.3, 0.15, 0.05]).astype(float),
            rng.choice(2, size=n, p=[0.6, 0.4]).astype(float),
            np.round(rng.normal(size=n), 1),
        ]
    )
    x[rng.random(n) < missing, 0] = np.nan
    x[rng.random(n) < missing / 2, 2] = np.nan
    return x


CATEGORICAL = (1, 2)


def test_chi_squared_p_values_are_alibis_chisquaredrift() -> None:
    """Categorical windows without missing values: the p-values and statistics of
    Alibi Detect's ChiSquareDrift, float32 for float32, on shifted and clean windows."""
    from alibi_detect.cd import ChiSquareDrift

    rng = np.random.default_rng(11)
    reference = rng.choice(3, size=(300, 2), p=[0.5, 0.3, 0.2]).astype(float)
    alibi = ChiSquareDrift(reference, p_val=0.05)
    for backend in BACKENDS:
        ours = make_detector(reference, backend=backend, categorical=[0, 1])  # type: ignore[arg-type]
        for trial in range(20):
            p = [0.5, 0.3, 0.2] if trial % 2 else [0.2, 0.3, 0.5]
            window = rng.choice(3, size=(50, 2), p=p).astype(float)
            result = ours.predict(window)
            expected = alibi.predict(window, return_p_val=True, return_distance=True)["data"]
            np.testing.assert_array_equal(result.p_values, expected["p_val"])
            np.testing.assert_allclose(result.distances, expected["distance"], rtol=1e-6)
            assert result.is_drift == bool(expected["is_drift"])


def test_chi2_counts_is_chi2_contingency_float_for_float() -> None:
    """Tables of 2 to 6 cells (Yates' correction at one degree of freedom), with cells
    only one sample holds: statistic and p-value equal to scipy's."""
    rng = np.random.default_rng(12)
    for _ in range(300):
        k = int(rng.integers(2, 7))
        ref = rng.integers(0, 60, size=k)
        win = rng.integers(0, 15, size=int(rng.integers(1, k + 2)))
        ref[0], win[0] = max(ref[0], 1), max(win[0], 1)
        statistic, p, dof = chi2_counts(ref, win)
        table = np.zeros((2, max(k, len(win))), dtype=np.int64)
        table[0, :k], table[1, : len(win)] = ref, win
        expected = chi2_contingency(table[:, table.sum(axis=0) > 0])
        assert (statistic, p, dof) == (expected.statistic, expected.pvalue, expected.dof)


def test_an_unseen_category_counts_as_a_change() -> None:
    """A category the reference never had (code 2 of a two-category feature) in a fifth
    of the window is drift; the same window without it is not."""
    rng = np.random.default_rng(3)
    reference = rng.choice(2, size=(400, 1)).astype(float)
    detector = make_detector(reference, categorical=[0])
    clean = rng.choice(2, size=(50, 1)).astype(float)
    assert not detector.predict(clean).is_drift
    unseen = clean.copy()
    unseen[:10, 0] = 2.0
    result = detector.predict(unseen)
    assert result.is_drift and result.drifted == (0,)
    assert result.p_values[0] < 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_change_in_the_missing_share_is_drift(backend: str) -> None:
    """Same values, a missing share of 10% in the reference and 50% in the window: drift,
    with the feature's p-value twice Fisher's (the reference has missing values)."""
    rng = np.random.default_rng(5)
    reference = rng.normal(size=(400, 2))
    reference[:40, 0] = np.nan
    detector = make_detector(reference, backend=backend)  # type: ignore[arg-type]
    window = rng.normal(size=(50, 2))
    window[:25, 0] = np.nan
    result = detector.predict(window)
    assert result.drifted == (0,)
    fisher = fisher_exact([[40, 360], [25, 25]]).pvalue
    assert result.p_values[0] == np.float32(2 * fisher)
    assert result.missing_shares is not None
    assert result.missing_shares.tolist() == [0.5, 0.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_numeric_feature_with_gaps_is_ks_tested_on_its_values(backend: str) -> None:
    """Against a reference without missing values, a window with a few gaps: the KS
    p-value of ``ks_2samp`` on the values present, or Fisher's if smaller, undoubled."""
    rng = np.random.default_rng(8)
    reference = rng.normal(size=(300, 1))
    detector = make_detector(reference, backend=backend)  # type: ignore[arg-type]
    window = rng.normal(size=(50, 1)) + 0.3
    window[:3, 0] = np.nan
    result = detector.predict(window)
    ks = ks_2samp(reference[:, 0], window[3:, 0], method="asymp")
    fisher = fisher_exact([[0, 300], [3, 47]]).pvalue
    assert result.p_values[0] == np.float32(min(ks.pvalue, fisher))
    assert result.distances[0] == np.float32(ks.statistic)


def test_clean_mixed_windows_drift_no_more_than_the_level_allows() -> None:
    """400 clean windows of mixed features against a reference from the same population,
    at p_val 0.05 (Bonferroni): a correct test flags at most 5% of them on average. The
    bound, 40, is past the 1 - 1e-4 quantile of Binomial(400, 0.05) (36), so a correct
    implementation fails it with probability below 1e-4."""
    rng = np.random.default_rng(2026)
    drifted = 0
    for _ in range(20):
        detector = make_detector(mixed(rng, 2000), categorical=CATEGORICAL)
        drifted += sum(detector.predict(mixed(rng, 50)).is_drift for _ in range(20))
    assert drifted <= 40, drifted


def test_shifted_mixed_windows_drift_naming_the_feature() -> None:
    """A categorical feature's shift (its rarest category in every second row) and a
    missing share of 40% are each found, and only where they are."""
    rng = np.random.default_rng(7)
    detector = make_detector(mixed(rng, 1000), categorical=CATEGORICAL)
    window = mixed(rng, 50)
    window[::2, 1] = 3.0
    assert detector.predict(window).drifted == (1,)
    window = mixed(rng, 50, missing=0.0)
    window[:20, 3] = np.nan
    assert detector.predict(window).drifted == (3,)


def test_the_ks_guard_keeps_its_budget_on_clean_mixed_streams() -> None:
    """The ``ks`` rule on clean windows of categorical and missing features, each stream
    judged against its own finite reference (300 rows) of the same population, at a
    budget of 2,000 rows: 40 streams of 100 windows of 50 rows may raise 100 alarms on
    average. The bound is the 1 - 1e-4 quantile of a Poisson count of that mean, so a
    guard within its budget exceeds it with probability below 1e-4. The same windows
    with an unseen category in a fifth of their rows alarm nearly every time."""
    rng = np.random.default_rng(20261203)
    step, budget = 50, 2000.0
    alarms = shifted_alarms = windows = 0
    for _ in range(40):
        reference = mixed(rng, 300)
        detector = make_detector(reference, categorical=CATEGORICAL)
        guard = KSAlarm(len(reference), 4, step, budget)
        for w in range(100):
            window = mixed(rng, step)
            result = detector.predict(window)
            assert result.guard_p_values is not None
            alarms += guard.judge(result.distances, step, w, result.guard_p_values) is not None
            if w % 10 == 0:
                window[:10, 2] = 2.0
                shifted = detector.predict(window)
                shifted_alarms += (
                    guard.judge(shifted.distances, step, w, shifted.guard_p_values) is not None
                )
            windows += 1
    allowed = windows * step / budget
    assert alarms <= poisson.ppf(1 - 1e-4, allowed), (alarms, allowed)
    assert shifted_alarms >= 0.9 * 400, shifted_alarms
