"""The retraining DAG end to end with ``dag.test()`` against the real broker.

Drift events reach the DAG through the Kafka provider's sensor (or, for a replay
by hand, the run's conf); challengers are trained on the archived windows and
compared with the champion; a promotion is announced on the model-updates topic.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from broker.clients import reliable_producer
from broker.settings import KafkaSettings
from consumer.archive import encode_record, read_window, resolve_window
from consumer.events import DriftEvent
from data.dataset import Dataset, load_dataset
from models.promotion import ModelUpdate
from models.registry import Registry
from models.training import train_and_register
from retraining.ledger import HandledLedger
from tests.dags.conftest import AirflowEnv
from tests.dags.scenario import drift_event, write_archive
from tests.integration.streams import consume_windows, read_topic, run_producer

PROMOTED_PATH = {
    "choose_source": "success",
    "wait_for_drift_event": "success",
    "decide": "success",
    "skip": "skipped",
    "train_challenger": "success",
    "promoted_or_rejected": "success",
    "publish_model_update": "success",
    "record_rejection": "skipped",
    "mark_handled": "success",
}
SKIP_PATH_FROM_CONF = {
    "choose_source": "success",
    "wait_for_drift_event": "skipped",
    "decide": "success",
    "skip": "success",
    "train_challenger": "skipped",
    "promoted_or_rejected": "skipped",
    "publish_model_update": "skipped",
    "record_rejection": "skipped",
    "mark_handled": "success",
}


@pytest.fixture
def iris(iris_csv: Path) -> Dataset:
    return load_dataset(iris_csv)


def publish(kafka: KafkaSettings, events: list[DriftEvent]) -> None:
    """Publish drift events (key: stream name) as the consumer does."""
    producer = reliable_producer(kafka, client_id="test-drift-events")
    try:
        for event in events:
            producer.send(kafka.drift_topic, key=event.stream.encode(), value=event.to_bytes())
        producer.flush(timeout=15)
    finally:
        producer.close()


def model_updates(kafka: KafkaSettings) -> list[ModelUpdate]:
    return [ModelUpdate.from_bytes(r.value) for r in read_topic(kafka, kafka.model_updates_topic)]


def committed_offset(kafka: KafkaSettings, group_id: str) -> int | None:
    """The offset the DAG's consumer group committed on the drift topic."""
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.servers, group_id=group_id, enable_auto_commit=False
    )
    try:
        return consumer.committed(TopicPartition(kafka.drift_topic, 0))
    finally:
        consumer.close(autocommit=False)


def versions(root: Path) -> list[tuple[int, str]]:
    return [(m.version, m.decision) for m in Registry(root).versions()]


def test_drift_event_retrains_promotes_and_announces_the_new_champion(
    airflow_env: AirflowEnv, iris_csv: Path
) -> None:
    # The streaming half, for real: noise from row 300 on; the consumer archives every
    # window and publishes a drift event for each drifted one.
    run_producer(airflow_env.env, iris_csv, "--count", "600", "--drift-after", "300", "--seed", "7")
    consume_windows(airflow_env.kafka, airflow_env.artifact_root, window_size=50)
    first_event_id = f"{airflow_env.kafka.rows_topic}-0-300-349"

    run = airflow_env.dag_test()

    assert run.state == "success"
    assert run.tasks == PROMOTED_PATH
    taken = run.xcoms["wait_for_drift_event.return_value"]
    assert taken["event_id"] == first_event_id
    assert committed_offset(airflow_env.kafka, airflow_env.group_id) == 1
    result = run.xcoms["train_challenger.return_value"]
    assert (result["version"], result["decision"], result["champion_version"]) == (
        2,
        "promoted",
        1,
    )
    assert result["challenger_metrics"]["accuracy"] > result["champion_metrics"]["accuracy"]

    registry = Registry(airflow_env.artifact_root)
    assert registry.champion_version() == 2
    v2 = registry.metadata(2)
    assert (v2.decision, v2.drift_event_id, v2.parent_version) == ("promoted", first_event_id, 1)
    assert v2.cause == f"drift event {first_event_id}"
    # The lineage names archived windows that read back, from the drifted one on.
    assert v2.training_windows
    assert resolve_window(v2.training_windows[0]).first_offset == 300
    assert all(resolve_window(name).in_segment for name in v2.training_windows)

    (update,) = model_updates(airflow_env.kafka)
    assert (update.model_name, update.version, update.previous_version) == ("classifier", 2, 1)
    assert update.drift_event_id == first_event_id
    assert update.challenger_metrics == result["challenger_metrics"]
    assert update.reference_sha256 == v2.reference_sha256

    record = HandledLedger(airflow_env.artifact_root, "classifier").get(first_event_id)
    assert record is not None
    assert (record.run_id, record.outcome) == (run.result["run_id"], "promoted")
    assert record.detail["version"] == 2


def test_an_event_delivered_twice_leads_to_one_retrain(
    airflow_env: AirflowEnv, iris: Dataset
) -> None:
    root, kafka = airflow_env.artifact_root, airflow_env.kafka
    events = [e for e in write_archive(root, kafka.rows_topic, iris) if e.is_drift]
    # The first drifted window's event, published again later (a consumer replaying it).
    publish(kafka, [*events, events[0]])

    first = airflow_env.dag_test()

    assert first.tasks == PROMOTED_PATH
    assert first.xcoms["wait_for_drift_event.return_value"]["event_id"] == events[0].event_id
    # A later drift, judged against the new champion, ends the next run's wait.
    later = drift_event(kafka.rows_topic, 600, 649, model_version=2)
    publish(kafka, [later])

    second = airflow_env.dag_test()

    # The second run passed over the stale events and the duplicate, and took the later
    # one, which comes within the cooldown of the promotion.
    assert second.xcoms["wait_for_drift_event.return_value"]["event_id"] == later.event_id
    reason = second.xcoms["skip.return_value"]
    assert reason.startswith("cooldown: v2 was promoted by a retrain")
    assert f"not retraining: {reason}" in second.output
    assert versions(root) == [(1, "initial"), (2, "promoted")]
    assert [u.version for u in model_updates(kafka)] == [2]
    assert committed_offset(kafka, airflow_env.group_id) == len(events) + 2


def test_a_run_that_fails_after_taking_the_event_is_retried_and_loses_nothing(
    airflow_env: AirflowEnv, iris: Dataset
) -> None:
    root, kafka = airflow_env.artifact_root, airflow_env.kafka
    events = [e for e in write_archive(root, kafka.rows_topic, iris) if e.is_drift]
    # A feature column the decision does not read but training does, renamed in the
    # last window (the segment's last record): train_challenger fails after the
    # sensor has taken (and committed) the event.
    archived = resolve_window(events[-1].archive_path)
    segment = archived.path
    intact = segment.read_bytes()
    record = read_window(archived)
    assert archived.position is not None and archived.position + archived.length == len(intact)
    damaged = encode_record(
        archived.first_offset,
        archived.last_offset,
        [*record.feature_names[:-1], "renamed"],
        record.offsets.tolist(),
        [datetime.fromisoformat(t) for t in record.event_times],
        record.values,
        [label or None for label in record.labels],
        record.label_column,
        record.verdict or b"",
    )
    segment.write_bytes(intact[: archived.position] + damaged)
    publish(kafka, events[:1])
    server = airflow_env.server

    def repair_after_the_failure(since: int) -> None:
        if server.wait_for_output(f"lacks column(s) {record.feature_names[-1]}", since, 120):
            segment.write_bytes(intact)

    repair = threading.Thread(target=repair_after_the_failure, args=(server.mark(),))
    repair.start()
    run = airflow_env.dag_test()
    repair.join(timeout=5)

    assert run.state == "success"
    assert run.tasks == PROMOTED_PATH
    assert run.tries["train_challenger"] == 2
    assert committed_offset(kafka, airflow_env.group_id) == 1
    assert versions(root) == [(1, "initial"), (2, "promoted")]
    assert [u.drift_event_id for u in model_updates(kafka)] == [events[0].event_id]


def stale(env: AirflowEnv, iris: Dataset) -> DriftEvent:
    """v2 became champion (trained by hand, no cooldown); the event was judged for v1."""
    train_and_register(Registry(env.artifact_root), iris, seed=8)
    Registry(env.artifact_root).promote(2)
    write_archive(env.artifact_root, env.kafka.rows_topic, iris)
    return drift_event(env.kafka.rows_topic, 300, 349, model_version=1)


def duplicate(env: AirflowEnv, iris: Dataset) -> DriftEvent:
    """An earlier run handled the event."""
    write_archive(env.artifact_root, env.kafka.rows_topic, iris)
    event = drift_event(env.kafka.rows_topic, 300, 349)
    ledger = HandledLedger(env.artifact_root, "classifier")
    ledger.complete(event.event_id, "manual__earlier", "rejected", {"version": 2})
    return event


def unlabeled(env: AirflowEnv, iris: Dataset) -> DriftEvent:
    """Only every fourth row was labeled: 75 labeled rows from the drift on, fewer than 150."""
    write_archive(env.artifact_root, env.kafka.rows_topic, iris, labeled_every=4)
    return drift_event(env.kafka.rows_topic, 300, 349)


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (stale, "stale: the window was judged for v1 but the champion is v2"),
        (
            duplicate,
            "duplicate: event {event_id} was already handled by run manual__earlier "
            "(outcome rejected)",
        ),
        (unlabeled, "too few labeled rows: 75 in 6 archived window(s), min_labeled_rows=150"),
    ],
    ids=["stale", "duplicate", "too-few-labeled-rows"],
)
def test_event_replayed_by_hand_is_skipped_with_the_reason(
    airflow_env: AirflowEnv,
    iris: Dataset,
    setup: Callable[[AirflowEnv, Dataset], DriftEvent],
    reason: str,
) -> None:
    event = setup(airflow_env, iris)
    before = versions(airflow_env.artifact_root)
    reason = reason.format(event_id=event.event_id)

    run = airflow_env.dag_test({"drift_event": event.model_dump(mode="json")})

    assert run.state == "success"
    assert run.tasks == SKIP_PATH_FROM_CONF
    assert run.xcoms["decide.decision"] == {"action": "skip", "reason": reason}
    assert run.xcoms["skip.return_value"] == reason
    assert f"not retraining: {reason}" in run.output
    assert versions(airflow_env.artifact_root) == before
    assert model_updates(airflow_env.kafka) == []
    record = HandledLedger(airflow_env.artifact_root, "classifier").get(event.event_id)
    assert record is not None
    if setup is duplicate:
        assert (record.run_id, record.outcome) == ("manual__earlier", "rejected")
    else:
        assert (record.run_id, record.outcome) == (run.result["run_id"], "skipped")
        assert record.detail["reason"] == reason


def test_challenger_the_gate_refuses_is_recorded_as_rejected(
    airflow_env: AirflowEnv, iris: Dataset
) -> None:
    env = airflow_env.with_settings(DRIFTLOOP_MIN_HOLDOUT_ROWS="100000")
    write_archive(env.artifact_root, env.kafka.rows_topic, iris)
    event = drift_event(env.kafka.rows_topic, 300, 349)

    run = env.dag_test({"drift_event": event.model_dump(mode="json")})

    assert run.state == "success"
    assert run.tasks == {
        **SKIP_PATH_FROM_CONF,
        "skip": "skipped",
        "train_challenger": "success",
        "promoted_or_rejected": "success",
        "record_rejection": "success",
    }
    result = run.xcoms["train_challenger.return_value"]
    assert (result["version"], result["decision"], result["model_update"]) == (
        2,
        "rejected",
        None,
    )
    registry = Registry(env.artifact_root)
    assert registry.champion_version() == 1
    v2 = registry.metadata(2)
    assert v2.challenger_metrics == result["challenger_metrics"]
    assert v2.champion_metrics == result["champion_metrics"]
    assert model_updates(env.kafka) == []
    record = HandledLedger(env.artifact_root, "classifier").get(event.event_id)
    assert record is not None and record.outcome == "rejected"
