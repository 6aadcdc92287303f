"""`python -m bench.soak`: the consumer's memory and archive over a long run (10 million rows).

Starts its own Kafka broker in a temporary directory, trains a champion, and
writes ``--rows`` Iris rows to a topic of one partition (`bench.workload`: the
first half clean, the second with the producer's default noise, mean 3, std 1, on
every feature). Then one ``python -m consumer`` process reads the backlog with
the default settings (window 50, the default detector and alarm, archive and
fsync on), except for the archive's retention: ``--retention-rows`` rows per
partition and stream, in segments of ``--segment-mib`` MiB, so that old segments
are removed during the run.

Every ``--every`` rows the consumer has committed (its group's offset, followed
with an admin client) the benchmark records the process's resident memory
(``VmRSS`` in ``/proc/<pid>/status``) and CPU time, and the archive's segments,
bytes and rows; ``VmHWM`` (peak resident memory) is read at the end. It prints a
table and a verdict, and exits with 2 when the verdict is FAIL:

- memory is flat when the last reading is at most `RSS_GROWTH_LIMIT` times the
  first (at 1 million rows with the defaults);
- the archive holds no more rows than the retention allows (`allowed_rows`).

``--tracemalloc`` runs the consumer with :mod:`tracemalloc` on (resident memory
is then the tracer's too) and prints where the Python heap grew between the
second reading and the second-to-last.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

from kafka import KafkaAdminClient, TopicPartition
from kafka.errors import KafkaError

from bench.report import load_average, machine_lines
from bench.scale import (
    DEFAULTS,
    REPO,
    ScaleBenchError,
    Setup,
    prepare,
    raise_interrupt,
    running_children,
)
from bench.workload import STREAM, encoded_rows, write_rows
from broker.clients import quiet_client_logs
from broker.errors import BrokerUnavailableError, LocalBrokerError
from broker.local import DEFAULT_LIB_DIR, LocalBroker, fetch_jars, free_port
from broker.settings import KafkaSettings
from broker.topics import connect_admin
from consumer.archive import WindowArchive, archived_windows

logger = logging.getLogger("bench.soak")

TOPIC = "soak-rows"
GROUP = "soak"
RSS_GROWTH_LIMIT = 1.10
"""Issue 10: the last resident-memory reading within 10% of the one at 1 million rows."""
TRACEMALLOC_FRAMES = 12
TRACED_CONSUMER = """
import signal, sys, tracemalloc

tracemalloc.start(int(sys.argv[1]))
snapshots = iter(sys.argv[2:4])


def dump(signum, frame):
    tracemalloc.take_snapshot().dump(next(snapshots))
    print("tracemalloc snapshot written", file=sys.stderr, flush=True)


signal.signal(signal.SIGUSR1, dump)
from consumer.__main__ import main

sys.exit(main(sys.argv[4:]))
"""
"""The consumer with tracemalloc: ``python -c TRACED_CONSUMER FRAMES SNAP1 SNAP2 ARGS...``;
each SIGUSR1 dumps the next snapshot."""


# -- what is measured -------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """The consumer and its archive once it has committed ``rows`` rows.

    Attributes
    ----------
    rows : int
        The group's committed offset: rows judged, archived and committed.
    seconds : float
        Since the consumer process was spawned.
    cpu_seconds : float
        The CPU time (user and system) so far of the consumer's processes: its own
        and its fetching process's (`broker.fetcher`, a child), if it runs one.
    rss_kib : int
        Their resident memory, ``VmRSS`` added up.
    archive_files, archive_bytes, archive_rows : int
        Segments in the archive, their bytes, and the rows of their windows.
    allowed_rows : int
        The most rows the retention lets the archive hold (`allowed_rows`).
    """

    rows: int
    seconds: float
    cpu_seconds: float
    rss_kib: int
    archive_files: int
    archive_bytes: int
    archive_rows: int
    allowed_rows: int


def proc_status(pid: int) -> dict[str, int]:
    """The ``kB`` fields of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``, ...), in KiB.

    >>> proc_status(os.getpid())["VmRSS"] > 0
    True
    """
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if value.strip().endswith(" kB"):
            fields[name] = int(value.split()[0])
    return fields


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the consumer's fetching process).

    >>> os.getpid() in children(os.getppid())
    True
    """
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        # The command name (field 2) may hold spaces; the parent's pid is field 4.
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far, from ``/proc/<pid>/stat``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; utime and stime follow it as 14 and 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def allowed_rows(retention_rows: int, segment_bytes: int, record_bytes: float, window: int) -> int:
    """The most rows a partition's archive holds under ``retention_rows``.

    `consumer.archive.WindowArchive.prune` runs when a segment is begun (then empty)
    and keeps the newest closed segments until they hold ``retention_rows``; the
    oldest kept one may reach back almost a whole segment beyond. The open segment
    then fills until it holds ``segment_bytes``. So the archive holds less than
    ``retention_rows`` plus two full segments; a segment closes at the first append
    after it reaches ``segment_bytes``, so it holds ``ceil(segment_bytes /
    record_bytes)`` windows, one more allowed for records of varying size.

    Parameters
    ----------
    retention_rows : int
        The consumer's ``archive_retention_rows``.
    segment_bytes : int
        Its ``archive_segment_mib``, in bytes.
    record_bytes : float
        The mean bytes of one window's record in the archive.
    window : int
        Rows per window.

    >>> allowed_rows(1_000_000, 1000, 100.0, 50)
    1001100
    """
    segment_rows = window * (math.ceil(segment_bytes / record_bytes) + 1)
    return retention_rows + 2 * segment_rows


def verdict(readings: list[Reading]) -> list[str]:
    """``PASS`` or one ``FAIL`` line per broken rule: flat memory, an archive within retention.

    >>> def at(rows, rss, archived=10):
    ...     return Reading(rows, 0.0, 0.0, rss, 1, 0, archived, 100)
    >>> verdict([at(1, 1000), at(2, 1100)])
    ['PASS: last RSS 1.10 x the first (limit 1.10 x); archive at most 10 rows, 100 allowed']
    >>> verdict([at(1, 1000), at(2, 1101, archived=101)])  # doctest: +NORMALIZE_WHITESPACE
    ['FAIL: memory grew: last RSS 1.10 x the first (1,101 KiB at 2 rows, 1,000 KiB at 1 rows;
      limit 1.10 x)', 'FAIL: the archive held 101 rows at 2 rows, more than the 100 its retention
      allows']
    """
    if len(readings) < 2:
        raise ValueError(f"the verdict needs at least 2 readings, got {len(readings)}")
    first, last = readings[0], readings[-1]
    growth = last.rss_kib / first.rss_kib
    failures = []
    if last.rss_kib > RSS_GROWTH_LIMIT * first.rss_kib:
        failures.append(
            f"FAIL: memory grew: last RSS {growth:.2f} x the first ({last.rss_kib:,} KiB at "
            f"{last.rows:,} rows, {first.rss_kib:,} KiB at {first.rows:,} rows; limit "
            f"{RSS_GROWTH_LIMIT:.2f} x)"
        )
    failures += [
        f"FAIL: the archive held {r.archive_rows:,} rows at {r.rows:,} rows, more than the "
        f"{r.allowed_rows:,} its retention allows"
        for r in readings
        if r.archive_rows > r.allowed_rows
    ]
    if failures:
        return failures
    most = max(readings, key=lambda r: r.archive_rows)
    return [
        f"PASS: last RSS {growth:.2f} x the first (limit {RSS_GROWTH_LIMIT:.2f} x); archive at "
        f"most {most.archive_rows:,} rows, {most.allowed_rows:,} allowed"
    ]


def table(readings: list[Reading]) -> list[str]:
    """Markdown: one row per reading."""
    lines = [
        "| rows committed | elapsed | rows/s since the last reading | CPU s | RSS | RSS / first "
        "| archive segments | archive MiB | archive rows | rows retention allows |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    before: Reading | None = None
    for r in readings:
        rate = (
            (r.rows - before.rows) / (r.seconds - before.seconds)
            if before is not None and r.seconds > before.seconds
            else r.rows / r.seconds
        )
        lines.append(
            f"| {r.rows:,} | {r.seconds:.0f} s | {rate:,.0f} | {r.cpu_seconds:.0f} "
            f"| {r.rss_kib / 1024:.1f} MiB | {r.rss_kib / readings[0].rss_kib:.3f} "
            f"| {r.archive_files} | {r.archive_bytes / 2**20:.1f} | {r.archive_rows:,} "
            f"| {r.allowed_rows:,} |"
        )
        before = r
    return lines


# -- the run ----------------------------------------------------------------------


class Soak:
    """One consumer over the soak topic, and what it holds each time it is read."""

    def __init__(self, setup: Setup, args: argparse.Namespace) -> None:
        self.args = args
        self.root = setup.artifact_root("soak")
        self.segment_bytes = int(args.segment_mib * 2**20)
        self.directory = WindowArchive(self.root, fsync=False).directory_for(TOPIC, STREAM, 0)
        self.snapshots = [setup.tmp / "heap-early.tracemalloc", setup.tmp / "heap-late.tracemalloc"]
        flags = [
            "--archive-retention-rows",
            str(args.retention_rows),
            "--archive-segment-mib",
            f"{args.segment_mib:g}",
            "--idle-exit",
            "600",
        ]
        command = (
            ["-c", TRACED_CONSUMER, str(TRACEMALLOC_FRAMES), *map(str, self.snapshots)]
            if args.tracemalloc
            else None
        )
        self.consumer = setup.consumer("soak", self.root, TOPIC, GROUP, *flags, command=command)
        self.pid = self.consumer.process.pid

    def read(self, rows: int) -> Reading:
        """The consumer's memory and CPU, and the archive, now."""
        windows = archived_windows(self.root, TOPIC, STREAM, 0)
        files = sorted(self.directory.glob("*.seg"))
        size = sum(path.stat().st_size for path in files)
        record = size / len(windows) if windows else float(self.segment_bytes)
        family = [self.pid, *children(self.pid)]
        return Reading(
            rows=rows,
            seconds=time.time() - self.consumer.spawned_at,
            cpu_seconds=sum(map(cpu_seconds, family)),
            rss_kib=sum(proc_status(pid)["VmRSS"] for pid in family),
            archive_files=len(files),
            archive_bytes=size,
            archive_rows=sum(w.last_offset - w.first_offset + 1 for w in windows),
            allowed_rows=allowed_rows(
                self.args.retention_rows, self.segment_bytes, record, DEFAULTS.window_size
            ),
        )

    def snapshot(self) -> None:
        """Have the traced consumer dump its next tracemalloc snapshot, and wait for it."""
        target = self.snapshots[0] if not self.snapshots[0].exists() else self.snapshots[1]
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 120
        while not target.exists():
            if time.monotonic() > deadline:
                raise ScaleBenchError(f"no tracemalloc snapshot {target} within 120 s")
            time.sleep(0.2)


def committed(admin: KafkaAdminClient) -> int | None:
    """The soak group's committed offset on the topic's one partition (0 before any commit).

    None while the broker cannot say yet (its group coordinator is still starting).
    """
    tp = TopicPartition(TOPIC, 0)
    try:
        found = admin.list_group_offsets({GROUP: [tp]}).get(GROUP, {}).get(tp)
    except KafkaError as err:
        if not err.retriable:
            raise
        logger.debug("committed offset not known yet: %s", err)
        return None
    return max(found.offset, 0) if found is not None else 0


def follow(soak: Soak, admin: KafkaAdminClient, end: int, every: int) -> list[Reading]:
    """Read the consumer and archive each time its committed offset passes a multiple of
    ``every``, until it reaches ``end``."""
    marks = list(range(every, end + 1, every))
    if marks[-1] != end:
        marks.append(end)
    trace_at = {marks[1], marks[-2]} if soak.args.tracemalloc and len(marks) >= 4 else set()
    readings: list[Reading] = []
    deadline = time.monotonic() + soak.args.timeout
    while marks:
        rows = committed(admin)
        if rows is not None and rows >= marks[0]:
            passed = [m for m in marks if m <= rows]
            del marks[: len(passed)]
            readings.append(soak.read(rows))
            logger.info("reading: %s", readings[-1])
            if trace_at.intersection(passed):
                soak.snapshot()
            continue
        if soak.consumer.process.poll() is not None:
            raise ScaleBenchError(
                f"the consumer exited ({soak.consumer.process.returncode}) at {rows or 0:,} rows "
                f"committed:\n{soak.consumer.tail()}"
            )
        if time.monotonic() > deadline:
            raise ScaleBenchError(
                f"{rows or 0:,} of {end:,} rows committed in {soak.args.timeout:.0f} s (--timeout)"
            )
        time.sleep(0.2)
    return readings


def heap_growth(snapshots: list[Path], top: int = 15) -> list[str]:
    """Where the traced consumer's Python heap grew between its two snapshots."""
    import tracemalloc

    early, late = (tracemalloc.Snapshot.load(str(path)) for path in snapshots)
    stats = late.compare_to(early, "traceback")
    total = sum(s.size_diff for s in stats)
    lines = [f"Python heap growth between the snapshots: {total / 2**20:+.2f} MiB; largest:"]
    for stat in stats[:top]:
        lines.append(f"  {stat.size_diff / 1024:+.1f} KiB in {stat.count_diff:+d} blocks:")
        lines += [f"      {line}" for line in stat.traceback.format()[-6:]]
    return lines


# -- the command ------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows on the topic (10000000)")
    parser.add_argument(
        "--every",
        type=int,
        default=None,
        help="rows committed between readings (a tenth of --rows: 1000000 at the default)",
    )
    parser.add_argument(
        "--retention-rows",
        type=int,
        default=1_000_000,
        help="the consumer's --archive-retention-rows (1000000)",
    )
    parser.add_argument(
        "--segment-mib",
        type=float,
        default=16.0,
        help="the consumer's --archive-segment-mib (16; its default, 64, rolls a segment "
        "about every 650,000 rows)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of row order and noise (7)")
    parser.add_argument(
        "--timeout", type=float, default=7200.0, help="seconds allowed for the reading (7200)"
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="run the consumer under tracemalloc; print where its heap grew between the "
        "second reading and the second-to-last (RSS then includes the tracer's)",
    )
    parser.add_argument(
        "--keep-log", type=Path, default=None, help="copy the consumer's log to this file"
    )
    parser.add_argument(
        "--lib-dir",
        type=Path,
        default=REPO / DEFAULT_LIB_DIR,
        help="the broker's jar cache (var/broker/lib)",
    )
    args = parser.parse_args(argv)
    window = DEFAULTS.window_size
    if args.rows < 4 * window:
        parser.error(f"--rows must be at least {4 * window}, got {args.rows}")
    args.every = args.every if args.every is not None else args.rows // 10
    if not window <= args.every <= args.rows // 2:
        parser.error(f"--every must be between {window} and half of --rows, got {args.every}")
    if args.retention_rows < 1:
        parser.error(f"--retention-rows must be at least 1, got {args.retention_rows}")
    if args.segment_mib <= 0:
        parser.error(f"--segment-mib must be positive, got {args.segment_mib:g}")
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout:g}")
    return args


def run(args: argparse.Namespace, stack: ExitStack) -> tuple[list[Reading], dict[str, int], str]:
    """Broker, champion, topic, consumer; the readings, the final status and the summary."""
    lib_dir = fetch_jars(args.lib_dir)
    tmp = Path(stack.enter_context(TemporaryDirectory(prefix="driftloop-soak-")))
    broker = LocalBroker(home=tmp / "broker", port=free_port(), lib_dir=lib_dir)
    stack.enter_context(broker.running(timeout=120))
    setup = prepare(tmp, broker.bootstrap_servers, stack.enter_context(running_children()))
    settings = KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        rows_topic=TOPIC,
        drift_topic=f"{TOPIC}-drift-events",
        dlq_topic=f"{TOPIC}-dlq",
        model_updates_topic="scale-model-updates",
    )
    seconds = write_rows(settings, encoded_rows(setup.iris_csv, args.rows, args.seed), args.rows)
    logger.info(
        "wrote %d rows (noised from offset %d) in %.0f s", args.rows, args.rows // 2, seconds
    )
    soak = Soak(setup, args)
    admin = connect_admin(settings.servers)
    stack.callback(admin.close)
    end = args.rows - args.rows % DEFAULTS.window_size
    readings = follow(soak, admin, end, args.every)
    status = proc_status(soak.pid)
    soak.consumer.process.send_signal(signal.SIGTERM)
    code = soak.consumer.wait_exit(timeout=120)
    if code != 0:
        raise ScaleBenchError(f"the consumer exited with {code}:\n{soak.consumer.tail()}")
    stopped = soak.consumer.first(lambda line: line.message.startswith("stopped: "))
    if args.keep_log is not None:
        args.keep_log.write_bytes(soak.consumer.log.read_bytes())
    if args.tracemalloc:
        for line in heap_growth(soak.snapshots):
            print(line)
    return readings, status, stopped.message if stopped is not None else "(no stopped: line)"


def main(argv: list[str] | None = None) -> int:
    """Run the soak and print its table; 0 on PASS, 2 on FAIL, 1 on error, 130 if stopped."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    quiet_client_logs()
    signal.signal(signal.SIGTERM, raise_interrupt)
    started = time.monotonic()
    load_at_start = load_average()
    try:
        with ExitStack() as stack:
            readings, status, stopped = run(args, stack)
    except KeyboardInterrupt:
        print("interrupted; the benchmark's broker and consumer are stopped", file=sys.stderr)
        return 130
    except (LocalBrokerError, BrokerUnavailableError, ScaleBenchError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    outcome = verdict(readings)
    print()
    print(
        f"python -m bench.soak --rows {args.rows} --every {args.every} --retention-rows "
        f"{args.retention_rows} --segment-mib {args.segment_mib:g} --seed {args.seed}"
        + (" --tracemalloc" if args.tracemalloc else "")
    )
    for line in machine_lines(load_at_start):
        print(line)
    print(
        "note: 2 cores shared with other work; the broker and the consumer run on them "
        "(the topic is written before the consumer starts)"
    )
    print(
        f"consumer settings: the defaults (window {DEFAULTS.window_size}, KS backend "
        f"{DEFAULTS.ks_backend}, alarm {DEFAULTS.alarm}, max_poll_records "
        f"{DEFAULTS.max_poll_records}, archive_fsync {DEFAULTS.archive_fsync}, fetch_process "
        f"{DEFAULTS.fetch_process}: memory and CPU are the consumer's and its fetcher's) but "
        f"archive_retention_rows {args.retention_rows}, archive_segment_mib {args.segment_mib:g}"
    )
    print(f"rows: {args.rows:,}, the first half clean, the second noised (mean 3, std 1)")
    print()
    for line in table(readings):
        print(line)
    print()
    print(
        f"consumer process (not its fetcher) at the end: VmRSS {status['VmRSS'] / 1024:.1f} MiB, "
        f"VmHWM (peak) "
        f"{status['VmHWM'] / 1024:.1f} MiB; {stopped}"
    )
    for line in outcome:
        print(line)
    print(f"whole benchmark: {time.monotonic() - started:.0f} s")
    return 2 if outcome[0].startswith("FAIL") else 0


if __name__ == "__main__":
    sys.exit(main())
