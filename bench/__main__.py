"""`python -m bench`: the drift consumer's throughput against plain readers of its clients.

Starts its own Kafka broker in a temporary directory, loads a topic with Iris
rows, then reads the topic in rounds: once with a plain reader per client
(``json.loads`` per value), once with the drift consumer per client, window size
and KS backend. Each reader configuration runs in a process of its own. Prints
the median rates and each consumer's ratio to the plain readers of the same round.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory
from types import FrameType

from bench.floor import FloorRead, read_floor
from bench.monitor_run import read_with_monitor
from bench.plain_reader import BenchTimeoutError, PlainRead, read_plain, read_plain_confluent
from bench.reader_process import ReaderProcess, ReaderProcessError
from bench.report import Series, load_average, machine_lines, stage_table, table, verdict
from bench.workload import encode_rows, load_topic
from broker.clients import quiet_client_logs
from broker.errors import BrokerUnavailableError, LocalBrokerError
from broker.local import DEFAULT_LIB_DIR, LocalBroker, fetch_jars, free_port
from consumer.settings import ConsumerSettings
from data.dataset import load_dataset, write_iris_csv
from models.registry import Registry
from models.training import train_and_register

logger = logging.getLogger("bench")

REPO = Path(__file__).resolve().parents[1]
TOPIC = "bench-rows"
CLIENTS = {"kafka-python": read_plain, "confluent": read_plain_confluent}
"""Each client and its plain reader."""
FLOOR = "floor: decode, predictions, KS only"
"""The label of `bench.floor`'s rows in the tables."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line, checked: window sizes as ints, backends as names."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows on the topic (200000)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of measurements (3)")
    parser.add_argument("--windows", default="50,500", help="comma-separated window sizes (50,500)")
    parser.add_argument(
        "--backends",
        default="fast",
        help="comma-separated KS backends (fast, the default backend; alibi as well: fast,alibi)",
    )
    parser.add_argument(
        "--clients",
        default="kafka-python,confluent",
        help="comma-separated Kafka clients (kafka-python,confluent)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of row order and noise (7)")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds allowed per read of the topic (300)"
    )
    parser.add_argument(
        "--without-archive",
        action="store_true",
        help="also run each consumer with its archive's writes left out (what the archive costs)",
    )
    parser.add_argument(
        "--with-inline-fetch",
        action="store_true",
        help="also run each kafka-python consumer with --no-fetch-process, reading in the "
        "consumer's own process (what the fetching process gives)",
    )
    parser.add_argument(
        "--with-floor",
        action="store_true",
        help="also run, per window size, the least a consumer must do on confluent-kafka "
        "(consume, decode, the champion's predictions, KS per window: bench.floor)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="a directory: run each consumer under cProfile and write its statistics there",
    )
    parser.add_argument(
        "--lib-dir",
        type=Path,
        default=REPO / DEFAULT_LIB_DIR,
        help="the broker's jar cache (var/broker/lib)",
    )
    args = parser.parse_args(argv)
    if args.rows < 2:
        parser.error(f"--rows must be at least 2, got {args.rows}")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    try:
        args.windows = [int(w) for w in args.windows.split(",") if w.strip()]
    except ValueError:
        parser.error(f"--windows must be comma-separated integers, got {args.windows!r}")
    if not args.windows or min(args.windows) < 2:
        parser.error("--windows must name window sizes of at least 2")
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(args.backends) - {"alibi", "fast"})
    if unknown or not args.backends:
        parser.error(f"--backends must be alibi and/or fast, got {','.join(unknown)}")
    args.clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = sorted(set(args.clients) - set(CLIENTS))
    if unknown or "kafka-python" not in args.clients:
        parser.error(
            "--clients must name kafka-python (the baseline of every ratio) and may add "
            f"confluent, got {args.clients}"
        )
    if args.with_floor and "confluent" not in args.clients:
        parser.error("--with-floor reads with confluent-kafka: --clients must name confluent")
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table; the exit code is 0, 1 on error, 130 if stopped."""
    args = parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    quiet_client_logs()
    # SIGTERM unwinds like Ctrl-C: the broker and the readers are stopped, the temporary
    # directory is removed.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started = time.monotonic()
    load_at_start = load_average()
    plains = [Series("plain reader", client=c) for c in args.clients]
    consumers = [
        Series("consumer", client=c, window=w, backend=b)
        for c in args.clients
        for w in args.windows
        for b in args.backends
    ]
    if args.without_archive:
        consumers += [
            Series(
                "consumer, archive writes left out", client=c, window=w, backend=b, archive=False
            )
            for c in args.clients
            for w in args.windows
            for b in args.backends
        ]
    if args.with_inline_fetch:
        consumers += [
            Series(
                "consumer, --no-fetch-process",
                window=w,
                backend=b,
                fetch_process=False,
            )
            for w in args.windows
            for b in args.backends
        ]
    floors = (
        [Series(FLOOR, client="confluent", window=w, backend="fast") for w in args.windows]
        if args.with_floor
        else []
    )
    try:
        lib_dir = fetch_jars(args.lib_dir)
        with ExitStack() as stack:
            tmp = Path(stack.enter_context(TemporaryDirectory(prefix="driftloop-bench-")))
            # One process per reader, reused across rounds: each reader's heap holds what
            # its own service would hold (the plain reader no scikit-learn, the alibi
            # consumer Alibi Detect), and no reader inherits another's garbage. They
            # import while the broker starts and the topic is loaded.
            plain_processes = [
                stack.enter_context(
                    ReaderProcess(f"bench-plain-{s.client}", preload=("bench.plain_reader",))
                )
                for s in plains
            ]
            consumer_processes = [
                stack.enter_context(
                    ReaderProcess(
                        f"bench-consumer-{_name(s)}",
                        preload=("bench.monitor_run",)
                        + (("alibi_detect.cd",) if s.backend == "alibi" else ()),
                    )
                )
                for s in consumers
            ]
            floor_processes = [
                stack.enter_context(
                    ReaderProcess(f"bench-floor-{s.window}", preload=("bench.floor",))
                )
                for s in floors
            ]
            broker = LocalBroker(home=tmp / "broker", port=free_port(), lib_dir=lib_dir)
            stack.enter_context(broker.running(timeout=120))
            base = _prepare(args, tmp, broker.bootstrap_servers)
            for process in [*plain_processes, *consumer_processes, *floor_processes]:
                process.wait_ready()
            for round_no in range(1, args.repeats + 1):
                _round(
                    args,
                    tmp,
                    base,
                    round_no,
                    list(zip(plains, plain_processes, strict=True)),
                    list(zip(consumers, consumer_processes, strict=True)),
                    list(zip(floors, floor_processes, strict=True)),
                )
    except KeyboardInterrupt:
        print("interrupted; the benchmark's broker and readers are stopped", file=sys.stderr)
        return 130
    except (
        LocalBrokerError,
        BrokerUnavailableError,
        BenchTimeoutError,
        ReaderProcessError,
    ) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print()
    print(
        f"python -m bench --rows {args.rows} --repeats {args.repeats} "
        f"--windows {','.join(map(str, args.windows))} --backends {','.join(args.backends)} "
        f"--clients {','.join(args.clients)}"
    )
    for line in machine_lines(load_at_start):
        print(line)
    print()
    print(table([*plains, *consumers, *floors]))
    print()
    print(stage_table([*plains, *consumers, *floors]))
    print()
    for line in verdict(consumers, floors):
        print(line)
    print(f"whole benchmark: {time.monotonic() - started:.0f} s")
    return 0


def _prepare(args: argparse.Namespace, tmp: Path, servers: str) -> ConsumerSettings:
    """Train the champion, load the topic; return the settings every read starts from."""
    iris_csv = write_iris_csv(tmp / "iris.csv")
    artifact_root = tmp / "var"
    train_and_register(Registry(artifact_root), load_dataset(iris_csv), seed=7)
    base = ConsumerSettings(
        bootstrap_servers=servers,
        rows_topic=TOPIC,
        drift_topic=f"{TOPIC}-drift-events",
        dlq_topic=f"{TOPIC}-dlq",
        model_updates_topic=f"{TOPIC}-model-updates",
        artifact_root=artifact_root,
    )
    workload = encode_rows(iris_csv, args.rows, seed=args.seed)
    seconds = load_topic(base, workload)
    logger.info(
        "loaded %d rows (%.0f bytes each, noised from offset %d, seed %d) in %.1f s; "
        "max_poll_records=%d archive_fsync=%s",
        workload.rows,
        workload.mean_bytes,
        workload.drift_from,
        workload.seed,
        seconds,
        base.max_poll_records,
        base.archive_fsync,
    )
    return base


def _round(
    args: argparse.Namespace,
    tmp: Path,
    base: ConsumerSettings,
    round_no: int,
    plain_readers: list[tuple[Series, ReaderProcess]],
    consumer_readers: list[tuple[Series, ReaderProcess]],
    floor_readers: list[tuple[Series, ReaderProcess]],
) -> None:
    """Read the topic once with each plain reader, then once with each consumer and floor.

    Each reader's measurement goes to its series, with the plain reader of its
    client in this round as its baseline (and the plain kafka-python reader's).
    """
    baselines = {}
    for plain, plain_process in plain_readers:
        spec = PlainRead(
            bootstrap_servers=base.bootstrap_servers,
            topic=TOPIC,
            group_id=f"bench-plain-{plain.client}-{round_no}",
            rows=args.rows,
            max_poll_records=base.max_poll_records,
            timeout=args.timeout,
        )
        baseline = baselines[plain.client] = plain_process.run(CLIENTS[plain.client], spec)
        logger.info(
            "round %d plain reader %s: %.0f rows/s, %.0f rows/CPU-s",
            round_no,
            plain.client,
            baseline.rate,
            baseline.cpu_rate,
        )
    for plain, _ in plain_readers:
        plain.runs.append(baselines[plain.client])
        plain.baselines.append(baselines[plain.client])
        plain.kafka_python_baselines.append(baselines["kafka-python"])
    for s, process in consumer_readers:
        name = _name(s)
        baseline = baselines[s.client]
        settings = ConsumerSettings(
            **{
                **base.model_dump(),
                "group_id": f"bench-consumer-{name}-{round_no}",
                "window_size": s.window,
                "ks_backend": s.backend,
                "client": s.client,
                "fetch_process": s.fetch_process,
            }
        )
        measured = process.run(
            read_with_monitor,
            settings,
            args.rows,
            tmp / f"archive-{name}-{round_no}",
            tmp / f"consumer-{name}.log",
            args.timeout,
            None if args.profile is None else args.profile / f"consumer-{name}-{round_no}.prof",
            s.archive,
        )
        s.runs.append(measured)
        s.baselines.append(baseline)
        s.kafka_python_baselines.append(baselines["kafka-python"])
        logger.info(
            "round %d %s client=%s window=%d backend=%s: %.0f rows/s (%.2f x plain reader; "
            "%.2f in CPU time)",
            round_no,
            s.label,
            s.client,
            settings.window_size,
            settings.ks_backend,
            measured.rate,
            measured.rate / baseline.rate,
            measured.cpu_rate / baseline.cpu_rate,
        )

    for s, process in floor_readers:
        assert s.window is not None
        spec = FloorRead(
            PlainRead(
                bootstrap_servers=base.bootstrap_servers,
                topic=TOPIC,
                group_id=f"bench-floor-{s.window}-{round_no}",
                rows=args.rows,
                max_poll_records=base.max_poll_records,
                timeout=args.timeout,
            ),
            artifact_root=base.artifact_root,
            window=s.window,
        )
        measured = process.run(read_floor, spec)
        s.runs.append(measured)
        s.baselines.append(baselines["confluent"])
        s.kafka_python_baselines.append(baselines["kafka-python"])
        logger.info(
            "round %d floor window=%d: %.0f rows/s (%.2f x plain kafka-python reader)",
            round_no,
            s.window,
            measured.rate,
            measured.rate / baselines["kafka-python"].rate,
        )


def _name(s: Series) -> str:
    """A consumer series' name in process, group and file names."""
    return (
        f"{s.client}-{s.window}-{s.backend}{'' if s.archive else '-noarchive'}"
        f"{'' if s.fetch_process else '-inline'}"
    )


if __name__ == "__main__":
    sys.exit(main())
