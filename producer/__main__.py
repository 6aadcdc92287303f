"""`python -m producer`: replay a CSV's rows to the rows topic."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import ValidationError

from broker.clients import quiet_client_logs, reliable_producer
from broker.errors import BrokerUnavailableError
from broker.settings import settings_error
from data.dataset import DatasetError, load_dataset
from producer.messages import RowMessage
from producer.metrics import ProducerMetrics
from producer.replay import DriftPlan, Pacer, replay
from producer.settings import ProducerSettings

logger = logging.getLogger("producer")


def parse_args(argv: list[str] | None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m producer",
        description="Replay a CSV's rows to Kafka as RowMessages, optionally adding "
        "Gaussian noise from a given row on to simulate drift. Every flag can also be "
        "set as DRIFTLOOP_<FLAG> in the environment (KAFKA_BOOTSTRAP_SERVERS for the "
        "broker); a flag beats the environment.",
    )
    parser.add_argument("--data", type=Path, help="CSV to replay (default data/iris.csv)")
    parser.add_argument("--label-column", help="the CSV's label column (default target)")
    parser.add_argument("--stream", help="stream name and message key (default: the CSV's name)")
    parser.add_argument("--rate", type=float, help="rows per second, 0 = unthrottled (default 50)")
    parser.add_argument("--count", type=int, help="rows to send (default: one pass over the CSV)")
    parser.add_argument(
        "--loop", action="store_true", default=None, help="replay until stopped (Ctrl-C)"
    )
    parser.add_argument("--drift-after", type=int, help="add noise from this row (from 0) on")
    parser.add_argument("--noise-mean", type=float, help="mean of the noise (default 3)")
    parser.add_argument("--noise-std", type=float, help="std of the noise (default 1)")
    parser.add_argument("--drift-features", help="comma-separated features to noise (default all)")
    parser.add_argument("--seed", type=int, help="seed for row order and noise")
    parser.add_argument(
        "--no-shuffle",
        dest="shuffle",
        action="store_false",
        default=None,
        help="send rows in file order instead of shuffling each pass",
    )
    parser.add_argument("--bootstrap-servers", help="Kafka host:port list")
    parser.add_argument("--rows-topic", help="topic to write to (default rows)")
    parser.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port (default off)"
    )
    parser.add_argument("--metrics-host", help="address for the metrics server (127.0.0.1)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = vars(parser.parse_args(argv))
    return {k: v for k, v in args.items() if v is not None}


class Progress:
    """A progress line on a terminal, a log line every 10 % otherwise."""

    def __init__(self, total: int | None, quiet: bool) -> None:
        self.total = total
        self.tty = sys.stderr.isatty() and not quiet
        self.quiet = quiet
        self.started = time.monotonic()
        self._next_log = 0

    def update(self, sent: int, noised: bool) -> None:
        if self.quiet:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        state = "noised" if noised else "clean"
        if self.tty:
            if sent % 10 == 0 or sent == self.total:
                sys.stderr.write(f"\rsent {sent}{of} rows ({sent / elapsed:.0f}/s, {state})  ")
                sys.stderr.flush()
        elif sent >= self._next_log:
            logger.info("sent=%d%s rate=%.0f/s rows=%s", sent, of, sent / elapsed, state)
            step = max((self.total or 1000) // 10, 1)
            self._next_log = sent + step

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    flags = parse_args(argv)
    quiet = flags.pop("quiet", False)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    quiet_client_logs()
    try:
        settings = ProducerSettings(**flags)
        dataset = load_dataset(settings.data, label_column=settings.label_column)
        plan = DriftPlan(
            after=settings.drift_after,
            mean=settings.noise_mean,
            std=settings.noise_std,
            features=settings.drift_features,
        )
        count = None if settings.loop else (settings.count or len(dataset.features))
        rows = replay(
            dataset.features.to_numpy(),
            dataset.labels.tolist(),
            dataset.feature_names,
            count=count,
            drift=plan,
            seed=settings.seed,
            shuffle=settings.shuffle,
        )
        # Validate the whole plan (e.g. unknown --drift-features) before connecting.
        first = next(rows, None)
    except (ValidationError, DatasetError, ValueError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    try:
        producer = reliable_producer(settings, client_id="driftloop-producer")
    except BrokerUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    signal.signal(signal.SIGTERM, _raise_interrupt)
    metrics = ProducerMetrics()
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port, settings.metrics_host)
    failures: list[Exception] = []
    key = settings.stream_name.encode()
    pacer = Pacer(settings.rate)
    progress = Progress(count, quiet)
    sent = 0
    logger.info(
        "replaying %s to topic=%s stream=%s rows=%s rate=%s/s drift_after=%s",
        settings.data,
        settings.rows_topic,
        settings.stream_name,
        "endless" if count is None else count,
        settings.rate or "max",
        settings.drift_after,
    )
    interrupted = False
    try:
        row = first
        while row is not None:
            pacer.wait()
            message = RowMessage(
                stream=settings.stream_name,
                seq=row.seq,
                event_time=datetime.now(UTC),
                features=row.features,
                label=row.label,
            )
            noised = plan.after is not None and row.seq >= plan.after
            future = producer.send(settings.rows_topic, key=key, value=message.to_bytes())
            future.add_callback(_count, metrics.rows_sent.labels(noised="yes" if noised else "no"))
            future.add_errback(_failed, failures, metrics)
            sent += 1
            progress.update(sent, noised)
            if failures:
                break
            row = next(rows, None)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
        # Flush even on Ctrl-C: rows handed to the client are delivered, not dropped.
        producer.flush(timeout=30)
        producer.close(timeout=10)
    if failures:
        print(f"error: delivery failed: {failures[0]}", file=sys.stderr)
        return 1
    logger.info(
        "sent %d rows to %s%s", sent, settings.rows_topic, " (interrupted)" if interrupted else ""
    )
    return 130 if interrupted else 0


def _count(counter: Any, metadata: Any) -> None:
    counter.inc()


def _failed(failures: list[Exception], metrics: ProducerMetrics, err: Exception) -> None:
    metrics.send_failures.inc()
    failures.append(err)


def _one_line(err: Exception) -> str:
    if isinstance(err, ValidationError):
        return settings_error(err)
    return str(err).splitlines()[0]


if __name__ == "__main__":
    sys.exit(main())
