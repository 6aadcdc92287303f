"""`python -m consumer`: judge windows of the rows topic for drift, until stopped."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

logger = logging.getLogger("consumer")


def parse_args(argv: list[str] | None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m consumer",
        epilog="`python -m consumer report --help`: render the drift timeline (PNG and HTML) "
        "from what the consumer archived.",
        description="Window the rows topic per partition, run Alibi Detect's KSDrift on each "
        "window against the champion model's reference data, log every window, alert on "
        "drift and publish a DriftEvent per drifted window. Every flag can also be set as "
        "DRIFTLOOP_<FLAG> in the environment (KAFKA_BOOTSTRAP_SERVERS for the broker); a "
        "flag beats the environment.",
    )
    parser.add_argument("--window-size", type=int, help="rows per window (default 50)")
    parser.add_argument(
        "--window-step", type=int, help="rows between window starts (default: window size)"
    )
    parser.add_argument("--p-val", type=float, help="significance level (default 0.05)")
    parser.add_argument(
        "--correction", choices=["bonferroni", "fdr"], help="multiple-testing correction"
    )
    parser.add_argument(
        "--ks-backend",
        choices=["alibi", "fast"],
        help="alibi: Alibi Detect's KSDrift (default); fast: same p-values, far cheaper",
    )
    parser.add_argument("--group-id", help="consumer group (default driftloop-consumer)")
    parser.add_argument("--artifact-root", type=Path, help="registry and archive root (var)")
    parser.add_argument("--model-name", help="registered model to judge for (default classifier)")
    parser.add_argument("--bootstrap-servers", help="Kafka host:port list")
    parser.add_argument("--rows-topic", help="topic to read (default rows)")
    parser.add_argument("--drift-topic", help="topic for drift events (default drift-events)")
    parser.add_argument("--dlq-topic", help="dead-letter topic (default rows-dlq)")
    parser.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port (default off)"
    )
    parser.add_argument("--metrics-host", help="address for the metrics server (127.0.0.1)")
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        help="exit after this many seconds without new rows (default: run until stopped)",
    )
    args = vars(parser.parse_args(argv))
    return {k: v for k, v in args.items() if v is not None}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["report"]:
        # Imported only here: the report loads matplotlib, the consumer never needs it.
        from consumer.report import main as report

        return report(args[1:])
    flags = parse_args(args)
    idle_exit = flags.pop("idle_exit", None)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        logger.info("signal %d: finishing the current batch, then stopping", signum)
        stopping = True

    # Installed before start-up, which takes seconds (scikit-learn, SciPy, the broker):
    # a SIGTERM then ends the consumer cleanly before its first poll instead of
    # killing it half-started.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return serve(flags, lambda: stopping, idle_exit)


def serve(flags: dict[str, Any], should_stop: Callable[[], bool], idle_exit: float | None) -> int:
    """Build settings and the monitor from ``flags``, then judge windows until ``should_stop()``.

    Exit codes: 0 after a clean stop, 1 when no broker answers, 2 for bad settings
    or no usable champion model.
    """
    # Imported here, after the signal handlers: these imports are most of start-up.
    from pydantic import ValidationError

    from broker.clients import quiet_client_logs
    from broker.errors import BrokerUnavailableError
    from broker.settings import settings_error
    from consumer.assembly import build_monitor
    from consumer.champion import NoChampionError
    from consumer.settings import ConsumerSettings
    from models.registry import RegistryError

    quiet_client_logs()
    try:
        settings = ConsumerSettings(**flags)
    except ValidationError as err:
        print(f"error: {settings_error(err)}", file=sys.stderr)
        return 2
    if should_stop():
        logger.info("stopped before start-up finished")
        return 0
    try:
        monitor = build_monitor(settings)
    except BrokerUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (NoChampionError, RegistryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with monitor:
        stats = monitor.run(should_stop, idle_timeout=idle_exit)
    logger.info("stopped: %s", stats.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
