"""`python -m consumer.labels`: store late labels, join them to archived rows, report accuracy."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

from broker.cli import add_flags, build
from broker.logs import LogSettings, configure_logging
from consumer.labels.settings import LabelSettings

logger = logging.getLogger("consumer.labels")


def parse_args(argv: list[str] | None) -> tuple[LabelSettings, LogSettings, float | None]:
    """The settings, the log settings and ``--idle-exit`` from ``argv`` and the environment."""
    parser = argparse.ArgumentParser(
        prog="python -m consumer.labels",
        description="Read Labels from the labels topic, keep them in the label store under "
        "the artifact root, join them to the rows the consumer archived (by stream and seq), "
        "and log the champion's accuracy on each window once its labels have come. Labels "
        "for rows that cannot come any more, and malformed ones, go to the dead-letter topic. "
        "Every flag can also be set in the environment variable its help names.",
    )
    add_flags(parser, LabelSettings, exclude=frozenset({"rows_partitions"}))
    add_flags(parser, LogSettings)
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit after this many seconds without new labels or windows (default: run on)",
    )
    args = parser.parse_args(argv)
    return build(LabelSettings, args), build(LogSettings, args), args.idle_exit


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 after a clean stop, 1 when no broker answers, 2 without a champion."""
    settings, log_settings, idle_exit = parse_args(argv)
    configure_logging(log_settings)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        logger.info("signal %d: finishing the current poll, then stopping", signum)
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    from broker.clients import quiet_client_logs
    from broker.errors import BrokerUnavailableError
    from consumer.champion import NoChampionError
    from consumer.labels.companion import build_companion
    from models.registry import RegistryError

    quiet_client_logs()
    try:
        companion = build_companion(settings)
    except BrokerUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (NoChampionError, RegistryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    logger.info(
        "joining labels of topic=%s to the archive of topic=%s under %s",
        settings.labels_topic,
        settings.rows_topic,
        settings.artifact_root,
    )
    with companion:
        stats = companion.run(lambda: stopping, idle_timeout=idle_exit)
    logger.info("stopped: %s", stats.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
