"""Clocks for one read of the topic: when reading began, when it ended, and detection time."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka.consumer.subscription_state import ConsumerRebalanceListener


class AssignmentClock(ConsumerRebalanceListener):
    """A rebalance listener that notes when partitions were first assigned.

    Reading starts at assignment: the group join before it is the same fixed
    cost for every reader and is not throughput, so the rate leaves it out.

    Parameters
    ----------
    inner : ConsumerRebalanceListener, optional
        A listener to forward both callbacks to (the consumer's own).
    fetcher_cpu : callable, optional
        The CPU seconds of the consumer's fetching process so far
        (`broker.fetcher.FetchingConsumer.fetcher_cpu_seconds`), noted at assignment
        as ``assigned_fetcher_cpu``; none by default.
    """

    def __init__(
        self,
        inner: ConsumerRebalanceListener | None = None,
        fetcher_cpu: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.inner = inner
        self.fetcher_cpu = fetcher_cpu
        self.assigned_at: float | None = None
        self.assigned_cpu: float | None = None
        self.assigned_fetcher_cpu = 0.0

    def on_partitions_revoked(self, revoked: Any) -> None:
        if self.inner is not None:
            self.inner.on_partitions_revoked(revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        if self.assigned_at is None and assigned:
            self.assigned_at = time.perf_counter()
            self.assigned_cpu = time.process_time()
            self.assigned_fetcher_cpu = self.fetcher_cpu()
        if self.inner is not None:
            self.inner.on_partitions_assigned(assigned)


class ClockedConsumer:
    """A KafkaConsumer whose ``subscribe`` puts an :class:`AssignmentClock` around the listener.

    Every other attribute is the wrapped consumer's, so the drift monitor drives
    it as it drives a plain consumer.

    Parameters
    ----------
    consumer : kafka.KafkaConsumer
        The consumer to wrap.
    """

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self.clock = AssignmentClock(fetcher_cpu=self.fetcher_cpu_seconds)

    def fetcher_cpu_seconds(self) -> float:
        """The CPU seconds of the wrapped consumer's fetching process so far; 0 without one."""
        return float(getattr(self._consumer, "fetcher_cpu_seconds", 0.0))

    def subscribe(self, topics: Any, listener: ConsumerRebalanceListener | None = None) -> None:
        """Subscribe the wrapped consumer, timing the assignment."""
        self.clock.inner = listener
        self._consumer.subscribe(topics, listener=self.clock)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


class TimedDetector:
    """A KS detector whose ``predict`` calls are timed, one duration per window.

    A ``predict_many`` call over several windows gives each window an equal share.

    Parameters
    ----------
    detector : consumer.detection.AlibiKS or consumer.detection.FastKS
        The champion's detector.
    """

    def __init__(self, detector: Any) -> None:
        self._detector = detector
        self.seconds: list[float] = []

    def predict(self, x: Any) -> Any:
        """Judge one window with the wrapped detector, noting how long it took."""
        started = time.perf_counter()
        try:
            return self._detector.predict(x)
        finally:
            self.seconds.append(time.perf_counter() - started)

    def predict_many(self, windows: Any) -> Any:
        """Judge a poll's windows with the wrapped detector; each gets an equal share."""
        started = time.perf_counter()
        try:
            return self._detector.predict_many(windows)
        finally:
            share = (time.perf_counter() - started) / max(len(windows), 1)
            self.seconds.extend([share] * len(windows))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._detector, name)


class CollectorClock:
    """Times the cyclic garbage collector's passes while it is entered (a ``gc`` callback).

    >>> with CollectorClock() as clock:
    ...     began = time.perf_counter()
    ...     _ = gc.collect()
    >>> clock.seconds_between(began, time.perf_counter()) > 0
    True
    """

    def __init__(self) -> None:
        self._passes: list[tuple[float, float]] = []
        self._began: float | None = None

    def __enter__(self) -> CollectorClock:
        gc.callbacks.append(self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._note)

    def _note(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._began = now
        elif self._began is not None:
            self._passes.append((self._began, now - self._began))
            self._began = None

    def seconds_between(self, began: float, ended: float) -> float:
        """Seconds of the passes that began from ``began`` to ``ended`` (``perf_counter`` times)."""
        return sum(seconds for start, seconds in self._passes if began <= start <= ended)


class NullArchive:
    """The consumer's archive with its writes left out: for measuring what the archive costs.

    Paths are the real archive's; ``append``, ``append_many`` and ``sync`` write
    nothing (the events come back as they were given). Bench only: nothing is
    durable, so no real consumer may run with it.
    """

    def __init__(self, archive: Any) -> None:
        self._archive = archive

    def append(self, event: Any, *args: Any, **kwargs: Any) -> Any:
        """Write nothing; the event as given."""
        return event

    def append_many(self, windows: Any) -> list[Any]:
        """Write nothing; each window's event as given."""
        return [window.event for window in windows]

    def sync(self) -> None:
        """Sync nothing."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._archive, name)


@dataclass
class Measurement:
    """One read of the whole topic.

    Attributes
    ----------
    rows : int
        Rows consumed.
    seconds : float
        From partition assignment to the last row handled: decoded, and for the
        drift consumer also judged, archived, published and committed (async).
    cpu_seconds : float
        CPU time the reader's process (every thread) and its fetching process, if it
        has one (`broker.fetcher`), used over the same span. On a shared machine it
        wanders less than wall time: time the reader waited for a CPU held by someone
        else is not in it.
    detect_seconds : list of float
        Each window's ``predict`` time; empty for the plain reader.
    stage_seconds : dict of str to float
        The drift consumer's own clock per stage of its loop
        (`consumer.service.Stats.stage_seconds`); empty for the plain reader.
    thread_cpu_seconds : dict of str to float
        The drift consumer's CPU seconds on its loop's thread and its archive thread
        (`consumer.service.Stats.thread_cpu_seconds`), and in its fetching process
        (``fetcher``) if it has one; empty for the plain reader.
    gc_seconds : float
        Of the span, the time the cyclic garbage collector's passes took (any
        thread's; `CollectorClock`).
    """

    rows: int
    seconds: float
    cpu_seconds: float
    detect_seconds: list[float] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    thread_cpu_seconds: dict[str, float] = field(default_factory=dict)
    gc_seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds

    @property
    def cpu_rate(self) -> float:
        """Rows per CPU-second of the reader's process (all its threads)."""
        return self.rows / self.cpu_seconds

    @property
    def detect_share(self) -> float:
        """Fraction of the time spent in detection."""
        return sum(self.detect_seconds) / self.seconds

    def stage_us_per_row(self, stage: str) -> float:
        """Microseconds per row the consumer spent in ``stage``."""
        return self.stage_seconds[stage] / self.rows * 1e6
