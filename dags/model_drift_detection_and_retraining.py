"""Retrain on drift: wait for a drift event on Kafka, retrain, promote, announce the model.

One run per drift event; runs never overlap (``@continuous``, ``max_active_runs=1``),
so the next run starts waiting as soon as one ends.

``choose_source`` → ``wait_for_drift_event`` (the Kafka provider's deferrable sensor;
no worker slot is held while it waits) or, when the run's conf carries
``drift_event`` (an event replayed by hand), straight to → ``decide`` → ``skip`` with
the reason logged, or ``train_challenger`` → ``publish_model_update`` when the
challenger was promoted, or ``record_rejection`` → ``mark_handled``.

The logic lives in the :mod:`retraining` package, a module per task:
``wait_for_drift_event`` filters with :mod:`retraining.sensor`, ``decide`` runs
:mod:`retraining.decision`, ``train_challenger`` :mod:`retraining.challenger`,
``publish_model_update`` :mod:`models.promotion` and ``mark_handled``
:mod:`retraining.outcome`; this file only wires them. Settings come from the
environment: the Airflow connection ``kafka_default`` (``AIRFLOW_CONN_KAFKA_DEFAULT``,
auto-commit off, read committed), topic names (``DRIFTLOOP_DRIFT_TOPIC``,
``DRIFTLOOP_MODEL_UPDATES_TOPIC``) and the retraining settings
(``DRIFTLOOP_ARTIFACT_ROOT``, ``DRIFTLOOP_MODEL_NAME``, ``DRIFTLOOP_MIN_LABELED_ROWS``,
...). The sensor's filter gets the artifact root and model name as read when the DAG
is parsed (its ``apply_function_kwargs``); the tasks read the settings when they run.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from airflow.providers.apache.kafka.operators.produce import ProduceToTopicOperator
from airflow.providers.apache.kafka.sensors.kafka import AwaitMessageSensor
from airflow.sdk import TriggerRule, dag, task

from broker.settings import KafkaSettings
from models.registry import RegistrySettings

logger = logging.getLogger(__name__)

KAFKA_CONN_ID = "kafka_default"
TOPICS = KafkaSettings()
REGISTRY = RegistrySettings()


def _load(module: str) -> ModuleType:
    """A :mod:`retraining` module, imported when a task runs, not when the DAG is parsed.

    Parsing stays light, and the import is quiet: skops scans every loaded module
    when it is first imported, which in an Airflow process trips Airflow's
    deprecated-attribute shims and would flood the task log with warnings.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"skops\.")
        return importlib.import_module(module)


@dag(
    dag_id="model_drift_detection_and_retraining",
    schedule="@continuous",
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    max_active_runs=1,
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    doc_md=__doc__,
    tags=["driftloop", "kafka", "retraining"],
)
def model_drift_detection_and_retraining() -> None:
    @task.branch
    def choose_source(dag_run: Any = None) -> str:
        """Take the drift event from the run's conf (a replay by hand) or wait for one on Kafka."""
        if (dag_run.conf or {}).get("drift_event"):
            logger.info("drift event from the run's conf")
            return "decide"
        return "wait_for_drift_event"

    wait_for_drift_event = AwaitMessageSensor(
        task_id="wait_for_drift_event",
        doc_md="Defer until an actionable drift event arrives on the drift topic "
        "(filtered in the triggerer by `retraining.sensor.actionable_drift_event`).",
        kafka_config_id=KAFKA_CONN_ID,
        topics=[TOPICS.drift_topic],
        apply_function="retraining.sensor.actionable_drift_event",
        # Serialized with the trigger, so JSON-able: the filter reads no environment.
        apply_function_kwargs={
            "artifact_root": str(REGISTRY.artifact_root),
            "model_name": REGISTRY.model_name,
        },
        # The trigger sleeps this long after each message it filters out.
        poll_interval=0.2,
        poll_timeout=1,
        commit_offset=True,
    )

    @task.branch(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def decide(ti: Any = None, dag_run: Any = None) -> str:
        """Retrain or skip, re-checked now: stale, duplicate, cooldown, too few labeled rows."""
        raw = (dag_run.conf or {}).get("drift_event") or ti.xcom_pull(
            task_ids="wait_for_drift_event"
        )
        event = _load("retraining.events").parse_event(raw).model_dump(mode="json")
        settings = _load("retraining.settings").RetrainSettings()
        decision = _load("retraining.decision").decide(event, settings, dag_run.run_id)
        ti.xcom_push(key="event", value=event)
        ti.xcom_push(key="decision", value=decision.to_dict())
        return "train_challenger" if decision.action == "retrain" else "skip"

    @task
    def skip(ti: Any = None) -> str:
        """Leave the champion as it is; the reason is logged and returned."""
        reason = ti.xcom_pull(task_ids="decide", key="decision")["reason"]
        logger.info("not retraining: %s", reason)
        return str(reason)

    @task
    def train_challenger(ti: Any = None, dag_run: Any = None) -> dict[str, Any]:
        """Train a challenger on recent archived windows; register it, promote it if it wins."""
        event = ti.xcom_pull(task_ids="decide", key="event")
        settings = _load("retraining.settings").RetrainSettings()
        return _load("retraining.challenger").train_challenger(event, settings, dag_run.run_id)

    @task.branch
    def promoted_or_rejected(result: dict[str, Any]) -> str:
        """Publish a model update for a promotion; record a rejection otherwise."""
        return "publish_model_update" if result["decision"] == "promoted" else "record_rejection"

    publish_model_update = ProduceToTopicOperator(
        task_id="publish_model_update",
        doc_md="Publish the ModelUpdate for the new champion on the model-updates topic.",
        kafka_config_id=KAFKA_CONN_ID,
        topic=TOPICS.model_updates_topic,
        producer_function="models.promotion.update_messages",
        delivery_callback="models.promotion.raise_on_delivery_error",
        producer_function_args=["{{ ti.xcom_pull(task_ids='train_challenger')['model_update'] }}"],
    )

    @task
    def record_rejection(result: dict[str, Any]) -> None:
        """Log the rejected challenger's version and both scores (its registry entry keeps them)."""
        logger.info(
            "challenger v%s rejected: challenger %s, champion v%s %s",
            result["version"],
            result["challenger_metrics"],
            result["champion_version"],
            result["champion_metrics"],
        )

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def mark_handled(ti: Any = None, dag_run: Any = None) -> dict[str, Any] | None:
        """Record the event as handled now that the run's outcome is durable."""
        return _load("retraining.outcome").record_outcome(
            ti.xcom_pull(task_ids="decide", key="event"),
            _load("retraining.settings").RetrainSettings(),
            dag_run.run_id,
            ti.xcom_pull(task_ids="decide", key="decision"),
            ti.xcom_pull(task_ids="train_challenger"),
        )

    source = choose_source()
    decision = decide()
    skipped = skip()
    trained = train_challenger()
    outcome = promoted_or_rejected(trained)
    rejected = record_rejection(trained)
    handled = mark_handled()

    source >> [wait_for_drift_event, decision]
    wait_for_drift_event >> decision
    decision >> [skipped, trained]
    outcome >> [publish_model_update, rejected]
    [skipped, publish_model_update, rejected] >> handled


model_drift_detection_and_retraining()
