"""Prometheus metrics of the consumer: what it read, judged, alerted on and dead-lettered."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from consumer.detection import DriftResult


class ConsumerMetrics:
    """The consumer's metrics, in a registry of their own (served by :meth:`serve`).

    Names, for dashboards and alerts:

    ``driftloop_consumer_rows_total``
        Rows read from the rows topic, malformed ones included.
    ``driftloop_consumer_windows_total{drift}``
        Windows judged, by verdict (``drift="yes"`` or ``"no"``).
    ``driftloop_consumer_drift_events_total{state}``
        Drift events published: episode onsets and resolutions.
    ``driftloop_consumer_alarms_total{kind}``
        Windows the alarm fired on, by what fired (location, scale, shape, ks).
    ``driftloop_consumer_episodes_open``
        Drift episodes open now.
    ``driftloop_consumer_dead_letters_total{reason}``
        Messages sent to the dead-letter topic, by reason.
    ``driftloop_consumer_feature_p_value{feature}``
        The last window's KS p-value per feature.
    ``driftloop_consumer_detection_seconds``
        Time the KS test took per window (histogram).
    ``driftloop_consumer_model_version{model}``
        Version of the champion windows are judged for.
    ``driftloop_consumer_lag{topic,partition}``
        Rows in the partition not yet read (high watermark minus position).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.rows = Counter(
            "driftloop_consumer_rows", "Rows read from the rows topic.", registry=self.registry
        )
        self.windows = Counter(
            "driftloop_consumer_windows",
            "Windows judged, by verdict.",
            ["drift"],
            registry=self.registry,
        )
        self.drift_events = Counter(
            "driftloop_consumer_drift_events",
            "Drift events published, by episode state (onset or resolved).",
            ["state"],
            registry=self.registry,
        )
        self.alarms = Counter(
            "driftloop_consumer_alarms",
            "Windows the drift alarm fired on, by what fired.",
            ["kind"],
            registry=self.registry,
        )
        self.episodes_open = Gauge(
            "driftloop_consumer_episodes_open",
            "Drift episodes open now.",
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "driftloop_consumer_dead_letters",
            "Messages sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.p_value = Gauge(
            "driftloop_consumer_feature_p_value",
            "The last window's p-value per feature (KS, or chi-squared for a categorical one).",
            ["feature"],
            registry=self.registry,
        )
        self.missing_share = Gauge(
            "driftloop_consumer_feature_missing_share",
            "The last window's share of rows missing the feature (from the first window "
            "that missed a value on).",
            ["feature"],
            registry=self.registry,
        )
        self.detection_seconds = Histogram(
            "driftloop_consumer_detection_seconds",
            "Time the KS test took per window.",
            buckets=(0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
            registry=self.registry,
        )
        self.model_version = Gauge(
            "driftloop_consumer_model_version",
            "Version of the champion windows are judged for.",
            ["model"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "driftloop_consumer_lag",
            "Rows in the partition not yet read.",
            ["topic", "partition"],
            registry=self.registry,
        )

        # Labelled children looked up once, not per window: each ``labels()`` call
        # costs a lock and a dict lookup, times the features, times the windows.
        # Created at first use, as before, so a series appears only once it has a value.
        self._verdicts: dict[bool, Counter] = {}
        self._alarms_of: dict[str, Counter] = {}
        self._p_value_of: dict[str, Gauge] = {}
        self._missing_share_of: dict[str, Gauge] = {}

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` over HTTP on ``host:port`` from a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)

    def judged(
        self, results: Sequence[DriftResult], feature_names: Sequence[str], seconds: Sequence[float]
    ) -> None:
        """Count a poll's judged windows, in order, and keep the last one's p-values.

        Once it returns, every series holds what counting the windows one by one gives
        (the same series, created in the same order); the gauges are set once per poll,
        not once per window, as only the last window's values remain.

        Parameters
        ----------
        results : sequence of DriftResult
            The windows' verdicts, in the order they were judged.
        feature_names : sequence of str
            The champion's features, the order of each result's arrays.
        seconds : sequence of float
            Each window's detection time, for the histogram.
        """
        if not results:
            return
        counts: dict[bool, int] = {}  # in order of first appearance, as the series are made
        for result in results:
            counts[result.is_drift] = counts.get(result.is_drift, 0) + 1
        for is_drift, count in counts.items():
            verdict = self._verdicts.get(is_drift)
            if verdict is None:
                verdict = self._verdicts[is_drift] = self.windows.labels(
                    drift="yes" if is_drift else "no"
                )
            verdict.inc(count)
        last = results[-1]
        gauges = self._p_value_of
        for name, p in zip(feature_names, last.p_values.tolist(), strict=True):
            gauge = gauges.get(name)
            if gauge is None:
                gauge = gauges[name] = self.p_value.labels(feature=name)
            gauge.set(p)
        if self._missing_share_of or any(r.missing_shares is not None for r in results):
            self._missing_shares(feature_names, last.missing_shares)
        observe = self.detection_seconds.observe
        for spent in seconds:
            observe(spent)

    def alarm(self, kind: str) -> None:
        """Count a window the alarm fired on, by what fired."""
        counter = self._alarms_of.get(kind)
        if counter is None:
            counter = self._alarms_of[kind] = self.alarms.labels(kind=kind)
        counter.inc()

    def _missing_shares(self, feature_names: Sequence[str], shares: Any) -> None:
        # Created at the first window that misses a value, then kept up to date (0 when
        # none is missing), so an all-numeric stream without gaps shows no such series.
        values = [0.0] * len(feature_names) if shares is None else shares.tolist()
        gauges = self._missing_share_of
        for name, share in zip(feature_names, values, strict=True):
            gauge = gauges.get(name)
            if gauge is None:
                gauge = gauges[name] = self.missing_share.labels(feature=name)
            gauge.set(share)

    def model(self, name: str, version: int) -> None:
        """Record the champion in use (only one version of a model is set at a time)."""
        self.model_version.clear()
        self.model_version.labels(model=name).set(version)
