"""Prometheus metrics of the producer."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, start_http_server


class ProducerMetrics:
    """``driftloop_producer_rows_sent_total{noised}``: rows the broker acknowledged,
    by whether noise was added (``noised="yes"``/``"no"``);
    ``driftloop_producer_labels_sent_total``: late labels the broker acknowledged;
    ``driftloop_producer_send_failures_total``: rows and labels the broker did not take."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.rows_sent = Counter(
            "driftloop_producer_rows_sent",
            "Rows acknowledged by the broker, by whether noise was added.",
            ["noised"],
            registry=self.registry,
        )
        self.labels_sent = Counter(
            "driftloop_producer_labels_sent",
            "Late labels (--label-delay) acknowledged by the broker.",
            registry=self.registry,
        )
        self.send_failures = Counter(
            "driftloop_producer_send_failures",
            "Rows and labels the broker did not acknowledge.",
            registry=self.registry,
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` over HTTP on ``host:port`` from a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
