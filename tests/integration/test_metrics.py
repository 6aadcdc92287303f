"""The consumer's Prometheus metrics say what it read, judged, alerted on and dead-lettered."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from broker.local import free_port
from broker.settings import KafkaSettings
from tests.integration.streams import drift_monitor, run_producer


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_consumer_metrics_are_served(
    kafka_settings: KafkaSettings, kafka_env: dict[str, str], iris_csv: Path, artifact_root: Path
) -> None:
    run_producer(kafka_env, iris_csv, "--count", "300", "--drift-after", "150", "--seed", "7")
    with KafkaProducer(bootstrap_servers=kafka_settings.servers) as producer:
        producer.send(kafka_settings.rows_topic, b"not json").get(10)
    port = free_port()
    with drift_monitor(kafka_settings, artifact_root, window_size=50) as monitor:
        monitor.metrics.serve(port)
        monitor.run(lambda: False, idle_timeout=3)
        metrics = scrape(port)

    assert metrics[("driftloop_consumer_rows_total", ())] == 301
    windows_no = metrics[("driftloop_consumer_windows_total", (("drift", "no"),))]
    windows_yes = metrics[("driftloop_consumer_windows_total", (("drift", "yes"),))]
    assert (windows_no, windows_yes) == (3, 3)
    # One episode, announced at its onset; the drifted windows inside it are alarms only.
    assert metrics[("driftloop_consumer_drift_events_total", (("state", "onset"),))] == 1
    assert metrics[("driftloop_consumer_episodes_open", ())] == 1
    assert (
        sum(v for (name, _), v in metrics.items() if name == "driftloop_consumer_alarms_total") >= 1
    )
    assert metrics[("driftloop_consumer_dead_letters_total", (("reason", "not-json"),))] == 1
    assert metrics[("driftloop_consumer_model_version", (("model", "classifier"),))] == 1
    assert metrics[("driftloop_consumer_detection_seconds_count", ())] == 6
    lag = ("driftloop_consumer_lag", (("partition", "0"), ("topic", kafka_settings.rows_topic)))
    assert metrics[lag] == 0
    last_p = metrics[("driftloop_consumer_feature_p_value", (("feature", "petal_length"),))]
    assert last_p < 0.01, "the last window was noised"
