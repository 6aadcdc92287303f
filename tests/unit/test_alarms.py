"""The drift alarms: calibrated to their budget on clean streams, fast on a shift, deterministic.

The statistical tests run on fixed seeds, so they pass or fail the same way every
time; each states how likely a correct implementation would be to fail it on a
seed drawn at random (its false-positive probability), and each bound is loose
enough that a wrong implementation fails it by far.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import poisson

import consumer.alarms as alarms
import consumer.calibration as calibration
from bench.detection import IrisLike, mixed_rows  # the benchmark's streams, short
from consumer.alarms import (
    KSAlarm,
    RankAlarm,
    RankThresholds,
    StreamAlarm,
    null_sd,
    score_table,
    score_tables,
    tie_break,
)
from consumer.calibration import Calibration, CalibrationCache, calibrate
from tests.unit.calibration_before import simulate_maxima_before
from tests.unit.rank_alarm_before import RankAlarmBefore

WARMUP = 1000
EVERY = 5
SMALL_BUDGET = 2000


@pytest.fixture(scope="module")
def fitted() -> Calibration:
    """The thresholds' fit for a 1,000-row baseline, from 3 M simulated rows (2 s).

    Fewer rows than the consumer simulates: at the small budgets tested here the
    thresholds sit inside the simulated range, no extrapolation.
    """
    return calibrate(WARMUP, EVERY, rows=3_000_000)


def clean_alarm_count(
    fitted: Calibration, rows: np.ndarray, streams: int, budget: float
) -> tuple[int, int]:
    """Rank alarms over ``streams`` clean streams cut from ``rows``; (alarms, rows judged)."""
    per = rows.shape[0] // streams
    alarms, judged = 0, 0
    for s in range(streams):
        alarm = RankAlarm(
            rows.shape[1],
            lambda n, d: fitted.thresholds(d, budget),
            warmup_rows=WARMUP,
            every=EVERY,
            seed=s,
        )
        chunk = rows[s * per : (s + 1) * per]
        for start in range(0, per, 500):
            alarms += len(alarm.observe(chunk[start : start + 500], np.arange(start, start + 500)))
        judged += per - WARMUP
    return alarms, judged


def tied_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Four correlated features with heavy ties: a shared factor, rounded to coarse steps."""
    common = rng.normal(size=(n, 1))
    x = 0.7 * common + 0.7 * rng.normal(size=(n, 4))
    return np.column_stack(
        [
            np.round(x[:, 0], 0),  # about 5 distinct values
            np.round(x[:, 1] * 2, 0) / 2,
            np.minimum(rng.poisson(1.0, size=n), 4).astype(float),  # 5 values, skewed
            np.round(x[:, 3], 1),
        ]
    )


@pytest.mark.parametrize("data", ["untied", "tied", "mixed"])
def test_clean_streams_stay_within_the_budget(fitted: Calibration, data: str) -> None:
    """40 clean streams of 10,000 rows at a budget of 2,000 rows: at most 180 alarms
    allowed on average, and the count stays within Poisson bounds of that.

    Upper bound: the 1 - 1e-4 quantile of a Poisson count whose mean is the budget's
    (a correct alarm's rate is at most that, so it exceeds the bound with
    probability < 1e-4; the calibration's safety factor makes it about half).
    Lower bound: the 1e-4 quantile of a Poisson at a tenth of the budget's mean, so
    that an alarm that never fires (thresholds too high) fails too; the alarm's
    real rate is about half the budget's (BENCHMARKS.md), five times the
    bound's, so a correct implementation fails it with probability far below 1e-4.
    A baseline shared by a stream's rows makes counts overdispersed; 40 baselines
    keep that small next to these margins.
    """
    seeds = {"untied": 20261201, "tied": 20261202, "mixed": 20261204}
    rng = np.random.default_rng(seeds[data])
    streams, per = 40, 10_000
    make = {"untied": lambda r, n: r.normal(size=(n, 4)), "tied": tied_rows, "mixed": mixed_rows}
    rows = make[data](rng, streams * per)
    alarms, judged = clean_alarm_count(fitted, rows, streams, SMALL_BUDGET)
    allowed = judged / SMALL_BUDGET
    assert alarms <= poisson.ppf(1 - 1e-4, allowed), (alarms, allowed)
    assert alarms >= poisson.ppf(1e-4, allowed / 10), (alarms, allowed)


def test_a_change_of_missing_share_or_category_moves_the_ranks(fitted: Calibration) -> None:
    """After a clean baseline of mixed rows, a feature missing half its values (10%
    before), or a categorical feature taking its rarest category in half its rows,
    alarms on that feature within 100 rows."""
    for feature in (0, 1):
        rng = np.random.default_rng(40 + feature)
        x = mixed_rows(rng, 3000)
        if feature == 0:
            x[1500::2, 0] = np.nan
        else:
            x[1500::2, 1] = 3.0
        alarm = RankAlarm(4, lambda n, d: fitted.thresholds(d, 1e6), warmup_rows=WARMUP)
        firings = alarm.observe(x, np.arange(3000))
        assert firings and 1500 <= firings[0].offset < 1600, firings[:1]
        assert feature in firings[0].features


def test_a_three_sd_shift_is_caught_within_ten_rows(fitted: Calibration) -> None:
    """A seeded stream, a shift of feature 2 by +3 SD at row 2,000: the first alarm
    is at row 2,009 (the second evaluation after the shift), on feature 2, by the
    location sums. Exact, as River's tests assert detections."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3000, 4))
    x[2000:, 2] += 3.0
    alarm = RankAlarm(4, lambda n, d: fitted.thresholds(d, 100_000), warmup_rows=WARMUP)
    firings = alarm.observe(x, np.arange(3000))
    assert [(f.offset, f.features, f.kind) for f in firings[:1]] == [(2009, (2,), "location")]
    assert all(f.offset >= 2000 for f in firings)


def test_polls_of_any_size_give_the_same_alarms(fitted: Calibration) -> None:
    """Ties are broken by a function of the offset alone: the same stream cut into
    other polls ranks every value the same way and alarms at the same rows."""
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=(4000, 3)), 0)  # few distinct values: many ties
    x[2500:, 0] += 1.0

    def run(cuts: list[int]) -> list[tuple[int, tuple[int, ...], str]]:
        alarm = RankAlarm(3, lambda n, d: fitted.thresholds(d, SMALL_BUDGET), seed=11)
        out = []
        for a, b in zip([0, *cuts], [*cuts, 4000], strict=True):
            out += [(f.offset, f.features, f.kind) for f in alarm.observe(x[a:b], np.arange(a, b))]
        return out

    whole = run([])
    assert whole  # the shift is seen
    assert run([1, 999, 1000, 1001, 2503, 3333]) == whole
    assert run(list(range(7, 4000, 7))) == whole


def test_judging_the_short_sums_first_gives_the_one_pass_firings_bit_for_bit(
    fitted: Calibration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a restart the alarm judges the points below `HEAD_ROWS` rows first (a
    drifted stream fires there again); with ``HEAD_ROWS = 0`` every point is judged in
    one pass, as before. The firings, their statistics to the last bit, are the same:
    on a stream drifted in stretches (firings every window, restarts followed by
    quiet rows) and cut into polls of uneven sizes."""
    rng = np.random.default_rng(12)
    x = rng.normal(size=(9000, 4))
    x[3000:5000, 1] += 2.0  # fires again soon after each restart
    x[6000:7000, 3] *= 1.6  # scale: firings further apart
    x[8000:8400, 0] += 0.6  # weak: restarts with no firing for a while

    def run() -> list[tuple[int, tuple[int, ...], str, int, str, str]]:
        alarm = RankAlarm(4, lambda n, d: fitted.thresholds(d, SMALL_BUDGET), seed=3, holdoff=50)
        out = []
        for a in range(0, 9000, 1700):
            b = min(a + 1700, 9000)
            out += [
                (f.offset, f.features, f.kind, f.window, f.statistic.hex(), f.threshold.hex())
                for f in alarm.observe(x[a:b], np.arange(a, b))
            ]
        return out

    fast = run()
    monkeypatch.setattr(alarms, "HEAD_ROWS", 0)
    one_pass = run()
    assert len(fast) > 50 and {f[2] for f in fast} >= {"location", "scale"}
    assert fast == one_pass


def drifted_stream(kind: str, rng: np.random.Generator) -> np.ndarray:
    """20,000 rows for the scan's comparison with the scan before (below)."""
    if kind == "iris":  # the benchmark's: Iris-like, ties, the producer's noise from half-way
        x = IrisLike().rows(rng, 20_000)
        x[10_000:] += rng.normal(3.0, 1.0, size=(10_000, 4))
    elif kind == "stretches":  # fires every window, by scale, weakly, then not at all
        x = rng.normal(size=(20_000, 4))
        x[3000:9000, 1] += 2.0
        x[10_000:12_000, 3] *= 1.6
        x[14_000:15_000, 0] += 0.6
    else:  # categories and missing values, their shares changed
        x = mixed_rows(rng, 20_000)
        x[8000:12_000:2, 0] = np.nan
        x[14_000:18_000:2, 1] = 3.0
    return x


@pytest.mark.parametrize(
    ("kind", "holdoff", "every", "warmup"),
    [
        *[
            (kind, holdoff, EVERY, WARMUP)
            for kind in ("iris", "stretches", "mixed")
            for holdoff in (0, 50)
        ],
        ("stretches", 20, 3, 400),  # first points 21 rows after a restart, a short baseline
    ],
)
def test_the_scan_gives_the_firings_of_the_scan_before_bit_for_bit(
    fitted: Calibration, kind: str, holdoff: int, every: int, warmup: int
) -> None:
    """Every sum judged at once, ranks from one search per value, and runs of firings at
    the first point after a restart judged together (`RankAlarm._chain`) give the firings
    the scan of commit df79b56 gave (``tests/unit/rank_alarm_before.py``), their
    statistics to the last bit: clean stretches with false alarms (a small budget), drift
    that fires again at each first point, weaker drift that does not; polls of uneven
    sizes, the consumer's hold-off (a window step) and none, other evaluation steps."""
    x = drifted_stream(kind, np.random.default_rng(31))
    # Polls of uneven sizes; one of 8,500 rows, longer than two sweeps (`alarms.SWEEP`).
    cuts = [0, 1, 999, 1000, 1700, 3333, 4000, 6000, 8000, 16_500, 18_000, 20_000]

    def run(alarm_type: type[RankAlarm]) -> list[tuple[int, tuple[int, ...], str, int, str, str]]:
        alarm = alarm_type(
            4,
            lambda n, d: fitted.thresholds(d, SMALL_BUDGET),
            warmup_rows=warmup,
            every=every,
            seed=5,
            holdoff=holdoff,
        )
        out = []
        for a, b in itertools.pairwise(cuts):
            out += [
                (f.offset, f.features, f.kind, f.window, f.statistic.hex(), f.threshold.hex())
                for f in alarm.observe(x[a:b], np.arange(a, b))
            ]
        return out

    now, before = run(RankAlarm), run(RankAlarmBefore)
    assert now == before
    gaps = np.diff([f[0] for f in now])
    assert len(now) > 50 and {f[2] for f in now} >= {"location", "scale"}
    if holdoff and kind != "mixed":
        # Firings at the first point after each restart, one after another: the chain ran.
        first_point = (holdoff // every + 1) * every
        assert (gaps == first_point).sum() > 50, np.unique(gaps, return_counts=True)


def test_the_sums_judged_at_once_are_window_z_bit_for_bit() -> None:
    """`_Blocks.z` over every (kind, length) and many ends gives `window_z`'s floats, block
    by block: location, the skewed scale score, the shape scores joined."""
    rng = np.random.default_rng(8)
    tables = score_tables(1000)
    skews = alarms.score_skews(tables)
    # Ranks pushed to both ends (scale and shape drift), more so for later features.
    ranks = rng.beta([[1.0], [0.8], [0.6]], [[1.0], [0.8], [0.6]], size=(3, 1200)) * 1001
    scores = tables[:, ranks.astype(np.int64)]
    sums = np.concatenate([np.zeros((alarms.DEGREES, 3, 1)), np.cumsum(scores, axis=2)], axis=2)
    blocks = alarms._Blocks(1000, skews, np.array([4.0, 4.0, 4.0]))
    ends = np.arange(400, 1201, 3)
    block = np.repeat(np.arange(blocks.lengths.size), ends.size)
    z = blocks.z(sums, np.tile(ends, blocks.lengths.size), block, exact=True)
    for b, (k, w) in enumerate(zip(blocks.kind, blocks.lengths, strict=True)):
        expected = alarms.window_z(sums, ends, int(w), 1000, alarms.SCAN[k][1], skews)
        assert z[:, block == b].tobytes() == expected.tobytes(), (b, k, w)
    # As the scan takes them: the shape sums that cannot pass are not computed (0), the
    # others are the same floats, and the same pass.
    cut = blocks.z(sums, np.tile(ends, blocks.lengths.size), block)
    shape = blocks.kind[block] == 2
    passing = z > 4.0
    assert 0 < passing[:, shape].sum() < passing[:, shape].size / 2
    assert np.array_equal(cut > 4.0, passing)
    assert (cut == 0).any() and cut[cut != 0].tobytes() == z[cut != 0].tobytes()
    # A skewness per column, of either sign or none: normal_scale's floats, column by column.
    values = rng.normal(size=(3, 5)) * 4
    per_column = np.array([0.0, 1e-10, 0.3, -0.3, 2.0])
    scaled = alarms._normal_scale_columns(values, per_column)
    for j, g in enumerate(per_column):
        one = alarms.normal_scale(np.ascontiguousarray(values[:, j]), float(g))
        assert np.ascontiguousarray(scaled[:, j]).tobytes() == one.tobytes(), g


def test_tie_breaking_is_a_function_of_the_offset_and_seed() -> None:
    offsets = np.arange(100, 200)
    a = tie_break(offsets, 3, seed=5)
    assert np.array_equal(tie_break(offsets[::-1], 3, seed=5), a[::-1])
    assert np.array_equal(tie_break(offsets[40:41], 3, seed=5), a[40:41])
    assert not np.array_equal(tie_break(offsets, 3, seed=6), a)
    # Uniform: the mean of 300 values is within 5 SE of 1/2 (failure probability < 1e-6).
    assert abs(a.mean() - 0.5) < 5 * np.sqrt(1 / 12 / a.size)
    # Features of a row are broken independently.
    assert len({tuple(row) for row in a}) == 100 and not np.array_equal(a[:, 0], a[:, 1])


@pytest.mark.parametrize("score", ["degree 1", "degree 2", "scale (2 and 4)"])
def test_null_sd_matches_simulation(score: str) -> None:
    """The variance of a sum of 10 scores of ranks among a 20-row baseline is
    ``10 + 90 / 22`` = 14.09, not 10: the baseline's error is shared. 100,000
    simulated (baseline, window) pairs estimate it with a standard error of about
    0.07; the bound is 6 standard errors (failure probability < 1e-8 for a normal
    estimate) and 57 standard errors from the wrong answer, 10."""
    n, w, trials = 20, 10, 100_000
    table = {
        "degree 1": score_table(n, 1),
        "degree 2": score_table(n, 2),
        "scale (2 and 4)": score_tables(n)[1],
    }[score]
    rng = np.random.default_rng(99)
    baseline = rng.random((trials, n))
    values = rng.random((trials, w))
    ranks = (values[:, :, None] > baseline[:, None, :]).sum(axis=2)
    sums = table[ranks].sum(axis=1)
    var = sums.var()
    se = var * np.sqrt((np.mean((sums - sums.mean()) ** 4) / var**2 - 1) / trials)
    assert null_sd(w, n) ** 2 == pytest.approx(10 + 90 / 22)
    assert abs(var - null_sd(w, n) ** 2) < 6 * se, (var, se)
    assert se < 0.1


@pytest.mark.parametrize(("baseline", "every"), [(1000, 5), (400, 3)])
def test_the_simulation_gives_the_maxima_of_window_z_bit_for_bit(baseline: int, every: int) -> None:
    """`simulate_maxima` judges its sums at once (`_Blocks.z`, exact): the floats of the
    simulation that called `window_z` per (kind, length)."""
    got = calibration.simulate_maxima(baseline, every, 30_000, 2_000, seed=5)
    expected = simulate_maxima_before(baseline, every, 30_000, 2_000, seed=5)
    for now, before in zip(got, expected, strict=True):
        assert now.shape == before.shape == (15, 2_000 // every)
        assert now.tobytes() == before.tobytes()


def test_calibration_cache_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calibration, "SIMULATED_ROWS", 600_000)
    first = CalibrationCache(tmp_path).get(400, 5)
    files = list((tmp_path / "alarms").glob("*.json"))
    assert [f.name for f in files] == [f"rank-v{calibration.CALIBRATION_VERSION}-n400-every5.json"]

    def no_simulation(*args: object, **kwargs: object) -> Calibration:
        raise AssertionError("the cached calibration should have been read")

    monkeypatch.setattr(calibration, "calibrate", no_simulation)
    again = CalibrationCache(tmp_path).get(400, 5)
    assert again == first
    assert again.thresholds(4, 50_000) == first.thresholds(4, 50_000)
    # An unreadable file is ignored (and simulated again), never trusted.
    files[0].write_text(json.dumps({"baseline_rows": 400}))
    with pytest.raises(AssertionError, match="cached calibration"):
        CalibrationCache(tmp_path).get(400, 5)


def test_windows_closed_early_on_time_keep_the_ks_budget() -> None:
    """Windows of 50 rows closed on time at 10 rows (the default minimum), judged by
    the ``ks`` rule at a budget of 1,000 rows: 40 clean streams of 5,000 rows, each
    against its own reference of 150 rows, may raise 200 alarms on average.

    Upper bound: the 1 - 1e-4 quantile of a Poisson count of mean 200 (246). The
    rule's real rate at 10 rows is about 0.35 of the budget (70 here; five seeds
    tried: 58-81), so a correct level fails with probability far below 1e-4; judging
    these windows at a full window's level (50 rows' share of the budget, not 10
    rows') raises about 1.9 times the budget (360-405 on those seeds): it fails.
    Lower bound: a Poisson of a tenth of that mean, so that a level of zero fails
    too. The references' sampling error makes counts overdispersed; 40 references
    keep that small.
    """
    from consumer.detection import make_detector

    rng = np.random.default_rng(20261203)
    budget, streams, per, rows = 1000, 40, 5000, 10
    alarms = 0
    for s in range(streams):
        detector = make_detector(rng.normal(size=(150, 4)))
        alarm = StreamAlarm("ks", 150, 4, 50, budget, lambda n, d: RankThresholds(5, 5))
        windows = list(rng.normal(size=(per // rows, rows, 4)))
        for i, result in enumerate(detector.predict_many(windows)):
            assert not isinstance(result, Exception)
            first = s * per + i * rows
            fired = alarm.judge_window(result.distances, rows, first, first + rows - 1)
            alarms += fired is not None
    allowed = streams * per / budget
    assert alarms <= poisson.ppf(1 - 1e-4, allowed), (alarms, allowed)
    assert alarms >= poisson.ppf(1e-4, allowed / 10), (alarms, allowed)


def test_thresholds_rise_with_the_budget_and_the_features(fitted: Calibration) -> None:
    low, high = fitted.thresholds(4, 10_000), fitted.thresholds(4, 1_000_000)
    assert low.location < high.location and low.other < high.other
    assert fitted.thresholds(30, 10_000).location > low.location


@pytest.mark.parametrize(
    ("make", "parameter"),
    [
        (lambda: RankAlarm(0, lambda n, d: RankThresholds(5, 5)), "n_features"),
        (lambda: RankAlarm(2, lambda n, d: RankThresholds(5, 5), warmup_rows=100), "warmup_rows"),
        (lambda: RankAlarm(2, lambda n, d: RankThresholds(5, 5), every=0), "every"),
        (lambda: KSAlarm(1, 4, 50, 100_000), "n_reference"),
        (lambda: KSAlarm(150, 0, 50, 100_000), "n_features"),
        (lambda: KSAlarm(150, 4, 0, 100_000), "step"),
        (lambda: KSAlarm(150, 4, 50, 10), "false_alarm_rows"),
        (
            lambda: StreamAlarm("cusum", 150, 4, 50, 100_000, lambda n, d: RankThresholds(5, 5)),  # type: ignore[arg-type]
            "alarm",
        ),
    ],
)
def test_bad_arguments_are_rejected_by_name(make: object, parameter: str) -> None:
    with pytest.raises(ValueError, match=parameter):
        make()  # type: ignore[operator]


def test_observe_rejects_rows_of_the_wrong_shape() -> None:
    alarm = RankAlarm(2, lambda n, d: RankThresholds(5, 5))
    with pytest.raises(ValueError, match="values must have shape"):
        alarm.observe(np.zeros((3, 3)), np.arange(3))


def test_stream_alarm_guards_the_warm_up_with_the_ks_rule(fitted: Calibration) -> None:
    """Windows that began before the baseline was complete are judged by the KS
    rule; later ones are left to the rank alarm (a new champion gets new lanes)."""
    lane = StreamAlarm(
        "rank", 150, 2, 50, 100_000, lambda n, d: fitted.thresholds(d, 100_000), warmup_rows=WARMUP
    )
    far = np.array([0.9, 0.1])
    lane.observe(np.zeros((999, 2)), np.arange(999))
    assert lane.judge_window(far, 50, 950, 999) is not None
    lane.observe(np.zeros((1, 2)), np.arange(999, 1000))
    assert lane.judges_window(999) and not lane.judges_window(1000)
    assert lane.judge_window(far, 50, 1000, 1049) is None


def test_the_shipped_calibration_is_what_the_simulation_computes() -> None:
    from dataclasses import asdict

    from consumer.calibration import SHIPPED, CalibrationCache, calibrate

    shipped = CalibrationCache(None).get(1000, 5)
    assert (SHIPPED / "rank-v2-n1000-every5.json").is_file()
    simulated = calibrate(1000, 5)
    for kind in ("location", "other"):
        for key, value in asdict(getattr(simulated, kind)).items():
            assert getattr(getattr(shipped, kind), key) == pytest.approx(value, rel=1e-12)
