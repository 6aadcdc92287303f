"""The whole loop, live: producer → consumer → Airflow standalone → new champion → consumer."""

from __future__ import annotations

from pathlib import Path

from broker.local import LocalBroker, free_port
from broker.settings import KafkaSettings
from demo.loop import run_loop
from demo.stack import Stack
from models.registry import Registry


def test_drift_retrains_promotes_and_rebaselines_the_running_consumer(
    kafka_broker: LocalBroker,
    kafka_settings: KafkaSettings,
    iris_csv: Path,
    artifact_root: Path,
    tmp_path: Path,
) -> None:
    stack = Stack(
        tmp_path / "loop",
        kafka=kafka_settings,
        artifact_root=artifact_root,
        airflow_port=free_port(),
    )
    try:
        report = run_loop(stack, iris_csv, windows_after_switch=8, timeout=420)
    finally:
        stack.close()
    assert all(not p.running for p in stack.processes)

    registry = Registry(artifact_root)
    champion = registry.metadata(report.new_version)
    assert report.old_version == 1 and report.new_version == 2
    assert champion.decision == "promoted"
    assert champion.parent_version == 1
    assert champion.drift_event_id == report.drift_event_id
    assert champion.challenger_metrics["accuracy"] > champion.champion_metrics["accuracy"]
    assert champion.training_windows

    before = report.windows(1)
    drifted_before = [v for v in before if v["is_drift"]]
    assert drifted_before, "the tutorial's noise alerts against the first champion"
    assert report.drift_event_id in {v["event_id"] for v in drifted_before}
    after = report.windows(2)
    assert len(after) >= 8
    # The drifted data is now what the champion was trained on: the alerts stop.
    assert sum(v["is_drift"] for v in after) <= 1
    assert {v["reference_sha256"] for v in after} == {champion.reference_sha256}
    assert report.event_to_retrain_s > 0 and report.event_to_new_model_s > 0
