"""The whole loop, live: producer → consumer → Airflow standalone → new champion → consumer."""

from __future__ import annotations

from pathlib import Path

from broker.local import LocalBroker, free_port
from broker.settings import KafkaSettings
from data.dataset import load_dataset
from data.shipped import write_penguins_csv
from demo.loop import DEMO_DATA, run_loop
from demo.stack import Stack
from models.registry import Registry
from models.training import train_and_register


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


def test_penguins_with_categories_and_missing_values_go_round_the_whole_loop(
    kafka_broker: LocalBroker, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """The second shipped data set: two categorical features, empty cells (NA) in five
    columns. The drift moves every bird to the rarest island and lengthens its bill."""
    shipped = DEMO_DATA["penguins"]
    data = write_penguins_csv(tmp_path / "penguins.csv")
    root = tmp_path / "var"
    registry = Registry(root)
    first = train_and_register(
        registry, load_dataset(data, label_column=shipped.label_column), seed=7
    )
    assert first.categories.keys() == {"island", "sex"}
    stack = Stack(
        tmp_path / "loop", kafka=kafka_settings, artifact_root=root, airflow_port=free_port()
    )
    try:
        report = run_loop(stack, data, shipped=shipped, windows_after_switch=6, timeout=420)
    finally:
        stack.close()
    assert all(not p.running for p in stack.processes)

    before, after = report.windows(1), report.windows(2)
    # Rows with missing cells were judged, not dead-lettered: the windows report their share.
    assert any(share > 0 for v in before for share in (v.get("missing_shares") or {}).values())
    drifted = [v for v in before if v["is_drift"]]
    named = {name for v in drifted for name in v["drifted_features"]}
    assert {"island", "bill_length_mm"} <= named
    onset = next(v for v in before if v["event_id"] == report.drift_event_id)
    assert onset["is_drift"] and set(onset["categorical_features"]) == {"island", "sex"}

    champion = registry.metadata(report.new_version)
    assert (report.old_version, report.new_version) == (1, 2)
    assert champion.decision == "promoted" and champion.drift_event_id == report.drift_event_id
    assert champion.challenger_metrics["accuracy"] > champion.champion_metrics["accuracy"]
    assert champion.categories.keys() == {"island", "sex"}
    # Judged against the drifted data it was trained on, the new champion sees no drift.
    assert len(after) >= 6 and sum(v["is_drift"] for v in after) <= 1
