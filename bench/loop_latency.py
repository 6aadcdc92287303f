"""`python -m bench.loop_latency`: how fast the loop reacts, under `airflow standalone`.

Runs the whole loop on this machine (local broker, Airflow standalone with the
retraining DAG, the consumer, a producer that turns to the tutorial's noise) and
prints two figures per run, both measured from the drift event that led to the
promotion (its ``detected_at``, when the consumer judged the window; the event is
published once the window is archived, tens of milliseconds later):

- seconds to the DAG's ``train_challenger`` task starting (target: under 15 s);
- seconds to the first window the consumer judged with the new champion
  (target: under 60 s).

Also prints where the first figure goes: the sensor's trigger firing, and each
task's start, from Airflow's task instances.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import uuid
from datetime import datetime
from pathlib import Path

from broker.local import free_port
from broker.settings import KafkaSettings
from data.dataset import load_dataset, write_iris_csv
from demo.loop import LoopReport, run_loop
from demo.stack import AirflowClient, Stack
from models.registry import Registry
from models.training import train_and_register
from retraining.ledger import HandledLedger

TARGETS = {"event_to_retrain_s": 15.0, "event_to_new_model_s": 60.0}


def one_run(workdir: Path, port: int) -> tuple[LoopReport, list[tuple[str, float]]]:
    suffix = uuid.uuid4().hex[:6]
    kafka = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{port}",
        rows_topic=f"rows-{suffix}",
        drift_topic=f"drift-events-{suffix}",
        model_updates_topic=f"model-updates-{suffix}",
        dlq_topic=f"rows-dlq-{suffix}",
    )
    stack = Stack(workdir, kafka=kafka, airflow_port=free_port(), echo=None)
    assert stack.artifact_root is not None
    data = write_iris_csv(workdir / "iris.csv")
    train_and_register(Registry(stack.artifact_root), load_dataset(data))
    try:
        stack.ensure_broker()
        report = run_loop(stack, data, narrate=lambda text: print(f"  {text}", flush=True))
        steps = _breakdown(stack, report)
    finally:
        stack.close()
    return report, steps


def _breakdown(stack: Stack, report: LoopReport) -> list[tuple[str, float]]:
    """Seconds from the event to each task of the promoting run starting."""
    assert stack.artifact_root is not None and report.event_detected_at is not None
    handled = HandledLedger(stack.artifact_root, "classifier").get(report.drift_event_id)
    if handled is None:
        return []
    client = AirflowClient(stack.airflow_port, stack.airflow_home)
    if not client.login():
        return []
    steps = []
    for ti in client.task_instances(handled.run_id):
        if ti.get("start_date"):
            start = datetime.fromisoformat(ti["start_date"].replace("Z", "+00:00"))
            steps.append((ti["task_id"], (start - report.event_detected_at).total_seconds()))
    return sorted(steps, key=lambda step: step[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loop_latency", description=__doc__)
    parser.add_argument("--runs", type=int, default=1, help="loop passes to measure (default 1)")
    args = parser.parse_args(argv)
    port = free_port()
    figures: dict[str, list[float]] = {key: [] for key in TARGETS}
    with tempfile.TemporaryDirectory(prefix="driftloop-latency-") as tmp:
        for run in range(args.runs):
            print(f"run {run + 1}/{args.runs}", flush=True)
            report, steps = one_run(Path(tmp) / f"run{run}", port)
            figures["event_to_retrain_s"].append(report.event_to_retrain_s)
            figures["event_to_new_model_s"].append(report.event_to_new_model_s)
            print(f"  {report.summary()}")
            for task_id, seconds in steps:
                print(f"  {seconds:6.1f} s  {task_id} started")
    print("\nfigure                                   median    max   target")
    for key, values in figures.items():
        label = {
            "event_to_retrain_s": "drift event -> retrain task starts",
            "event_to_new_model_s": "drift event -> consumer on new model",
        }[key]
        print(
            f"{label:40s} {statistics.median(values):6.1f} s {max(values):6.1f} s  "
            f"< {TARGETS[key]:.0f} s {'met' if max(values) < TARGETS[key] else 'MISSED'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
