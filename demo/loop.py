"""One pass of the whole loop, observed: drift → DAG run → new champion → consumer switch.

:func:`run_loop` drives a :class:`~demo.stack.Stack` through the loop and returns
what happened with timestamps, for the demo's narration, the end-to-end test and
the loop-latency figures alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from consumer.archive import archived_verdicts
from demo.stack import AirflowClient, Process, Stack, wait_until
from models.registry import Registry
from retraining.ledger import HandledLedger

Narrate = Callable[[str], None]


@dataclass(frozen=True)
class DemoData:
    """A shipped data set as the loop replays it: its label and the drift the producer adds.

    Attributes
    ----------
    name : str
        The name ``python -m data prepare`` knows it by.
    label_column : str
        Its label column.
    drift_args : tuple of str
        The producer's flags for the drift (besides ``--drift-after``).
    drift_text : str
        The drift, in words, for the narration.
    """

    name: str
    label_column: str
    drift_args: tuple[str, ...]
    drift_text: str


DEMO_DATA: dict[str, DemoData] = {
    "iris": DemoData("iris", "target", (), "Gaussian noise (mean 3, std 1) on every feature"),
    "penguins": DemoData(
        "penguins",
        "species",
        ("--drift-features", "island,bill_length_mm", "--noise-mean", "8", "--noise-std", "2"),
        "every bird on the rarest island (Torgersen) and Gaussian noise (mean 8, std 2) on its "
        "bill length",
    ),
}
"""The data sets the demo can run on (``python -m demo --data NAME``)."""


@dataclass
class LoopReport:
    """What one pass of the loop did, and when."""

    drift_event_id: str = ""
    event_detected_at: datetime | None = None
    retrain_started_at: datetime | None = None
    first_new_model_window_at: datetime | None = None
    old_version: int = 0
    new_version: int = 0
    dag_runs: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    onsets: int = 0
    """Drift episodes the consumer opened (``DRIFT ***`` lines)."""
    resolutions: int = 0
    """Drift episodes it resolved (``DRIFT RESOLVED`` lines)."""

    @property
    def event_to_retrain_s(self) -> float:
        assert self.event_detected_at and self.retrain_started_at
        return (self.retrain_started_at - self.event_detected_at).total_seconds()

    @property
    def event_to_new_model_s(self) -> float:
        assert self.event_detected_at and self.first_new_model_window_at
        return (self.first_new_model_window_at - self.event_detected_at).total_seconds()

    def windows(self, version: int) -> list[dict[str, Any]]:
        return [v for v in self.verdicts if v["model_version"] == version]

    def summary(self) -> str:
        before, after = self.windows(self.old_version), self.windows(self.new_version)
        return (
            f"windows judged: {len(self.verdicts)} "
            f"(v{self.old_version}: {len(before)}, {sum(v['is_drift'] for v in before)} drifted; "
            f"v{self.new_version}: {len(after)}, {sum(v['is_drift'] for v in after)} drifted); "
            f"drift episodes: {self.onsets} opened, {self.resolutions} resolved; "
            f"DAG runs: {len(self.dag_runs)}; model versions: v{self.old_version} → "
            f"v{self.new_version}; event → retrain task start {self.event_to_retrain_s:.1f} s, "
            f"event → windows judged by the new model {self.event_to_new_model_s:.1f} s"
        )


def verdicts(artifact_root: Path, topic: str) -> list[dict[str, Any]]:
    """Every window's verdict the consumer archived for ``topic``, in order of judging."""
    found = [json.loads(v.data) for v in archived_verdicts(artifact_root, topic)]
    return sorted(found, key=lambda v: v["detected_at"])


def run_loop(
    stack: Stack,
    data: Path,
    *,
    shipped: DemoData = DEMO_DATA["iris"],
    rate: float = 100.0,
    drift_after: int = 300,
    window_size: int = 50,
    windows_after_switch: int = 6,
    consumer_args: tuple[str, ...] = (),
    timeout: float = 300.0,
    narrate: Narrate = lambda text: None,
) -> LoopReport:
    """Run the loop once on a stack whose registry has a champion; return what happened.

    Starts Airflow and the consumer, replays ``data`` (the CSV of ``shipped``) with
    ``shipped``'s drift from row ``drift_after`` on, and waits, step by step, for the
    drift alert, the DAG run retraining, the promotion, the consumer's switch and
    ``windows_after_switch`` windows judged by the new champion. Raises ``StackError``
    with the step that did not happen in time.
    """
    assert stack.artifact_root is not None
    registry = Registry(stack.artifact_root)
    report = LoopReport(old_version=registry.champion_version() or 0)
    if not report.old_version:
        raise ValueError("the stack's registry has no champion; train one first")
    topic = stack.kafka.rows_topic

    narrate("starting Airflow standalone (the first start migrates its database)")
    airflow = stack.start_airflow()
    creds = airflow.credentials()
    narrate(
        f"Airflow UI: http://127.0.0.1:{stack.airflow_port}  login: {creds[0]} / {creds[1]}"
        if creds
        else "Airflow UI is up"
    )
    narrate("waiting for the DAG's sensor to defer on the drift topic")
    wait_until(
        lambda: _sensor_deferred(airflow), 180, "the DAG's sensor to defer", *stack.processes
    )

    narrate(f"starting the consumer (windows of {window_size} rows)")
    consumer = stack.start(
        "consumer", ["consumer", "--window-size", str(window_size), *consumer_args]
    )
    wait_until(
        lambda: consumer.matching("consuming topic="), 120, "the consumer to start", consumer
    )

    narrate(
        f"producing rows of {data.name} at {rate:g}/s: clean, then {shipped.drift_text} "
        f"from row {drift_after} on"
    )
    producer = stack.start(
        "producer",
        [
            "producer",
            "--data",
            str(data),
            "--label-column",
            shipped.label_column,
            *shipped.drift_args,
            "--rate",
            str(rate),
            "--loop",
            "--drift-after",
            str(drift_after),
            "--seed",
            "7",
            "--quiet",
        ],
    )
    watch = (consumer, producer, *stack.processes)
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(deadline - time.monotonic(), 1.0)

    wait_until(lambda: consumer.matching(r"drift=no"), left(), "windows without drift", *watch)
    narrate("windows without drift are being judged")
    wait_until(lambda: consumer.matching(r"DRIFT \*\*\*"), left(), "the drift alert", *watch)
    narrate(f"drift alert: {consumer.matching(r'DRIFT [*]{3}')[0].split('DRIFT ')[1]}")

    run = wait_until(
        lambda: _run_with_task(airflow, "train_challenger"),
        left(),
        "a DAG run to start retraining",
        *watch,
    )
    narrate(f"DAG run {run['dag_run_id']} took a drift event and is training a challenger")

    wait_until(
        lambda: (registry.champion_version() or 0) > report.old_version,
        left(),
        "a new champion",
        *watch,
    )
    report.new_version = registry.champion_version() or 0
    champion = registry.metadata(report.new_version)
    report.drift_event_id = champion.drift_event_id or ""
    narrate(
        f"new champion v{report.new_version} (challenger {champion.challenger_metrics}, "
        f"champion before {champion.champion_metrics}) for drift event {report.drift_event_id}"
    )
    switch = f"MODEL SWITCH .*v{report.old_version} -> .*v{report.new_version}"
    wait_until(lambda: consumer.matching(switch), left(), "the consumer's switch", *watch)
    narrate("the consumer switched to the new champion and its reference data")
    wait_until(lambda: consumer.matching(r"DRIFT RESOLVED"), left(), "the episode's end", *watch)
    narrate(
        f"drift episode resolved: {consumer.matching('DRIFT RESOLVED')[0].split('RESOLVED ')[1]}"
    )

    def judged_by_new() -> int:
        return len(
            [
                v
                for v in verdicts(stack.artifact_root, topic)
                if v["model_version"] == report.new_version
            ]
        )

    wait_until(
        lambda: judged_by_new() >= windows_after_switch,
        left(),
        f"{windows_after_switch} windows judged by the new champion",
        *watch,
    )
    producer.stop()

    report.verdicts = verdicts(stack.artifact_root, topic)
    after = report.windows(report.new_version)
    narrate(
        f"{len(after)} windows judged by v{report.new_version}: "
        f"{sum(v['is_drift'] for v in after)} drifted"
    )
    taken = [v for v in report.verdicts if v["event_id"] == report.drift_event_id]
    report.event_detected_at = _when(taken[0]["detected_at"]) if taken else None
    report.first_new_model_window_at = _when(after[0]["detected_at"])
    report.dag_runs = airflow.dag_runs()
    report.onsets = len(consumer.matching(r"DRIFT \*\*\*"))
    report.resolutions = len(consumer.matching(r"DRIFT RESOLVED"))
    handled = HandledLedger(stack.artifact_root, registry.model_name).get(report.drift_event_id)
    if handled is not None:
        report.retrain_started_at = _task_start(airflow, handled.run_id, "train_challenger")
    return report


def _sensor_deferred(airflow: AirflowClient) -> bool:
    for run in airflow.dag_runs():
        for ti in airflow.task_instances(run["dag_run_id"]):
            if ti["task_id"] == "wait_for_drift_event" and ti["state"] == "deferred":
                return True
    return False


def _run_with_task(airflow: AirflowClient, task_id: str) -> dict[str, Any] | None:
    for run in airflow.dag_runs():
        for ti in airflow.task_instances(run["dag_run_id"]):
            if ti["task_id"] == task_id and ti["state"] in ("running", "success"):
                return run
    return None


def _task_start(airflow: AirflowClient, run_id: str, task_id: str) -> datetime | None:
    for ti in airflow.task_instances(run_id):
        if ti["task_id"] == task_id and ti.get("start_date"):
            return _when(ti["start_date"])
    return None


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


__all__ = ["DEMO_DATA", "DemoData", "LoopReport", "Process", "run_loop", "verdicts"]
