"""`python -m bench.detection`: false alarms, power and delay of the drift alarms, offline.

Streams run through the code the consumer runs (:class:`consumer.alarms.StreamAlarm`
fed rows in polls, windows judged by :class:`consumer.detection.FastKS`, which gives
KSDrift's p-values), without Kafka:

- clean streams: an Iris-like synthetic stream (each class a Gaussian with Iris's
  class mean and covariance, values rounded to 0.1 as in the data set) with a fresh
  150-row reference per stream; wine and breast cancer (scikit-learn's), with the
  reference and the stream drawn from the same rows ("same rows"), and with the
  reference one half and the stream resampled from the other half ("halves"); and a
  mixed synthetic stream (a numeric feature missing 10% of its values, a skewed
  4-category feature, a 2-category one missing 5%, a tied numeric one) with a fresh
  300-row reference per stream, judged by the tabular path (chi-squared, missing
  shares, the KS guard's robust p-values);
- changes of one feature of the Iris-like stream from row 2,000: mean +0.25, +0.5,
  +1 and +3 SD, variance x1.5 and x2, and a bimodal mixture with the same mean
  and SD.

Alarms: ``rank`` and ``ks`` (:mod:`consumer.alarms`), and ``window-ks``, what the
consumer did before alarms (every window KSDrift calls drifted at p 0.05,
Bonferroni, window 50, is an alarm). Every alarm sees the same clean streams.

For each alarm and budget: false alarms per 1,000 clean rows with a 95% interval
(exact Poisson), the share of changes detected within 1,000 rows, the median delay
in rows (over every trial, a miss counting as infinite), and the alarm's CPU cost
per row and feature.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from consumer.alarms import RankThresholds, StreamAlarm
from consumer.calibration import CalibrationCache
from consumer.detection import make_detector

WINDOW = 50
POLL = 500
SHIFT_AT = 2000
HORIZON = 1000
"""A change counts as detected when the alarm fires within this many rows of it."""


ALARMS = ("rank", "ks", "window-ks")
"""``window-ks`` is what the consumer did before alarms: every window KSDrift calls
drifted (p 0.05, Bonferroni, window 50) is an alarm; it has no budget."""


@dataclass(frozen=True)
class Outcome:
    """Firings of one stream: row positions, and the alarm's CPU seconds."""

    firings: list[int]
    cpu_seconds: float
    rows: int
    features: int


def run_streams(
    alarms: Sequence[str],
    reference: np.ndarray,
    stream: np.ndarray,
    budget: float,
    cache: CalibrationCache,
    seed: int = 0,
    categorical: Sequence[int] = (),
) -> dict[str, Outcome]:
    """Feed ``stream`` to a fresh lane of each alarm in polls of ``POLL`` rows.

    Tumbling windows of 50 rows are tested once by the ``fast`` detector (as the
    consumer does; ``categorical`` features by chi-squared) and the verdict goes to
    every alarm that judges the window. The CPU time counted is each alarm's own
    (ranking and sums, or the KS rule), not the test the consumer runs anyway.
    """
    d = stream.shape[1]
    ks = make_detector(reference, categorical=categorical)

    def thresholds(n: int, features: int) -> RankThresholds:
        return cache.get(n, 5).thresholds(features, budget)

    lanes = {
        name: StreamAlarm(
            name,  # type: ignore[arg-type]
            n_reference=reference.shape[0],
            n_features=d,
            window_step=WINDOW,
            false_alarm_rows=budget,
            thresholds=thresholds,
            seed=seed,
        )
        for name in alarms
        if name != "window-ks"
    }
    firings: dict[str, list[int]] = {name: [] for name in alarms}
    cpu = dict.fromkeys(alarms, 0.0)
    offsets = np.arange(stream.shape[0])
    for start in range(0, stream.shape[0], POLL):
        chunk = stream[start : start + POLL]
        for name, lane in lanes.items():
            began = time.process_time()
            for firing in lane.observe(chunk, offsets[start : start + POLL]):
                firings[name].append(firing.offset)
            cpu[name] += time.process_time() - began
        for w in range(start, start + chunk.shape[0] - WINDOW + 1, WINDOW):
            judging = [name for name, lane in lanes.items() if lane.judges_window(w)]
            if not judging and "window-ks" not in firings:
                continue
            result = ks.predict(stream[w : w + WINDOW])
            if "window-ks" in firings and result.is_drift:
                firings["window-ks"].append(w + WINDOW - 1)
            for name in judging:
                began = time.process_time()
                firing = lanes[name].judge_window(
                    result.distances, WINDOW, w, w + WINDOW - 1, result.guard_p_values
                )
                cpu[name] += time.process_time() - began
                if firing is not None:
                    firings[name].append(firing.offset)
    return {name: Outcome(sorted(firings[name]), cpu[name], stream.shape[0], d) for name in alarms}


def run_stream(
    alarm: str,
    reference: np.ndarray,
    stream: np.ndarray,
    budget: float,
    cache: CalibrationCache,
    seed: int = 0,
) -> Outcome:
    """:func:`run_streams` for one alarm."""
    return run_streams([alarm], reference, stream, budget, cache, seed)[alarm]


# --------------------------------------------------------------------------- streams


def _iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return np.asarray(data.data, dtype=np.float64), np.asarray(data.target)


class IrisLike:
    """Rows like Iris's: a class at random, its Gaussian, rounded to 0.1."""

    def __init__(self) -> None:
        x, y = _iris()
        self.means = [x[y == c].mean(axis=0) for c in range(3)]
        self.covs = [np.cov(x[y == c].T) for c in range(3)]
        self.mean = x.mean(axis=0)
        self.sd = x.std(axis=0)

    def rows(self, rng: np.random.Generator, n: int) -> np.ndarray:
        classes = rng.integers(0, 3, size=n)
        out = np.empty((n, 4))
        for c in range(3):
            at = classes == c
            out[at] = rng.multivariate_normal(self.means[c], self.covs[c], size=int(at.sum()))
        return np.round(out, 1)


def changed(
    iris: IrisLike, rows: np.ndarray, change: str, feature: int, rng: np.random.Generator
) -> np.ndarray:
    """``rows`` with one feature changed as ``change`` says."""
    out = rows.copy()
    mu, sd = iris.mean[feature], iris.sd[feature]
    kind, _, amount = change.partition(" ")
    if kind == "mean":
        out[:, feature] += float(amount) * sd
    elif kind == "variance":
        out[:, feature] = mu + (out[:, feature] - mu) * math.sqrt(float(amount))
    elif kind == "bimodal":
        tau = 0.3
        sign = rng.choice([-1.0, 1.0], size=rows.shape[0])
        out[:, feature] = mu + sd * (
            sign * math.sqrt(1 - tau**2) + tau * rng.normal(size=rows.shape[0])
        )
    else:
        raise ValueError(f"unknown change {change!r}")
    return np.round(out, 1)


CHANGES = (
    "mean 0.25",
    "mean 0.5",
    "mean 1",
    "mean 3",
    "variance 1.5",
    "variance 2",
    "bimodal same-mean-sd",
)


MIXED_CATEGORICAL = (1, 2)
"""The categorical features of :func:`mixed_rows`."""


def mixed_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Rows of categorical codes and missing values (NaN): see the module docstring."""
    x = np.column_stack(
        [
            rng.normal(size=n),
            rng.choice(4, size=n, p=[0.5, 0.3, 0.15, 0.05]).astype(float),
            rng.choice(2, size=n, p=[0.6, 0.4]).astype(float),
            np.round(rng.normal(size=n), 1),
        ]
    )
    x[rng.random(n) < 0.1, 0] = np.nan
    x[rng.random(n) < 0.05, 2] = np.nan
    return x


def clean_streams(
    rows: int, streams: int, seed: int
) -> Iterator[tuple[str, Callable[[], tuple[np.ndarray, np.ndarray]], tuple[int, ...]]]:
    """(name, make, categorical) per clean stream kind; ``make()`` gives (reference,
    stream), ``categorical`` the indices of its categorical features."""
    from sklearn.datasets import load_breast_cancer, load_wine

    rng = np.random.default_rng(seed)
    iris = IrisLike()
    per = rows // streams

    def synthetic() -> tuple[np.ndarray, np.ndarray]:
        return iris.rows(rng, 150), iris.rows(rng, per)

    yield "Iris-like synthetic", synthetic, ()

    def mixed() -> tuple[np.ndarray, np.ndarray]:
        return mixed_rows(rng, 300), mixed_rows(rng, per)

    yield "mixed synthetic (categories, missing values)", mixed, MIXED_CATEGORICAL
    for name, loader in (("wine", load_wine), ("breast cancer", load_breast_cancer)):
        x = np.asarray(loader().data, dtype=np.float64)

        def same(x: np.ndarray = x) -> tuple[np.ndarray, np.ndarray]:
            return x, x[rng.integers(0, x.shape[0], size=per)]

        def halves(x: np.ndarray = x) -> tuple[np.ndarray, np.ndarray]:
            order = rng.permutation(x.shape[0])
            a, b = x[order[: x.shape[0] // 2]], x[order[x.shape[0] // 2 :]]
            return a, b[rng.integers(0, b.shape[0], size=per)]

        yield f"{name}, same rows", same, ()
        yield f"{name}, halves", halves, ()


# --------------------------------------------------------------------------- measuring


def poisson_interval(count: int, exposure: float) -> tuple[float, float]:
    """Exact 95% interval of a Poisson rate (Garwood)."""
    lo = 0.0 if count == 0 else chi2.ppf(0.025, 2 * count) / 2
    hi = chi2.ppf(0.975, 2 * count + 2) / 2
    return lo / exposure, hi / exposure


def false_alarms(
    alarms: Sequence[str],
    budget: float,
    rows: int,
    streams: int,
    cache: CalibrationCache,
    seed: int,
) -> list[str]:
    """One table row per alarm and clean stream kind; every alarm sees the same streams."""
    lines = []
    for name, make, categorical in clean_streams(rows, streams, seed):
        began = time.monotonic()
        count = dict.fromkeys(alarms, 0)
        cpu = dict.fromkeys(alarms, 0.0)
        total, cells = 0, 0
        for s in range(streams):
            reference, stream = make()
            outcomes = run_streams(
                alarms, reference, stream, budget, cache, seed=s, categorical=categorical
            )
            for alarm, out in outcomes.items():
                count[alarm] += len(out.firings)
                cpu[alarm] += out.cpu_seconds
            total += stream.shape[0]
            cells += stream.size
        for alarm in alarms:
            lo, hi = poisson_interval(count[alarm], total / 1000)
            allowed = 1000 / budget
            rate = count[alarm] / total * 1000
            verdict = "yes" if hi <= allowed else ("point only" if rate <= allowed else "NO")
            lines.append(
                f"| {alarm} | {budget:,.0f} | {name} | {total:,} | {count[alarm]} | "
                f"{rate:.4f} [{lo:.4f}, {hi:.4f}] | {allowed:.4f} | {verdict} | "
                f"{cpu[alarm] / cells * 1e6:.2f} |"
            )
            print(lines[-1], flush=True)
        print(f"<!-- {name}: {time.monotonic() - began:.0f} s wall -->", flush=True)
    return lines


def delays(alarm: str, budget: float, trials: int, cache: CalibrationCache, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    iris = IrisLike()
    lines = []
    for change in CHANGES:
        found: list[int] = []
        for t in range(trials):
            feature = t % 4
            reference = iris.rows(rng, 150)
            stream = iris.rows(rng, SHIFT_AT + HORIZON)
            stream[SHIFT_AT:] = changed(iris, stream[SHIFT_AT:], change, feature, rng)
            out = run_stream(alarm, reference, stream, budget, cache, seed=t)
            after = [f - SHIFT_AT for f in out.firings if f >= SHIFT_AT]
            if after and after[0] < HORIZON:
                found.append(after[0] + 1)
        share = len(found) / trials
        # The median over every trial, a miss counting as an infinite delay.
        every_trial = found + [math.inf] * (trials - len(found))
        median = f"{np.median(every_trial):.0f}" if len(found) > trials / 2 else "-"
        lines.append(f"| {alarm} | {budget:,.0f} | {change} | {share:.0%} | {median} |")
        print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.detection", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--alarms", default=",".join(ALARMS), help=f"alarms to measure ({','.join(ALARMS)})"
    )
    parser.add_argument("--budgets", default="100000,1000000", help="false-alarm budgets in rows")
    parser.add_argument(
        "--clean-rows", type=int, default=0, help="clean rows per stream kind (default: 20 budgets)"
    )
    parser.add_argument("--streams", type=int, default=100, help="clean streams per kind")
    parser.add_argument("--trials", type=int, default=200, help="streams per change")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-clean", action="store_true")
    parser.add_argument("--skip-changes", action="store_true")
    args = parser.parse_args(argv)
    alarms = args.alarms.split(",")
    unknown = set(alarms) - set(ALARMS)
    if unknown:
        parser.error(f"unknown alarms: {', '.join(sorted(unknown))}")
    cache = CalibrationCache(None)
    began = time.monotonic()
    # Calibrate up front (once per baseline size, cached by the consumer), so
    # that the simulation does not count as the alarm's cost per row.
    cache.get(1000, 5)
    print(f"<!-- calibration: {time.monotonic() - began:.0f} s -->", flush=True)
    for budget in (float(b) for b in args.budgets.split(",")):
        if not args.skip_changes:
            print("| alarm | budget | change | detected within 1,000 rows | median delay (rows) |")
            print("|---|---|---|---|---|")
            for alarm in alarms:
                delays(alarm, budget, args.trials, cache, args.seed)
        if not args.skip_clean:
            rows = args.clean_rows or int(20 * budget)
            print(
                "| alarm | budget | clean stream | rows | false alarms | per 1,000 rows [95%] "
                "| budget per 1,000 | within (95% upper end) | CPU µs per row and feature |"
            )
            print("|---|---|---|---|---|---|---|---|---|")
            false_alarms(alarms, budget, rows, args.streams, cache, args.seed)
    print(f"<!-- wall time: {time.monotonic() - began:.0f} s -->", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
