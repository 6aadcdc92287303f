"""Prometheus metrics of the label companion: labels taken, joined, late accuracy."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class LabelMetrics:
    """The companion's metrics, in a registry of their own (served by :meth:`serve`).

    ``driftloop_labels_received_total{outcome}``
        Labels read, by outcome: ``new``, ``duplicate`` (kept once), ``correction``.
    ``driftloop_labels_dead_letters_total{reason}``
        Labels sent to the dead-letter topic, by reason (``unknown-row``, ``not-json``, ...).
    ``driftloop_labels_waiting``
        Stored labels whose row is not archived yet.
    ``driftloop_labels_late_windows_total``
        Windows whose late accuracy was reported.
    ``driftloop_labels_late_accuracy{stream}``
        The champion's accuracy on the last window reported, from its late labels.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.received = Counter(
            "driftloop_labels_received",
            "Labels read from the labels topic, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "driftloop_labels_dead_letters",
            "Labels sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.waiting = Gauge(
            "driftloop_labels_waiting",
            "Stored labels whose row is not archived yet.",
            registry=self.registry,
        )
        self.late_windows = Counter(
            "driftloop_labels_late_windows",
            "Windows whose late accuracy was reported.",
            registry=self.registry,
        )
        self.late_accuracy = Gauge(
            "driftloop_labels_late_accuracy",
            "The champion's accuracy on the last window reported from its late labels.",
            ["stream"],
            registry=self.registry,
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` over HTTP on ``host:port`` from a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
