"""The consumer's metrics, counted a poll at a time: what counting window by window gives."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import generate_latest

from consumer.detection import DriftResult
from consumer.metrics import ConsumerMetrics

FEATURES = ["a", "b", "c"]


def _results(seed: int, count: int) -> list[DriftResult]:
    rng = np.random.default_rng(seed)
    results = []
    for i in range(count):
        p_values = rng.random(3).astype(np.float32)
        drifted = tuple(int(f) for f in np.flatnonzero(p_values < 0.1))
        results.append(
            DriftResult(
                is_drift=bool(drifted),
                p_values=p_values,
                distances=rng.random(3).astype(np.float32),
                threshold=0.1,
                drifted=drifted,
                # Gaps from window 30 on, then none again: the series stay, at 0.
                missing_shares=rng.random(3) if 30 <= i < 35 else None,
            )
        )
    return results


def _exposed(metrics: ConsumerMetrics) -> list[str]:
    """The exposition's lines, in order, but for the clock's (``_created``)."""
    text = generate_latest(metrics.registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


class OneByOne:
    """Counts each window as the consumer did before it counted a poll at once (f27e37d),
    with the plain prometheus_client calls."""

    def __init__(self, metrics: ConsumerMetrics) -> None:
        self.metrics = metrics
        self.missed = False

    def window(self, result: DriftResult, seconds: float) -> None:
        m = self.metrics
        m.windows.labels(drift="yes" if result.is_drift else "no").inc()
        for name, p in zip(FEATURES, result.p_values.tolist(), strict=True):
            m.p_value.labels(feature=name).set(p)
        self.missed |= result.missing_shares is not None
        if self.missed:
            shares = result.missing_shares
            values = [0.0] * len(FEATURES) if shares is None else shares.tolist()
            for name, share in zip(FEATURES, values, strict=True):
                m.missing_share.labels(feature=name).set(share)
        m.detection_seconds.observe(seconds)


@pytest.mark.parametrize("seed", [2, 3])  # the first poll's first window is clean, drifted
def test_a_poll_counted_at_once_exposes_what_its_windows_counted_one_by_one(seed: int) -> None:
    results = _results(seed, count=60)
    seconds = [0.001 * (i % 7) for i in range(len(results))]
    by_window, by_poll = OneByOne(ConsumerMetrics()), ConsumerMetrics()
    start = 0
    for size in [10, 1, 4, 0, 3, 12, 7, 8, 15]:  # polls of 0 to 15 windows
        poll, spent = results[start : start + size], seconds[start : start + size]
        for result, took in zip(poll, spent, strict=True):
            by_window.window(result, took)
        by_poll.judged(poll, FEATURES, spent)
        assert _exposed(by_poll) == _exposed(by_window.metrics)
        start += size
    assert start == len(results)
    exposed = "\n".join(_exposed(by_poll))
    assert 'driftloop_consumer_windows_total{drift="yes"}' in exposed
    assert 'driftloop_consumer_feature_missing_share{feature="a"} 0.0' in exposed


def test_alarms_are_counted_by_kind() -> None:
    metrics = ConsumerMetrics()
    for kind in ["scale", "location", "scale"]:
        metrics.alarm(kind)
    get = metrics.registry.get_sample_value
    assert get("driftloop_consumer_alarms_total", {"kind": "scale"}) == 2
    assert get("driftloop_consumer_alarms_total", {"kind": "location"}) == 1
