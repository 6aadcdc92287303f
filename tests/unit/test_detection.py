"""KS drift per window: both backends over a grid, and FastKS bit-identical to Alibi Detect."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

from consumer.detection import AlibiKS, DriftResult, FastKS, KSDetector, fdr, make_detector

BACKENDS = ["alibi", "fast"]
CORRECTIONS = ["bonferroni", "fdr"]

Factory = Callable[..., KSDetector]


@pytest.fixture(scope="module")
def alibi() -> SimpleNamespace:
    """Alibi Detect, imported once per module: the import alone takes seconds."""
    from alibi_detect.cd import KSDrift
    from alibi_detect.utils.statstest import fdr as alibi_fdr

    return SimpleNamespace(KSDrift=KSDrift, fdr=alibi_fdr)


@pytest.fixture(params=BACKENDS)
def make(request: pytest.FixtureRequest) -> Factory:
    """``make_detector`` bound to one backend; the alibi one pays the import once."""
    backend = request.param
    if backend == "alibi":
        request.getfixturevalue("alibi")

    def factory(reference: npt.ArrayLike, **kwargs: object) -> KSDetector:
        return make_detector(reference, backend=backend, **kwargs)  # type: ignore[arg-type]

    factory.backend = backend  # type: ignore[attr-defined]
    return factory


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    """All 150 Iris rows, and a stratified 120-row training split as reference."""
    x, y = load_iris(return_X_y=True)
    reference, _, _, _ = train_test_split(x, y, train_size=120, stratify=y, random_state=0)
    return x, reference


def iris_windows(x: np.ndarray, n: int, size: int = 50, seed: int = 7) -> Iterator[np.ndarray]:
    """``n`` windows of clean Iris rows, drawn with replacement."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield x[rng.integers(0, len(x), size)]


# --- behaviour, on both backends ------------------------------------------------------


@pytest.mark.parametrize("correction", CORRECTIONS)
def test_no_drift_on_clean_iris(make: Factory, iris: tuple, correction: str) -> None:
    x, reference = iris
    detector = make(reference, correction=correction)
    results = [detector.predict(w) for w in iris_windows(x, 40)]
    assert sum(r.is_drift for r in results) <= 2
    assert all(r.drifted == () for r in results if not r.is_drift)


@pytest.mark.parametrize("correction", CORRECTIONS)
def test_drift_on_every_feature_under_noise(make: Factory, iris: tuple, correction: str) -> None:
    x, reference = iris
    detector = make(reference, correction=correction)
    rng = np.random.default_rng(11)
    for window in iris_windows(x, 10):
        result = detector.predict(window + rng.normal(3.0, 1.0, window.shape))
        assert result.is_drift
        assert result.drifted == (0, 1, 2, 3)


@pytest.mark.parametrize("correction", CORRECTIONS)
@pytest.mark.parametrize("features", [(0,), (3,), (1, 3), (0, 2, 3)])
def test_drift_only_on_noisy_features(
    make: Factory, iris: tuple, correction: str, features: tuple[int, ...]
) -> None:
    x, reference = iris
    detector = make(reference, correction=correction)
    rng = np.random.default_rng(11)
    for window in iris_windows(x, 10):
        noisy = window.copy()
        noisy[:, features] += rng.normal(3.0, 1.0, (len(noisy), len(features)))
        result = detector.predict(noisy)
        assert result.is_drift
        assert result.drifted == features


@pytest.mark.parametrize("correction", CORRECTIONS)
def test_settings_and_result_types(make: Factory, iris: tuple, correction: str) -> None:
    x, reference = iris
    detector = make(reference, p_val=0.01, correction=correction)
    assert detector.backend == make.backend  # type: ignore[attr-defined]
    assert (detector.p_val, detector.correction) == (0.01, correction)
    result = detector.predict(x[:50])
    assert isinstance(result, DriftResult)
    assert isinstance(result.is_drift, bool)
    assert isinstance(result.threshold, float)
    assert result.p_values.dtype == np.float32
    assert result.distances.dtype == np.float32
    assert result.p_values.shape == result.distances.shape == (4,)
    with pytest.raises(ValueError, match="read-only"):
        result.p_values[0] = 0.0


def test_backend_choice(make: Factory, iris: tuple) -> None:
    # Compared with the backend asked for: ``detector.backend`` is a class attribute,
    # so it always names the class the detector is, whichever class that is.
    asked = make.backend  # type: ignore[attr-defined]
    detector = make(iris[1])
    assert type(detector) is {"alibi": AlibiKS, "fast": FastKS}[asked]
    assert detector.backend == asked


def test_fast_runs_by_default_and_alibi_by_name(iris: tuple) -> None:
    # The default is the backend whose p-values the tests below prove equal to Alibi's.
    from consumer.settings import ConsumerSettings

    assert ConsumerSettings.model_fields["ks_backend"].default == "fast"
    assert type(make_detector(iris[1])) is FastKS
    assert type(make_detector(iris[1], backend="alibi")) is AlibiKS


GOOD = np.random.default_rng(0).normal(size=(20, 3))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"reference": GOOD[:, 0]}, "reference"),
        ({"reference": GOOD[:1]}, "reference"),
        ({"reference": GOOD[:, :0]}, "reference"),
        ({"reference": np.where(GOOD > 1, np.inf, GOOD)}, "reference"),
        ({"reference": GOOD > 0}, "reference"),
        ({"reference": GOOD.astype(str)}, "reference"),
        ({"p_val": 0.0}, "p_val"),
        ({"p_val": 1.0}, "p_val"),
        ({"p_val": -0.05}, "p_val"),
        ({"p_val": True}, "p_val"),
        ({"p_val": "0.05"}, "p_val"),
        ({"correction": "holm"}, "correction"),
    ],
)
def test_rejects_bad_settings(make: Factory, kwargs: dict, name: str) -> None:
    kwargs = {"reference": GOOD, **kwargs}
    with pytest.raises(ValueError, match=f"^{name} "):
        make(**kwargs)


def test_rejects_unknown_backend() -> None:
    with pytest.raises(ValueError, match=r"^backend "):
        make_detector(GOOD, backend="torch")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "x",
    [GOOD[:, :2], GOOD[:, 0], np.hstack([GOOD, GOOD]), GOOD[:0], np.where(GOOD > 1, np.inf, GOOD)],
    ids=["too-few-columns", "1-D", "too-many-columns", "no-rows", "inf"],
)
def test_predict_rejects_bad_windows(make: Factory, x: np.ndarray) -> None:
    detector = make(GOOD)
    with pytest.raises(ValueError, match=r"^x "):
        detector.predict(x)


# --- FastKS is AlibiKS, bit for bit ---------------------------------------------------


def assert_same(alibi_result: DriftResult, fast_result: DriftResult) -> None:
    np.testing.assert_array_equal(fast_result.p_values, alibi_result.p_values, strict=True)
    np.testing.assert_array_equal(fast_result.distances, alibi_result.distances, strict=True)
    assert fast_result.threshold == alibi_result.threshold
    assert fast_result.is_drift == alibi_result.is_drift
    assert fast_result.drifted == alibi_result.drifted


def continuous(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return rng.normal(size=shape)


def one_decimal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return np.round(rng.normal(5.0, 1.0, size=shape), 1)


def integers(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return rng.integers(0, 8, size=shape).astype(np.float64)


@pytest.mark.parametrize("correction", CORRECTIONS)
@pytest.mark.parametrize("size", [50, 500])
@pytest.mark.parametrize("draw", [continuous, one_decimal, integers])
def test_fast_equals_alibi(
    alibi: SimpleNamespace,
    draw: Callable[[np.random.Generator, tuple[int, int]], np.ndarray],
    size: int,
    correction: str,
) -> None:
    rng = np.random.default_rng(size)
    reference = draw(rng, (120, 4))
    slow = AlibiKS(reference, correction=correction)  # type: ignore[arg-type]
    fast = FastKS(reference, correction=correction)  # type: ignore[arg-type]
    verdicts = set()
    # Shifts from none to large, per feature, so p-values land on both sides of the threshold.
    for shift in np.linspace(0.0, 0.6, 25):
        window = draw(rng, (size, 4)) + np.round(shift * rng.uniform(0, 1, 4), 1)
        slow_result = slow.predict(window)
        assert_same(slow_result, fast.predict(window))
        # Again, now from memoised p-values.
        assert_same(slow_result, fast.predict(window))
        verdicts.add(slow_result.is_drift)
    assert verdicts == {False, True}


@pytest.mark.parametrize("draw", [continuous, one_decimal, integers])
def test_predict_many_gives_predicts_results_bit_for_bit(
    make: Factory, draw: Callable[[np.random.Generator, tuple[int, int]], np.ndarray]
) -> None:
    rng = np.random.default_rng(17)
    for correction in CORRECTIONS:
        detector = make(draw(rng, (120, 4)), correction=correction)
        # Windows of two sizes, shifted from none to large, and one that predict rejects.
        windows: list[np.ndarray] = [
            draw(rng, (size, 4)) + np.round(shift * rng.uniform(0, 1, 4), 1)
            for shift in np.linspace(0.0, 0.6, 12)
            for size in (50, 37)
        ]
        windows.insert(5, np.full((50, 4), np.inf))
        half_missing = draw(rng, (50, 4))
        half_missing[::2, 1] = np.nan
        windows.insert(9, half_missing)
        results = detector.predict_many(windows)
        assert len(results) == len(windows)
        for window, result in zip(windows, results, strict=True):
            if np.isinf(window).any():
                assert isinstance(result, ValueError)
                continue
            assert isinstance(result, DriftResult)
            one = detector.predict(window)
            assert_same(one, result)
            assert result.p_values.dtype == result.distances.dtype == np.float32
            assert not result.p_values.flags.writeable
        assert {r.is_drift for r in results if isinstance(r, DriftResult)} == {False, True}


def test_fast_equals_alibi_on_iris(alibi: SimpleNamespace, iris: tuple) -> None:
    x, reference = iris
    rng = np.random.default_rng(3)
    for correction in CORRECTIONS:
        slow = AlibiKS(reference, correction=correction)  # type: ignore[arg-type]
        fast = FastKS(reference, correction=correction)  # type: ignore[arg-type]
        for size in (50, 500):
            for window in iris_windows(x, 10, size=size, seed=size):
                noisy = window + rng.normal(3.0, 1.0, window.shape) * rng.integers(0, 2, 4)
                assert_same(slow.predict(window), fast.predict(window))
                assert_same(slow.predict(noisy), fast.predict(noisy))


def test_fast_equals_alibi_across_dtypes(alibi: SimpleNamespace) -> None:
    rng = np.random.default_rng(5)
    reference = rng.integers(0, 20, size=(120, 3))
    window = rng.normal(10.0, 5.0, size=(60, 3)).astype(np.float32)
    assert_same(AlibiKS(reference).predict(window), FastKS(reference).predict(window))


def test_raw_alibi_output_matches(alibi: SimpleNamespace) -> None:
    """The wrapper reports what KSDrift itself returns."""
    rng = np.random.default_rng(9)
    reference = rng.normal(size=(120, 4))
    window = rng.normal(0.3, 1.0, size=(50, 4))
    raw = alibi.KSDrift(reference, p_val=0.05).predict(window)["data"]
    result = FastKS(reference).predict(window)
    np.testing.assert_array_equal(result.p_values, raw["p_val"], strict=True)
    np.testing.assert_array_equal(result.distances, raw["distance"], strict=True)
    assert result.threshold == raw["threshold"]
    assert result.is_drift == bool(raw["is_drift"])


@pytest.mark.parametrize("correction", CORRECTIONS)
@pytest.mark.parametrize("detector", [AlibiKS, FastKS])
def test_shared_predict_decides_as_ksdrift_predict(
    alibi: SimpleNamespace, detector: type[AlibiKS | FastKS], correction: str
) -> None:
    """KSDetector.predict's threshold and verdict are KSDrift.predict's, for each backend."""
    rng = np.random.default_rng(13)
    reference = rng.normal(size=(120, 4))
    ours = detector(reference, correction=correction)  # type: ignore[arg-type]
    verdicts = set()
    for shift in np.linspace(0.0, 0.8, 20):
        window = rng.normal(0.0, 1.0, size=(50, 4)) + shift * rng.uniform(0, 1, 4)
        raw = alibi.KSDrift(reference, p_val=0.05, correction=correction).predict(window)["data"]
        result = ours.predict(window)
        np.testing.assert_array_equal(result.p_values, raw["p_val"], strict=True)
        np.testing.assert_array_equal(result.distances, raw["distance"], strict=True)
        # With fdr and no drift KSDrift returns every candidate threshold: the smallest is ours.
        assert result.threshold == np.min(raw["threshold"])
        assert result.is_drift == bool(raw["is_drift"])
        verdicts.add(result.is_drift)
    assert verdicts == {False, True}


def fdr_cases() -> Iterator[np.ndarray]:
    rng = np.random.default_rng(1)
    for n in range(1, 7):
        for _ in range(30):
            yield rng.uniform(0, 0.1, n).astype(np.float32)
        # p-values sitting on the Benjamini-Hochberg thresholds, and just either side.
        on = (0.05 * (np.arange(n) + 1) / n).astype(np.float32)
        yield on
        yield np.nextafter(on, np.float32(0))
        yield np.nextafter(on, np.float32(1))
        yield np.full(n, on[0])
    yield np.array([0.04, 0.06], dtype=np.float32)
    yield np.array([0.001, 0.02, 0.5], dtype=np.float32)


def test_fdr_matches_alibi(alibi: SimpleNamespace) -> None:
    seen = set()
    for p_values in fdr_cases():
        alibi_drift, alibi_threshold = alibi.fdr(p_values, q_val=0.05)
        is_drift, threshold = fdr(p_values, q_val=0.05)
        assert is_drift == bool(alibi_drift)
        # With nothing significant Alibi returns every candidate; we report the smallest.
        assert threshold == np.min(alibi_threshold)
        if not is_drift:
            assert threshold == np.asarray(alibi_threshold)[0]
        seen.add(is_drift)
    assert seen == {False, True}


def test_ks_sf_answers_when_its_memo_fills_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full memo is emptied and the values asked for are all computed: no key of the
    call is lost (a long run met a KeyError here once the memo reached its size)."""
    import consumer.detection as detection

    monkeypatch.setattr(detection, "_SF_MEMO", {})
    monkeypatch.setattr(detection, "_SF_MEMO_MAX", 4)
    first = detection.ks_sf(np.array([0.1, 0.2, 0.3]), 40.0)
    both = detection.ks_sf(np.array([0.1, 0.4, 0.5]), 40.0)
    assert both[0] == first[0]
    assert both.tolist() == detection.ks_sf(np.array([0.1, 0.4, 0.5]), 40.0).tolist()
