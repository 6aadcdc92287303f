"""Airflow for the DAG tests, in a child process: ``python -m tests.dags.airflow_runner``.

Airflow reads its configuration (AIRFLOW_HOME, the DAGs folder) when first imported,
so it runs apart from the test session, in a process started with the session's
Airflow environment. Starting Airflow, its in-process execution API and the
training stack costs about 25 s on a small machine, so one process serves every
test in turn: it reads one JSON request per line on stdin, applies the request's
environment (topics, artifact root, Kafka connection; the DAG file reads its
topics when parsed, and every request parses it afresh), runs the command, writes
the result as JSON to the request's ``result_path`` and prints :data:`DONE_MARKER`.
The test side bounds each request with a timeout and kills the process when a
request overruns (``dag.test()`` never times out a waiting sensor).

Commands:

``inspect``
    Parse the DAGs folder with a DagBag; execute the sensor task and catch its
    deferral; build the consumer configuration the provider gives confluent-kafka.
``test [CONF]``
    ``dag.test(run_conf=CONF)``: one DAG run, triggers run in process; reports the
    run's state, each task's state and the XComs the tests look at.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

DONE_MARKER = "AIRFLOW_RUNNER_DONE "
DAG_ID = "model_drift_detection_and_retraining"
XCOMS = [
    ("wait_for_drift_event", "return_value"),
    ("decide", "event"),
    ("decide", "decision"),
    ("skip", "return_value"),
    ("train_challenger", "return_value"),
    ("mark_handled", "return_value"),
]


def _dag() -> tuple[Any, Any]:
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=settings.DAGS_FOLDER)
    return bag, bag.get_dag(DAG_ID)


def inspect() -> dict[str, Any]:
    """DagBag errors and warnings, the sensor's deferral, the consumer config."""
    from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook
    from airflow.sdk.exceptions import TaskDeferred

    bag, dag = _dag()
    result: dict[str, Any] = {
        "dag_ids": sorted(bag.dag_ids),
        "import_errors": {str(k): v for k, v in bag.import_errors.items()},
        "warnings": {str(k): list(v) for k, v in bag.captured_warnings.items()},
    }
    if dag is None:
        return result
    result.update(
        {
            "tasks": sorted(dag.task_dict),
            "schedule": str(dag.schedule),
            "max_active_runs": dag.max_active_runs,
            "catchup": dag.catchup,
            "retries": {t.task_id: t.retries for t in dag.tasks},
            "documented": {t.task_id: bool(t.doc or t.doc_md) for t in dag.tasks},
            "deferred": None,
        }
    )
    try:
        dag.get_task("wait_for_drift_event").execute(context={})
    except TaskDeferred as deferred:
        classpath, kwargs = deferred.trigger.serialize()
        result["deferred"] = {
            "classpath": classpath,
            "kwargs": kwargs,
            "method_name": deferred.method_name,
        }
        hook = KafkaConsumerHook(kwargs["topics"], kafka_config_id=kwargs["kafka_config_id"])
        result["consumer_config"] = {
            k: v for k, v in hook._build_config().items() if not callable(v)
        }
    return result


def test(conf: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``dag.test()`` run; its state, task states and XComs."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    _, dag = _dag()
    run = dag.test(run_conf=conf)
    instances = run.get_task_instances()
    states = {ti.task_id: str(ti.state) for ti in instances}
    tries = {ti.task_id: ti.try_number for ti in instances}
    xcoms: dict[str, Any] = {}
    with create_session() as session:
        for task_id, key in XCOMS:
            row = session.scalars(
                XComModel.get_many(run_id=run.run_id, dag_ids=DAG_ID, task_ids=task_id, key=key)
            ).first()
            if row is not None:
                xcoms[f"{task_id}.{key}"] = XComModel.deserialize_value(row)
    return {
        "run_id": run.run_id,
        "state": str(run.state),
        "tasks": states,
        "tries": tries,
        "xcoms": xcoms,
    }


COMMANDS: dict[str, Callable[..., dict[str, Any]]] = {"inspect": inspect, "test": test}


def serve() -> None:
    """Answer requests from stdin until it closes."""
    base = dict(os.environ)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        os.environ.clear()
        os.environ.update(base)
        os.environ.update(request["env"])
        try:
            reply = {"ok": True, "result": COMMANDS[request["command"]](*request["args"])}
        except Exception:
            reply = {"ok": False, "error": traceback.format_exc()}
        result_path = Path(request["result_path"])
        tmp = result_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(reply, default=str))
        tmp.replace(result_path)
        print(DONE_MARKER + request["id"], flush=True)


if __name__ == "__main__":
    serve()
