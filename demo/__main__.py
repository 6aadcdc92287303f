"""`python -m demo`: the whole loop on this machine with one command, narrated.

Starts (or reuses) a Kafka broker, trains the first champion, starts Airflow
standalone with the retraining DAG, the consumer and a producer that turns from
clean rows to the tutorial's noise, and tells what happens until the alerts stop.
Ends with a summary and the drift timeline, and stops everything it started, also
on Ctrl-C; ``--keep-running`` leaves the loop up for exploring.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path
from types import FrameType

from broker.cli import add_flags, build
from broker.logs import LogSettings, configure_logging
from broker.settings import KafkaSettings
from data.dataset import load_dataset
from data.shipped import SHIPPED
from demo.loop import DEMO_DATA, run_loop
from demo.stack import REPO, Stack, StackError, port_open, worth_showing
from models.registry import Registry
from models.training import train_and_register


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Run the whole driftloop loop locally and narrate it: Kafka broker, "
        "champion model, Airflow standalone (UI on 127.0.0.1), consumer, and a producer that "
        "sends clean rows, then the tutorial's noise. Kafka is KAFKA_BOOTSTRAP_SERVERS "
        "(default localhost:9092): a broker answering there is used with topics of the demo's "
        "own, otherwise one is started.",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=REPO / "var" / "demo",
        help="state of the run: registry, archive, Airflow home, logs (default var/demo; "
        "emptied at start)",
    )
    parser.add_argument(
        "--data",
        choices=sorted(DEMO_DATA),
        default="iris",
        help="the shipped data set to replay (default iris; penguins has categorical "
        "features and missing values)",
    )
    parser.add_argument("--airflow-port", type=int, default=8080, help="Airflow UI (8080)")
    parser.add_argument("--rate", type=float, default=100, help="rows per second (default 100)")
    parser.add_argument(
        "--drift-after", type=int, default=300, help="noise from this row on (default 300)"
    )
    parser.add_argument("--window-size", type=int, default=50, help="rows per window (default 50)")
    parser.add_argument(
        "--windows-after-switch",
        type=int,
        default=6,
        help="windows to watch the new champion judge before ending (default 6)",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the broker, Airflow and the consumer running at the end, until Ctrl-C",
    )
    parser.add_argument("--timeout", type=float, default=600, help="give up after (s, 600)")
    # The demo's own log lines; the processes it starts read DRIFTLOOP_LOG_FORMAT.
    add_flags(parser, LogSettings)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Warnings only: the narration is the demo's output, library INFO lines would drown it.
    configure_logging(build(LogSettings, args), level=logging.WARNING)
    signal.signal(signal.SIGTERM, _interrupt)
    kafka = KafkaSettings()
    host, _, port = kafka.servers[0].rpartition(":")
    if port_open(host, int(port)):
        # Someone's broker: keep out of their topics.
        suffix = uuid.uuid4().hex[:6]
        kafka = kafka.model_copy(
            update={
                "rows_topic": f"{kafka.rows_topic}-demo-{suffix}",
                "drift_topic": f"{kafka.drift_topic}-demo-{suffix}",
                "model_updates_topic": f"{kafka.model_updates_topic}-demo-{suffix}",
                "dlq_topic": f"{kafka.dlq_topic}-demo-{suffix}",
                "labels_topic": f"{kafka.labels_topic}-demo-{suffix}",
            }
        )
    if port_open("127.0.0.1", args.airflow_port):
        print(
            f"error: port {args.airflow_port} is taken; stop what uses it or pass --airflow-port",
            file=sys.stderr,
        )
        return 1
    shutil.rmtree(args.workdir, ignore_errors=True)
    stack = Stack(
        args.workdir,
        kafka=kafka,
        airflow_port=args.airflow_port,
        echo=sys.stdout,
        show=worth_showing,
    )
    assert stack.artifact_root is not None
    started = time.monotonic()
    try:
        say(
            f"Kafka at {kafka.bootstrap_servers}, topics {kafka.rows_topic} "
            f"({kafka.rows_partitions} partitions) / {kafka.drift_topic}"
        )
        stack.ensure_broker()
        if stack.broker is not None:
            print(f"started a local broker (log: {stack.broker.log_file})")

        shipped = DEMO_DATA[args.data]
        data = REPO / "data" / f"{shipped.name}.csv"
        if not data.exists():
            SHIPPED[shipped.name](data)
        registry = Registry(stack.artifact_root)
        first = train_and_register(registry, load_dataset(data, label_column=shipped.label_column))
        say(
            f"trained the first model on {data.name}: {first.model_name} v{first.version}, "
            f"held-out accuracy {first.metrics['accuracy']:.2f}; it is the champion"
        )
        report = run_loop(
            stack,
            data,
            shipped=shipped,
            rate=args.rate,
            drift_after=args.drift_after,
            window_size=args.window_size,
            windows_after_switch=args.windows_after_switch,
            timeout=args.timeout,
            narrate=say,
        )
        after = report.windows(report.new_version)
        say(
            "the alerts stopped: the new champion was trained on the drifted data"
            if not any(v["is_drift"] for v in after)
            else f"{sum(v['is_drift'] for v in after)} of {len(after)} windows still alerted"
        )
        from report.render import render
        from report.timeline import load_timeline

        png, html = render(load_timeline(stack.artifact_root), stack.artifact_root / "reports")
        rows = sum(v["window"]["size"] for v in report.verdicts)
        drifted = sum(v["is_drift"] for v in report.verdicts)
        versions = ", ".join(f"v{m.version} ({m.decision})" for m in registry.versions())
        runs = sum(1 for run in report.dag_runs if run.get("state") in ("success", "failed"))
        say(
            f"summary: {rows} rows in {len(report.verdicts)} windows ({drifted} KS-drifted), "
            f"drift episodes: {report.onsets} onset, {report.resolutions} resolved; "
            f"{runs} DAG run(s) finished, "
            f"model versions {versions}, champion v{registry.champion_version()}; "
            f"drift event → retrain task start {report.event_to_retrain_s:.1f} s, → consumer "
            f"on the new model {report.event_to_new_model_s:.1f} s; took "
            f"{time.monotonic() - started:.0f} s"
        )
        print(f"drift timeline: {png}\n                {html}")
        if args.keep_running:
            _explore(stack)
        return 0
    except StackError as err:
        say(f"the demo stopped: {err}")
        print(f"logs of every process: {stack.workdir / 'logs'}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        say("stopping everything the demo started")
        stack.close()


def _explore(stack: Stack) -> None:
    env = " ".join(
        f"{k}={v}"
        for k, v in stack.env().items()
        if k.startswith("DRIFTLOOP_") or k == "KAFKA_BOOTSTRAP_SERVERS"
    )
    say(
        "still running for exploring; Ctrl-C stops it all.\n"
        f"    Airflow UI: http://127.0.0.1:{stack.airflow_port} (login above)\n"
        f"    consumer log: {stack.workdir / 'logs' / 'consumer.log'}\n"
        f"    more rows:  {env} .venv/bin/python -m producer --rate 50 --count 300"
    )
    while True:
        time.sleep(3600)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
