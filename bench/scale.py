"""`python -m bench.scale`: consumer restarts after SIGKILL, and throughput per partition.

Starts its own Kafka broker in a temporary directory, trains a champion, and runs
``python -m consumer`` processes as a user would (default settings; a temporary
artifact root; each process logs to a file of its own). Two parts:

- **Restarts.** A producer streams Iris at ``--rate`` rows/s to a rows topic of 4
  partitions. A consumer judges windows; it is killed with SIGKILL and started
  again at once. The figure is the time from the SIGKILL to the first window the
  new process judges (its first ``window=... stream=...`` log line), split into
  start-up (process spawned to ``consuming topic=``), the group join (to
  ``assigned partitions``) and the rest (offset fetch, fetch, judging). With the
  same ``--instance-id`` (static membership) ``--repeats`` times, and with a new
  instance id ``--baseline-repeats`` times: the dead member then holds its
  partitions until its session (``--session-timeout-ms``, 10 s) ends. One more
  restart with the same id runs `TRACED_CONSUMER`, which times each start-up step
  (imports, clients, ``init_transactions``, the champion); a fresh interpreter
  that only imports the consumer's modules is timed too.
- **Throughput.** Cases: 1 consumer on 1 partition, 1 consumer on 4, 2 consumers
  (one group, distinct instance ids) on 4, each on a new topic. ``--rows`` rows,
  half clean and half noised (`bench.workload`), are written round-robin over the
  partitions in a transaction left open, so the consumers (which read committed
  messages only) see nothing yet. Once every consumer has logged its share of
  the partitions, the transaction commits and the whole backlog appears at
  once; the time runs from that commit to the last window any consumer judges.
  Once every complete window is judged the consumers are stopped with SIGTERM
  (``--idle-exit`` only bounds the wait for the release) and log the rows they
  counted.

Log timestamps and the benchmark's own clock are both ``time.time()`` on this
machine, so they compare directly.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from types import FrameType

from bench.report import load_average, machine_lines
from bench.workload import LOAD_BATCH_BYTES, STREAM, encode_rows
from broker.clients import quiet_client_logs, reliable_producer
from broker.errors import BrokerUnavailableError, LocalBrokerError
from broker.local import DEFAULT_LIB_DIR, LocalBroker, fetch_jars, free_port
from broker.settings import KafkaSettings
from broker.topics import ensure_topics
from consumer.settings import ConsumerSettings
from data.dataset import load_dataset, write_iris_csv
from models.registry import Registry
from models.training import train_and_register

logger = logging.getLogger("bench.scale")

REPO = Path(__file__).resolve().parents[1]
SAME_ID, SAME_ID_TRACED, NEW_ID = (
    "same instance id",
    "same instance id, start-up traced",
    "new instance id",
)
RESTART_TARGET_S = 10.0
"""The issue's target: SIGKILL to the first window judged by the restarted consumer."""
LIVE_PARTITIONS = 4
DEFAULTS = ConsumerSettings.model_construct()
"""The consumer's defaults, not this environment's: the consumers get no DRIFTLOOP_* vars."""
WINDOWS_BEFORE_KILL = 5
"""Windows a consumer judges (after its first) before it is killed: it is in its loop."""

_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) level=(\w+) logger=(\S+) (.*)$")
_WINDOW = re.compile(r"^window=\S+ stream=\S+ offsets=(\d+)-(\d+) size=(\d+) ")
_STOPPED = re.compile(r"^stopped: rows=(\d+) windows=(\d+)")
_TRACE = re.compile(r"^trace step=(\S+) start=([\d.]+) end=([\d.]+)$", re.MULTILINE)

TRACED_CONSUMER = """
import sys, time

started = time.time()


def note(step, start):
    print(f"trace step={step} start={start:.6f} end={time.time():.6f}", file=sys.stderr, flush=True)


def timed(step, function):
    def wrapper(*args, **kwargs):
        start = time.time()
        try:
            return function(*args, **kwargs)
        finally:
            note(step, start)

    return wrapper


note("interpreter", float(sys.argv[1]))
import consumer.assembly as assembly
from consumer.__main__ import main
from consumer.champion import Champion

note("import-consumer-kafka-scipy", started)
# Imported by the champion's loading anyway; here, to time them on their own.
start = time.time()
import sklearn.ensemble, skops.io

note("import-sklearn-skops", start)
if sys.argv[2] == "alibi":
    start = time.time()
    import alibi_detect.cd

    note("import-alibi-detect", start)
for name, step in [
    ("ensure_loop_topics", "topics"),
    ("update_consumer", "updates-client"),
    ("transactional_producer", "producer-init-transactions"),
    ("manual_commit_consumer", "rows-client"),
    ("DriftMonitor", "monitor"),
]:
    setattr(assembly, name, timed(step, getattr(assembly, name)))
Champion.from_registry = staticmethod(timed("champion", Champion.from_registry))
sys.exit(main(sys.argv[3:]))
"""
"""The consumer, start-up timed: ``python -c TRACED_CONSUMER SPAWNED_AT KS_BACKEND ARGS...``.

Each step prints ``trace step=... start=... end=...`` (``time.time()``) to stderr.
scikit-learn and skops (and Alibi Detect, for the ``alibi`` backend) are imported up
front, each timed, instead of while the champion loads; the champion step is then
the model's loading and checks, and the KS detector's construction.
"""


class ScaleBenchError(RuntimeError):
    """A consumer or producer did not do what the benchmark waited for."""


# -- the consumers' logs ----------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    """One line of a consumer's text log: when (``time.time()`` seconds) and the message."""

    at: float
    level: str
    message: str


def parse_line(text: str) -> LogLine | None:
    """A log line in `broker.logs.TEXT_FORMAT`, or None for anything else (a traceback).

    >>> line = parse_line("2026-01-01 10:00:00,250 level=INFO logger=consumer x=1")
    >>> line.message, round(line.at % 1, 3)
    ('x=1', 0.25)
    >>> parse_line("Traceback (most recent call last):") is None
    True
    """
    match = _LINE.match(text)
    if match is None:
        return None
    stamp, millis, level, _, message = match.groups()
    # asctime is local time, as time.localtime() gives it for record.created.
    at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").timestamp() + int(millis) / 1000
    return LogLine(at=at, level=level, message=message)


def window_rows(line: LogLine) -> int | None:
    """Rows in the window a judged-window line reports, None for any other line.

    >>> window_rows(LogLine(0.0, "INFO", "window=t-0-0-49 stream=iris offsets=0-49 size=50 x"))
    50
    >>> window_rows(LogLine(0.0, "INFO", "consuming topic=t group=g window=50 step=50"))
    """
    match = _WINDOW.match(line.message)
    return None if match is None else int(match.group(3))


class ConsumerProcess:
    """One consumer process, logging to its own file, and what it logged.

    ``traced`` runs `TRACED_CONSUMER` instead of ``python -m consumer``: the same
    consumer, with its start-up steps timed. ``command``, when given, replaces
    ``-m consumer``: the interpreter's arguments before the consumer's.
    """

    def __init__(
        self,
        args: list[str],
        log: Path,
        env: dict[str, str],
        traced: bool,
        command: list[str] | None = None,
    ) -> None:
        self.log = log
        self.spawned_at = time.time()
        if command is None:
            command = (
                ["-c", TRACED_CONSUMER, f"{self.spawned_at:.6f}", DEFAULTS.ks_backend]
                if traced
                else ["-m", "consumer"]
            )
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, *command, *args],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.cpu_seconds: float | None = None
        self._read = 0
        self._partial = b""
        self.lines: list[LogLine] = []

    def refresh(self) -> list[LogLine]:
        """Read the lines logged since the last call; all of them are also in ``lines``."""
        with open(self.log, "rb") as log:
            log.seek(self._read)
            chunk = log.read()
        self._read += len(chunk)
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        new = [
            parsed
            for raw in complete
            if (parsed := parse_line(raw.decode("utf-8", "replace"))) is not None
        ]
        self.lines += new
        return new

    def traced_steps(self) -> list[tuple[str, float, float]]:
        """The traced start-up's steps as (step, start, end), in the order they ended."""
        text = self.log.read_text(errors="replace")
        return [(m[1], float(m[2]), float(m[3])) for m in _TRACE.finditer(text)]

    def first(self, predicate: Callable[[LogLine], bool]) -> LogLine | None:
        return next((line for line in self.lines if predicate(line)), None)

    def windows(self) -> list[LogLine]:
        return [line for line in self.lines if window_rows(line) is not None]

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Refresh the log until ``predicate()``; fail naming ``what`` and the log's tail."""
        wait_for([self], predicate, timeout, what)

    def kill(self) -> float:
        """SIGKILL the process; returns when the signal was sent (``time.time()``)."""
        at = time.time()
        os.kill(self.process.pid, signal.SIGKILL)
        self.reap()
        return at

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit by itself; its exit code. Notes its CPU time."""
        deadline = time.monotonic() + timeout
        while not self._collect(block=False):
            if time.monotonic() > deadline:
                raise ScaleBenchError(
                    f"consumer still running after {timeout:.0f} s:\n{self.tail()}"
                )
            time.sleep(0.1)
        self.refresh()
        assert self.process.returncode is not None
        return self.process.returncode

    def reap(self) -> None:
        """Kill the process if it still runs, and collect it with its CPU time."""
        if self._collect(block=False):
            return
        self.process.kill()
        self._collect(block=True)

    def _collect(self, block: bool) -> bool:
        """Collect the exited process with ``os.wait4``, for its CPU time; whether it exited."""
        if self.process.returncode is not None:
            return True
        pid, status, usage = os.wait4(self.process.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return False
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        return True

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def wait_for(
    consumers: list[ConsumerProcess], predicate: Callable[[], bool], timeout: float, what: str
) -> None:
    """Refresh every consumer's log until ``predicate()``; fail if one exits or time is up."""
    deadline = time.monotonic() + timeout
    while True:
        for consumer in consumers:
            consumer.refresh()
        if predicate():
            return
        for consumer in consumers:
            if consumer.process.poll() is not None:
                raise ScaleBenchError(
                    f"consumer exited ({consumer.process.returncode}) before {what}:\n"
                    f"{consumer.tail()}"
                )
        if time.monotonic() > deadline:
            raise ScaleBenchError(f"no {what} within {timeout:.0f} s:\n{consumers[0].tail()}")
        time.sleep(0.02)


class ChildSet:
    """Every process the benchmark started, reaped when the set closes (error or not)."""

    def __init__(self) -> None:
        self.consumers: list[ConsumerProcess] = []
        self.others: list[subprocess.Popen[bytes]] = []

    def close(self) -> None:
        for consumer in self.consumers:
            consumer.reap()
        for process in self.others:
            if process.poll() is None:
                process.kill()
            process.wait()


# -- the run ----------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What every part shares: the broker's address, the data, the champion, the env."""

    tmp: Path
    servers: str
    iris_csv: Path
    registry_root: Path
    env: dict[str, str]
    children: ChildSet

    def artifact_root(self, name: str) -> Path:
        """A fresh artifact root holding the champion: its own archive, the same model."""
        root = self.tmp / "roots" / name
        shutil.copytree(self.registry_root, root)
        return root

    def consumer(
        self,
        name: str,
        root: Path,
        topic: str,
        group: str,
        *extra: str,
        traced: bool = False,
        command: list[str] | None = None,
    ) -> ConsumerProcess:
        args = [
            "--bootstrap-servers",
            self.servers,
            "--rows-topic",
            topic,
            "--drift-topic",
            f"{topic}-drift-events",
            "--dlq-topic",
            f"{topic}-dlq",
            "--model-updates-topic",
            "scale-model-updates",
            "--artifact-root",
            str(root),
            "--group-id",
            group,
            "--instance-id",
            name,
            *extra,
        ]
        # One log per process: a restarted consumer's lines are its own.
        n = len(self.children.consumers)
        log = self.tmp / "logs" / f"{n:02d}.{group}.{name}.log"
        process = ConsumerProcess(args, log, self.env, traced, command)
        self.children.consumers.append(process)
        return process


def child_env() -> dict[str, str]:
    """This environment without driftloop's and Kafka's settings: the children get defaults."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DRIFTLOOP_", "KAFKA_")) and k != "PYTHONSTARTUP"
    }


def prepare(tmp: Path, servers: str, children: ChildSet) -> Setup:
    """Iris on disk, a champion in a registry of its own, the log directory."""
    iris_csv = write_iris_csv(tmp / "iris.csv")
    registry_root = tmp / "champion"
    train_and_register(Registry(registry_root), load_dataset(iris_csv), seed=7)
    (tmp / "logs").mkdir()
    return Setup(tmp, servers, iris_csv, registry_root, child_env(), children)


# -- part 1: restarts -------------------------------------------------------------


@dataclass(frozen=True)
class Restart:
    """One SIGKILL and restart; seconds from the SIGKILL, and the start-up's split."""

    case: str
    to_window: float
    startup: float
    join: float
    after_join: float
    steps: tuple[tuple[str, float, float], ...] = ()
    """A traced start-up's steps: (step, start, end) in seconds after the SIGKILL."""


def measure_restarts(setup: Setup, args: argparse.Namespace) -> list[Restart]:
    """Kill and restart a consumer under a live producer; same id, then new ids."""
    topic = "scale-live"
    ensure_topics([setup.servers], [topic], partitions=LIVE_PARTITIONS)
    producer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "producer",
            "--bootstrap-servers",
            setup.servers,
            "--rows-topic",
            topic,
            "--data",
            str(setup.iris_csv),
            "--rate",
            str(args.rate),
            "--loop",
            "--seed",
            "1",
            "--quiet",
        ],
        cwd=REPO,
        env=setup.env,
        stdout=subprocess.DEVNULL,
    )
    setup.children.others.append(producer)
    root = setup.artifact_root("restarts")
    restarts: list[Restart] = []
    # Per group: whether restarts keep the instance id, and each restart's case and
    # whether its start-up is traced (one extra restart, after the counted ones).
    plans = [
        (
            "scale-restart-static",
            True,
            [(SAME_ID, False)] * args.repeats + [(SAME_ID_TRACED, True)],
        ),
        ("scale-restart-new", False, [(NEW_ID, False)] * args.baseline_repeats),
    ]
    for group, same_id, plan in plans:
        if not plan:
            continue

        def name(i: int, same_id: bool = same_id) -> str:
            return "bench-a" if same_id else f"bench-b{i}"

        current = setup.consumer(name(0), root, topic, group)
        for i, (case, traced) in enumerate(plan, start=1):
            _judging(current, WINDOWS_BEFORE_KILL, f"{case}: windows before kill {i}")
            if producer.poll() is not None:
                raise ScaleBenchError(f"the producer exited ({producer.returncode})")
            killed_at = current.kill()
            current = setup.consumer(name(i), root, topic, group, traced=traced)
            _judging(current, 0, f"{case}: a window after restart {i}")
            restart = _restart(case, killed_at, current)
            restarts.append(restart)
            logger.info(
                "%s, restart %d: SIGKILL -> first window %.2f s (start-up %.2f, join %.2f, "
                "then %.2f)",
                case,
                i,
                restart.to_window,
                restart.startup,
                restart.join,
                restart.after_join,
            )
        current.process.send_signal(signal.SIGTERM)
        code = current.wait_exit(60)
        if code != 0:
            raise ScaleBenchError(f"consumer did not stop cleanly ({code}):\n{current.tail()}")
    producer.send_signal(signal.SIGTERM)
    producer.wait(timeout=30)
    return restarts


def _judging(consumer: ConsumerProcess, windows: int, what: str) -> None:
    """Wait until ``consumer`` has judged ``windows`` windows after its first."""

    def enough() -> bool:
        return len(consumer.windows()) > windows

    consumer.wait_for(enough, 120, what)


def _restart(case: str, killed_at: float, restarted: ConsumerProcess) -> Restart:
    consuming = restarted.first(lambda line: line.message.startswith("consuming topic="))
    assigned = restarted.first(lambda line: line.message.startswith("assigned partitions"))
    window = restarted.windows()[0]
    if consuming is None or assigned is None:
        raise ScaleBenchError(f"restarted consumer's log lacks its start:\n{restarted.tail()}")
    return Restart(
        case=case,
        to_window=window.at - killed_at,
        startup=consuming.at - restarted.spawned_at,
        join=assigned.at - consuming.at,
        after_join=window.at - assigned.at,
        steps=tuple(
            (step, start - killed_at, end - killed_at)
            for step, start, end in restarted.traced_steps()
        ),
    )


def import_seconds(env: dict[str, str], backend: str = DEFAULTS.ks_backend) -> float:
    """Seconds for a fresh interpreter to import what a consumer imports at start-up."""
    modules = [
        "consumer.__main__",
        "consumer.assembly",
        "consumer.champion",
        "skops.io",
        "sklearn.ensemble",
    ] + (["alibi_detect.cd"] if backend == "alibi" else [])
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import " + ", ".join(modules)], cwd=REPO, env=env, check=True
    )
    return time.perf_counter() - started


# -- part 2: throughput -----------------------------------------------------------


@dataclass
class Throughput:
    """One case: how long its consumers took over the rows, from their logs."""

    case: str
    partitions: int
    processes: int
    rows: int
    round_no: int
    seconds: float = 0.0
    """From the release of the rows to the last window judged by any consumer."""
    counted_rows: list[int] = field(default_factory=list)
    """Each consumer's ``stopped: rows=``."""
    own_seconds: list[float] = field(default_factory=list)
    """Each consumer's span, from the release to its own last window."""
    cpu_seconds: list[float] = field(default_factory=list)
    """Each consumer process's CPU time, start-up included."""

    @property
    def rate(self) -> float:
        """Rows per second, all consumers together."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


class HeldRows:
    """Rows on a new topic in a transaction left open, released with :meth:`release`.

    The consumer reads committed messages only, so it sees none of the rows until
    the transaction commits: every consumer of a case can start, join the group
    and get its final partitions first, and the clock starts for all of them at
    once, with the whole backlog there.
    """

    def __init__(self, servers: str, topic: str, partitions: int, values: list[bytes]) -> None:
        ensure_topics([servers], [topic], partitions=partitions)
        self.producer = reliable_producer(
            KafkaSettings(bootstrap_servers=servers),
            client_id="bench-scale-loader",
            transactional_id=f"bench-scale-loader-{topic}",
            transaction_timeout_ms=HOLD_TIMEOUT_MS,
            linger_ms=50,
            batch_size=LOAD_BATCH_BYTES,
        )
        failures: list[Exception] = []
        started = time.perf_counter()
        try:
            self.producer.init_transactions()
            self.producer.begin_transaction()
            key = STREAM.encode()
            for i, value in enumerate(values):
                future = self.producer.send(topic, key=key, value=value, partition=i % partitions)
                future.add_errback(failures.append)
            self.producer.flush()
            if failures:
                raise ScaleBenchError(f"loading {topic} failed: {failures[0]}") from failures[0]
        except BaseException:
            self.producer.close(timeout=0)
            raise
        self.load_seconds = time.perf_counter() - started

    def release(self) -> float:
        """Commit the rows; returns when the commit was asked for (``time.time()``)."""
        at = time.time()
        try:
            self.producer.commit_transaction()
        finally:
            self.producer.close()
        return at

    def close(self) -> None:
        """Close without committing (the broker aborts the transaction)."""
        self.producer.close(timeout=0)


HOLD_TIMEOUT_MS = 300_000
"""The loader's transaction timeout: loading and every consumer's start-up fit in it."""

THROUGHPUT_CASES = (
    ("1 consumer, 1 partition", 1, 1),
    ("1 consumer, 4 partitions", 4, 1),
    ("2 consumers, 4 partitions", 4, 2),
)
"""Case, partitions, consumer processes: each case is a new topic and group."""


def assigned_partitions(line: LogLine) -> set[int] | None:
    """The partitions an ``assigned partitions`` line lists, None for any other line.

    >>> assigned_partitions(LogLine(0.0, "INFO", "assigned partitions ['t/0', 't/3']"))
    {0, 3}
    >>> assigned_partitions(LogLine(0.0, "INFO", "assigned partitions []"))
    set()
    """
    if not line.message.startswith("assigned partitions"):
        return None
    return {int(p) for p in re.findall(r"'[^']*/(\d+)'", line.message)}


def _settled(consumers: list[ConsumerProcess], partitions: int) -> bool:
    """Whether every consumer's latest assignment is its share, all partitions covered once."""
    latest = []
    for consumer in consumers:
        lines = [a for line in consumer.lines if (a := assigned_partitions(line)) is not None]
        if not lines or not lines[-1]:
            return False
        latest.append(lines[-1])
    return sum(map(len, latest)) == partitions and set().union(*latest) == set(range(partitions))


def _windowed_rows(rows: int, partitions: int, window: int = 50) -> int:
    """Rows in complete windows when ``rows`` of one stream go round-robin over ``partitions``.

    >>> _windowed_rows(1000, 4, 50), _windowed_rows(1030, 1, 50)
    (1000, 1000)
    """
    per_partition = [len(range(p, rows, partitions)) for p in range(partitions)]
    return sum(n - n % window for n in per_partition)


def _stop_when_judged(consumers: list[ConsumerProcess], rows: int) -> None:
    """SIGTERM the consumers once their windows hold ``rows`` rows (or all have exited).

    The consumers stop cleanly (committing, logging ``stopped:``) without waiting out
    ``--idle-exit``, which only guards the wait for the release.
    """
    deadline = time.monotonic() + 900
    while True:
        for consumer in consumers:
            consumer.refresh()
        judged = sum(window_rows(w) or 0 for c in consumers for w in c.windows())
        running = [c for c in consumers if c.process.poll() is None]
        if judged >= rows or not running:
            break
        if time.monotonic() > deadline:
            raise ScaleBenchError(f"{judged} of {rows} rows judged in 900 s")
        time.sleep(0.05)
    for consumer in running:
        consumer.process.send_signal(signal.SIGTERM)


def measure_throughput(
    setup: Setup,
    case: str,
    partitions: int,
    processes: int,
    values: list[bytes],
    args: argparse.Namespace,
    round_no: int,
) -> Throughput:
    """Hold the rows, start the consumers, release the rows once all are assigned; time them."""
    name = f"scale-p{partitions}-x{processes}-r{round_no}"
    held = HeldRows(setup.servers, name, partitions, values)
    try:
        root = setup.artifact_root(name)
        consumers = [
            setup.consumer(f"bench-t{i}", root, name, name, "--idle-exit", f"{args.idle_exit:g}")
            for i in range(processes)
        ]
        wait_for(
            consumers,
            lambda: _settled(consumers, partitions),
            120,
            f"{case}: every consumer assigned its share of the partitions "
            f"(a consumer that idles {args.idle_exit:g} s before then exits: raise --idle-exit)",
        )
        released_at = held.release()
    except BaseException:
        held.close()
        raise
    logger.info(
        "round %d, %s: %d rows held on %s (loaded in %.1f s), released",
        round_no,
        case,
        len(values),
        name,
        held.load_seconds,
    )
    _stop_when_judged(consumers, _windowed_rows(len(values), partitions, DEFAULTS.window_size))
    result = Throughput(case, partitions, processes, len(values), round_no)
    ends = []
    for consumer in consumers:
        code = consumer.wait_exit(timeout=60)
        if code != 0:
            raise ScaleBenchError(f"consumer exited with {code}:\n{consumer.tail()}")
        stopped = consumer.first(lambda line: line.message.startswith("stopped: "))
        match = None if stopped is None else _STOPPED.match(stopped.message)
        windows = consumer.windows()
        if match is None or not windows:
            raise ScaleBenchError(f"{case}: a consumer judged nothing:\n{consumer.tail()}")
        ends.append(windows[-1].at)
        result.counted_rows.append(int(match.group(1)))
        result.own_seconds.append(windows[-1].at - released_at)
        if consumer.cpu_seconds is not None:
            result.cpu_seconds.append(consumer.cpu_seconds)
    result.seconds = max(ends) - released_at
    logger.info(
        "round %d, %s: %.0f rows/s (%.1f s; rows per consumer %s)",
        round_no,
        case,
        result.rate,
        result.seconds,
        result.counted_rows,
    )
    return result


# -- what is printed --------------------------------------------------------------


def restart_table(restarts: list[Restart]) -> list[str]:
    """Markdown: per case, the median and max from SIGKILL, and the medians of its parts."""
    lines = [
        "| restart | runs | SIGKILL -> first window, median | max | start-up "
        '(spawn -> "consuming topic="), median | join (-> "assigned partitions"), median '
        "| assigned -> first window, median |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in dict.fromkeys(r.case for r in restarts):
        rs = [r for r in restarts if r.case == case]
        lines.append(
            f"| {case} | {len(rs)} | {statistics.median(r.to_window for r in rs):.1f} s "
            f"| {max(r.to_window for r in rs):.1f} s "
            f"| {statistics.median(r.startup for r in rs):.1f} s "
            f"| {statistics.median(r.join for r in rs):.1f} s "
            f"| {statistics.median(r.after_join for r in rs):.1f} s |"
        )
    return lines


def restart_runs(restarts: list[Restart]) -> list[str]:
    """Each restart's seconds, one line per case."""
    lines = []
    for case in dict.fromkeys(r.case for r in restarts):
        rs = [r for r in restarts if r.case == case]
        each = ", ".join(
            f"{r.to_window:.1f} ({r.startup:.1f}+{r.join:.1f}+{r.after_join:.1f})" for r in rs
        )
        lines.append(f"{case}: {each}  [s: total (start-up+join+rest)]")
    return lines


def throughput_table(results: list[Throughput]) -> list[str]:
    """Markdown: one row per case and round."""
    lines = [
        "| round | case | partitions | consumer processes | rows | release -> last window "
        "| rows/s, total | rows/s per process | each process: rows, rows/s to its last window "
        "| CPU s per process (start-up included) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        each = "; ".join(
            f"{n:,}, {n / t:,.0f}" for n, t in zip(r.counted_rows, r.own_seconds, strict=True)
        )
        cpu = ", ".join(f"{s:.0f}" for s in r.cpu_seconds) or "-"
        lines.append(
            f"| {r.round_no} | {r.case} | {r.partitions} | {r.processes} | {r.rows:,} "
            f"| {r.seconds:.1f} s | {r.rate:,.0f} | {r.rate / r.processes:,.0f} | {each} "
            f"| {cpu} |"
        )
    return lines


def ratio_lines(results: list[Throughput]) -> list[str]:
    """Per round: 2 consumers over 1 on 4 partitions, and 4 partitions over 1 for one."""
    lines = []
    for round_no in sorted({r.round_no for r in results}):
        of_round = {(r.partitions, r.processes): r for r in results if r.round_no == round_no}
        one, two, single = of_round[4, 1], of_round[4, 2], of_round[1, 1]
        lines.append(
            f"round {round_no}: 2 consumers / 1 consumer on 4 partitions: "
            f"{two.rate / one.rate:.2f} x; 1 consumer, 4 partitions / 1 partition: "
            f"{one.rate / single.rate:.2f} x"
        )
    return lines


def restart_report(restarts: list[Restart], imports: list[float], rate: float) -> list[str]:
    """The restart part: the table, each run, the traced start-up and the target."""
    lines = [
        f"Restarts: a rows topic of {LIVE_PARTITIONS} partitions, a producer at {rate:g} "
        f"rows/s; SIGKILL after {WINDOWS_BEFORE_KILL}+ windows, restarted at once",
        *restart_table(restarts),
        *restart_runs(restarts),
        "a fresh interpreter importing the consumer's start-up modules: "
        + ", ".join(f"{s:.1f} s" for s in imports),
    ]
    for r in restarts:
        if r.steps:
            lines.append(f"{r.case}, seconds after the SIGKILL (start-end):")
            lines += [
                f"  {step:28s} {start:5.2f}-{end:5.2f}  ({end - start:.2f} s)"
                for step, start, end in r.steps
            ]
    static = [r.to_window for r in restarts if r.case == SAME_ID]
    met = max(static) < RESTART_TARGET_S
    lines.append(
        f"target: SIGKILL -> first window with the same instance id < {RESTART_TARGET_S:.0f} s: "
        f"median {statistics.median(static):.1f} s, max {max(static):.1f} s: "
        f"{'met' if met else 'MISSED'}"
    )
    return lines


def throughput_report(results: list[Throughput], rows: int) -> list[str]:
    """The throughput part: the table, the ratios, the rows each consumer counted."""
    return [
        f"Throughput: {rows:,} rows (half clean, half noised; round-robin over the "
        "partitions) on a new topic per case, held in an open transaction until every "
        "consumer has its partitions, then released at once",
        *throughput_table(results),
        *ratio_lines(results),
        *(
            f"round {t.round_no}, {t.case}: rows counted by each consumer "
            f"('stopped: rows='): {t.counted_rows}"
            for t in results
        ),
    ]


# -- the command ------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument(
        "--repeats", type=int, default=5, help="restarts with the same instance id (5)"
    )
    parser.add_argument(
        "--baseline-repeats", type=int, default=2, help="restarts with a new instance id (2)"
    )
    parser.add_argument(
        "--rows", type=int, default=500_000, help="rows loaded per throughput topic (500000)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds of the three throughput cases (2)"
    )
    parser.add_argument(
        "--rate", type=float, default=500.0, help="producer rows/s while restarting (500)"
    )
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=60.0,
        help="seconds a throughput consumer waits for rows before it exits (60); it is "
        "stopped with SIGTERM once every window is judged",
    )
    parser.add_argument(
        "--parts",
        default="restarts,throughput",
        help="comma-separated parts to run (restarts,throughput)",
    )
    parser.add_argument(
        "--keep-logs", type=Path, default=None, help="copy every consumer's log to this directory"
    )
    parser.add_argument(
        "--lib-dir",
        type=Path,
        default=REPO / DEFAULT_LIB_DIR,
        help="the broker's jar cache (var/broker/lib)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.baseline_repeats < 0:
        parser.error(f"--baseline-repeats must be at least 0, got {args.baseline_repeats}")
    if args.rows < 1000:
        parser.error(f"--rows must be at least 1000, got {args.rows}")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.rate <= 0:
        parser.error(f"--rate must be positive, got {args.rate}")
    if args.idle_exit < 1:
        parser.error(f"--idle-exit must be at least 1 s, got {args.idle_exit}")
    args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not args.parts or args.parts - {"restarts", "throughput"}:
        parser.error(f"--parts must name restarts and/or throughput, got {args.parts}")
    return args


def raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM handler: unwind like Ctrl-C, so every child and the broker are stopped."""
    raise KeyboardInterrupt


@contextmanager
def running_children() -> Iterator[ChildSet]:
    """A ChildSet whose processes are stopped on leaving."""
    children = ChildSet()
    try:
        yield children
    finally:
        children.close()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables; the exit code is 0, 1 on error, 130 if stopped."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    quiet_client_logs()
    signal.signal(signal.SIGTERM, raise_interrupt)
    started = time.monotonic()
    load_at_start = load_average()
    restarts: list[Restart] = []
    results: list[Throughput] = []
    imports: list[float] = []
    try:
        lib_dir = fetch_jars(args.lib_dir)
        with ExitStack() as stack:
            tmp = Path(stack.enter_context(TemporaryDirectory(prefix="driftloop-scale-")))
            broker = LocalBroker(home=tmp / "broker", port=free_port(), lib_dir=lib_dir)
            stack.enter_context(broker.running(timeout=120))
            children = stack.enter_context(running_children())
            setup = prepare(tmp, broker.bootstrap_servers, children)
            if "restarts" in args.parts:
                imports = [import_seconds(setup.env) for _ in range(2)]
                restarts = measure_restarts(setup, args)
            if "throughput" in args.parts:
                values = encode_rows(setup.iris_csv, args.rows, seed=7).values
                for round_no in range(1, args.rounds + 1):
                    for case, partitions, processes in THROUGHPUT_CASES:
                        results.append(
                            measure_throughput(
                                setup, case, partitions, processes, values, args, round_no
                            )
                        )
            if args.keep_logs is not None:
                shutil.copytree(tmp / "logs", args.keep_logs, dirs_exist_ok=True)
    except KeyboardInterrupt:
        print("interrupted; the benchmark's broker and processes are stopped", file=sys.stderr)
        return 130
    except (LocalBrokerError, BrokerUnavailableError, ScaleBenchError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print()
    print(
        f"python -m bench.scale --repeats {args.repeats} --baseline-repeats "
        f"{args.baseline_repeats} --rows {args.rows} --rounds {args.rounds} --rate {args.rate:g} "
        f"--idle-exit {args.idle_exit:g}"
    )
    for line in machine_lines(load_at_start):
        print(line)
    print(
        "note: 2 cores shared with other work; the broker, the producer and every consumer "
        "process run on them"
    )
    print(
        f"consumer settings: the defaults (window {DEFAULTS.window_size}, KS backend "
        f"{DEFAULTS.ks_backend}, alarm {DEFAULTS.alarm}, session timeout "
        f"{DEFAULTS.session_timeout_ms} ms, transaction timeout "
        f"{DEFAULTS.transaction_timeout_ms} ms, max_poll_records {DEFAULTS.max_poll_records})"
    )
    if restarts:
        print()
        for line in restart_report(restarts, imports, args.rate):
            print(line)
    if results:
        print()
        for line in throughput_report(results, args.rows):
            print(line)
    print(f"whole benchmark: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
