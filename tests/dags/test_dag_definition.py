"""The DAG parses clean, has the agreed shape, and its sensor defers to the Kafka trigger."""

from __future__ import annotations

from typing import Any

import pytest

from tests.dags.conftest import AirflowEnv

DAG_ID = "model_drift_detection_and_retraining"


@pytest.fixture
def inspected(airflow_env: AirflowEnv) -> dict[str, Any]:
    return airflow_env.inspect()


def test_dagbag_imports_the_dag_without_errors_or_warnings(inspected: dict[str, Any]) -> None:
    assert inspected["import_errors"] == {}
    assert inspected["warnings"] == {}
    assert inspected["dag_ids"] == [DAG_ID]


def test_dag_runs_one_event_at_a_time_and_retries_its_tasks(inspected: dict[str, Any]) -> None:
    assert inspected["schedule"] == "@continuous"
    assert (inspected["max_active_runs"], inspected["catchup"]) == (1, False)
    assert inspected["tasks"] == sorted(
        [
            "choose_source",
            "wait_for_drift_event",
            "decide",
            "skip",
            "train_challenger",
            "promoted_or_rejected",
            "publish_model_update",
            "record_rejection",
            "mark_handled",
        ]
    )
    assert set(inspected["retries"].values()) == {2}
    assert all(inspected["documented"].values()), inspected["documented"]


def test_sensor_defers_to_the_kafka_trigger_on_the_drift_topic(
    inspected: dict[str, Any], airflow_env: AirflowEnv
) -> None:
    deferred = inspected["deferred"]
    assert deferred is not None, "the sensor did not defer"
    assert deferred["classpath"] == (
        "airflow.providers.apache.kafka.triggers.await_message.AwaitMessageTrigger"
    )
    assert deferred["method_name"] == "execute_complete"
    kwargs = deferred["kwargs"]
    assert kwargs["topics"] == [airflow_env.kafka.drift_topic]
    assert kwargs["apply_function"] == "retraining.sensor.actionable_drift_event"
    # The filter's settings travel with the trigger, read when the DAG was parsed.
    assert kwargs["apply_function_kwargs"] == {
        "artifact_root": str(airflow_env.artifact_root),
        "model_name": "classifier",
    }
    assert kwargs["kafka_config_id"] == "kafka_default"
    assert (kwargs["commit_offset"], kwargs["poll_interval"], kwargs["poll_timeout"]) == (
        True,
        0.2,
        1,
    )


def test_connection_from_the_environment_turns_auto_commit_off_and_reads_committed(
    inspected: dict[str, Any], airflow_env: AirflowEnv
) -> None:
    # The extra is given to confluent-kafka as its configuration, as is.
    assert inspected["consumer_config"] == {
        "bootstrap.servers": airflow_env.kafka.bootstrap_servers,
        "group.id": airflow_env.group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": 6000,
    }
