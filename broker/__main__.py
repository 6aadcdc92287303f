"""`python -m broker fetch|start|stop|status`: the local Kafka broker for the demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from broker.cli import add_flags, build
from broker.clients import quiet_client_logs
from broker.errors import BrokerUnavailableError, LocalBrokerError
from broker.local import DEFAULT_HOME, DEFAULT_LIB_DIR, LocalBroker, fetch_jars
from broker.logs import LogSettings, configure_logging
from broker.settings import KafkaSettings
from broker.topics import ensure_loop_topics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m broker",
        description="Run a single-node Apache Kafka 4 broker (KRaft) on 127.0.0.1 "
        "from jars Maven fetches from Maven Central on first use.",
    )
    parser.add_argument("command", choices=["fetch", "start", "stop", "status"])
    parser.add_argument("--port", type=int, default=9092, help="client port (default 9092)")
    parser.add_argument(
        "--home", type=Path, default=DEFAULT_HOME, help=f"broker directory (default {DEFAULT_HOME})"
    )
    parser.add_argument(
        "--lib-dir",
        type=Path,
        default=DEFAULT_LIB_DIR,
        help=f"jar cache (default {DEFAULT_LIB_DIR})",
    )
    # Of the topic settings, only the rows topic's partitions: the topics get the default names.
    add_flags(
        parser, KafkaSettings, exclude=frozenset(KafkaSettings.model_fields) - {"rows_partitions"}
    )
    add_flags(parser, LogSettings)
    args = parser.parse_args(argv)
    configure_logging(build(LogSettings, args))
    quiet_client_logs()

    broker = LocalBroker(home=args.home, port=args.port, lib_dir=args.lib_dir)
    try:
        if args.command == "fetch":
            print(f"Kafka broker jars in {fetch_jars(args.lib_dir)}")
        elif args.command == "start":
            broker.start()
            topics = build(KafkaSettings, args).model_copy(
                update={"bootstrap_servers": broker.bootstrap_servers}
            )
            ensure_loop_topics(topics)
            print(f"Kafka broker running at {broker.bootstrap_servers}; log: {broker.log_file}")
        elif args.command == "stop":
            print("Kafka broker stopped" if broker.stop() else "no Kafka broker was running")
        else:
            pid = broker.pid()
            if pid is None:
                print("no Kafka broker running")
                return 1
            print(f"Kafka broker running at {broker.bootstrap_servers} (pid {pid})")
    except (LocalBrokerError, BrokerUnavailableError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
