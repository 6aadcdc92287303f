"""`python -m consumer`: judge windows of the rows topic for drift, until stopped."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from types import FrameType

from broker.cli import add_flags, build
from broker.logs import LogSettings, configure_logging
from consumer.settings import ConsumerSettings

logger = logging.getLogger("consumer")


def parse_args(argv: list[str] | None) -> tuple[ConsumerSettings, LogSettings, float | None]:
    """The settings, the log settings and ``--idle-exit`` from ``argv`` and the environment.

    Cheap on purpose (pydantic, no scikit-learn or SciPy): it runs before the
    signal handlers are installed.
    """
    parser = argparse.ArgumentParser(
        prog="python -m consumer",
        epilog="`python -m consumer report --help`: render the drift timeline (PNG and HTML) "
        "from what the consumer archived.",
        description="Window the rows topic per partition and stream, run Alibi Detect's "
        "KSDrift on each "
        "window against the champion model's reference data and log every window; a drift "
        "alarm sized by --false-alarm-rows opens a drift episode, whose onset and resolution "
        "are published as DriftEvents. Every flag can also be set in the "
        "environment variable its help names; a flag beats the environment.",
    )
    add_flags(parser, ConsumerSettings)
    add_flags(parser, LogSettings)
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit after this many seconds without new rows (default: run until stopped)",
    )
    args = parser.parse_args(argv)
    return build(ConsumerSettings, args), build(LogSettings, args), args.idle_exit


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["report"]:
        # Imported only here: the report loads matplotlib, the consumer never needs it.
        from report.__main__ import main as report

        return report(args[1:])
    settings, log_settings, idle_exit = parse_args(args)
    configure_logging(log_settings)
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
    return serve(settings, lambda: stopping, idle_exit)


def serve(
    settings: ConsumerSettings, should_stop: Callable[[], bool], idle_exit: float | None
) -> int:
    """Build the monitor from ``settings``, then judge windows until ``should_stop()``.

    Exit codes: 0 after a clean stop, 1 when no broker answers, 2 for no usable
    champion model, 3 when a newer consumer took over this one's instance id, 4 when
    the committed offsets cannot be followed (another window size, another archive).
    """
    # Imported here, after the signal handlers: these imports are most of start-up.
    from kafka.errors import FencedInstanceIdError, KafkaError, ProducerFencedError

    from broker.clients import quiet_client_logs
    from broker.errors import BrokerUnavailableError
    from consumer.assembly import build_monitor
    from consumer.champion import NoChampionError
    from consumer.checkpoint import CheckpointError
    from models.registry import RegistryError

    quiet_client_logs()
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
    try:
        with monitor:
            stats = monitor.run(should_stop, idle_timeout=idle_exit)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 4
    except KafkaError as err:
        if not _fenced(err, (FencedInstanceIdError, ProducerFencedError)):
            raise
        print(
            f"error: another consumer of group {settings.group_id!r} started as instance "
            f"{settings.member_id!r} and took over; this one stops. Give every consumer "
            "process its own --instance-id (DRIFTLOOP_INSTANCE_ID).",
            file=sys.stderr,
        )
        return 3
    logger.info("stopped: %s", stats.summary())
    return 0


def _fenced(err: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether ``err``, or an error it was raised from, is one of ``kinds``."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())
