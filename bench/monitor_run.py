"""The drift consumer over the topic, built in-process as ``python -m consumer`` builds it."""

from __future__ import annotations

import cProfile
import logging
import shutil
import time
from pathlib import Path

from bench.plain_reader import BenchTimeoutError
from bench.timing import (
    ClockedConsumer,
    CollectorClock,
    Measurement,
    NullArchive,
    TimedDetector,
)
from consumer.assembly import build_monitor
from consumer.settings import ConsumerSettings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
"""The consumer's log format, as ``python -m consumer`` sets it."""


def read_with_monitor(
    settings: ConsumerSettings,
    rows: int,
    archive_root: Path,
    log_file: Path,
    timeout: float = 300.0,
    profile: Path | None = None,
    archive: bool = True,
) -> Measurement:
    """Run the drift consumer over ``rows`` rows of ``settings.rows_topic``.

    Built by `consumer.assembly.build_monitor`, as ``python -m consumer`` and
    the integration tests build it, with the archive under ``archive_root``
    (removed afterwards) and the rows consumer wrapped to clock its partition
    assignment. The detector is wrapped to time each window's ``predict``. The
    run stops as soon as ``rows`` rows were handled, so no idle time is counted;
    the clock stops when ``run`` returns, with every window archived, every
    event acknowledged and the offsets committed.

    Parameters
    ----------
    settings : ConsumerSettings
        Everything the consumer reads, with the window size and KS backend to measure.
    rows : int
        Rows on the topic.
    archive_root : pathlib.Path
        Where the archive goes (``<archive_root>/archive/...``).
    log_file : pathlib.Path
        Where the consumer's log lines go, at INFO as in production.
    timeout : float, default 300
        Seconds before giving up.
    profile : pathlib.Path, optional
        Run the loop under cProfile and write its statistics here (the rates are
        then the profiler's, not the consumer's).
    archive : bool, default True
        False: the archive writes nothing (`bench.timing.NullArchive`), to measure
        what the rest of the consumer reaches.

    Returns
    -------
    Measurement

    Raises
    ------
    BenchTimeoutError
        When the consumer has not handled ``rows`` rows within ``timeout`` seconds.
    RuntimeError
        When the consumer dead-lettered rows or judged an unexpected number of windows.
    """
    _log_to(log_file)
    monitor = build_monitor(
        settings,
        client_id="bench-monitor",
        archive_root=archive_root,
        wrap_consumer=ClockedConsumer,
    )
    consumer: ClockedConsumer = monitor.consumer
    if not archive:
        monitor.archive = NullArchive(monitor.archive)  # type: ignore[assignment]
    detector = TimedDetector(monitor.champion.detector)
    monitor.champion.detector = detector  # type: ignore[assignment]
    deadline = time.monotonic() + timeout

    def should_stop() -> bool:
        if monitor.stats.rows >= rows:
            return True
        if time.monotonic() > deadline:
            raise BenchTimeoutError(
                f"the consumer handled {monitor.stats.rows} of {rows} rows in {timeout} s"
            )
        return False

    profiler = cProfile.Profile() if profile is not None else None
    collector = CollectorClock()
    try:
        if profiler is not None:
            profiler.enable()
        with collector:
            stats = monitor.run(should_stop)
        if profiler is not None:
            profiler.disable()
        # run() returns once the last poll's windows are archived, their events
        # acknowledged and every offset committed: all of that is timed.
        finished = time.perf_counter(), time.process_time()
    finally:
        monitor.close()
        shutil.rmtree(archive_root, ignore_errors=True)
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
    clock = consumer.clock
    assert clock.assigned_at is not None
    assert clock.assigned_cpu is not None
    expected_windows = (rows - settings.window_size) // settings.step + 1
    if stats.dead_letters or stats.windows != expected_windows:
        raise RuntimeError(
            f"the consumer judged {stats.windows} windows (expected {expected_windows}) "
            f"and dead-lettered {sum(stats.dead_letters.values())} rows"
        )
    # The fetching process's CPU, reported when it stopped (in close()), counts too.
    threads = dict(stats.thread_cpu_seconds)
    fetcher_cpu = consumer.fetcher_cpu_seconds()
    if fetcher_cpu:
        threads["fetcher"] = fetcher_cpu - clock.assigned_fetcher_cpu
    return Measurement(
        rows=stats.rows,
        seconds=finished[0] - clock.assigned_at,
        cpu_seconds=finished[1] - clock.assigned_cpu + threads.get("fetcher", 0.0),
        detect_seconds=detector.seconds,
        stage_seconds=dict(stats.stage_seconds),
        thread_cpu_seconds=threads,
        gc_seconds=collector.seconds_between(clock.assigned_at, finished[0]),
    )


def _log_to(path: Path) -> None:
    """Send the consumer's log lines to ``path`` at INFO, formatted as in production.

    The consumer logs a line per window and a warning per drift: formatting them
    is part of its cost, printing thousands of them on the terminal is not.
    """
    log = logging.getLogger("consumer")
    if any(isinstance(h, logging.FileHandler) for h in log.handlers):
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    logging.getLogger("kafka").setLevel(logging.ERROR)
